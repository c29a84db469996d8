//! Last stage, render: writes the client's response from the merged data, exactly in the shape the
//! operation asked for, streaming JSON into one buffer.
//!
//! Null propagation per the GraphQL spec without building a second tree: every nullable position
//! remembers where its value starts in the buffer; when a non-null position below it turns out to
//! be null, the writer unwinds to that position, truncates the buffer there and writes `null`.

use std::borrow::Cow;

use super::shape::{FieldKind, ObjectShape, Output, ResponseShape};
use crate::error::{GraphQLError, PathElement, codes, write_errors};
use crate::graphql::value::{Value, key_eq, write_str};

/// Marks that a null reached a non-null position and must propagate to the nearest nullable one.
struct Bubble;

#[derive(Clone, Copy)]
enum PathItem<'s> {
    Key(&'s str),
    Index(usize),
}

struct Projector<'s> {
    out: Vec<u8>,
    errors: Vec<GraphQLError>,
    /// Response path of the value being written, for error paths.
    path: Vec<PathItem<'s>>,
    /// A whole fetch failed, so fields absent from the data already have an error.
    missing_is_explained: bool,
}

/// Writes `{"data":…,"errors":…}` for an executed operation; returns the body and error count.
pub(crate) fn render(
    shape: &ResponseShape,
    data: &Value<'_>,
    errors: Vec<GraphQLError>,
    missing_is_explained: bool,
    capacity: usize,
) -> (Vec<u8>, usize) {
    let mut projector = Projector {
        out: Vec::with_capacity(capacity),
        errors,
        path: Vec::with_capacity(16),
        missing_is_explained,
    };
    projector.out.extend_from_slice(b"{\"data\":");
    let mark = projector.out.len();
    let written = match data {
        Value::Object(fields) => projector
            .write_object(fields, &shape.root, &shape.root_type)
            .is_ok(),
        _ => false,
    };
    if !written {
        projector.out.truncate(mark);
        projector.out.extend_from_slice(b"null");
    }
    let Projector {
        mut out, errors, ..
    } = projector;
    if !errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        write_errors(&mut out, &errors);
    }
    out.push(b'}');
    (out, errors.len())
}

/// Finds `key` in an object, starting after the previous hit: subgraphs usually return fields in
/// the order the shape asks for them, which makes the common lookup a single comparison.
#[inline]
fn find<'v, 'a>(
    fields: &'v [(Cow<'a, str>, Value<'a>)],
    key: &str,
    cursor: &mut usize,
) -> Option<&'v Value<'a>> {
    // Wraps around by comparison, not `%`: an integer division per field was a measurable
    // share of rendering.
    let len = fields.len();
    let mut i = if *cursor < len { *cursor } else { 0 };
    for _ in 0..len {
        if key_eq(&fields[i].0, key) {
            *cursor = i + 1;
            return Some(&fields[i].1);
        }
        i += 1;
        if i == len {
            i = 0;
        }
    }
    None
}

impl<'s> Projector<'s> {
    fn write_object(
        &mut self,
        fields: &[(Cow<'_, str>, Value<'_>)],
        shape: &'s ObjectShape,
        type_name: &str,
    ) -> Result<(), Bubble> {
        self.out.push(b'{');
        let mut cursor = 0;
        for (i, field) in shape.fields.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            // Response keys are GraphQL names ([_A-Za-z][_0-9A-Za-z]*): no escaping needed.
            self.out.push(b'"');
            self.out.extend_from_slice(field.response_key.as_bytes());
            self.out.extend_from_slice(b"\":");
            match &field.kind {
                FieldKind::Typename => write_str(&mut self.out, type_name),
                FieldKind::Output(output) => {
                    let value = find(fields, &field.response_key, &mut cursor);
                    self.path.push(PathItem::Key(&field.response_key));
                    let result = self.write_value(value, output, type_name, &field.field_name);
                    self.path.pop();
                    result?;
                }
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    /// Writes a value at a position; nullable positions absorb a `Bubble` from below.
    fn write_value(
        &mut self,
        value: Option<&Value<'_>>,
        output: &'s Output,
        parent_type: &str,
        field_name: &str,
    ) -> Result<(), Bubble> {
        let (non_null, inner) = match output {
            Output::NonNull(inner) => (true, inner.as_ref()),
            other => (false, other),
        };
        // An object whose runtime type is not in the API schema (an `@inaccessible` type behind
        // an interface or a union) cannot be represented: it is null, as if the subgraph had
        // sent null, and never shows its fields or type name.
        let unrepresentable = match (value, inner) {
            (Some(value), Output::Abstract(shape)) => {
                value.typename().is_some_and(|t| !shape.represents(t))
            }
            _ => false,
        };
        let value = match value {
            None | Some(Value::Null) => {
                if non_null {
                    self.non_null_violation(value.is_none(), parent_type, field_name);
                    return Err(Bubble);
                }
                self.out.extend_from_slice(b"null");
                return Ok(());
            }
            Some(_) if unrepresentable => {
                if non_null {
                    self.non_null_violation(false, parent_type, field_name);
                    return Err(Bubble);
                }
                self.out.extend_from_slice(b"null");
                return Ok(());
            }
            Some(value) => value,
        };
        let mark = self.out.len();
        match self.write_inner(value, inner, parent_type, field_name) {
            Ok(()) => Ok(()),
            Err(Bubble) if !non_null => {
                self.out.truncate(mark);
                self.out.extend_from_slice(b"null");
                Ok(())
            }
            Err(bubble) => Err(bubble),
        }
    }

    fn write_inner(
        &mut self,
        value: &Value<'_>,
        output: &'s Output,
        parent_type: &str,
        field_name: &str,
    ) -> Result<(), Bubble> {
        match output {
            Output::NonNull(_) => self.write_value(Some(value), output, parent_type, field_name),
            Output::Scalar => {
                value.write_json(&mut self.out);
                Ok(())
            }
            Output::Enum(values) => match value {
                Value::String(s) if values.iter().any(|v| v == s) => {
                    write_str(&mut self.out, s);
                    Ok(())
                }
                _ => {
                    self.invalid_value(format!(
                        "Invalid value for enum field {parent_type}.{field_name}"
                    ));
                    Err(Bubble)
                }
            },
            Output::List(item) => {
                let Value::Array(items) = value else {
                    self.invalid_value(format!(
                        "Expected a list for field {parent_type}.{field_name}"
                    ));
                    return Err(Bubble);
                };
                self.out.push(b'[');
                for (i, element) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.path.push(PathItem::Index(i));
                    let result = self.write_value(Some(element), item, parent_type, field_name);
                    self.path.pop();
                    result?;
                }
                self.out.push(b']');
                Ok(())
            }
            Output::Object { type_name, shape } => {
                let Value::Object(fields) = value else {
                    self.invalid_value(format!(
                        "Expected an object for field {parent_type}.{field_name}"
                    ));
                    return Err(Bubble);
                };
                self.write_object(fields, shape, type_name)
            }
            Output::Abstract(abstract_shape) => {
                let Value::Object(fields) = value else {
                    self.invalid_value(format!(
                        "Expected an object for field {parent_type}.{field_name}"
                    ));
                    return Err(Bubble);
                };
                let type_name = value.typename();
                let shape = abstract_shape.shape_for(type_name);
                self.write_object(
                    fields,
                    shape,
                    type_name.unwrap_or(&abstract_shape.type_name),
                )
            }
        }
    }

    fn current_path(&self) -> Vec<PathElement> {
        self.path
            .iter()
            .map(|item| match item {
                PathItem::Key(key) => PathElement::Key((*key).to_string()),
                PathItem::Index(i) => PathElement::Index(*i),
            })
            .collect()
    }

    /// Records a null in a non-null position unless an error already explains it: the subgraph
    /// reported an error at or below this path, or the field is absent because its fetch failed.
    fn non_null_violation(&mut self, missing: bool, parent_type: &str, field_name: &str) {
        if missing && self.missing_is_explained {
            return;
        }
        let path = self.current_path();
        let explained = self
            .errors
            .iter()
            .any(|e| e.path.as_ref().is_some_and(|p| explains(p, &path)));
        if !explained {
            self.errors.push(
                GraphQLError::new(
                    format!(
                        "Cannot return null for non-nullable field {parent_type}.{field_name}."
                    ),
                    codes::NON_NULL_VIOLATION,
                )
                .with_path(path),
            );
        }
    }

    fn invalid_value(&mut self, message: String) {
        let path = self.current_path();
        self.errors
            .push(GraphQLError::new(message, codes::INVALID_SUBGRAPH_VALUE).with_path(path));
    }
}

/// Whether an error at `error_path` explains a null at `path`: it is at or below it. An `"@"`
/// in the error path (fields removed by `authorize` or `rate_limit`, refused for every list
/// element at once) matches any list index.
fn explains(error_path: &[PathElement], path: &[PathElement]) -> bool {
    error_path.len() >= path.len()
        && error_path.iter().zip(path).all(|(e, p)| match (e, p) {
            (PathElement::Key(wildcard), PathElement::Index(_)) => wildcard == "@",
            (e, p) => e == p,
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::graphql::schema::Schema;
    use crate::operation::parse::parse;
    use crate::operation::shape::compile;

    const SDL: &str = r#"
        type Query { me: User, users: [User!], strict: User!, node: Node, color: Color }
        interface Node { id: ID! }
        type User implements Node { id: ID!, name: String!, nick: String, friends: [User], color: Color }
        type Post implements Node { id: ID!, title: String }
        enum Color { RED GREEN }
    "#;

    fn run(
        query: &str,
        data: &str,
        errors: Vec<GraphQLError>,
        missing_explained: bool,
    ) -> serde_json::Value {
        serde_json::from_str(&run_text(query, data, errors, missing_explained)).unwrap()
    }

    fn run_text(
        query: &str,
        data: &str,
        errors: Vec<GraphQLError>,
        missing_explained: bool,
    ) -> String {
        let schema = Schema::new(Arc::new(
            graphql_tools::parser::parse_schema::<String>(SDL)
                .unwrap()
                .into_static(),
        ));
        let doc = parse(query, 10_000).unwrap();
        let shape = compile(&schema, &doc, 0, &serde_json::Map::new());
        let data: Value = sonic_rs::from_str(data).unwrap();
        let (body, _) = render(&shape, &data, errors, missing_explained, 64);
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn writes_exactly_the_selection_with_aliases_and_typename() {
        let body = run_text(
            "{ me { __typename nick alias: id id } }",
            r#"{"me":{"id":"1","alias":"1","nick":"n","extra":"hidden","__typename":"User"}}"#,
            vec![],
            false,
        );
        assert_eq!(
            body,
            r#"{"data":{"me":{"__typename":"User","nick":"n","alias":"1","id":"1"}}}"#
        );
    }

    #[test]
    fn null_in_non_null_field_propagates_to_the_nearest_nullable_parent() {
        let body = run(
            "{ me { id name } }",
            r#"{"me":{"id":"1","name":null}}"#,
            vec![],
            false,
        );
        assert_eq!(body["data"], serde_json::json!({"me": null}));
        assert_eq!(
            body["errors"][0]["message"],
            "Cannot return null for non-nullable field User.name."
        );
        assert_eq!(body["errors"][0]["path"], serde_json::json!(["me", "name"]));
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "NON_NULL_VIOLATION"
        );
    }

    #[test]
    fn propagation_through_non_null_list_items_and_to_data() {
        let body = run(
            "{ users { id name } }",
            r#"{"users":[{"id":"1","name":"a"},{"id":"2","name":null}]}"#,
            vec![],
            false,
        );
        assert_eq!(body["data"], serde_json::json!({"users": null}));
        assert_eq!(
            body["errors"][0]["path"],
            serde_json::json!(["users", 1, "name"])
        );
        let body = run(
            "{ strict { id name } }",
            r#"{"strict":{"id":"1"}}"#,
            vec![],
            false,
        );
        assert_eq!(body["data"], serde_json::Value::Null);
    }

    #[test]
    fn nullable_list_items_absorb() {
        let body = run(
            "{ me { friends { name } } }",
            r#"{"me":{"friends":[{"name":"a"},{"name":null}]}}"#,
            vec![],
            false,
        );
        assert_eq!(
            body["data"],
            serde_json::json!({"me": {"friends": [{"name": "a"}, null]}})
        );
    }

    #[test]
    fn existing_errors_are_not_duplicated() {
        let subgraph_error =
            GraphQLError::new("boom", "X").with_path(vec!["me".into(), "name".into()]);
        let body = run(
            "{ me { name } }",
            r#"{"me":{"name":null}}"#,
            vec![subgraph_error],
            false,
        );
        assert_eq!(body["errors"].as_array().unwrap().len(), 1);
        // Missing because a fetch failed: the fetch error already explains it.
        let body = run(
            "{ me { name } }",
            r#"{"me":{}}"#,
            vec![GraphQLError::new("down", "Y")],
            true,
        );
        assert_eq!(body["errors"].as_array().unwrap().len(), 1);
        assert_eq!(body["data"], serde_json::json!({"me": null}));
    }

    #[test]
    fn removed_fields_in_lists_explain_their_nulls() {
        let removed = GraphQLError::new("Unauthorized field or type", "UNAUTHORIZED_FIELD_OR_TYPE")
            .with_path(vec!["users".into(), "@".into(), "name".into()]);
        let body = run(
            "{ users { id name } }",
            r#"{"users":[{"id":"1"},{"id":"2"}]}"#,
            vec![removed],
            false,
        );
        // `name` is non-null: each element's null propagates to the nullable list.
        assert_eq!(body["data"], serde_json::json!({"users": null}));
        assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
        assert!(explains(
            &["a".into(), "@".into(), "b".into()],
            &["a".into(), 3.into(), "b".into()]
        ));
        assert!(!explains(
            &["a".into(), "@".into()],
            &["a".into(), "x".into()]
        ));
    }

    #[test]
    fn abstract_types_use_the_runtime_typename() {
        let body = run(
            "{ node { id ... on User { nick } ... on Post { title } } }",
            r#"{"node":{"__typename":"Post","id":"9","title":"t","nick":"not for posts"}}"#,
            vec![],
            false,
        );
        assert_eq!(
            body["data"],
            serde_json::json!({"node": {"id": "9", "title": "t"}})
        );
    }

    #[test]
    fn unknown_enum_values_become_null_with_an_error() {
        let body = run("{ color }", r#"{"color":"BLUE"}"#, vec![], false);
        assert_eq!(body["data"], serde_json::json!({"color": null}));
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "INVALID_SUBGRAPH_VALUE"
        );
    }
}
