//! The process's Prometheus registry: one global recorder for the `metrics` facade, the names and
//! descriptions of Shippy's series, and the `/metrics` rendering.
//!
//! A process has one registry, so under `shippy up` (everything in one process) every service's
//! `/metrics` shows the same, whole-process series; the `service`/`subgraph` labels tell them apart.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header::CONTENT_TYPE};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The series Shippy records. Labels are listed with each.
pub mod names {
    /// Counter {operation_type, result}: GraphQL requests the router answered. `result` is `ok`,
    /// `error` (the response has errors) or `rejected` (refused before execution).
    pub const ROUTER_REQUESTS: &str = "shippy_router_requests_total";
    /// Histogram {operation_type, result}: router request latency.
    pub const ROUTER_REQUEST_DURATION: &str = "shippy_router_request_duration_seconds";
    /// Histogram {subgraph, result}: one subgraph fetch, retries included.
    pub const ROUTER_SUBGRAPH_FETCH_DURATION: &str =
        "shippy_router_subgraph_fetch_duration_seconds";
    /// Counter {subgraph, kind}: subgraph fetches that failed (`timeout`, `transport`,
    /// `too_large`, `circuit_open`, `concurrency`, `http_status`).
    pub const ROUTER_SUBGRAPH_FETCH_ERRORS: &str = "shippy_router_subgraph_fetch_errors_total";
    /// Counter {cache}: cache hits (`plan`, `operation`).
    pub const ROUTER_CACHE_HITS: &str = "shippy_router_cache_hits_total";
    /// Counter {cache}: cache misses.
    pub const ROUTER_CACHE_MISSES: &str = "shippy_router_cache_misses_total";
    /// Gauge {subgraph}: circuit breaker state: 0 closed, 1 half-open, 2 open.
    pub const ROUTER_CIRCUIT_BREAKER_STATE: &str = "shippy_router_circuit_breaker_state";
    /// Counter {field}: selections refused by a field rate limit (`Type.field`).
    pub const ROUTER_RATE_LIMIT_REJECTIONS: &str = "shippy_router_rate_limit_rejections_total";
    /// Gauge: open client WebSocket connections.
    pub const ROUTER_WEBSOCKET_CONNECTIONS: &str = "shippy_router_websocket_connections";
    /// Gauge: active client subscriptions.
    pub const ROUTER_SUBSCRIPTIONS: &str = "shippy_router_subscriptions";
    /// Counter {service, operation_type, result}: GraphQL requests a subgraph executed.
    pub const SUBGRAPH_REQUESTS: &str = "shippy_subgraph_requests_total";
    /// Histogram {service, operation_type, result}: subgraph execution latency.
    pub const SUBGRAPH_REQUEST_DURATION: &str = "shippy_subgraph_request_duration_seconds";
    /// Gauge {stream, group}: entries of the stream the group has not read yet.
    pub const STREAM_CONSUMER_LAG: &str = "shippy_stream_consumer_lag";
    /// Gauge {stream, group}: entries read by the group and not acknowledged yet.
    pub const STREAM_PENDING: &str = "shippy_stream_pending_entries";
    /// Gauge {service}: outbox rows recorded and not published yet.
    pub const OUTBOX_BACKLOG: &str = "shippy_outbox_backlog";
    /// Gauge {stream}: GraphQL subscriptions of this subgraph process listening to a stream's live feed.
    pub const SUBGRAPH_LIVE_SUBSCRIBERS: &str = "shippy_subgraph_live_subscribers";
    /// Counter {stream, group}: handler failures classified transient (database down, lock or
    /// serialization conflict); they are retried and never dead-letter an event.
    pub const CONSUMER_TRANSIENT_FAILURES: &str = "shippy_consumer_transient_failures_total";
    /// Counter {service}: times the relay found the event bus reset (Redis restarted empty) and published
    /// its retained outbox rows again.
    pub const OUTBOX_REPUBLISHES: &str = "shippy_outbox_republishes_total";
    /// Counter {service}: outbox rows published again after a bus reset.
    pub const OUTBOX_REPUBLISHED_EVENTS: &str = "shippy_outbox_republished_events_total";
    /// Counter {stream, group}: consumer groups found missing (Redis lost its data) and created again.
    pub const STREAM_GROUPS_RECREATED: &str = "shippy_stream_groups_recreated_total";
    /// Counter {outcome}: publishes that did not reach `events.publish_replicas` replicas: `retried` (the
    /// replicas did not confirm in time; the outbox publishes it again) or `accepted_with_fewer_replicas`
    /// (the primary had fewer replicas connected, as after a failover). A steady rate means a replica is
    /// down or far behind: bring it back.
    pub const EVENTS_UNREPLICATED: &str = "shippy_events_unreplicated_total";
    /// Counter {stream, group}: entries a group gave up on and moved to the stream's dead letters; list
    /// and replay them with `shippy events dead-letters` / `shippy events replay`.
    pub const STREAM_DEAD_LETTERED: &str = "shippy_stream_dead_lettered_total";
    /// Counter {stream, group}: idle consumers without pending entries removed from a group.
    pub const STREAM_CONSUMERS_PRUNED: &str = "shippy_stream_consumers_pruned_total";
    /// Counter: consignment assignment requests sent again because no vessel answered within
    /// `assignment.retry_after`.
    pub const ASSIGNMENT_REDRIVEN: &str = "shippy_assignment_redriven_total";
    /// Counter: consignments made `UNASSIGNABLE` because no vessel answered within `assignment.deadline`.
    pub const ASSIGNMENT_EXPIRED: &str = "shippy_assignment_expired_total";
    /// Counter: bookings that arrived after the consignment stopped waiting (expired, cancelled) and
    /// were handed back to the vessel subgraph to release.
    pub const ASSIGNMENT_LATE_BOOKINGS: &str = "shippy_assignment_late_bookings_total";
    /// Counter: passes of the assignment saga that failed (database unavailable); it tries again.
    pub const ASSIGNMENT_SAGA_FAILURES: &str = "shippy_assignment_saga_failures_total";
    /// Counter {service}: `createVessel` calls refused because the owner is no known user (not
    /// registered, or the registration has not reached the vessel subgraph within `events.projection_wait`).
    pub const UNKNOWN_OWNER_REFUSALS: &str = "shippy_unknown_owner_refusals_total";
    /// Counter {server, reason}: connections refused at accept past a cap (`total`, `per_ip`).
    pub const CONNECTIONS_REFUSED: &str = "shippy_connections_refused_total";
    /// Gauge {server}: open HTTP connections, upgraded ones (WebSockets) included.
    pub const CONNECTIONS_OPEN: &str = "shippy_connections_open";
}

/// Latency buckets in seconds: from a cached plan's sub-millisecond answer to a request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's registry, installing it as the global `metrics` recorder on first use. If some
/// other recorder was installed first, the registry stays empty (and says so in the log).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("the bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

/// Installs the registry (idempotent). Call it at start-up so that series recorded before the
/// first scrape are kept.
pub fn install() {
    handle();
}

fn describe() {
    use names::*;
    describe_counter!(ROUTER_REQUESTS, "GraphQL requests answered by the router");
    describe_histogram!(
        ROUTER_REQUEST_DURATION,
        Unit::Seconds,
        "Router request latency"
    );
    describe_histogram!(
        ROUTER_SUBGRAPH_FETCH_DURATION,
        Unit::Seconds,
        "Latency of one subgraph fetch, retries included"
    );
    describe_counter!(ROUTER_SUBGRAPH_FETCH_ERRORS, "Subgraph fetches that failed");
    describe_counter!(ROUTER_CACHE_HITS, "Router cache hits");
    describe_counter!(ROUTER_CACHE_MISSES, "Router cache misses");
    describe_gauge!(
        ROUTER_CIRCUIT_BREAKER_STATE,
        "Circuit breaker state per subgraph: 0 closed, 1 half-open, 2 open"
    );
    describe_counter!(
        ROUTER_RATE_LIMIT_REJECTIONS,
        "Selections refused by a field rate limit"
    );
    describe_gauge!(
        ROUTER_WEBSOCKET_CONNECTIONS,
        "Open client WebSocket connections"
    );
    describe_gauge!(ROUTER_SUBSCRIPTIONS, "Active client subscriptions");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused at accept because a connection cap was reached"
    );
    describe_gauge!(
        CONNECTIONS_OPEN,
        "Open HTTP connections, WebSockets included"
    );
    describe_counter!(SUBGRAPH_REQUESTS, "GraphQL requests executed by a subgraph");
    describe_histogram!(
        SUBGRAPH_REQUEST_DURATION,
        Unit::Seconds,
        "Subgraph execution latency"
    );
    describe_gauge!(
        STREAM_CONSUMER_LAG,
        "Stream entries a consumer group has not read yet"
    );
    describe_gauge!(
        STREAM_PENDING,
        "Stream entries read by a consumer group and not acknowledged"
    );
    describe_gauge!(OUTBOX_BACKLOG, "Outbox events not published yet");
    describe_gauge!(
        SUBGRAPH_LIVE_SUBSCRIBERS,
        "Subscriptions listening to a stream's live feed in this process"
    );
    describe_counter!(
        CONSUMER_TRANSIENT_FAILURES,
        "Handler failures classified transient (retried, never dead-lettered)"
    );
    describe_counter!(
        OUTBOX_REPUBLISHES,
        "Event bus resets detected by the outbox relay (retained events published again)"
    );
    describe_counter!(
        OUTBOX_REPUBLISHED_EVENTS,
        "Outbox events published again after an event bus reset"
    );
    describe_counter!(
        STREAM_DEAD_LETTERED,
        "Stream entries a consumer group moved to the dead letters (shippy events dead-letters)"
    );
    describe_counter!(
        EVENTS_UNREPLICATED,
        "Publishes that did not reach events.publish_replicas Redis replicas (retried, or accepted with fewer)"
    );
    describe_counter!(
        STREAM_GROUPS_RECREATED,
        "Consumer groups found missing (Redis lost its data) and created again"
    );
    describe_counter!(
        STREAM_CONSUMERS_PRUNED,
        "Idle consumers without pending entries removed from a consumer group"
    );
    describe_counter!(
        UNKNOWN_OWNER_REFUSALS,
        "createVessel calls refused because the owner is no user the vessel subgraph knows"
    );
}

/// The registry in the Prometheus text format.
pub fn render() -> String {
    let handle = handle();
    // Upkeep drains histogram samples recorded since the last scrape into their buckets.
    handle.run_upkeep();
    handle.render()
}

/// The `/metrics` response: [`render`] as `text/plain; version=0.0.4`.
pub fn response() -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_series_render_with_their_descriptions_and_buckets() {
        install();
        metrics::counter!(names::ROUTER_REQUESTS, "operation_type" => "query", "result" => "ok")
            .increment(2);
        metrics::histogram!(names::ROUTER_REQUEST_DURATION, "operation_type" => "query", "result" => "ok")
            .record(0.003);
        let text = render();
        assert!(
            text.contains(
                "# HELP shippy_router_requests_total GraphQL requests answered by the router"
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"shippy_router_requests_total{operation_type="query",result="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"shippy_router_request_duration_seconds_bucket{operation_type="query",result="ok",le="0.005"} 1"#),
            "{text}"
        );
    }
}
