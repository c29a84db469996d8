//! Shippy's observability, shared by the router and every subgraph: structured logs that carry trace
//! ids, OpenTelemetry traces exported over OTLP (off unless an endpoint is configured), W3C
//! `traceparent` propagation across HTTP and event streams, and Prometheus metrics for `/metrics`.
//!
//! - [`init`] installs the process-wide `tracing` subscriber (logs, and the OTLP layer when
//!   configured) and returns a [`TelemetryGuard`] that flushes pending spans when dropped;
//! - [`propagation`] moves the current trace across process boundaries;
//! - [`metrics`] owns the one Prometheus recorder of the process and renders it.

pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod propagation;

use serde::{Deserialize, Serialize};
use tracing_subscriber::{EnvFilter, Layer, prelude::*};

pub use otlp::{OtlpConfig, OtlpProtocol};

/// The log filter used when `RUST_LOG` is unset: our crates at `info`, chatty dependencies quieter.
pub const DEFAULT_FILTER: &str =
    "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,tower_http=info";

/// What reaches the trace exporter: our spans, async-graphql's resolver spans and SeaORM's query
/// spans (`info`), independently of the log filter (which keeps SeaORM quiet in the logs).
/// `OTEL_TRACES_FILTER` overrides it with the `RUST_LOG` syntax.
pub const DEFAULT_TRACE_FILTER: &str =
    "info,sqlx=off,sea_orm_migration=warn,h2=off,hyper=off,tonic=off,tower=off,reqwest=off";

/// The target of Shippy's trace spans (router stages, subgraph requests, event publish and consume).
/// Without trace export they only cost time, so the default log filter then turns them off.
pub const SPANS: &str = "shippy::span";

/// How a process reports what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryConfig {
    /// The OpenTelemetry `service.name` of this process (`shippy-router`, `shippy-user`, `shippy`).
    pub service_name: String,
    /// One JSON object per log line instead of human-readable text.
    pub json_logs: bool,
    /// Trace export; `None` turns tracing export off (logs still work).
    pub otlp: Option<OtlpConfig>,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (a malformed endpoint, usually).
    #[error("cannot set up the OTLP trace exporter: {0}")]
    Exporter(String),
    /// The sampling ratio is outside 0..=1.
    #[error("the trace sampling ratio must be between 0 and 1, got {0}")]
    SamplingRatio(f64),
    /// `RUST_LOG` or `OTEL_TRACES_FILTER` does not parse.
    #[error("bad filter directive: {0}")]
    Filter(String),
}

/// Keeps the trace pipeline alive; dropping it flushes and shuts down the exporter, so the last
/// spans of a process are not lost. Hold it for the life of `main`.
#[must_use = "dropping the guard shuts the trace exporter down"]
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("shippy: flushing traces at exit failed: {error}");
        }
    }
}

fn filter_from_env(variable: &str, default: &str) -> Result<EnvFilter, TelemetryError> {
    filter(variable, std::env::var(variable).ok(), default)
}

/// `value` (from `variable`) as a filter, or `default` when it is unset or blank.
fn filter(
    variable: &str,
    value: Option<String>,
    default: &str,
) -> Result<EnvFilter, TelemetryError> {
    match value {
        Some(value) if !value.trim().is_empty() => EnvFilter::try_new(&value)
            .map_err(|e| TelemetryError::Filter(format!("{variable}: {e}"))),
        _ => Ok(EnvFilter::new(default)),
    }
}

/// The log filter when `RUST_LOG` is unset. With export, log lines find their trace ids through
/// the spans, so the log layer must see them; without, the spans would only cost time.
fn default_log_filter(exporting: bool) -> String {
    if exporting {
        DEFAULT_FILTER.to_owned()
    } else {
        format!("{DEFAULT_FILTER},{SPANS}=off")
    }
}

/// Installs the Prometheus registry ([`metrics::install`]) and the global subscriber: logs
/// filtered by `RUST_LOG` (text or JSON, with `trace_id` and `span_id` when a span is being
/// traced), plus the OTLP layer when `config.otlp` is set (filtered separately, see
/// [`DEFAULT_TRACE_FILTER`]), and the W3C trace-context propagator.
///
/// Must run inside a Tokio runtime when exporting (the batch exporter is a Tokio task). If a
/// subscriber is installed already (a second call, a test harness), that one is kept and the
/// returned guard exports nothing.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    // Metrics first: series recorded while services start (consumer stats) are kept for /metrics.
    metrics::install();
    let log_filter = filter_from_env("RUST_LOG", &default_log_filter(config.otlp.is_some()))?;
    let (otel_layer, provider) = match &config.otlp {
        None => (None, None),
        Some(otlp) => {
            let provider = otlp::provider(&config.service_name, otlp)?;
            let trace_filter = filter_from_env("OTEL_TRACES_FILTER", DEFAULT_TRACE_FILTER)?;
            let layer = otlp::layer(&provider).with_filter(trace_filter);
            (Some(layer), Some(provider))
        }
    };
    let log_layer = logs::layer(config.json_logs).with_filter(log_filter);
    let subscriber = tracing_subscriber::registry()
        .with(otel_layer)
        .with(log_layer);
    let dispatch = tracing::Dispatch::new(subscriber);
    logs::remember_dispatch(&dispatch);
    if tracing::dispatcher::set_global_default(dispatch).is_err() {
        // Another subscriber won; our provider would never see a span.
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return Ok(TelemetryGuard { provider: None });
    }
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    if let Some(provider) = &provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
        tracing::info!(
            endpoint = %config.otlp.as_ref().map(|o| o.endpoint.as_str()).unwrap_or_default(),
            "exporting traces over OTLP"
        );
    }
    Ok(TelemetryGuard { provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_spans_are_logged_only_while_exporting() {
        let quiet = filter("RUST_LOG", None, &default_log_filter(false)).unwrap();
        assert!(quiet.to_string().contains("shippy::span=off"), "{quiet}");
        let exporting = filter("RUST_LOG", None, &default_log_filter(true)).unwrap();
        assert!(
            !exporting.to_string().contains("shippy::span"),
            "{exporting}"
        );
    }

    #[test]
    fn filters_fall_back_to_the_default_and_refuse_bad_directives() {
        let shown = |value: Option<&str>, default: &str| {
            filter("RUST_LOG", value.map(str::to_owned), default)
                .unwrap()
                .to_string()
        };
        assert_eq!(shown(None, "info"), "info");
        assert_eq!(shown(Some("  "), "warn"), "warn");
        assert_eq!(shown(Some("debug"), "warn"), "debug");
        let error = filter("OTEL_TRACES_FILTER", Some("sea_orm=loud".into()), "info").unwrap_err();
        assert!(
            matches!(&error, TelemetryError::Filter(m) if m.starts_with("OTEL_TRACES_FILTER")),
            "{error}"
        );
    }
}
