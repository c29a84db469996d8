//! GraphQL errors with a stable `extensions.code`, shared by every subgraph.
//!
//! Clients branch on `extensions.code`, never on the message. Internal failures are logged here with their
//! details and reach the client only as a generic `INTERNAL_SERVER_ERROR`.

use std::fmt::Display;

use async_graphql::{Error, ErrorExtensions};

/// The error codes a client of a Shippy subgraph can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// An argument or input field is invalid; `extensions.field` names it.
    BadUserInput,
    /// No token, or a token that failed verification; the message says why.
    Unauthenticated,
    /// The caller is known but lacks the right (a scope, or ownership).
    Forbidden,
    /// Too many attempts; `extensions.retryAfter` says in how many seconds to try again.
    RateLimited,
    /// The token is valid but its user is not one this subgraph knows (yet): never registered, or
    /// registered a moment ago and the registration has not reached this subgraph. Try again shortly.
    UnknownUser,
    /// Something failed on our side; details are in the server log only.
    Internal,
}

impl Code {
    /// The value of `extensions.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::RateLimited => "RATE_LIMITED",
            Code::UnknownUser => "UNKNOWN_USER",
            Code::Internal => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// Why an input value was refused: what the subgraphs' parsed input types (names, emails, weights...)
/// return, shown to the client after the field's name by [`bad_input`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// A client-facing error with `extensions.code`.
pub fn error(code: Code, message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, ext| ext.set("code", code.as_str()))
}

/// `BAD_USER_INPUT` naming the offending field (`extensions.field`), e.g. `input.email`.
pub fn bad_input(field: &str, message: impl Display) -> Error {
    let field = field.to_owned();
    Error::new(format!("{field}: {message}")).extend_with(move |_, ext| {
        ext.set("code", Code::BadUserInput.as_str());
        ext.set("field", field.as_str());
    })
}

/// `UNAUTHENTICATED` with a reason the client can act on (log in again, send a token...).
pub fn unauthenticated(reason: impl Display) -> Error {
    error(Code::Unauthenticated, reason.to_string())
}

/// `FORBIDDEN`: the caller is authenticated but not allowed.
pub fn forbidden(message: impl Into<String>) -> Error {
    error(Code::Forbidden, message)
}

/// `RATE_LIMITED` with `extensions.retryAfter` in whole seconds (at least 1), as the router answers.
pub fn rate_limited(message: impl Display, retry_after: std::time::Duration) -> Error {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    Error::new(message.to_string()).extend_with(move |_, ext| {
        ext.set("code", Code::RateLimited.as_str());
        ext.set("retryAfter", seconds);
    })
}

/// Logs an internal failure with its details and returns the generic error the client sees.
pub fn internal(context: &str, err: impl Display) -> Error {
    tracing::error!(context, error = %err, "internal error");
    error(Code::Internal, "internal server error")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(err: &Error) -> Option<String> {
        let value = err.extensions.as_ref()?.get("code")?;
        match value {
            async_graphql::Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    #[test]
    fn rate_limited_says_when_to_retry() {
        let err = rate_limited("slow down", std::time::Duration::from_millis(1500));
        assert_eq!(code_of(&err).as_deref(), Some("RATE_LIMITED"));
        let retry = err.extensions.as_ref().unwrap().get("retryAfter").cloned();
        assert_eq!(retry, Some(async_graphql::Value::from(2u64)));
        let soon = rate_limited("slow down", std::time::Duration::ZERO);
        let retry = soon.extensions.as_ref().unwrap().get("retryAfter").cloned();
        assert_eq!(retry, Some(async_graphql::Value::from(1u64)));
    }

    #[test]
    fn bad_input_names_the_field() {
        let err = bad_input("input.email", Invalid("is not an email address"));
        assert_eq!(code_of(&err).as_deref(), Some("BAD_USER_INPUT"));
        assert_eq!(err.message, "input.email: is not an email address");
        let field = err
            .extensions
            .as_ref()
            .and_then(|e| e.get("field"))
            .cloned();
        assert_eq!(
            field,
            Some(async_graphql::Value::String("input.email".into()))
        );
    }

    #[test]
    fn internal_hides_details() {
        let err = internal("test", "connection refused to 10.0.0.1");
        assert_eq!(code_of(&err).as_deref(), Some("INTERNAL_SERVER_ERROR"));
        assert!(!err.message.contains("10.0.0.1"));
    }
}
