//! The GraphQL errors clients receive, and their stable codes.
//!
//! Client-facing errors always carry a stable `extensions.code`. Internal details (planner
//! messages, connection errors) are logged where they happen and replaced by a generic message.

use serde::Serialize;
use serde_json::{Map, Value as Json};

/// Stable `extensions.code` values of the errors the router itself produces.
pub mod codes {
    /// The query text is not valid GraphQL syntax.
    pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    /// The operation does not validate against the API schema.
    pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    /// Variables are missing or of the wrong type.
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// The HTTP request is not a well-formed GraphQL request (body, JSON, parameters).
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// `operationName` is missing, unknown or ambiguous.
    pub const OPERATION_RESOLUTION_FAILURE: &str = "GRAPHQL_UNKNOWN_OPERATION_NAME";
    /// The operation kind cannot run over this method or transport (e.g. a mutation over GET).
    pub const OPERATION_NOT_ALLOWED: &str = "OPERATION_NOT_ALLOWED";
    /// The operation uses `__schema`/`__type` while introspection is turned off.
    pub const INTROSPECTION_DISABLED: &str = "INTROSPECTION_DISABLED";
    /// The planner failed or ran out of time.
    pub const QUERY_PLANNING_FAILED: &str = "QUERY_PLANNING_FAILED";
    /// A subgraph could not be reached or answered with a non-GraphQL HTTP error.
    pub const SUBREQUEST_HTTP_ERROR: &str = "SUBREQUEST_HTTP_ERROR";
    /// A subgraph did not answer within its timeout.
    pub const SUBREQUEST_TIMEOUT: &str = "SUBREQUEST_TIMEOUT";
    /// A subgraph answered with something that is not a GraphQL response.
    pub const SUBREQUEST_MALFORMED_RESPONSE: &str = "SUBREQUEST_MALFORMED_RESPONSE";
    /// An error a subgraph reported without a code of its own.
    pub const DOWNSTREAM_SERVICE_ERROR: &str = "DOWNSTREAM_SERVICE_ERROR";
    /// A subgraph returned null (or nothing) for a non-null field.
    pub const NON_NULL_VIOLATION: &str = "NON_NULL_VIOLATION";
    /// A subgraph returned a value the API schema does not allow there (e.g. an inaccessible enum value).
    pub const INVALID_SUBGRAPH_VALUE: &str = "INVALID_SUBGRAPH_VALUE";
    /// A feature this router does not execute yet (subscriptions over HTTP, `@defer`).
    pub const UNSUPPORTED_OPERATION: &str = "UNSUPPORTED_OPERATION";
    /// Something failed inside the router.
    pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
    /// The request's token is invalid (bad signature, expired, wrong issuer or audience, an
    /// algorithm we do not accept, malformed): HTTP 401. No token at all is not an error.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// A field or type the caller may not see (`@authenticated`, `@requiresScopes`): answered
    /// null at its path while the rest of the operation runs.
    pub const UNAUTHORIZED_FIELD_OR_TYPE: &str = "UNAUTHORIZED_FIELD_OR_TYPE";
    /// A rate limit was hit; `extensions.retryAfter` says in how many seconds to retry.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// A GET (or a simple POST) without a CSRF preflight header.
    pub const CSRF_PREFLIGHT_REQUIRED: &str = "CSRF_PREFLIGHT_REQUIRED";
    /// The request body is larger than `http.max_body_size` (HTTP 413).
    pub const MAX_BODY_SIZE_EXCEEDED: &str = "MAX_BODY_SIZE_EXCEEDED";
    /// The request body did not arrive within `http.connections.body_read_timeout` (408).
    pub const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
    /// The query has more lexical tokens than `limits.max_tokens`.
    pub const MAX_TOKENS_EXCEEDED: &str = "MAX_TOKENS_EXCEEDED";
    /// Fields nest deeper than `limits.max_depth`.
    pub const MAX_DEPTH_EXCEEDED: &str = "MAX_DEPTH_EXCEEDED";
    /// More aliases than `limits.max_aliases`.
    pub const MAX_ALIASES_EXCEEDED: &str = "MAX_ALIASES_EXCEEDED";
    /// More root fields than `limits.max_root_fields`.
    pub const MAX_ROOT_FIELDS_EXCEEDED: &str = "MAX_ROOT_FIELDS_EXCEEDED";
    /// More directives on one field than `limits.max_directives_per_field`.
    pub const MAX_DIRECTIVES_EXCEEDED: &str = "MAX_DIRECTIVES_EXCEEDED";
    /// The subgraph's circuit breaker is open: its fetches fail at once until it recovers.
    pub const SUBREQUEST_CIRCUIT_OPEN: &str = "SUBREQUEST_CIRCUIT_OPEN";
    /// Too many requests in flight to the subgraph (`circuit_breaker.max_concurrent_requests`).
    pub const SUBREQUEST_CONCURRENCY_EXCEEDED: &str = "SUBREQUEST_CONCURRENCY_EXCEEDED";
    /// The subgraph serving a subscription closed its stream or went away.
    pub const SUBSCRIPTION_UPSTREAM_CLOSED: &str = "SUBSCRIPTION_UPSTREAM_CLOSED";
    /// A connection already runs `subscriptions.max_subscriptions_per_connection`.
    pub const SUBSCRIPTION_LIMIT_EXCEEDED: &str = "SUBSCRIPTION_LIMIT_EXCEEDED";
    /// A slow subscriber lost events (`subscriptions.slow_client: drop`); `extensions.dropped`
    /// says how many.
    pub const SUBSCRIPTION_EVENTS_DROPPED: &str = "SUBSCRIPTION_EVENTS_DROPPED";
    /// No persisted document has this id or hash: an APQ client sends the query text with its
    /// hash next, which registers it.
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
    /// `extensions.persistedQuery.sha256Hash` is not the SHA-256 of the query sent with it.
    pub const PERSISTED_QUERY_HASH_MISMATCH: &str = "PERSISTED_QUERY_HASH_MISMATCH";
    /// A hash alone was sent but the router keeps no persisted queries (APQ off, no manifest).
    pub const PERSISTED_QUERY_NOT_SUPPORTED: &str = "PERSISTED_QUERY_NOT_SUPPORTED";
    /// `persisted_documents.only`: the operation is not in the trusted-document manifest.
    pub const PERSISTED_QUERY_NOT_IN_LIST: &str = "PERSISTED_QUERY_NOT_IN_LIST";
    /// A subscription ended because the supergraph changed and its operation no longer
    /// validates (or plans) against the new one; subscribing again shows why.
    pub const SUPERGRAPH_CHANGED: &str = "SUPERGRAPH_CHANGED";
}

/// A position in the query text (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// One element of an error's `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PathElement {
    /// A response key.
    Key(String),
    /// A list index.
    Index(usize),
}

impl From<&str> for PathElement {
    fn from(key: &str) -> Self {
        PathElement::Key(key.to_string())
    }
}

impl From<usize> for PathElement {
    fn from(index: usize) -> Self {
        PathElement::Index(index)
    }
}

/// An error in a GraphQL response, in the spec's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphQLError {
    /// What went wrong, for the client.
    pub message: String,
    /// Where in the query text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    /// Where in the response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<PathElement>>,
    /// `code` (always) and other details.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extensions: Map<String, Json>,
}

impl GraphQLError {
    /// An error with `extensions.code` set to `code`.
    pub fn new(message: impl Into<String>, code: &str) -> GraphQLError {
        let mut extensions = Map::new();
        extensions.insert("code".to_string(), Json::String(code.to_string()));
        GraphQLError {
            message: message.into(),
            locations: Vec::new(),
            path: None,
            extensions,
        }
    }

    /// Sets `path`.
    pub fn with_path(mut self, path: Vec<PathElement>) -> GraphQLError {
        self.path = Some(path);
        self
    }

    /// Sets `locations`.
    pub fn with_locations(mut self, locations: Vec<Location>) -> GraphQLError {
        self.locations = locations;
        self
    }

    /// Adds an entry to `extensions`.
    pub fn with_extension(mut self, key: &str, value: impl Into<Json>) -> GraphQLError {
        self.extensions.insert(key.to_string(), value.into());
        self
    }

    /// The `extensions.code`.
    pub fn code(&self) -> Option<&str> {
        self.extensions.get("code").and_then(Json::as_str)
    }
}

/// Appends `errors` as a JSON array.
pub(crate) fn write_errors(out: &mut Vec<u8>, errors: &[GraphQLError]) {
    // Serializing plain data into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, errors);
}

/// Writes `{"errors":[…]}` for a request that was not executed.
pub(crate) fn render_errors(errors: &[GraphQLError]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"errors\":");
    write_errors(&mut out, errors);
    out.push(b'}');
    out
}
