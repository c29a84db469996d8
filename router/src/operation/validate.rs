//! Stage 2, validate: the document against the API schema, then the operation to run is chosen.
//!
//! With introspection on, unknown field and argument errors suggest close names ("Did you mean
//! ..."), as GraphQL servers usually do; with introspection off they do not, so the schema
//! cannot be guessed one typo at a time.

use graphql_tools::parser::query::{Definition, OperationDefinition, Selection};
use graphql_tools::static_graphql::query;
use graphql_tools::validation::validate::{ValidationPlan, validate as validate_document};

use crate::error::{GraphQLError, Location, codes};
use crate::graphql::schema::Schema;
use crate::query_planner::OperationKind;

/// The operation of a valid document that this request runs.
#[derive(Debug, Clone)]
pub(crate) struct SelectedOperation {
    pub(crate) kind: OperationKind,
    pub(crate) name: Option<String>,
    /// Index of the operation in `document.definitions`.
    pub(crate) index: usize,
}

/// Validates `document` and selects the operation named `operation_name` (or the only one).
pub(crate) fn validate(
    schema: &Schema,
    rules: &ValidationPlan,
    document: &query::Document,
    operation_name: Option<&str>,
    introspection_enabled: bool,
) -> Result<SelectedOperation, Vec<GraphQLError>> {
    let errors = validate_document(&schema.document, document, rules);
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|e| {
                let message = if introspection_enabled {
                    with_suggestions(schema, e.message)
                } else {
                    e.message
                };
                GraphQLError::new(message, codes::VALIDATION_FAILED).with_locations(
                    e.locations
                        .iter()
                        .map(|p| Location {
                            line: p.line,
                            column: p.column,
                        })
                        .collect(),
                )
            })
            .collect());
    }
    let selected = select_operation(document, operation_name)?;
    if schema.root_type(selected.kind).is_none() {
        return Err(vec![GraphQLError::new(
            format!(
                "The schema does not support {} operations",
                selected.kind.as_str()
            ),
            codes::VALIDATION_FAILED,
        )]);
    }
    if !introspection_enabled {
        let operation = operation_at(document, selected.index);
        if selects_introspection(document, &operation_parts(operation).1.items) {
            return Err(vec![GraphQLError::new(
                "Introspection is disabled",
                codes::INTROSPECTION_DISABLED,
            )]);
        }
    }
    Ok(selected)
}

/// Appends `Did you mean "a" or "b"?` to unknown-field and unknown-argument messages.
fn with_suggestions(schema: &Schema, message: String) -> String {
    fn quoted(text: &str) -> Vec<&str> {
        text.split('"').skip(1).step_by(2).collect()
    }
    let candidates: Vec<String> = if message.starts_with("Cannot query field ") {
        match quoted(&message).as_slice() {
            [field, type_name, ..] => schema
                .get_type(type_name)
                .map(|t| t.fields.iter().map(|f| f.name.clone()).collect())
                .map(|names| suggestion_list(field, names))
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    } else if message.starts_with("Unknown argument ") && message.contains(" on field ") {
        match quoted(&message).as_slice() {
            [argument, coordinate, ..] => coordinate
                .split_once('.')
                .and_then(|(t, f)| schema.get_type(t)?.field(f))
                .map(|f| f.args.iter().map(|a| a.name.clone()).collect())
                .map(|names| suggestion_list(argument, names))
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    if candidates.is_empty() {
        return message;
    }
    let quoted: Vec<String> = candidates
        .iter()
        .take(5)
        .map(|c| format!("\"{c}\""))
        .collect();
    let list = match quoted.as_slice() {
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
        [] => unreachable!("candidates is not empty"),
    };
    format!("{message} Did you mean {list}?")
}

/// Names close to `input` (edit distance within 40% of its length), closest first, as
/// graphql-js suggests them.
fn suggestion_list(input: &str, options: Vec<String>) -> Vec<String> {
    let threshold = input.len() * 2 / 5 + 1;
    let lower = input.to_lowercase();
    let mut scored: Vec<(usize, String)> = options
        .into_iter()
        .filter(|o| !o.starts_with("__"))
        .filter_map(|option| {
            let distance = if option.to_lowercase() == lower {
                1
            } else {
                edit_distance(&lower, &option.to_lowercase())
            };
            (distance <= threshold).then_some((distance, option))
        })
        .collect();
    scored.sort();
    scored.into_iter().map(|(_, o)| o).collect()
}

/// Damerau–Levenshtein distance (adjacent transpositions count as one edit).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

pub(crate) fn operation_at(
    document: &query::Document,
    index: usize,
) -> &query::OperationDefinition {
    match &document.definitions[index] {
        Definition::Operation(operation) => operation,
        Definition::Fragment(_) => {
            unreachable!("SelectedOperation::index always points at an operation")
        }
    }
}

/// Kind, selection set, variable definitions and name of an operation.
pub(crate) fn operation_parts(
    operation: &query::OperationDefinition,
) -> (
    OperationKind,
    &query::SelectionSet,
    &[query::VariableDefinition],
    Option<&str>,
) {
    match operation {
        OperationDefinition::SelectionSet(set) => (OperationKind::Query, set, &[], None),
        OperationDefinition::Query(q) => (
            OperationKind::Query,
            &q.selection_set,
            &q.variable_definitions,
            q.name.as_deref(),
        ),
        OperationDefinition::Mutation(m) => (
            OperationKind::Mutation,
            &m.selection_set,
            &m.variable_definitions,
            m.name.as_deref(),
        ),
        OperationDefinition::Subscription(s) => (
            OperationKind::Subscription,
            &s.selection_set,
            &s.variable_definitions,
            s.name.as_deref(),
        ),
    }
}

fn select_operation(
    document: &query::Document,
    operation_name: Option<&str>,
) -> Result<SelectedOperation, Vec<GraphQLError>> {
    let operations: Vec<(usize, &query::OperationDefinition)> = document
        .definitions
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Definition::Operation(op) => Some((i, op)),
            Definition::Fragment(_) => None,
        })
        .collect();
    let found = match operation_name {
        Some(name) => operations
            .iter()
            .find(|(_, op)| operation_parts(op).3 == Some(name))
            .ok_or_else(|| {
                vec![GraphQLError::new(
                    format!("Unknown operation named \"{name}\""),
                    codes::OPERATION_RESOLUTION_FAILURE,
                )]
            })?,
        None => match operations.as_slice() {
            [only] => only,
            [] => {
                return Err(vec![GraphQLError::new(
                    "The document contains no operation",
                    codes::OPERATION_RESOLUTION_FAILURE,
                )]);
            }
            _ => {
                return Err(vec![GraphQLError::new(
                    "The document contains several operations; provide `operationName`",
                    codes::OPERATION_RESOLUTION_FAILURE,
                )]);
            }
        },
    };
    let (index, operation) = *found;
    let (kind, _, _, name) = operation_parts(operation);
    Ok(SelectedOperation {
        kind,
        name: name.map(str::to_string),
        index,
    })
}

/// Whether the selection selects `__schema` or `__type` anywhere at this level (through
/// fragments), i.e. whether the operation introspects.
pub(crate) fn selects_introspection(
    document: &query::Document,
    items: &[query::Selection],
) -> bool {
    introspection_walk(document, items, Walk::Any, 0)
}

/// Whether every operation of `document` selects nothing but introspection (`__schema`,
/// `__type`, `__typename`) at its root, through fragments: what GraphiQL sends to learn the
/// schema, let through a safelist in development.
pub(crate) fn selects_only_introspection(document: &query::Document) -> bool {
    let mut operations = document.definitions.iter().filter_map(|d| match d {
        Definition::Operation(operation) => Some(operation),
        Definition::Fragment(_) => None,
    });
    operations.clone().next().is_some()
        && operations.all(|operation| {
            let items = match operation {
                OperationDefinition::SelectionSet(set) => &set.items,
                OperationDefinition::Query(q) => &q.selection_set.items,
                OperationDefinition::Mutation(_) | OperationDefinition::Subscription(_) => {
                    return false;
                }
            };
            introspection_walk(document, items, Walk::All, 0)
        })
}

/// What [`introspection_walk`] asks of a selection.
#[derive(Clone, Copy)]
enum Walk {
    /// Some item is `__schema` or `__type`.
    Any,
    /// Every item is `__schema`, `__type` or `__typename`.
    All,
}

fn introspection_walk(
    document: &query::Document,
    items: &[query::Selection],
    walk: Walk,
    depth: usize,
) -> bool {
    // Fragment cycles are rejected by validation; the depth bound is a second guard.
    if depth > 64 {
        return false;
    }
    let matches = |item: &query::Selection| match item {
        Selection::Field(f) => match walk {
            Walk::Any => f.name == "__schema" || f.name == "__type",
            Walk::All => matches!(f.name.as_str(), "__schema" | "__type" | "__typename"),
        },
        Selection::InlineFragment(inline) => {
            introspection_walk(document, &inline.selection_set.items, walk, depth + 1)
        }
        Selection::FragmentSpread(spread) => document.definitions.iter().any(|d| match d {
            Definition::Fragment(f) if f.name == spread.fragment_name => {
                introspection_walk(document, &f.selection_set.items, walk, depth + 1)
            }
            _ => false,
        }),
    };
    match walk {
        Walk::Any => items.iter().any(matches),
        Walk::All => items.iter().all(matches),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use graphql_tools::validation::rules::default_rules_validation_plan;

    use super::*;

    fn schema() -> Schema {
        let planner = crate::query_planner::QueryPlanner::new(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/bench.supergraph.graphql",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        Schema::new(Arc::clone(planner.api_schema()))
    }

    fn run(
        query: &str,
        name: Option<&str>,
        introspection: bool,
    ) -> Result<SelectedOperation, Vec<GraphQLError>> {
        let doc = crate::operation::parse::parse(query, 1000).unwrap();
        validate(
            &schema(),
            &default_rules_validation_plan(),
            &doc,
            name,
            introspection,
        )
    }

    #[test]
    fn selects_the_named_or_only_operation() {
        let errors = run(
            "query A { me { id } } mutation B { __typename }",
            Some("B"),
            true,
        )
        .unwrap_err();
        assert_eq!(
            errors[0].message,
            "The schema does not support mutation operations"
        );
        let op = run(
            "query A { me { id } } query B { users { id } }",
            Some("B"),
            true,
        )
        .unwrap();
        assert_eq!(op.name.as_deref(), Some("B"));
        assert_eq!(op.index, 1);
        assert_eq!(op.kind, OperationKind::Query);
        let only = run("{ me { id } }", None, true).unwrap();
        assert_eq!(only.name, None);
    }

    #[test]
    fn operation_resolution_errors() {
        let errors = run("query A { me { id } } query B { me { id } }", None, true).unwrap_err();
        assert_eq!(errors[0].code(), Some(codes::OPERATION_RESOLUTION_FAILURE));
        let errors = run("query A { me { id } }", Some("Nope"), true).unwrap_err();
        assert_eq!(errors[0].message, "Unknown operation named \"Nope\"");
    }

    #[test]
    fn validation_errors_have_locations_and_code() {
        let errors = run("{ me { nope } }", None, true).unwrap_err();
        assert_eq!(errors[0].code(), Some(codes::VALIDATION_FAILED));
        assert_eq!(errors[0].locations, vec![Location { line: 1, column: 8 }]);
    }

    #[test]
    fn suggestions_only_with_introspection() {
        let errors = run("{ me { nmae } }", None, true).unwrap_err();
        assert!(
            errors[0].message.ends_with("Did you mean \"name\"?"),
            "{}",
            errors[0].message
        );
        let errors = run("{ user(idd: \"1\") { id } }", None, true).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains("Did you mean \"id\"?")),
            "{errors:?}"
        );
        let errors = run("{ me { nmae } }", None, false).unwrap_err();
        assert!(
            !errors[0].message.contains("Did you mean"),
            "{}",
            errors[0].message
        );
        // Nothing close: no suggestion.
        let errors = run("{ me { zzzzzzzz } }", None, true).unwrap_err();
        assert!(!errors[0].message.contains("Did you mean"));
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            suggestion_list(
                "usrname",
                vec![
                    "id".into(),
                    "name".into(),
                    "username".into(),
                    "__typename".into()
                ]
            ),
            vec!["username".to_string(), "name".to_string()]
        );
    }

    #[test]
    fn introspection_can_be_disabled() {
        assert!(run("{ __schema { queryType { name } } }", None, true).is_ok());
        let errors = run(
            "query { ...F } fragment F on Query { __type(name: \"User\") { name } }",
            None,
            false,
        )
        .unwrap_err();
        assert_eq!(errors[0].code(), Some(codes::INTROSPECTION_DISABLED));
        assert!(run("{ __typename }", None, false).is_ok());
    }
}
