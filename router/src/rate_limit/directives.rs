//! `@rateLimit(limit: Int!, duration: String!, by: String)` in the supergraph: subgraphs declare
//! it on fields, link it from `https://shippy.dev/rate-limit/v0.1` and compose it with
//! `@composeDirective`, so it reaches the supergraph with its arguments.
//!
//! `duration` is human-readable (`30s`, `1m`); `by` is `user` (the default: `rate_limit.key_claim`),
//! `ip`, or a claim name.

use graphql_tools::parser::query::Value as AstValue;
use graphql_tools::parser::schema::{Definition, TypeDefinition};
use graphql_tools::static_graphql::schema as ast;

use crate::auth::rules::linked_directive_name;
use crate::config::{FieldRateLimit, LimitKey, RuleError};

/// `(Type.field, limit)` of every `@rateLimit` in the supergraph. A malformed directive is an
/// error: a limit silently ignored is worse than a router that does not start.
pub(crate) fn from_supergraph(
    document: &ast::Document,
) -> Result<Vec<(String, FieldRateLimit)>, DirectiveError> {
    let Some(name) = linked_directive_name(document, "rate-limit", "rateLimit") else {
        return Ok(Vec::new());
    };
    let mut rules = Vec::new();
    for definition in &document.definitions {
        let (type_name, fields) = match definition {
            Definition::TypeDefinition(TypeDefinition::Object(o)) => (&o.name, &o.fields),
            Definition::TypeDefinition(TypeDefinition::Interface(i)) => (&i.name, &i.fields),
            _ => continue,
        };
        for field in fields {
            for directive in field.directives.iter().filter(|d| d.name == name) {
                let coordinate = format!("{type_name}.{}", field.name);
                let rule = read(directive).map_err(|problem| DirectiveError {
                    directive: name.to_string(),
                    coordinate: coordinate.clone(),
                    problem: Box::new(problem),
                })?;
                rules.push((coordinate, rule));
            }
        }
    }
    Ok(rules)
}

/// A `@rateLimit` of the supergraph that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("`@{directive}` on {coordinate}: {problem}")]
pub struct DirectiveError {
    directive: String,
    coordinate: String,
    problem: Box<Problem>,
}

/// What is wrong with one `@rateLimit`.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("`limit` must be a positive whole number")]
    Limit,
    #[error("`limit` is missing or not an Int")]
    LimitMissing,
    #[error("`duration` `{text}` is not a duration ({reason})")]
    Duration {
        text: String,
        reason: humantime::DurationError,
    },
    #[error("`duration` is missing or not a String")]
    DurationMissing,
    #[error("`by` must be a String")]
    By,
    #[error(transparent)]
    Rule(#[from] RuleError),
}

fn read(directive: &ast::Directive) -> Result<FieldRateLimit, Problem> {
    let argument = |name: &str| {
        directive
            .arguments
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    };
    let limit = match argument("limit") {
        Some(AstValue::Int(n)) => n
            .as_i64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(Problem::Limit)?,
        _ => return Err(Problem::LimitMissing),
    };
    let duration = match argument("duration") {
        Some(AstValue::String(text)) => {
            humantime::parse_duration(text).map_err(|reason| Problem::Duration {
                text: text.clone(),
                reason,
            })?
        }
        _ => return Err(Problem::DurationMissing),
    };
    let by = match argument("by") {
        None | Some(AstValue::Null) => LimitKey::User,
        Some(AstValue::String(text)) => LimitKey::parse(text)?,
        Some(_) => return Err(Problem::By),
    };
    Ok(FieldRateLimit::new(limit, duration, by)?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(body: &str) -> Result<Vec<(String, FieldRateLimit)>, String> {
        let sdl = format!(
            r#"schema @link(url: "https://shippy.dev/rate-limit/v0.1", import: ["@rateLimit"]) {{ query: Query }}
            directive @rateLimit(limit: Int!, duration: String!, by: String) on FIELD_DEFINITION
            {body}"#
        );
        from_supergraph(
            &graphql_tools::parser::parse_schema::<String>(&sdl)
                .unwrap()
                .into_static(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_limits_with_their_coordinates() {
        let rules = parse(
            r#"type Query { a: Int @rateLimit(limit: 5, duration: "1m") b: Int }
               type Mutation { login: Int @rateLimit(limit: 3, duration: "30s", by: "ip") }"#,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].0, "Query.a");
        assert_eq!(rules[0].1.per, Duration::from_secs(60));
        assert_eq!(rules[0].1.by, LimitKey::User);
        assert_eq!(rules[1].0, "Mutation.login");
        assert_eq!(rules[1].1.by, LimitKey::Ip);
    }

    #[test]
    fn malformed_directives_are_errors() {
        for body in [
            r#"type Query { a: Int @rateLimit(limit: 0, duration: "1m") }"#,
            r#"type Query { a: Int @rateLimit(limit: 5, duration: "soon") }"#,
            r#"type Query { a: Int @rateLimit(duration: "1m") }"#,
            r#"type Query { a: Int @rateLimit(limit: 5, duration: "1m", by: "a b") }"#,
        ] {
            let err = parse(body).unwrap_err();
            assert!(err.contains("Query.a"), "{err}");
        }
    }

    #[test]
    fn unlinked_directives_are_not_ours() {
        let document = graphql_tools::parser::parse_schema::<String>(
            r#"type Query { a: Int @rateLimit(limit: 0, duration: "x") }"#,
        )
        .unwrap()
        .into_static();
        assert!(from_supergraph(&document).unwrap().is_empty());
    }
}
