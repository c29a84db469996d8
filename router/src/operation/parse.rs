//! Stage 1, parse: query text to a `graphql-tools` document (the AST the planner also reads).

use graphql_tools::static_graphql::query;

use crate::error::{GraphQLError, codes};

/// Parses `text`, stopping after `max_tokens` lexical tokens so huge queries cost bounded work.
pub(crate) fn parse(text: &str, max_tokens: usize) -> Result<query::Document, GraphQLError> {
    graphql_tools::parser::parse_query_with_token_limit::<String>(text, max_tokens)
        .map(|document| document.into_static())
        .map_err(|error| {
            let detail = error.to_string();
            if detail.contains("Token limit exceeded") {
                GraphQLError::new(
                    format!("The query has more than {max_tokens} tokens"),
                    codes::MAX_TOKENS_EXCEEDED,
                )
                .with_extension("limit", max_tokens)
            } else {
                GraphQLError::new(
                    format!("Syntax error: {}", detail.trim()),
                    codes::PARSE_FAILED,
                )
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_queries() {
        let doc = parse(
            "query Q($a: Int) { f(a: $a) { ...F } } fragment F on T { x }",
            100,
        )
        .unwrap();
        assert_eq!(doc.definitions.len(), 2);
    }

    #[test]
    fn reports_syntax_errors_with_a_code() {
        let err = parse("{ f(", 100).unwrap_err();
        assert_eq!(err.code(), Some(codes::PARSE_FAILED));
        assert!(err.message.starts_with("Syntax error"), "{}", err.message);
    }

    #[test]
    fn enforces_the_token_limit() {
        let err = parse("{ a b c d e f g h }", 5).unwrap_err();
        assert_eq!(err.message, "The query has more than 5 tokens");
        assert_eq!(err.code(), Some(codes::MAX_TOKENS_EXCEEDED));
        assert_eq!(err.extensions["limit"], 5);
    }
}
