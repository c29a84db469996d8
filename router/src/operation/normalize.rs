//! Stage 3, normalize: the selected operation in the planner's canonical form, without the parts
//! the router answers itself.
//!
//! `__schema` and `__type` are resolved by the router from the API schema, so they are removed
//! before planning. An operation left with nothing but `__typename` needs no subgraph at all.
//! Client variables whose names the planner uses for its own entity-call variables
//! (`$representations`, `$__batch_reps_N`) are renamed first, or the subgraph operation would
//! declare the same variable twice. Interfaces and unions that may hold a value of a type the
//! API schema hides (`@inaccessible`) get `__typename` selected, so that `render` can tell such
//! a value and answer null for it.

use graphql_tools::parser::query::{Definition, Selection, TypeCondition, Value as AstValue};
use graphql_tools::static_graphql::query;

use super::validate::{SelectedOperation, operation_at, operation_parts};
use crate::graphql::schema::Schema;
use crate::query_planner::{NormalizedOperation, PlannerError, QueryPlanner};

/// The outcome of normalization.
pub(crate) struct Normalized {
    /// `None` when the operation has nothing subgraphs must answer.
    pub(crate) operation: Option<NormalizedOperation>,
    /// `(name in the plan, client name)` of renamed client variables.
    pub(crate) variable_renames: Vec<(String, String)>,
}

/// Normalizes the operation for planning.
pub(crate) fn normalize(
    planner: &QueryPlanner,
    schema: &Schema,
    document: &query::Document,
    operation: &SelectedOperation,
    root_type: &str,
) -> Result<Normalized, PlannerError> {
    let mut stripped = document.clone();
    strip_meta_fields(&mut stripped, operation.index, root_type);
    if !has_data_fields(&stripped, operation.index) {
        return Ok(Normalized {
            operation: None,
            variable_renames: Vec::new(),
        });
    }
    let variable_renames = rename_reserved_variables(&mut stripped, operation.index);
    select_typename_where_hidden(&mut stripped, operation.index, root_type, schema);
    let operation = planner.normalize(&stripped, operation.name.as_deref())?;
    Ok(Normalized {
        operation: Some(operation),
        variable_renames,
    })
}

/// Variable names the planner declares in entity calls.
fn is_reserved_variable(name: &str) -> bool {
    name == "representations" || name.starts_with("__batch_reps")
}

/// Renames the operation's variables that collide with the planner's, everywhere they are used.
fn rename_reserved_variables(
    document: &mut query::Document,
    operation_index: usize,
) -> Vec<(String, String)> {
    let Definition::Operation(operation) = &mut document.definitions[operation_index] else {
        return Vec::new();
    };
    let definitions = match operation {
        query::OperationDefinition::SelectionSet(_) => return Vec::new(),
        query::OperationDefinition::Query(q) => &mut q.variable_definitions,
        query::OperationDefinition::Mutation(m) => &mut m.variable_definitions,
        query::OperationDefinition::Subscription(s) => &mut s.variable_definitions,
    };
    let taken: Vec<String> = definitions.iter().map(|d| d.name.clone()).collect();
    let mut renames = Vec::new();
    for definition in definitions
        .iter_mut()
        .filter(|d| is_reserved_variable(&d.name))
    {
        let new_name = (0..)
            .map(|i| format!("client_{}_{i}", definition.name.trim_start_matches('_')))
            .find(|candidate| {
                !taken.contains(candidate) && !renames.iter().any(|(n, _)| n == candidate)
            })
            .unwrap_or_default();
        renames.push((
            new_name.clone(),
            std::mem::replace(&mut definition.name, new_name),
        ));
    }
    if renames.is_empty() {
        return renames;
    }
    fn rename_value(value: &mut query::Value, renames: &[(String, String)]) {
        match value {
            AstValue::Variable(name) => {
                if let Some((new, _)) = renames.iter().find(|(_, old)| old == name) {
                    *name = new.clone();
                }
            }
            AstValue::List(items) => items.iter_mut().for_each(|v| rename_value(v, renames)),
            AstValue::Object(fields) => fields
                .iter_mut()
                .for_each(|(_, v)| rename_value(v, renames)),
            _ => {}
        }
    }
    fn rename_directives(directives: &mut [query::Directive], renames: &[(String, String)]) {
        for directive in directives {
            directive
                .arguments
                .iter_mut()
                .for_each(|(_, v)| rename_value(v, renames));
        }
    }
    fn rename_selections(items: &mut [query::Selection], renames: &[(String, String)]) {
        for item in items {
            match item {
                Selection::Field(field) => {
                    field
                        .arguments
                        .iter_mut()
                        .for_each(|(_, v)| rename_value(v, renames));
                    rename_directives(&mut field.directives, renames);
                    rename_selections(&mut field.selection_set.items, renames);
                }
                Selection::InlineFragment(inline) => {
                    rename_directives(&mut inline.directives, renames);
                    rename_selections(&mut inline.selection_set.items, renames);
                }
                Selection::FragmentSpread(spread) => {
                    rename_directives(&mut spread.directives, renames)
                }
            }
        }
    }
    // Fragments are only planned through this operation, so renaming inside them is safe.
    for definition in document.definitions.iter_mut() {
        match definition {
            Definition::Fragment(fragment) => {
                rename_directives(&mut fragment.directives, &renames);
                rename_selections(&mut fragment.selection_set.items, &renames);
            }
            Definition::Operation(operation) => {
                let (directives, items) = match operation {
                    query::OperationDefinition::SelectionSet(set) => (None, &mut set.items),
                    query::OperationDefinition::Query(q) => {
                        (Some(&mut q.directives), &mut q.selection_set.items)
                    }
                    query::OperationDefinition::Mutation(m) => {
                        (Some(&mut m.directives), &mut m.selection_set.items)
                    }
                    query::OperationDefinition::Subscription(s) => {
                        (Some(&mut s.directives), &mut s.selection_set.items)
                    }
                };
                if let Some(directives) = directives {
                    rename_directives(directives, &renames);
                }
                rename_selections(items, &renames);
            }
        }
    }
    renames
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

/// Adds `__typename` under every field whose type is an interface or union that may hold a
/// value of a hidden type (the planner only fetches it where it needs it itself).
fn select_typename_where_hidden(
    document: &mut query::Document,
    operation_index: usize,
    root_type: &str,
    schema: &Schema,
) {
    fn walk(items: &mut [query::Selection], parent: &str, schema: &Schema, depth: usize) {
        if depth > 64 {
            return;
        }
        for item in items {
            match item {
                Selection::Field(field) => {
                    if field.selection_set.items.is_empty() {
                        continue;
                    }
                    let Some(ty) = schema
                        .get_type(parent)
                        .and_then(|t| t.field(&field.name))
                        .map(|d| d.ty.named().to_string())
                    else {
                        continue;
                    };
                    walk(&mut field.selection_set.items, &ty, schema, depth + 1);
                    let selected = field.selection_set.items.iter().any(
                        |s| matches!(s, Selection::Field(f) if f.name == "__typename" && f.alias.is_none()),
                    );
                    if !schema.hidden_members(&ty).is_empty() && !selected {
                        field
                            .selection_set
                            .items
                            .push(Selection::Field(query::Field {
                                position: field.position,
                                alias: None,
                                name: "__typename".to_string(),
                                arguments: Vec::new(),
                                directives: Vec::new(),
                                selection_set: query::SelectionSet {
                                    span: (field.position, field.position),
                                    items: Vec::new(),
                                },
                            }));
                    }
                }
                Selection::InlineFragment(inline) => {
                    let on = match &inline.type_condition {
                        Some(TypeCondition::On(on)) => on.clone(),
                        None => parent.to_string(),
                    };
                    walk(&mut inline.selection_set.items, &on, schema, depth + 1);
                }
                // Fragment definitions are walked on their own, from their type condition.
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    for (index, definition) in document.definitions.iter_mut().enumerate() {
        match definition {
            Definition::Fragment(fragment) => {
                let TypeCondition::On(on) = fragment.type_condition.clone();
                walk(&mut fragment.selection_set.items, &on, schema, 0);
            }
            Definition::Operation(operation) if index == operation_index => {
                let items = match operation {
                    query::OperationDefinition::SelectionSet(set) => &mut set.items,
                    query::OperationDefinition::Query(q) => &mut q.selection_set.items,
                    query::OperationDefinition::Mutation(m) => &mut m.selection_set.items,
                    query::OperationDefinition::Subscription(s) => &mut s.selection_set.items,
                };
                walk(items, root_type, schema, 0);
            }
            Definition::Operation(_) => {}
        }
    }
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
    use crate::operation::parse::parse;

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
    fn renames_variables_the_planner_reserves() {
        let mut doc = parse(
            "query($representations: Int!, $client_representations_0: Int, $__batch_reps_0: Int) { a(n: $representations, m: [$__batch_reps_0]) @include(if: true) ...F } fragment F on Query { b(n: $representations) }",
            1000,
        )
        .unwrap();
        let renames = rename_reserved_variables(&mut doc, 0);
        assert_eq!(
            renames,
            vec![
                (
                    "client_representations_1".to_string(),
                    "representations".to_string()
                ),
                (
                    "client_batch_reps_0_0".to_string(),
                    "__batch_reps_0".to_string()
                ),
            ]
        );
        let text = doc.to_string();
        assert!(
            !text.contains("$representations") && !text.contains("$__batch_reps_0"),
            "{text}"
        );
        assert!(text.contains("b(n: $client_representations_1)"), "{text}");
        assert!(text.contains("m: [$client_batch_reps_0_0]"), "{text}");
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
