//! Why an operation, or the request carrying it, was not executed: one error type for every
//! stage and transport. Each variant knows its HTTP status (under
//! `application/graphql-response+json`; `server::http` answers legacy JSON rejections with 200)
//! and the GraphQL errors the client gets.

use std::time::Duration;

use http::StatusCode;

use crate::error::{GraphQLError, codes};

/// See the module documentation.
#[derive(Debug, Clone)]
pub(crate) enum PipelineError {
    /// The HTTP request is not a well-formed GraphQL request (bad method, media type, body,
    /// parameters, or a possible CSRF): the status says which (400, 405, 406, 413, 415).
    Request {
        status: StatusCode,
        error: GraphQLError,
    },
    /// The operation was refused before execution: it does not parse, exceeds an operation
    /// limit, does not validate or has bad variables (400), cannot be planned (500), or cannot
    /// run over this method or transport (405, 400, 403).
    Rejected {
        status: StatusCode,
        errors: Vec<GraphQLError>,
    },
    /// Every root field of the operation is over its rate limit: 429, retry after the duration.
    RateLimited {
        errors: Vec<GraphQLError>,
        retry_after: Duration,
    },
}

impl PipelineError {
    /// A malformed HTTP request (`BAD_REQUEST`) answered with `status`.
    pub(crate) fn bad_request(status: StatusCode, message: impl Into<String>) -> PipelineError {
        PipelineError::Request {
            status,
            error: GraphQLError::new(message, codes::BAD_REQUEST),
        }
    }

    /// A rejection with one error.
    pub(crate) fn rejected(status: StatusCode, error: GraphQLError) -> PipelineError {
        PipelineError::Rejected {
            status,
            errors: vec![error],
        }
    }

    /// The HTTP status under `application/graphql-response+json`.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            PipelineError::Request { status, .. } | PipelineError::Rejected { status, .. } => {
                *status
            }
            PipelineError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The errors the client gets.
    pub(crate) fn errors(&self) -> &[GraphQLError] {
        match self {
            PipelineError::Request { error, .. } => std::slice::from_ref(error),
            PipelineError::Rejected { errors, .. } | PipelineError::RateLimited { errors, .. } => {
                errors
            }
        }
    }

    /// The `extensions.code` of the first error, for logs.
    pub(crate) fn code(&self) -> &str {
        self.errors()
            .first()
            .and_then(GraphQLError::code)
            .unwrap_or(codes::INTERNAL_SERVER_ERROR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_knows_its_status_and_code() {
        let request = PipelineError::bad_request(StatusCode::NOT_ACCEPTABLE, "no");
        assert_eq!(request.status(), StatusCode::NOT_ACCEPTABLE);
        assert_eq!(request.code(), codes::BAD_REQUEST);
        let limited = PipelineError::RateLimited {
            errors: vec![GraphQLError::new("slow down", codes::RATE_LIMITED)],
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.code(), codes::RATE_LIMITED);
        let empty = PipelineError::Rejected {
            status: StatusCode::FORBIDDEN,
            errors: Vec::new(),
        };
        assert_eq!(empty.code(), codes::INTERNAL_SERVER_ERROR);
    }
}
