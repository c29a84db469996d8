//! Entity plumbing for `Flatten` and `BatchFetch` nodes: finding the entities at a flatten path,
//! writing their representations, applying the planner's rewrites, merging results back.
//!
//! Collecting walks the flatten path once and records where each entity sits as the list of
//! indexes taken from the root (a field's position in its object, an element's position in its
//! list). Merging follows those indexes straight back to the entity, without comparing keys
//! again. The locations stay valid in between: merges only append fields and never reorder or
//! remove them.

use std::borrow::Cow;

use ahash::AHashMap;
use xxhash_rust::xxh3::xxh3_128;

use crate::error::PathElement;
use crate::graphql::schema::Schema;
use crate::graphql::value::{Value, deep_merge, key_eq, object_get};
use crate::query_planner::{PathSegment, Rewrite, RewriteSegment, Selection, SelectionSet};

/// Representations collected for one `_entities` call.
#[derive(Debug, Default)]
pub(crate) struct EntityBatch {
    /// The JSON array of representations, ready to embed in the request body.
    pub(crate) representations: Vec<u8>,
    /// How many distinct representations were written.
    pub(crate) count: usize,
    /// The entities that were sent (deduplicated entities share a representation), in order.
    pub(crate) entities: Vec<EntityRef>,
    /// The entities' locations, concatenated (see [`EntityRef`]).
    pub(crate) locations: Vec<u32>,
}

/// An entity that was sent: its representation index and its location in `locations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityRef {
    pub(crate) representation: u32,
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl EntityBatch {
    pub(crate) fn location(&self, entity: &EntityRef) -> &[u32] {
        &self.locations[entity.start as usize..entity.end as usize]
    }
}

/// Does an object of `type_name` match a flatten-path or rewrite type condition?
fn matches_types(schema: &Schema, type_name: Option<&str>, types: &[String]) -> bool {
    match type_name {
        Some(t) => types.iter().any(|c| schema.satisfies(t, c)),
        None => false,
    }
}

/// Calls `f` for every entity object reached by `path` from `value`, in document order, with its
/// location (`stack` holds the indexes taken so far).
pub(crate) fn for_each_entity<'v, 'a>(
    schema: &Schema,
    value: &'v Value<'a>,
    path: &[PathSegment],
    stack: &mut Vec<u32>,
    f: &mut impl FnMut(&'v Value<'a>, &[u32]),
) {
    let mut each_item = |items: &'v [Value<'a>], rest: &[PathSegment], stack: &mut Vec<u32>| {
        for (i, item) in items.iter().enumerate() {
            stack.push(i as u32);
            for_each_entity(schema, item, rest, stack, f);
            stack.pop();
        }
    };
    match (path.first(), value) {
        (_, Value::Null) => {}
        (None, Value::Array(items)) => each_item(items, path, stack),
        (None, Value::Object(_)) => f(value, stack),
        (None, _) => {}
        (Some(PathSegment::List), Value::Array(items)) => each_item(items, &path[1..], stack),
        (Some(PathSegment::Field(name)), Value::Object(fields)) => {
            if let Some(position) = fields.iter().position(|(k, _)| key_eq(k, name)) {
                stack.push(position as u32);
                for_each_entity(schema, &fields[position].1, &path[1..], stack, f);
                stack.pop();
            }
        }
        (Some(PathSegment::TypeCondition(types)), Value::Object(_))
            if matches_types(schema, value.typename(), types) =>
        {
            for_each_entity(schema, value, &path[1..], stack, f);
        }
        // A list where the path expects an object: descend into its elements.
        (Some(PathSegment::Field(_) | PathSegment::TypeCondition(_)), Value::Array(items)) => {
            each_item(items, path, stack)
        }
        _ => {}
    }
}

/// The value at `location`, if the tree still has it.
pub(crate) fn locate_mut<'v, 'a>(
    root: &'v mut Value<'a>,
    location: &[u32],
) -> Option<&'v mut Value<'a>> {
    let mut value = root;
    for &index in location {
        value = match value {
            Value::Object(fields) => &mut fields.get_mut(index as usize)?.1,
            Value::Array(items) => items.get_mut(index as usize)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The response path of `location` (keys and list indexes), for re-pathing errors.
pub(crate) fn response_path(root: &Value<'_>, location: &[u32]) -> Vec<PathElement> {
    let mut path = Vec::with_capacity(location.len());
    let mut value = root;
    for &index in location {
        value = match value {
            Value::Object(fields) => match fields.get(index as usize) {
                Some((key, child)) => {
                    path.push(PathElement::Key(key.to_string()));
                    child
                }
                None => break,
            },
            Value::Array(items) => match items.get(index as usize) {
                Some(child) => {
                    path.push(PathElement::Index(index as usize));
                    child
                }
                None => break,
            },
            _ => break,
        };
    }
    path
}

/// Collects the deduplicated representations of the entities at `paths` into `batch`.
pub(crate) fn collect_representations(
    schema: &Schema,
    data: &Value<'_>,
    paths: &[Vec<PathSegment>],
    requires: &SelectionSet,
    input_rewrites: &[Rewrite],
    batch: &mut EntityBatch,
) {
    let mut seen: AHashMap<u128, u32> = AHashMap::new();
    let mut scratch = Vec::with_capacity(128);
    let mut stack = Vec::with_capacity(16);
    batch.representations.push(b'[');
    for path in paths {
        for_each_entity(schema, data, path, &mut stack, &mut |entity, location| {
            scratch.clear();
            let written = if input_rewrites.is_empty() {
                write_representation(schema, entity, requires, &mut scratch)
            } else {
                let mut rewritten = entity.clone();
                apply_rewrites(schema, &mut rewritten, input_rewrites);
                write_representation(schema, &rewritten, requires, &mut scratch)
            };
            if !written {
                return;
            }
            let representation = *seen.entry(xxh3_128(&scratch)).or_insert_with(|| {
                if batch.count > 0 {
                    batch.representations.push(b',');
                }
                batch.representations.extend_from_slice(&scratch);
                batch.count += 1;
                (batch.count - 1) as u32
            });
            let start = batch.locations.len() as u32;
            batch.locations.extend_from_slice(location);
            batch.entities.push(EntityRef {
                representation,
                start,
                end: batch.locations.len() as u32,
            });
        });
    }
    batch.representations.push(b']');
}

/// Writes the representation of `entity` (an object) for `requires`; false when no type
/// condition of `requires` matches the entity, in which case nothing usable was written.
pub(crate) fn write_representation(
    schema: &Schema,
    entity: &Value<'_>,
    requires: &SelectionSet,
    out: &mut Vec<u8>,
) -> bool {
    let Value::Object(fields) = entity else {
        return false;
    };
    let type_name = entity.typename();
    let mut written = Written::default();
    out.push(b'{');
    write_selection_fields(schema, fields, type_name, requires, out, &mut written);
    out.push(b'}');
    // An entity with only `__typename` matched a condition but has no key fields: still not
    // resolvable, so it is not sent either.
    written.any(|k| k != "__typename")
}

/// The keys written into one representation object so far. Runs once per entity, and entities
/// are the bulk of a large response, so the usual handful of keys lives inline: a heap
/// allocation per entity cost more than writing the representation.
#[derive(Default)]
struct Written<'f> {
    inline: [&'f str; 8],
    len: usize,
    more: Vec<&'f str>,
}

impl<'f> Written<'f> {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn any(&self, mut f: impl FnMut(&'f str) -> bool) -> bool {
        self.inline[..self.len.min(8)].iter().any(|k| f(k)) || self.more.iter().any(|k| f(k))
    }

    fn contains(&self, key: &str) -> bool {
        self.any(|k| key_eq(k, key))
    }

    fn push(&mut self, key: &'f str) {
        if self.len < self.inline.len() {
            self.inline[self.len] = key;
        } else {
            self.more.push(key);
        }
        self.len += 1;
    }
}

fn write_selection_fields<'f>(
    schema: &Schema,
    fields: &'f [(Cow<'_, str>, Value<'_>)],
    type_name: Option<&str>,
    selections: &'f SelectionSet,
    out: &mut Vec<u8>,
    written: &mut Written<'f>,
) {
    for selection in &selections.items {
        match selection {
            Selection::Field(field) => {
                let key = field.response_key();
                if written.contains(key) {
                    continue;
                }
                // The planner writes `key: dataKey` when it fetched the requirement under an
                // internal alias: read the data under the field name, send it under the alias.
                let value = object_get(fields, &field.name).or_else(|| object_get(fields, key));
                let Some(value) = value else { continue };
                if !written.is_empty() {
                    out.push(b',');
                }
                written.push(key);
                // Response keys are GraphQL names ([_A-Za-z][_0-9A-Za-z]*): nothing to escape.
                out.push(b'"');
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":");
                write_selected_value(schema, value, &field.selections, out);
            }
            Selection::InlineFragment(fragment) => {
                let applies = match type_name {
                    // An `@interfaceObject` subgraph knows the interface, the data the object
                    // type (or the reverse): either direction matches.
                    Some(t) => {
                        schema.satisfies(t, &fragment.type_condition)
                            || schema.satisfies(&fragment.type_condition, t)
                    }
                    None => true,
                };
                if applies {
                    write_selection_fields(
                        schema,
                        fields,
                        type_name,
                        &fragment.selections,
                        out,
                        written,
                    );
                }
            }
        }
    }
}

fn write_selected_value(
    schema: &Schema,
    value: &Value<'_>,
    selections: &SelectionSet,
    out: &mut Vec<u8>,
) {
    match value {
        Value::Object(fields) if !selections.items.is_empty() => {
            let mut written = Written::default();
            out.push(b'{');
            write_selection_fields(
                schema,
                fields,
                value.typename(),
                selections,
                out,
                &mut written,
            );
            out.push(b'}');
        }
        Value::Array(items) if !selections.items.is_empty() => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_selected_value(schema, item, selections, out);
            }
            out.push(b']');
        }
        other => other.write_json(out),
    }
}

/// Applies the planner's rewrites to one entity (input) or one fetched value (output).
pub(crate) fn apply_rewrites(schema: &Schema, value: &mut Value<'_>, rewrites: &[Rewrite]) {
    for rewrite in rewrites {
        match rewrite {
            Rewrite::ValueSetter {
                path,
                value: new_value,
            } => set_value(schema, value, path, new_value),
            Rewrite::KeyRenamer { path, rename_to } => rename_key(schema, value, path, rename_to),
        }
    }
}

fn set_value(schema: &Schema, value: &mut Value<'_>, path: &[RewriteSegment], new_value: &str) {
    let Some((first, rest)) = path.split_first() else {
        *value = Value::String(Cow::Owned(new_value.to_string()));
        return;
    };
    match value {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| set_value(schema, item, path, new_value)),
        Value::Object(fields) => match first {
            RewriteSegment::TypenameEquals(types) => {
                if matches_types(schema, value.typename(), types) {
                    set_value(schema, value, rest, new_value);
                }
            }
            RewriteSegment::Key(key) => {
                if let Some((_, child)) = fields.iter_mut().find(|(k, _)| k == key) {
                    set_value(schema, child, rest, new_value);
                }
            }
        },
        _ => {}
    }
}

fn rename_key(schema: &Schema, value: &mut Value<'_>, path: &[RewriteSegment], rename_to: &str) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match value {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rename_key(schema, item, path, rename_to)),
        Value::Object(fields) => match first {
            RewriteSegment::TypenameEquals(types) => {
                if matches_types(schema, value.typename(), types) {
                    rename_key(schema, value, rest, rename_to);
                }
            }
            RewriteSegment::Key(key) if rest.is_empty() => {
                if let Some(index) = fields.iter().position(|(k, _)| k == key) {
                    let (_, renamed) = fields.remove(index);
                    // The target key may already exist when another fetch filled it.
                    match fields.iter_mut().find(|(k, _)| k == rename_to) {
                        Some((_, existing)) => deep_merge(existing, renamed),
                        None => fields.push((Cow::Owned(rename_to.to_string()), renamed)),
                    }
                }
            }
            RewriteSegment::Key(key) => {
                if let Some((_, child)) = fields.iter_mut().find(|(k, _)| k == key) {
                    rename_key(schema, child, rest, rename_to);
                }
            }
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::query_planner::{FieldSelection, InlineFragment};

    fn schema() -> Schema {
        let doc = graphql_tools::parser::parse_schema::<String>(
            "type Query { a: Int } interface Media { id: ID! } type Book implements Media { id: ID! } type Movie implements Media { id: ID! }",
        )
        .unwrap()
        .into_static();
        Schema::new(Arc::new(doc))
    }

    fn field(name: &str) -> Selection {
        Selection::Field(FieldSelection {
            name: name.into(),
            alias: None,
            selections: SelectionSet::default(),
        })
    }

    fn on(type_condition: &str, items: Vec<Selection>) -> SelectionSet {
        SelectionSet {
            items: vec![Selection::InlineFragment(InlineFragment {
                type_condition: type_condition.into(),
                selections: SelectionSet { items },
            })],
        }
    }

    #[test]
    fn collects_deduplicated_representations_along_paths() {
        let data: Value = sonic_rs::from_str(
            r#"{"a":[{"p":{"__typename":"Book","id":"1","x":true}},{"p":null},{"p":{"__typename":"Book","id":"2"}}],
                "b":{"__typename":"Book","id":"1"}}"#,
        )
        .unwrap();
        let requires = on("Book", vec![field("__typename"), field("id")]);
        let paths = vec![
            vec![
                PathSegment::Field("a".into()),
                PathSegment::List,
                PathSegment::Field("p".into()),
            ],
            vec![PathSegment::Field("b".into())],
        ];
        let mut batch = EntityBatch::default();
        collect_representations(&schema(), &data, &paths, &requires, &[], &mut batch);
        assert_eq!(
            String::from_utf8(batch.representations.clone()).unwrap(),
            r#"[{"__typename":"Book","id":"1"},{"__typename":"Book","id":"2"}]"#
        );
        assert_eq!(batch.count, 2);
        let representations: Vec<u32> = batch.entities.iter().map(|e| e.representation).collect();
        assert_eq!(representations, vec![0, 1, 0]);
        let locations: Vec<&[u32]> = batch.entities.iter().map(|e| batch.location(e)).collect();
        assert_eq!(locations, vec![&[0, 0, 0][..], &[0, 2, 0][..], &[1][..]]);
    }

    #[test]
    fn locations_lead_back_to_entities_and_their_response_paths() {
        let mut data: Value =
            sonic_rs::from_str(r#"{"a":[{"p":{"id":"1"}},{"p":null},{"p":{"id":"2"}}]}"#).unwrap();
        assert_eq!(
            response_path(&data, &[0, 2, 0]),
            vec![
                PathElement::Key("a".into()),
                PathElement::Index(2),
                PathElement::Key("p".into())
            ]
        );
        let target = locate_mut(&mut data, &[0, 2, 0]).unwrap();
        deep_merge(target, sonic_rs::from_str(r#"{"n":3}"#).unwrap());
        assert_eq!(
            data.to_json_string(),
            r#"{"a":[{"p":{"id":"1"}},{"p":null},{"p":{"id":"2","n":3}}]}"#
        );
        assert!(locate_mut(&mut data, &[0, 9]).is_none());
    }

    #[test]
    fn type_conditions_filter_entities() {
        let data: Value = sonic_rs::from_str(
            r#"{"m":[{"__typename":"Book","id":"1"},{"__typename":"Movie","id":"2"}]}"#,
        )
        .unwrap();
        let path = vec![
            PathSegment::Field("m".into()),
            PathSegment::List,
            PathSegment::TypeCondition(vec!["Movie".into()]),
        ];
        let mut seen = Vec::new();
        for_each_entity(&schema(), &data, &path, &mut Vec::new(), &mut |e, _| {
            seen.push(e.get("id").cloned())
        });
        assert_eq!(seen, vec![Some(Value::String("2".into()))]);
    }

    #[test]
    fn entities_matching_no_condition_are_not_sent() {
        let entity: Value = sonic_rs::from_str(r#"{"__typename":"Movie","id":"2"}"#).unwrap();
        let mut out = Vec::new();
        assert!(!write_representation(
            &schema(),
            &entity,
            &on("Book", vec![field("__typename"), field("id")]),
            &mut out
        ));
        // Interface conditions match implementing objects (and the reverse, for @interfaceObject).
        out.clear();
        assert!(write_representation(
            &schema(),
            &entity,
            &on("Media", vec![field("__typename"), field("id")]),
            &mut out
        ));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"__typename":"Movie","id":"2"}"#
        );
    }

    #[test]
    fn rewrites_set_values_and_rename_keys() {
        let schema = schema();
        let mut entity: Value =
            sonic_rs::from_str(r#"{"__typename":"Book","id":"1","_a0":5}"#).unwrap();
        apply_rewrites(
            &schema,
            &mut entity,
            &[
                Rewrite::KeyRenamer {
                    path: vec![
                        RewriteSegment::TypenameEquals(vec!["Book".into()]),
                        RewriteSegment::Key("_a0".into()),
                    ],
                    rename_to: "count".into(),
                },
                Rewrite::ValueSetter {
                    path: vec![
                        RewriteSegment::TypenameEquals(vec!["Media".into()]),
                        RewriteSegment::Key("__typename".into()),
                    ],
                    value: "Media".into(),
                },
            ],
        );
        assert_eq!(
            entity.to_json_string(),
            r#"{"__typename":"Media","id":"1","count":5}"#
        );
    }
}
