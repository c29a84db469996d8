//! The OTLP trace pipeline: an exporter (gRPC or HTTP/protobuf), a parent-based ratio sampler and a
//! batch processor on the Tokio runtime, bridged to `tracing` by `tracing-opentelemetry`.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler, SdkTracerProvider, span_processor_with_async_runtime::BatchSpanProcessor},
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
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build())
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
