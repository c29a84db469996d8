//! The OTLP trace pipeline: an exporter (gRPC or HTTP/protobuf), a parent-based ratio sampler and a
//! batch processor on the Tokio runtime, bridged to `tracing` by `tracing-opentelemetry`.

use opentelemetry::{
    Context, KeyValue,
    trace::{Link, SpanKind, TraceContextExt, TraceId, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{
        Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
        span_processor_with_async_runtime::BatchSpanProcessor,
    },
};
use serde::{Deserialize, Serialize};
use tracing_subscriber::registry::LookupSpan;

use crate::TelemetryError;

/// The wire format of trace export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OtlpProtocol {
    /// OTLP over gRPC (collector port 4317).
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (collector port 4318, path `/v1/traces`).
    #[serde(rename = "http/protobuf", alias = "http")]
    HttpProtobuf,
}

impl std::str::FromStr for OtlpProtocol {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" | "http" => Ok(OtlpProtocol::HttpProtobuf),
            other => Err(format!(
                "unknown OTLP protocol `{other}` (expected `grpc` or `http/protobuf`)"
            )),
        }
    }
}

/// Where and how much to export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtlpConfig {
    /// The collector's base URL, e.g. `http://jaeger:4317` (gRPC) or `http://jaeger:4318` (HTTP;
    /// `/v1/traces` is appended unless the URL already ends with it).
    pub endpoint: String,
    /// gRPC or HTTP/protobuf.
    pub protocol: OtlpProtocol,
    /// The share of new traces recorded, 0 to 1. A request that arrives with a `traceparent`
    /// follows its caller's decision instead, so a trace is never cut in half between services.
    pub sampling_ratio: f64,
}

/// The HTTP URL of the trace endpoint under a collector base URL.
pub fn http_traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    if trimmed.ends_with("/v1/traces") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// The tracer provider exporting to `config`, with `service.name` = `service_name`.
pub fn provider(
    service_name: &str,
    config: &OtlpConfig,
) -> Result<SdkTracerProvider, TelemetryError> {
    if !(0.0..=1.0).contains(&config.sampling_ratio) {
        return Err(TelemetryError::SamplingRatio(config.sampling_ratio));
    }
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(http_traces_url(&config.endpoint))
            .build(),
    }
    .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    // The async-runtime processor exports from a Tokio task, where the reqwest and tonic clients
    // work; the default one runs a plain thread that has no Tokio reactor.
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(QuietRoots::new(config.sampling_ratio))
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build())
}

/// Parent-based ratio sampling that also drops database spans that start a trace of their own.
///
/// SeaORM spans every statement; inside a request or an event handler that is what we want, but
/// the outbox relay's and consumers' background polling would otherwise fill the trace store with
/// one-span traces.
#[derive(Debug, Clone)]
pub struct QuietRoots {
    inner: Sampler,
}

impl QuietRoots {
    /// Samples `ratio` of new traces; children follow their parent.
    pub fn new(ratio: f64) -> Self {
        Self {
            inner: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
        }
    }
}

impl ShouldSample for QuietRoots {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let is_root = !parent_context.is_some_and(|cx| cx.has_active_span());
        if is_root && name.starts_with("sea_orm.") {
            return SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: Default::default(),
            };
        }
        self.inner
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("shippy"))
        // Errors logged inside a span mark it failed, so they stand out in Jaeger.
        .with_error_events_to_status(true)
        .with_threads(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_endpoint_gets_the_traces_path_once() {
        assert_eq!(
            http_traces_url("http://jaeger:4318"),
            "http://jaeger:4318/v1/traces"
        );
        assert_eq!(
            http_traces_url("http://jaeger:4318/"),
            "http://jaeger:4318/v1/traces"
        );
        assert_eq!(
            http_traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn protocols_parse_by_their_otel_names() {
        assert_eq!("grpc".parse(), Ok(OtlpProtocol::Grpc));
        assert_eq!("http/protobuf".parse(), Ok(OtlpProtocol::HttpProtobuf));
        assert!("http/json".parse::<OtlpProtocol>().is_err());
    }

    #[test]
    fn root_database_spans_are_dropped_and_request_spans_sampled() {
        let sampler = QuietRoots::new(1.0);
        let decide = |parent: Option<&Context>, name: &str| {
            sampler
                .should_sample(
                    parent,
                    TraceId::from(7u128),
                    name,
                    &SpanKind::Internal,
                    &[],
                    &[],
                )
                .decision
        };
        assert_eq!(decide(None, "sea_orm.query"), SamplingDecision::Drop);
        assert_eq!(
            decide(None, "router.request"),
            SamplingDecision::RecordAndSample
        );
        let parent = Context::new().with_remote_span_context(
            crate::propagation::span_context_from_traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .unwrap(),
        );
        assert_eq!(
            decide(Some(&parent), "sea_orm.query"),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(
            QuietRoots::new(0.0)
                .should_sample(None, TraceId::from(7u128), "x", &SpanKind::Server, &[], &[])
                .decision,
            SamplingDecision::Drop
        );
    }

    #[tokio::test]
    async fn a_malformed_endpoint_is_refused() {
        let config = OtlpConfig {
            endpoint: "not a url".into(),
            protocol: OtlpProtocol::HttpProtobuf,
            sampling_ratio: 1.0,
        };
        assert!(matches!(
            provider("t", &config),
            Err(TelemetryError::Exporter(_))
        ));
    }

    #[tokio::test]
    async fn a_sampling_ratio_outside_zero_to_one_is_refused() {
        let config = OtlpConfig {
            endpoint: "http://127.0.0.1:4318".into(),
            protocol: OtlpProtocol::HttpProtobuf,
            sampling_ratio: 1.5,
        };
        assert!(matches!(
            provider("t", &config),
            Err(TelemetryError::SamplingRatio(r)) if r == 1.5
        ));
    }
}
