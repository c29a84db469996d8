//! The whole benchmark path in-process: our router over the benchmark subgraphs answers the benchmark
//! operation with exactly the expected response, with outbound deduplication on and off, under
//! concurrent load, and every request of the varied workload as the monolith does. This is what
//! `bench/run.sh --smoke` checks with real processes.

use std::time::Duration;

use shippy_bench::{
    json::Json,
    load::{self, Labels, LoadOptions, Request, Stop},
    procfs,
    subgraphs::{self, SubgraphOptions},
    varied, workload,
};
use shippy_router::{Router, RouterConfig};
use tokio::net::TcpListener;

async fn start_subgraphs() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(subgraphs::serve(
        listener,
        SubgraphOptions {
            memoize: false,
            ..SubgraphOptions::default()
        },
        std::future::pending(),
    ));
    base
}

async fn start_router(subgraphs_url: &str, config: RouterConfig) -> String {
    let router =
        Router::from_supergraph_sdl(&workload::supergraph_for(subgraphs_url), config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    tokio::spawn(router.serve(listener, std::future::pending()));
    url
}

fn load_options(url: String) -> LoadOptions {
    LoadOptions {
        url,
        requests: vec![Request::new(
            workload::OPERATION_NAME,
            workload::request_body(workload::OPERATION, Some(workload::OPERATION_NAME)),
            Json::parse(workload::EXPECTED_RESPONSE.as_bytes()).unwrap(),
        )],
        workload: load::BENCHMARK_WORKLOAD.into(),
        connections: 4,
        stop: Stop::Requests(24),
        warmup: Duration::ZERO,
        request_timeout: Duration::from_secs(30),
        watch: Vec::new(),
        subgraph_stats: None,
        clk_tck: procfs::DEFAULT_CLK_TCK,
        labels: Labels::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_router_returns_exactly_the_expected_response() {
    let subgraphs = start_subgraphs().await;
    let mut calls_per_request: Vec<f64> = Vec::new();
    for dedupe in [false, true] {
        let mut config = RouterConfig::default();
        // Inbound deduplication off in both runs: identical concurrent client requests would
        // otherwise share one execution, and this test is about the router's subgraph calls.
        config.http.dedupe = false;
        config.subgraph_defaults.dedupe = dedupe;
        let url = start_router(&subgraphs, config).await;
        let mut options = load_options(url);
        options.subgraph_stats = Some(format!("{subgraphs}/stats"));
        let report = load::run(options)
            .await
            .unwrap_or_else(|e| panic!("dedupe {dedupe}: {e}"));
        assert_eq!(
            report.failures.total(),
            0,
            "dedupe {dedupe}: {:?}",
            report.first_mismatch
        );
        assert_eq!(report.ok, 24);
        assert_eq!(report.response_bytes, workload::EXPECTED_RESPONSE.len());
        let traffic = report.subgraph_traffic.expect("subgraph traffic");
        calls_per_request.push(traffic.calls_per_request);
    }
    let [without, with] = calls_per_request[..] else {
        unreachable!("two runs")
    };
    assert!(
        without >= 4.0 && without.fract() == 0.0,
        "one call per fetch of the plan: {without}"
    );
    assert!(
        with <= without,
        "deduplication never adds calls: {with} > {without}"
    );
}

/// The varied workload end to end: our router over the varied supergraph (the union field, the
/// `@requires`, the wide list, the benchmark operation with variables), deduplication off as in
/// mode `varied`, answers every request of the rotation as the monolith does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_router_answers_every_request_of_the_varied_rotation() {
    let subgraphs = start_subgraphs().await;
    let mut config = RouterConfig::default();
    config.http.dedupe = false;
    config.subgraph_defaults.dedupe = false;
    let router = Router::from_supergraph_sdl(&varied::supergraph_for(&subgraphs), config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    tokio::spawn(router.serve(listener, std::future::pending()));

    let requests = varied::requests().await.unwrap();
    let distinct = requests.len() as u64;
    let mut options = load_options(url);
    options.requests = requests;
    options.workload = varied::NAME.into();
    // Twice round the rotation, after the check of each request.
    options.stop = Stop::Requests(2 * distinct);
    let report = load::run(options).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.failures.total(), 0, "{:?}", report.first_mismatch);
    assert_eq!(report.ok, 2 * distinct);
    assert_eq!(report.distinct_requests as u64, distinct);
    assert_eq!(report.workload, "varied");
}
