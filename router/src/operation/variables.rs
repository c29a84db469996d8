//! Stage 5, variables: the client's JSON variables checked against the operation's variable
//! definitions, defaults applied (the GraphQL spec's CoerceVariableValues). Subgraphs receive
//! the coerced values; `@skip`/`@include` conditions are decided from them.

use graphql_tools::static_graphql::query;
use serde_json::{Map, Value as Json};

use crate::error::{GraphQLError, codes};
use crate::graphql::ast::ast_to_json;
use crate::graphql::schema::{Schema, TypeKind, TypeRef};

/// A variable the operation declares.
#[derive(Debug, Clone)]
pub(crate) struct VariableDefinition {
    pub(crate) name: String,
    pub(crate) ty: TypeRef,
    pub(crate) default: Option<Json>,
}

impl VariableDefinition {
    pub(crate) fn from_ast(definition: &query::VariableDefinition) -> VariableDefinition {
        VariableDefinition {
            name: definition.name.clone(),
            ty: TypeRef::from_ast(&definition.var_type),
            default: definition.default_value.as_ref().map(ast_to_json),
        }
    }
}

/// Coerces `provided` against `definitions`; every problem is reported, not only the first.
pub(crate) fn coerce(
    schema: &Schema,
    definitions: &[VariableDefinition],
    provided: &Map<String, Json>,
) -> Result<Map<String, Json>, Vec<GraphQLError>> {
    let mut coerced = Map::new();
    let mut errors = Vec::new();
    for definition in definitions {
        let name = &definition.name;
        match provided.get(name) {
            None => {
                if let Some(default) = &definition.default {
                    coerced.insert(name.clone(), default.clone());
                } else if definition.ty.is_non_null() {
                    errors.push(error(format!(
                        "Variable \"${name}\" of required type \"{}\" was not provided.",
                        definition.ty
                    )));
                }
            }
            Some(Json::Null) if definition.ty.is_non_null() => {
                errors.push(error(format!(
                    "Variable \"${name}\" of non-null type \"{}\" must not be null.",
                    definition.ty
                )));
            }
            Some(value) => match coerce_value(schema, value, &definition.ty) {
                Ok(value) => {
                    coerced.insert(name.clone(), value);
                }
                Err(problem) => errors.push(error(format!(
                    "Variable \"${name}\" got invalid value {}; {problem}",
                    truncate(&value.to_string())
                ))),
            },
        }
    }
    if errors.is_empty() {
        Ok(coerced)
    } else {
        Err(errors)
    }
}

fn error(message: String) -> GraphQLError {
    GraphQLError::new(message, codes::BAD_USER_INPUT)
}

fn truncate(text: &str) -> String {
    const MAX: usize = 120;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Why a variable's value does not fit its type; the text is the client's (spec wording, as the
/// reference implementation words it), after `Variable "$x" got invalid value ...;`.
#[derive(Debug, thiserror::Error)]
enum Invalid {
    #[error("Expected non-nullable type \"{0}\" not to be null.")]
    Null(String),
    #[error("at index {index}: {inner}")]
    AtIndex { index: usize, inner: Box<Invalid> },
    #[error("at \"{field}\": {inner}")]
    AtField { field: String, inner: Box<Invalid> },
    #[error("Int cannot represent non 32-bit signed integer value. Expected type \"{0}\".")]
    IntRange(String),
    #[error("Expected type \"{0}\".")]
    Expected(String),
    #[error("Unknown type \"{0}\".")]
    UnknownType(String),
    #[error("Value does not exist in \"{0}\" enum.")]
    NotInEnum(String),
    #[error("Field \"{field}\" is not defined by type \"{ty}\".")]
    UnknownField { field: String, ty: String },
    #[error("Field \"{field}\" of required type \"{ty}\" was not provided.")]
    MissingField { field: String, ty: String },
    #[error("Exactly one field must be set for the @oneOf type \"{0}\".")]
    OneOf(String),
    #[error("\"{0}\" is not an input type.")]
    NotInput(String),
}

fn coerce_value(schema: &Schema, value: &Json, ty: &TypeRef) -> Result<Json, Invalid> {
    match ty {
        TypeRef::NonNull(inner) => {
            if value.is_null() {
                return Err(Invalid::Null(ty.to_string()));
            }
            coerce_value(schema, value, inner)
        }
        _ if value.is_null() => Ok(Json::Null),
        TypeRef::List(inner) => match value {
            Json::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    coerce_value(schema, item, inner).map_err(|e| Invalid::AtIndex {
                        index: i,
                        inner: Box::new(e),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array),
            // A single value where a list is expected is a list of one (input coercion rules).
            other => coerce_value(schema, other, inner).map(|v| Json::Array(vec![v])),
        },
        TypeRef::Named(name) => coerce_named(schema, value, name),
    }
}

fn coerce_named(schema: &Schema, value: &Json, name: &str) -> Result<Json, Invalid> {
    let expected = || Invalid::Expected(name.to_owned());
    match name {
        "Int" => match value.as_i64().or_else(|| integral_f64(value)) {
            Some(n) if i32::try_from(n).is_ok() => Ok(Json::from(n)),
            Some(_) => Err(Invalid::IntRange(name.to_owned())),
            None => Err(expected()),
        },
        "Float" => match value {
            Json::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(value.clone()),
            _ => Err(expected()),
        },
        "String" => match value {
            Json::String(_) => Ok(value.clone()),
            _ => Err(expected()),
        },
        "Boolean" => match value {
            Json::Bool(_) => Ok(value.clone()),
            _ => Err(expected()),
        },
        "ID" => match value {
            Json::String(_) => Ok(value.clone()),
            Json::Number(n) if n.is_i64() || n.is_u64() => Ok(Json::String(n.to_string())),
            _ => Err(expected()),
        },
        _ => {
            let Some(type_def) = schema.get_type(name) else {
                return Err(Invalid::UnknownType(name.to_owned()));
            };
            match type_def.kind {
                // Custom scalars are the subgraph's to validate.
                TypeKind::Scalar => Ok(value.clone()),
                TypeKind::Enum => match value {
                    Json::String(s) if type_def.enum_values.iter().any(|v| v.name == *s) => {
                        Ok(value.clone())
                    }
                    _ => Err(Invalid::NotInEnum(name.to_owned())),
                },
                TypeKind::InputObject => {
                    let Json::Object(fields) = value else {
                        return Err(expected());
                    };
                    if let Some(unknown) = fields
                        .keys()
                        .find(|k| !type_def.input_fields.iter().any(|f| f.name == **k))
                    {
                        return Err(Invalid::UnknownField {
                            field: unknown.clone(),
                            ty: name.to_owned(),
                        });
                    }
                    let mut out = Map::new();
                    for field in &type_def.input_fields {
                        match fields.get(&field.name) {
                            Some(v) => {
                                let coerced = coerce_value(schema, v, &field.ty).map_err(|e| {
                                    Invalid::AtField {
                                        field: field.name.clone(),
                                        inner: Box::new(e),
                                    }
                                })?;
                                out.insert(field.name.clone(), coerced);
                            }
                            None => match &field.default_value {
                                Some(default) => {
                                    out.insert(field.name.clone(), ast_to_json(default));
                                }
                                None if field.ty.is_non_null() => {
                                    return Err(Invalid::MissingField {
                                        field: field.name.clone(),
                                        ty: field.ty.to_string(),
                                    });
                                }
                                None => {}
                            },
                        }
                    }
                    if type_def.one_of {
                        let set = out.values().filter(|v| !v.is_null()).count();
                        if set != 1 || out.len() != 1 {
                            return Err(Invalid::OneOf(name.to_owned()));
                        }
                    }
                    Ok(Json::Object(out))
                }
                _ => Err(Invalid::NotInput(name.to_owned())),
            }
        }
    }
}

fn integral_f64(value: &Json) -> Option<i64> {
    let f = value.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 1e15).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        let doc = graphql_tools::parser::parse_schema::<String>(
            r#"
            type Query { a: Int }
            enum Status { PENDING DONE }
            input Filter { status: Status = PENDING, limit: Int!, tags: [String!] }
            input One @oneOf { a: Int, b: String }
            "#,
        )
        .unwrap()
        .into_static();
        Schema::new(Arc::new(doc))
    }

    fn definitions(query: &str) -> Vec<VariableDefinition> {
        let doc = crate::operation::parse::parse(query, 1000).unwrap();
        let operation = crate::operation::validate::operation_at(&doc, 0);
        crate::operation::validate::operation_parts(operation)
            .2
            .iter()
            .map(VariableDefinition::from_ast)
            .collect()
    }

    fn run(query: &str, provided: Json) -> Result<Json, Vec<String>> {
        coerce(
            &schema(),
            &definitions(query),
            provided.as_object().unwrap(),
        )
        .map(Json::Object)
        .map_err(|errors| errors.into_iter().map(|e| e.message).collect())
    }

    #[test]
    fn applies_defaults_and_coerces_scalars() {
        let out = run(
            "query($a: Int = 3, $b: Float, $id: ID, $list: [Int], $f: Filter) { a }",
            json!({"b": 2, "id": 7, "list": 5, "f": {"limit": 1, "tags": "x"}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"a": 3, "b": 2, "id": "7", "list": [5], "f": {"status": "PENDING", "limit": 1, "tags": ["x"]}})
        );
    }

    #[test]
    fn reports_missing_null_and_wrong_values() {
        let errors = run(
            "query($a: Int!, $b: String!, $c: Int, $s: Status, $f: Filter) { a }",
            json!({"b": null, "c": 2147483648i64, "s": "LOST", "f": {"limit": 1, "nope": 2}}),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].contains("\"$a\" of required type \"Int!\" was not provided"));
        assert!(errors[1].contains("must not be null"));
        assert!(errors[2].contains("32-bit"));
        assert!(errors[3].contains("does not exist in \"Status\""));
        assert!(errors[4].contains("\"nope\" is not defined"));
    }

    #[test]
    fn one_of_inputs_need_exactly_one_field() {
        assert!(run("query($o: One) { a }", json!({"o": {"a": 1}})).is_ok());
        assert!(run("query($o: One) { a }", json!({"o": {"a": 1, "b": "x"}})).is_err());
        assert!(run("query($o: One) { a }", json!({"o": {}})).is_err());
    }

    #[test]
    fn errors_carry_bad_user_input() {
        let errors = coerce(
            &schema(),
            &definitions("query($a: Int!) { a }"),
            &Map::new(),
        )
        .unwrap_err();
        assert_eq!(errors[0].code(), Some(codes::BAD_USER_INPUT));
    }
}
