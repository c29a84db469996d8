//! The response fields a failed fetch leaves null: read from the fetch's own operation text, so
//! that each error of a failed fetch can name the paths it explains.
//!
//! Only the failure path uses this (the text is parsed again then, never on success): a root
//! fetch leaves its top-level fields null, an entity fetch leaves the fields it selects under
//! `_entities` (or a batch's alias) null on every entity it was sent for.

use graphql_tools::parser::query::{Definition, Document, OperationDefinition, Selection};

type Doc<'t> = Document<'t, String>;
type SelectionSet<'t> = graphql_tools::parser::query::SelectionSet<'t, String>;

/// The response keys of the operation's top-level fields, in order, without `__typename`.
pub(crate) fn root_fields(query: &str) -> Vec<String> {
    let Ok(document) = graphql_tools::parser::parse_query::<String>(query) else {
        return Vec::new();
    };
    let Some(selections) = operation_selections(&document) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    collect_keys(&document, selections, &mut keys);
    keys
}

/// The response keys selected under the top-level field `entities_key` (`_entities`, or a
/// batch's alias), through fragments, in order, without `__typename`.
pub(crate) fn entity_fields(query: &str, entities_key: &str) -> Vec<String> {
    let Ok(document) = graphql_tools::parser::parse_query::<String>(query) else {
        return Vec::new();
    };
    let Some(selections) = operation_selections(&document) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    let mut fields = Vec::new();
    collect_fields(&document, selections, &mut fields);
    for field in fields {
        let key = field.alias.as_deref().unwrap_or(&field.name);
        if key == entities_key {
            collect_keys(&document, &field.selection_set, &mut keys);
        }
    }
    keys
}

fn operation_selections<'d, 't>(document: &'d Doc<'t>) -> Option<&'d SelectionSet<'t>> {
    document.definitions.iter().find_map(|d| match d {
        Definition::Operation(OperationDefinition::SelectionSet(s)) => Some(s),
        Definition::Operation(OperationDefinition::Query(q)) => Some(&q.selection_set),
        Definition::Operation(OperationDefinition::Mutation(m)) => Some(&m.selection_set),
        Definition::Operation(OperationDefinition::Subscription(s)) => Some(&s.selection_set),
        Definition::Fragment(_) => None,
    })
}

/// The fields of `selections`, with inline fragments and fragment spreads flattened.
fn collect_fields<'d, 't>(
    document: &'d Doc<'t>,
    selections: &'d SelectionSet<'t>,
    out: &mut Vec<&'d graphql_tools::parser::query::Field<'t, String>>,
) {
    for selection in &selections.items {
        match selection {
            Selection::Field(field) => out.push(field),
            Selection::InlineFragment(fragment) => {
                collect_fields(document, &fragment.selection_set, out)
            }
            Selection::FragmentSpread(spread) => {
                let fragment = document.definitions.iter().find_map(|d| match d {
                    Definition::Fragment(f) if f.name == spread.fragment_name => Some(f),
                    _ => None,
                });
                if let Some(fragment) = fragment {
                    collect_fields(document, &fragment.selection_set, out);
                }
            }
        }
    }
}

fn collect_keys<'t>(document: &Doc<'t>, selections: &SelectionSet<'t>, keys: &mut Vec<String>) {
    let mut fields = Vec::new();
    collect_fields(document, selections, &mut fields);
    for field in fields {
        let key = field.alias.as_deref().unwrap_or(&field.name);
        if key != "__typename" && !keys.iter().any(|k| k == key) {
            keys.push(key.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_fields_are_the_top_level_response_keys() {
        assert_eq!(
            root_fields("query($n:Int){a:topProducts(first:$n){upc} me{id} __typename}"),
            vec!["a", "me"]
        );
        assert_eq!(
            root_fields("{...F ... on Query{x}} fragment F on Query{y x}"),
            vec!["y", "x"]
        );
        assert!(root_fields("not graphql {").is_empty());
    }

    #[test]
    fn entity_fields_are_read_under_the_entities_key() {
        let query = "query($representations:[_Any!]!){_entities(representations:$representations){...on Product{__typename inStock shippingEstimate} ...on User{inStock name}}}";
        assert_eq!(
            entity_fields(query, "_entities"),
            vec!["inStock", "shippingEstimate", "name"]
        );
        let batch = "query($r0:[_Any!]!,$r1:[_Any!]!){_e0:_entities(representations:$r0){...on A{x}} _e1:_entities(representations:$r1){...on B{y}}}";
        assert_eq!(entity_fields(batch, "_e1"), vec!["y"]);
        assert!(entity_fields(batch, "_e9").is_empty());
    }
}
