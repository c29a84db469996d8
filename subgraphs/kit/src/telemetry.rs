//! Logging and tracing set-up for Shippy processes: a thin door to `shippy-telemetry`, which the
//! router shares. [`init`] is what processes call; [`init_for_tests`] gives test binaries logs only.

pub use shippy_telemetry::{
    DEFAULT_FILTER, OtlpConfig, OtlpProtocol, TelemetryConfig, TelemetryError, TelemetryGuard,
    init, metrics, propagation,
};

/// Text logs filtered by `RUST_LOG`, no trace export. Harmless when a subscriber is installed
/// already (the first one stays).
pub fn init_for_tests() {
    let _ = shippy_telemetry::init(&TelemetryConfig {
        service_name: "shippy-test".into(),
        json_logs: false,
        otlp: None,
    });
}
