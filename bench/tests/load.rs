//! The load generator against real HTTP servers: correct targets are measured, wrong ones are caught
//! before the load starts, and every kind of failure during the load is counted.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, routing::post};
use bytes::Bytes;
use shippy_bench::{
    json::Json,
    load::{self, Labels, LoadError, LoadOptions, Request, Stop, Watched},
    procfs,
    subgraphs::{self, SubgraphOptions},
    workload,
};
use tokio::{net::TcpListener, sync::oneshot};

const HELLO: &str = r#"{"data":{"hello":"world"}}"#;

fn options(url: String, expected: &str, stop: Stop) -> LoadOptions {
    LoadOptions {
        url,
        requests: vec![Request::new(
            "hello",
            Bytes::from_static(br#"{"query":"{ hello }"}"#),
            Json::parse(expected.as_bytes()).unwrap(),
        )],
        workload: "test".into(),
        connections: 1,
        stop,
        warmup: Duration::ZERO,
        request_timeout: Duration::from_secs(5),
        watch: Vec::new(),
        subgraph_stats: None,
        clk_tck: procfs::DEFAULT_CLK_TCK,
        labels: Labels::default(),
    }
}

/// Serves `app` on a free port until the returned sender is dropped or fired.
async fn serve(app: Router) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    (url, stop)
}

#[tokio::test]
async fn measures_a_correct_target_and_the_watched_process() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url = format!("{base}/monolith");
    tokio::spawn(subgraphs::serve(
        listener,
        SubgraphOptions::default(),
        std::future::pending(),
    ));

    let mut options = options(url, workload::EXPECTED_RESPONSE, Stop::Requests(60));
    options.requests[0].body =
        workload::request_body(workload::OPERATION, Some(workload::OPERATION_NAME));
    options.connections = 4;
    options.warmup = Duration::from_millis(50);
    // The subgraphs run in this process, so this process is the one to watch.
    options.watch = vec![Watched {
        label: "subgraphs".into(),
        pid: std::process::id(),
    }];
    options.subgraph_stats = Some(format!("{base}/stats"));
    options.labels = Labels {
        target: "monolith".into(),
        mode: "direct".into(),
        round: 2,
    };
    let report = load::run(options).await.unwrap();

    assert_eq!(report.ok, 60);
    assert_eq!(report.failures.total(), 0);
    assert_eq!(report.response_bytes, workload::EXPECTED_RESPONSE.len());
    assert!(report.requests_per_second > 0.0);
    let l = report.latency_ms;
    assert!(
        0.0 < l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max,
        "{l:?}"
    );
    let usage = report.process("subgraphs").expect("the watched process");
    assert!(usage.peak_rss_mib > 0.0);
    assert!(usage.cpu_seconds >= 0.0 && usage.cpu_ms_per_request >= 0.0);
    assert_eq!(report.labels.round, 2);
    assert_eq!(report.first_mismatch, None);
    // The monolith is called once per request, and warm-up has drained before the window opens, so
    // the window counts exactly the measured requests' calls.
    let calls = report
        .subgraph_traffic
        .expect("subgraph traffic")
        .calls_per_request
        * 60.0;
    assert_eq!(calls.round(), 60.0, "{calls}");
}

#[tokio::test]
async fn subgraph_traffic_is_exact_without_warm_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(subgraphs::serve(
        listener,
        SubgraphOptions::default(),
        std::future::pending(),
    ));

    let mut options = options(
        format!("{base}/monolith"),
        workload::EXPECTED_RESPONSE,
        Stop::Requests(30),
    );
    options.requests[0].body =
        workload::request_body(workload::OPERATION, Some(workload::OPERATION_NAME));
    options.connections = 3;
    options.subgraph_stats = Some(format!("{base}/stats"));
    let report = load::run(options).await.unwrap();

    let traffic = report.subgraph_traffic.expect("subgraph traffic");
    assert_eq!(traffic.calls_per_request, 1.0);
    let body = workload::request_body(workload::OPERATION, Some(workload::OPERATION_NAME)).len();
    assert_eq!(
        traffic.bytes_per_request,
        (body + workload::EXPECTED_RESPONSE.len()) as f64
    );
}

#[tokio::test]
async fn unreadable_subgraph_stats_are_an_error() {
    let app = Router::new().route("/graphql", post(|| async { HELLO }));
    let (url, _stop) = serve(app).await;
    let mut options = options(url.clone(), HELLO, Stop::Requests(2));
    // The target itself has no /stats route: 404.
    options.subgraph_stats = Some(url.replace("/graphql", "/stats"));
    let error = load::run(options).await.unwrap_err();
    assert!(
        matches!(&error, LoadError::SubgraphStats { reason, .. } if reason.contains("404")),
        "{error}"
    );
}

#[tokio::test]
async fn a_timed_window_lasts_its_duration() {
    let app = Router::new().route("/graphql", post(|| async { HELLO }));
    let (url, _stop) = serve(app).await;
    let mut options = options(url, HELLO, Stop::After(Duration::from_millis(300)));
    options.connections = 2;
    let report = load::run(options).await.unwrap();
    assert!(
        report.measured_seconds >= 0.3,
        "{}",
        report.measured_seconds
    );
    assert!(report.ok > 0);
    assert_eq!(report.failures.total(), 0);
}

#[tokio::test]
async fn a_wrong_first_response_stops_the_run_with_its_difference() {
    let app = Router::new().route(
        "/graphql",
        post(|| async { r#"{"data":{"hello":"moon"}}"# }),
    );
    let (url, _stop) = serve(app).await;
    let error = load::run(options(url, HELLO, Stop::Requests(10)))
        .await
        .unwrap_err();
    let LoadError::FirstMismatch { name, difference } = error else {
        panic!("{error}")
    };
    assert_eq!(name, "hello");
    assert_eq!(difference.path, "$.data.hello");
}

#[tokio::test]
async fn a_failing_first_response_stops_the_run_with_its_status() {
    let app = Router::new().route(
        "/graphql",
        post(|| async { (StatusCode::BAD_GATEWAY, "upstream down") }),
    );
    let (url, _stop) = serve(app).await;
    let error = load::run(options(url, HELLO, Stop::Requests(10)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, LoadError::FirstStatus { status: StatusCode::BAD_GATEWAY, body, .. } if body == "upstream down"),
        "{error}"
    );
}

#[tokio::test]
async fn a_silent_target_times_out_the_first_request() {
    let app = Router::new().route("/graphql", post(std::future::pending::<&str>));
    let (url, _stop) = serve(app).await;
    let mut options = options(url, HELLO, Stop::Requests(10));
    options.request_timeout = Duration::from_millis(100);
    let error = load::run(options).await.unwrap_err();
    assert!(
        matches!(&error, LoadError::FirstTimedOut { name, .. } if name == "hello"),
        "{error}"
    );
}

#[tokio::test]
async fn unreachable_targets_and_zero_connections_are_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = load::run(options(
        format!("http://127.0.0.1:{port}/graphql"),
        HELLO,
        Stop::Requests(1),
    ))
    .await
    .unwrap_err();
    assert!(matches!(error, LoadError::Client(_)), "{error}");

    let mut none = options(
        "http://127.0.0.1:1/graphql".into(),
        HELLO,
        Stop::Requests(1),
    );
    none.connections = 0;
    assert!(matches!(
        load::run(none.clone()).await.unwrap_err(),
        LoadError::NoConnections
    ));
    none.connections = 1;
    none.requests.clear();
    assert!(matches!(
        load::run(none).await.unwrap_err(),
        LoadError::NoRequests
    ));
}

#[tokio::test]
async fn failures_during_the_load_are_counted_by_kind() {
    // After the first (checked) answer, the target cycles: correct, 500, wrong body, no answer.
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/graphql",
            post(|State(calls): State<Arc<AtomicUsize>>| async move {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                match n.checked_sub(1).map(|n| n % 4) {
                    None | Some(0) => (StatusCode::OK, HELLO),
                    Some(1) => (StatusCode::INTERNAL_SERVER_ERROR, "boom"),
                    Some(2) => (
                        StatusCode::OK,
                        r#"{"data":null,"errors":[{"message":"no"}]}"#,
                    ),
                    _ => std::future::pending().await,
                }
            }),
        )
        .with_state(calls);
    let (url, _stop) = serve(app).await;
    let mut options = options(url, HELLO, Stop::Requests(8));
    options.request_timeout = Duration::from_millis(150);
    let report = load::run(options).await.unwrap();

    assert_eq!(report.ok, 2);
    assert_eq!(report.failures.status, 2);
    assert_eq!(report.failures.wrong_response, 2);
    assert_eq!(report.failures.timeout, 2);
    assert_eq!(report.failures.transport, 0);
    assert_eq!(
        report.first_mismatch.as_deref(),
        Some(r#"hello: at $.data: expected an object with keys [hello], got null"#)
    );
}

#[tokio::test]
async fn a_target_that_goes_away_counts_transport_failures() {
    // The target answers the check, then stops listening before the load begins.
    let (stopped_tx, stopped_rx) = oneshot::channel::<()>();
    let stop_after_first = Arc::new(std::sync::Mutex::new(Some(stopped_tx)));
    let app = Router::new()
        .route(
            "/graphql",
            post(|State(stop): State<Arc<std::sync::Mutex<Option<oneshot::Sender<()>>>>>| async move {
                if let Some(stop) = stop.lock().unwrap().take() {
                    let _ = stop.send(());
                }
                HELLO
            }),
        )
        .with_state(stop_after_first);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped_rx.await;
            })
            .await
    });
    let mut options = options(url, HELLO, Stop::Requests(3));
    // The warm-up gives the server time to close its listener.
    options.warmup = Duration::from_millis(200);
    let report = load::run(options).await.unwrap();
    server.await.unwrap().unwrap();

    assert_eq!(report.ok, 0);
    assert_eq!(report.failures.transport, 3);
}

/// Calls the echo target got, per value of n.
type Seen = Arc<std::sync::Mutex<Vec<usize>>>;
/// The echo target's state: its per-n counts and its call counter.
type EchoState = (Seen, Arc<AtomicUsize>);

/// Answers `{"data":{"echo":<the request's variable n>}}`, except `wrong_from_call`th call on, whose
/// answers to n = 2 are wrong; counts the calls per n.
fn echo_app(wrong_from_call: usize) -> (Router, Seen) {
    let seen = Arc::new(std::sync::Mutex::new(vec![0usize; 3]));
    let calls = Arc::new(AtomicUsize::new(0));
    let state = (Arc::clone(&seen), calls);
    let app = Router::new()
        .route(
            "/graphql",
            post(
                move |State((seen, calls)): State<EchoState>, body: Bytes| async move {
                    let call = calls.fetch_add(1, Ordering::SeqCst);
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let n = request["variables"]["n"].as_u64().unwrap();
                    seen.lock().unwrap()[n as usize] += 1;
                    let answer = if n == 2 && call >= wrong_from_call {
                        99
                    } else {
                        n
                    };
                    format!(r#"{{"data":{{"echo":{answer}}}}}"#)
                },
            ),
        )
        .with_state(state);
    (app, seen)
}

fn echo_requests() -> Vec<Request> {
    (0..3)
        .map(|n| {
            Request::new(
                format!("echo {n}"),
                Bytes::from(format!(
                    r#"{{"query":"{{ echo }}","variables":{{"n":{n}}}}}"#
                )),
                Json::parse(format!(r#"{{"data":{{"echo":{n}}}}}"#)).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_rotation_sends_every_request_in_turn_and_checks_each_against_its_own_answer() {
    let (app, seen) = echo_app(usize::MAX);
    let (url, _stop) = serve(app).await;
    let mut options = options(url, HELLO, Stop::Requests(30));
    options.requests = echo_requests();
    options.connections = 3;
    let report = load::run(options).await.unwrap();
    assert_eq!(report.ok, 30, "{:?}", report.first_mismatch);
    assert_eq!(report.distinct_requests, 3);
    // One check of each, then the 30 measured requests shared evenly by the rotation.
    assert_eq!(*seen.lock().unwrap(), [11, 11, 11]);
}

#[tokio::test]
async fn a_wrong_answer_to_one_request_of_a_rotation_is_caught_and_named() {
    // Wrong from the start: the check of `echo 2` stops the run.
    let (app, _) = echo_app(0);
    let (url, _stop) = serve(app).await;
    let mut checked_once = options(url, HELLO, Stop::Requests(30));
    checked_once.requests = echo_requests();
    let error = load::run(checked_once).await.unwrap_err();
    assert!(
        matches!(&error, LoadError::FirstMismatch { name, .. } if name == "echo 2"),
        "{error}"
    );

    // Wrong after the checks: the measured answers to `echo 2` fail, the others pass.
    let (app, _) = echo_app(3);
    let (url, _stop) = serve(app).await;
    let mut wrong_later = options(url, HELLO, Stop::Requests(30));
    wrong_later.requests = echo_requests();
    let report = load::run(wrong_later).await.unwrap();
    assert_eq!(report.failures.wrong_response, 10);
    assert_eq!(report.ok, 20);
    assert_eq!(
        report.first_mismatch.as_deref(),
        Some("echo 2: at $.data.echo: expected 2, got 99")
    );
}
