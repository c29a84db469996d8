//! Stage 3, normalize: the selected operation in the planner's canonical form, without the parts
//! the router answers itself.
//!
//! `__schema` and `__type` are resolved by the router from the API schema, so they are removed
//! before planning. An operation left with nothing but `__typename` needs no subgraph at all.

use graphql_tools::parser::query::{Definition, Selection, TypeCondition};
use graphql_tools::static_graphql::query;

use super::validate::{SelectedOperation, operation_at, operation_parts};
use crate::query_planner::{NormalizedOperation, PlannerError, QueryPlanner};

/// Normalizes the operation for planning; `None` when it has nothing subgraphs must answer.
pub fn normalize(
    planner: &QueryPlanner,
    document: &query::Document,
    operation: &SelectedOperation,
    root_type: &str,
) -> Result<Option<NormalizedOperation>, PlannerError> {
    let mut stripped = document.clone();
    strip_meta_fields(&mut stripped, operation.index, root_type);
    if !has_data_fields(&stripped, operation.index) {
        return Ok(None);
    }
    planner
        .normalize(&stripped, operation.name.as_deref())
        .map(Some)
}

fn is_meta(selection: &query::Selection) -> bool {
    matches!(selection, Selection::Field(f) if f.name == "__schema" || f.name == "__type")
}

/// Removes `__schema`/`__type` from the operation's root selection and from fragments on the
/// root type, then drops fragments, inline fragments and spreads left empty.
fn strip_meta_fields(document: &mut query::Document, operation_index: usize, root_type: &str) {
    fn strip(items: &mut Vec<query::Selection>, empty_fragments: &[String]) {
        items.retain_mut(|item| match item {
            Selection::Field(_) => !is_meta(item),
            Selection::InlineFragment(inline) => {
                strip(&mut inline.selection_set.items, empty_fragments);
                !inline.selection_set.items.is_empty()
            }
            Selection::FragmentSpread(spread) => !empty_fragments.contains(&spread.fragment_name),
        });
    }
    // Emptying a fragment can empty fragments that spread it, so iterate to a fixed point.
    let mut empty: Vec<String> = Vec::new();
    loop {
        let before = empty.len();
        for definition in document.definitions.iter_mut() {
            if let Definition::Fragment(fragment) = definition {
                let TypeCondition::On(on) = &fragment.type_condition;
                if on == root_type {
                    strip(&mut fragment.selection_set.items, &empty);
                }
                if fragment.selection_set.items.is_empty() && !empty.contains(&fragment.name) {
                    empty.push(fragment.name.clone());
                }
            }
        }
        if empty.len() == before {
            break;
        }
    }
    if let Definition::Operation(operation) = &mut document.definitions[operation_index] {
        let items = match operation {
            query::OperationDefinition::SelectionSet(set) => &mut set.items,
            query::OperationDefinition::Query(q) => &mut q.selection_set.items,
            query::OperationDefinition::Mutation(m) => &mut m.selection_set.items,
            query::OperationDefinition::Subscription(s) => &mut s.selection_set.items,
        };
        strip(items, &empty);
    }
    document.definitions.retain(|d| match d {
        Definition::Fragment(f) => !empty.contains(&f.name),
        Definition::Operation(_) => true,
    });
}

/// Does the root selection contain any field other than `__typename`?
fn has_data_fields(document: &query::Document, operation_index: usize) -> bool {
    fn walk(document: &query::Document, items: &[query::Selection], depth: usize) -> bool {
        if depth > 64 {
            return true;
        }
        items.iter().any(|item| match item {
            Selection::Field(f) => f.name != "__typename",
            Selection::InlineFragment(inline) => {
                walk(document, &inline.selection_set.items, depth + 1)
            }
            Selection::FragmentSpread(spread) => document.definitions.iter().any(|d| match d {
                Definition::Fragment(f) if f.name == spread.fragment_name => {
                    walk(document, &f.selection_set.items, depth + 1)
                }
                _ => false,
            }),
        })
    }
    let (_, selection_set, _, _) = operation_parts(operation_at(document, operation_index));
    walk(document, &selection_set.items, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse::parse;

    fn stripped(query: &str) -> (String, bool) {
        let mut doc = parse(query, 1000).unwrap();
        let index = doc
            .definitions
            .iter()
            .position(|d| matches!(d, Definition::Operation(_)))
            .unwrap();
        strip_meta_fields(&mut doc, index, "Query");
        let index = doc
            .definitions
            .iter()
            .position(|d| matches!(d, Definition::Operation(_)))
            .unwrap();
        let has_data = has_data_fields(&doc, index);
        (
            doc.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            has_data,
        )
    }

    #[test]
    fn strips_introspection_and_keeps_data_fields() {
        let (text, has_data) = stripped("{ __schema { types { name } } me { id } }");
        assert_eq!(text, "{ me { id } }");
        assert!(has_data);
    }

    #[test]
    fn only_typename_and_introspection_needs_no_plan() {
        let (_, has_data) = stripped("{ __typename __type(name: \"User\") { name } }");
        assert!(!has_data);
        let (text, has_data) = stripped(
            "query { ...Meta ... on Query { __schema { queryType { name } } } } fragment Meta on Query { __schema { types { name } } }",
        );
        assert_eq!(text, "query { }");
        assert!(!has_data);
    }

    #[test]
    fn keeps_fragments_that_still_select_data() {
        let (text, has_data) = stripped(
            "query { ...F } fragment F on Query { __schema { types { name } } me { id } }",
        );
        assert_eq!(text, "query { ...F } fragment F on Query { me { id } }");
        assert!(has_data);
    }
}
