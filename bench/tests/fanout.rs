//! The subscription fan-out benchmark at a small N (the CI run): every subscriber gets every
//! measured event, in order, completed by the entity fetch, from one shared upstream stream.

use std::sync::Arc;
use std::time::Duration;

use shippy_bench::fanout::{self, FanoutOptions, Source};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_every_event_in_order() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let source = Source::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = source.app();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let router = shippy_router::Router::from_supergraph_sdl(
        &fanout::supergraph(&base),
        shippy_router::RouterConfig::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(router.serve(listener, std::future::pending()));
    let options = FanoutOptions {
        url: format!("ws://{addr}/graphql"),
        subscribers: 50,
        events: 10,
        interval: Duration::from_millis(20),
        connect_concurrency: 10,
        timeout: Duration::from_secs(120),
        // Measuring our own process would count the subscribers too.
        router_pid: None,
        clk_tck: shippy_bench::procfs::DEFAULT_CLK_TCK,
        client_read_buffer: fanout::CLIENT_READ_BUFFER_SIZE,
    };
    let report = fanout::run(Arc::clone(&source), &options).await.unwrap();
    assert_eq!(report.delivered, 500, "{}", fanout::summary(&report));
    assert_eq!(report.lost_or_reordered, 0);
    assert_eq!(
        report.upstream_subscriptions, 1,
        "identical subscriptions share one stream"
    );
    assert!(report.latency_p50_ms >= 0.0 && report.latency_p50_ms <= report.latency_p99_ms);
    assert!(report.latency_p99_ms <= report.latency_max_ms);
    assert!(report.router_rss_per_subscriber_kib.is_none());
    // Each measured event accounted for separately, in the order they were emitted.
    assert_eq!(report.by_event.len(), 10);
    for (event, next) in report.by_event.iter().zip(&report.by_event[1..]) {
        assert!(event.at_s < next.at_s, "{:?}", report.by_event);
    }
    for event in &report.by_event {
        assert_eq!(event.delivered, 50, "{:?}", report.by_event);
        assert!(event.p50_ms <= event.p99_ms && event.p99_ms <= event.max_ms);
        assert!(event.max_ms <= report.latency_max_ms);
    }
    // 10 events 20 ms apart: the window spans them all.
    assert!(
        report.measured_seconds >= 0.18,
        "{}",
        fanout::summary(&report)
    );
    assert!(report.subscriber_cpu_seconds >= 0.0 && report.subscriber_cpu_seconds.is_finite());
    assert!(report.router_cpu_seconds.is_none() && report.router_cpu_us_per_delivery.is_none());
}

/// The `fanout` command as a user runs it, with the router binary given by `--router` (here the
/// benchmark's own, which has the `router` command `shippy` has).
#[test]
fn the_command_runs_the_router_it_is_given() {
    let bench = env!("CARGO_BIN_EXE_shippy-bench");
    let output = std::process::Command::new(bench)
        .args(["fanout", "--router", bench])
        .args(["--subscribers", "20", "--events", "3", "--interval", "20ms"])
        .args(["--timeout", "60s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["delivered"], 60, "{stderr}");
    assert_eq!(report["lost_or_reordered"], 0);
    // A separate process: its CPU and memory are measured.
    assert!(report["router_cpu_seconds"].is_number(), "{report}");
    assert!(
        report["router_rss_per_subscriber_kib"].is_number(),
        "{report}"
    );
    assert_eq!(report["by_event"].as_array().map(Vec::len), Some(3));
}

#[test]
fn a_router_that_cannot_start_is_named() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shippy-bench"))
        .args([
            "fanout",
            "--router",
            "/nonexistent/shippy",
            "--subscribers",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("starting the router (/nonexistent/shippy)"),
        "{stderr}"
    );
}
