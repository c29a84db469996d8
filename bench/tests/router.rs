//! The whole benchmark path in-process: our router over the benchmark subgraphs answers the benchmark
//! operation with exactly the expected response, with outbound deduplication on and off, under
//! concurrent load. This is what `bench/run.sh --smoke` checks with real processes.

use std::time::Duration;

use shippy_bench::{
    json::Json,
    load::{self, Labels, LoadOptions, Stop},
    procfs,
    subgraphs::{self, SubgraphOptions},
    workload,
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
        body: workload::request_body(workload::OPERATION, Some(workload::OPERATION_NAME)),
        expected: Json::parse(workload::EXPECTED_RESPONSE.as_bytes()).unwrap(),
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
