//! Helpers over the GraphQL document AST shared by the operation stages and introspection.

use graphql_tools::parser::query::Value as AstValue;
use serde_json::{Number, Value as Json};

/// Converts a literal (no variables) GraphQL value to JSON.
pub(crate) fn ast_to_json(value: &AstValue<'static, String>) -> Json {
    match value {
        AstValue::Variable(_) | AstValue::Null => Json::Null,
        AstValue::Int(n) => n.as_i64().map(Json::from).unwrap_or(Json::Null),
        AstValue::Float(f) => Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        AstValue::String(s) => Json::String(s.clone()),
        AstValue::Boolean(b) => Json::Bool(*b),
        AstValue::Enum(e) => Json::String(e.clone()),
        AstValue::List(items) => Json::Array(items.iter().map(ast_to_json).collect()),
        AstValue::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), ast_to_json(v)))
                .collect(),
        ),
    }
}
