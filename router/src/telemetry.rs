//! The router's spans and metrics: one `router.request` span per client request (continuing the
//! caller's W3C trace when it sent a `traceparent`), stage spans below it, one `subgraph.fetch`
//! span per subgraph call (whose context the subgraph client injects as `traceparent`), and the
//! request, fetch, breaker and rate-limit series of `/metrics`.
//!
//! Names of the series live in `shippy_telemetry::metrics::names`; this module records them.

use std::sync::OnceLock;
use std::time::Duration;

use axum::response::Response;
use http::HeaderMap;
use shippy_telemetry::metrics::names;
use tracing::Span;

use crate::query_planner::OperationKind;
use crate::subgraph::resilience::breaker::Phase;
use crate::subgraph::{FetchError, FetchResult};

/// How a request ended, for `result` labels: `ok`, `error` (executed, with errors in the
/// response) or `rejected` (refused before execution: a bad request, a limit, a 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Rejected,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
        }
    }

    /// The outcome of an executed request from its rendered body: `respond::render` writes the
    /// `errors` array last, so a body that has errors ends with `]}` and one without never does
    /// (it ends with the data object's `}` or `null`).
    pub(crate) fn of_executed(body: &[u8]) -> Outcome {
        if body.ends_with(b"]}") {
            Outcome::Error
        } else {
            Outcome::Ok
        }
    }
}

/// What the pipeline learns about a request while running it, read back for the metrics.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Set once the operation is known (after `validate`).
    pub(crate) kind: OnceLock<OperationKind>,
}

/// The root span of a client request, a child of the caller's trace when the headers carry one.
pub(crate) fn request_span(headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(target: shippy_telemetry::SPANS, "router.request",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        graphql.operation.type = tracing::field::Empty,
        graphql.operation.name = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    shippy_telemetry::propagation::set_parent_from_headers(&span, headers);
    span
}

/// Records a finished request on its span and in the request series.
pub(crate) fn record_request(
    span: &Span,
    observed: &Observed,
    response: &Response,
    outcome: Outcome,
    elapsed: Duration,
) {
    let operation_type = observed.kind.get().map_or("unknown", |kind| kind.as_str());
    span.record("http.response.status_code", response.status().as_u16());
    if outcome != Outcome::Ok {
        span.record("otel.status_code", "ERROR");
    }
    let result = outcome.as_str();
    metrics::counter!(names::ROUTER_REQUESTS, "operation_type" => operation_type, "result" => result)
        .increment(1);
    metrics::histogram!(names::ROUTER_REQUEST_DURATION, "operation_type" => operation_type, "result" => result)
        .record(elapsed.as_secs_f64());
}

/// The name of a subgraph operation (`query Name(...)` gives `Name`), if it has one.
pub(crate) fn operation_name(query: &str) -> Option<&str> {
    let rest = query.trim_start();
    let rest = ["query", "mutation", "subscription"]
        .iter()
        .find_map(|keyword| rest.strip_prefix(keyword))?;
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The span of one subgraph fetch (retries included).
pub(crate) fn fetch_span(service: &str, kind: OperationKind, query: &str) -> Span {
    tracing::info_span!(target: shippy_telemetry::SPANS, "subgraph.fetch",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        subgraph.name = service,
        graphql.operation.type = kind.as_str(),
        graphql.operation.name = operation_name(query).unwrap_or_default(),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// Records a finished fetch on its span and in the fetch series.
pub(crate) fn record_fetch(span: &Span, service: &str, result: &FetchResult, elapsed: Duration) {
    let error_kind = match result {
        Ok(response) => {
            span.record("http.response.status_code", response.status.as_u16());
            (!response.status.is_success()).then_some("http_status")
        }
        Err(FetchError::Timeout(_)) => Some("timeout"),
        Err(FetchError::Transport(_)) => Some("transport"),
        Err(FetchError::TooLarge(_)) => Some("too_large"),
        Err(FetchError::CircuitOpen) => Some("circuit_open"),
        Err(FetchError::ConcurrencyExceeded) => Some("concurrency"),
    };
    let result_label = match error_kind {
        None => "ok",
        Some(kind) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", kind);
            metrics::counter!(names::ROUTER_SUBGRAPH_FETCH_ERRORS, "subgraph" => service.to_owned(), "kind" => kind)
                .increment(1);
            "error"
        }
    };
    metrics::histogram!(names::ROUTER_SUBGRAPH_FETCH_DURATION, "subgraph" => service.to_owned(), "result" => result_label)
        .record(elapsed.as_secs_f64());
}

/// Counts a selection refused by its field rate limit.
pub(crate) fn record_rate_limited(coordinate: &str) {
    metrics::counter!(names::ROUTER_RATE_LIMIT_REJECTIONS, "field" => coordinate.to_owned())
        .increment(1);
}

/// Registers the router's gauges at zero so they are scraped before anything moves them (the
/// subscription transport updates the WebSocket ones).
pub(crate) fn register_gauges() {
    shippy_telemetry::metrics::install();
    metrics::gauge!(names::ROUTER_WEBSOCKET_CONNECTIONS).increment(0.0);
    metrics::gauge!(names::ROUTER_SUBSCRIPTIONS).increment(0.0);
}

/// `/metrics`: the breaker phases given (sampled by the caller now: they change on their own as
/// time passes) are recorded, then the whole registry is rendered.
pub(crate) fn metrics_response<'a>(
    breakers: impl IntoIterator<Item = (&'a str, Phase)>,
) -> Response {
    for (subgraph, phase) in breakers {
        let value = match phase {
            Phase::Closed => 0.0,
            Phase::HalfOpen { .. } => 1.0,
            Phase::Open { .. } => 2.0,
        };
        metrics::gauge!(names::ROUTER_CIRCUIT_BREAKER_STATE, "subgraph" => subgraph.to_owned())
            .set(value);
    }
    shippy_telemetry::metrics::response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subgraph_operation_names_are_read_from_the_query() {
        assert_eq!(
            operation_name("query Me__user__0 { me { id } }"),
            Some("Me__user__0")
        );
        assert_eq!(operation_name("mutation M($a: Int) { f }"), Some("M"));
        assert_eq!(operation_name("query($a: Int) { f }"), None);
        assert_eq!(operation_name("{ f }"), None);
    }

    #[test]
    fn executed_bodies_with_errors_are_told_apart() {
        assert_eq!(Outcome::of_executed(br#"{"data":{"a":1}}"#), Outcome::Ok);
        assert_eq!(Outcome::of_executed(br#"{"data":null}"#), Outcome::Ok);
        assert_eq!(
            Outcome::of_executed(br#"{"data":{"errors":[1]}}"#),
            Outcome::Ok
        );
        assert_eq!(
            Outcome::of_executed(br#"{"data":null,"errors":[{"message":"x"}]}"#),
            Outcome::Error
        );
    }
}
