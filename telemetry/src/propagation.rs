//! W3C trace context (`traceparent`, `tracestate`) across process boundaries: injected into
//! outbound HTTP requests and event-stream entries, extracted from inbound ones.
//!
//! These work on the current `tracing` span through `tracing-opentelemetry`; when trace export is
//! off there is no OpenTelemetry context, injection adds nothing and extraction is ignored.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, TraceContextExt},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (and event field) that carries the trace position.
pub const TRACEPARENT: &str = "traceparent";

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            // `insert`, not `append`: our own position replaces a forwarded client `traceparent`.
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes the current span's trace context into `headers` (replacing any there), when the span
/// is traced.
pub fn inject_current(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}

/// The trace context a request's headers carry (empty when they carry none).
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Makes `span` a child of the trace context in `headers`, if they carry one. Call it right after
/// creating the span, before anything is logged in it.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &HeaderMap) {
    let parent = extract(headers);
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled or already started: then it keeps its own parent.
        let _ = span.set_parent(parent);
    }
}

/// The current span's `traceparent` value, when the span is traced (for event entries).
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The span a `traceparent` value points at, if it is well-formed.
pub fn span_context_from_traceparent(traceparent: &str) -> Option<SpanContext> {
    let mut carrier = HashMap::new();
    carrier.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
    let context = TraceContextPropagator::new().extract(&carrier);
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Makes `span` a child of the span a `traceparent` names (work done later on behalf of a request,
/// such as publishing the events it recorded). Call it right after creating the span.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    if let Some(span_context) = span_context_from_traceparent(traceparent) {
        let _ = span.set_parent(Context::new().with_remote_span_context(span_context));
    }
}

/// Links `span` to the span a `traceparent` names (the producer of an event, for its consumer):
/// a link, not a parent, since the consumer's work is its own trace that happens later.
pub fn link_to_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(span_context) = traceparent.and_then(span_context_from_traceparent) {
        span.add_link(span_context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_header_is_extracted() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(PARENT));
        let context = extract(&headers);
        let span = context.span();
        let span_context = span.span_context();
        assert_eq!(
            span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(span_context.is_remote());
        assert!(span_context.is_sampled());
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        assert!(span_context_from_traceparent("00-zz-00f067aa0ba902b7-01").is_none());
        assert!(span_context_from_traceparent("").is_none());
        assert!(span_context_from_traceparent(PARENT).is_some());
        assert!(!extract(&HeaderMap::new()).span().span_context().is_valid());
    }

    #[test]
    fn nothing_is_injected_outside_a_traced_span() {
        let mut headers = HeaderMap::new();
        inject_current(&mut headers);
        assert!(headers.is_empty());
        assert_eq!(current_traceparent(), None);
    }
}
