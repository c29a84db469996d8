//! Towards subgraphs: circuit breaker, retries (queries only), replicas with failover and
//! health checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value as Json, json};
use shippy_router::config::{
    CircuitBreakerConfig, HealthCheckConfig, LoadBalancing, RetryConfig, SubgraphOverride,
};

use crate::harness::{breaker_after_two_failures, env};
use crate::support::*;

fn no_retries() -> RetryConfig {
    RetryConfig {
        enabled: false,
        ..RetryConfig::default()
    }
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_probes_and_closes() {
    let healthy = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let (h, n) = (Arc::clone(&healthy), Arc::clone(&calls));
    let env = env()
        .config(|c| {
            c.subgraphs.insert(
                "accounts".into(),
                SubgraphOverride {
                    circuit_breaker: Some(CircuitBreakerConfig {
                        request_volume_threshold: 2,
                        error_percent_threshold: 50,
                        sleep_window: Duration::from_secs(30),
                        ..CircuitBreakerConfig::default()
                    }),
                    retry: Some(no_retries()),
                    dedupe: Some(false),
                    ..Default::default()
                },
            );
            c.http.dedupe = false;
        })
        .canned("accounts", move |_| {
            n.fetch_add(1, Ordering::SeqCst);
            if h.load(Ordering::SeqCst) {
                (200, r#"{"data":{"me":{"name":"Back"}}}"#.into())
            } else {
                (500, "down".into())
            }
        })
        .start()
        .await;
    let query = "{ me { name } topProducts(first: 1) { upc } }";
    for _ in 0..2 {
        let reply = post(&env, query, Json::Null, &[]).await;
        assert_eq!(reply.error_codes(), vec!["SUBREQUEST_HTTP_ERROR"]);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Open: accounts is not called, its fields fail fast; other subgraphs are unaffected.
    let reply = post(&env, query, Json::Null, &[]).await;
    assert_eq!(reply.error_codes(), vec!["SUBREQUEST_CIRCUIT_OPEN"]);
    assert_eq!(reply.json()["data"]["topProducts"], json!([{"upc": "1"}]));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let status = env.router.subgraph_status("accounts").unwrap();
    assert_eq!(status.breaker, Some("open"));

    // After the sleep window one probe goes through; it fails, so the breaker opens again.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(30)).await;
    tokio::time::resume();
    let reply = post(&env, query, Json::Null, &[]).await;
    assert_eq!(reply.error_codes(), vec!["SUBREQUEST_HTTP_ERROR"]);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let reply = post(&env, query, Json::Null, &[]).await;
    assert_eq!(reply.error_codes(), vec!["SUBREQUEST_CIRCUIT_OPEN"]);

    // The subgraph recovers; the next probe succeeds and closes the breaker.
    healthy.store(true, Ordering::SeqCst);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(30)).await;
    tokio::time::resume();
    let reply = post(&env, query, Json::Null, &[]).await;
    assert_eq!(
        reply.json()["data"]["me"],
        json!({"name": "Back"}),
        "{}",
        reply.text
    );
    assert_eq!(
        env.router.subgraph_status("accounts").unwrap().breaker,
        Some("closed")
    );
    let reply = post(&env, query, Json::Null, &[]).await;
    assert_eq!(reply.json().get("errors"), None);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn queries_are_retried_on_503_but_mutations_never() {
    let calls = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&calls);
    let env = env()
        .config(|c| {
            c.http.dedupe = false;
            c.subgraphs.insert(
                "accounts".into(),
                SubgraphOverride {
                    retry: Some(RetryConfig {
                        max_attempts: 3,
                        initial_backoff: Duration::from_millis(1),
                        max_backoff: Duration::from_millis(2),
                        ..RetryConfig::default()
                    }),
                    ..Default::default()
                },
            );
        })
        .canned("accounts", move |body| {
            let attempt = n.fetch_add(1, Ordering::SeqCst);
            if body.contains("mutation") || attempt % 3 != 2 {
                (503, "busy".into())
            } else {
                (200, r#"{"data":{"me":{"name":"Third time"}}}"#.into())
            }
        })
        .start()
        .await;
    // A query: two 503s, then an answer.
    let reply = post(&env, "{ me { name } }", Json::Null, &[]).await;
    assert_eq!(
        reply.json(),
        json!({"data": {"me": {"name": "Third time"}}})
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // A mutation: one attempt, whatever the answer.
    let reply = post(
        &env,
        "mutation { updateName(id: \"1\", name: \"x\") { id } }",
        Json::Null,
        &[],
    )
    .await;
    assert_eq!(reply.error_codes(), vec!["SUBREQUEST_HTTP_ERROR"]);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn the_retry_budget_caps_retries() {
    let calls = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&calls);
    let env = env()
        .config(|c| {
            c.http.dedupe = false;
            c.subgraphs.insert(
                "accounts".into(),
                SubgraphOverride {
                    retry: Some(RetryConfig {
                        max_attempts: 3,
                        initial_backoff: Duration::from_millis(1),
                        max_backoff: Duration::from_millis(1),
                        budget_ratio: 0.0,
                        budget_min_per_second: 0,
                        ..RetryConfig::default()
                    }),
                    circuit_breaker: Some(CircuitBreakerConfig {
                        enabled: false,
                        ..CircuitBreakerConfig::default()
                    }),
                    ..Default::default()
                },
            );
        })
        .canned("accounts", move |_| {
            n.fetch_add(1, Ordering::SeqCst);
            (503, "busy".into())
        })
        .start()
        .await;
    for _ in 0..3 {
        post(&env, "{ me { name } }", Json::Null, &[]).await;
    }
    // An empty budget: no retries at all.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

fn replicas_config(
    urls: Vec<String>,
    strategy: LoadBalancing,
) -> impl FnOnce(&mut shippy_router::RouterConfig) {
    move |c| {
        c.http.dedupe = false;
        c.subgraphs.insert(
            "accounts".into(),
            SubgraphOverride {
                urls,
                load_balancing: Some(strategy),
                dedupe: Some(false),
                health_check: Some(HealthCheckConfig {
                    interval: Duration::from_millis(50),
                    timeout: Duration::from_millis(200),
                    unhealthy_threshold: 1,
                    healthy_threshold: 1,
                    ..HealthCheckConfig::default()
                }),
                retry: Some(RetryConfig {
                    initial_backoff: Duration::from_millis(1),
                    max_backoff: Duration::from_millis(5),
                    ..RetryConfig::default()
                }),
                ..Default::default()
            },
        );
    }
}

fn replica_health(env: &crate::harness::TestEnv) -> Vec<bool> {
    env.router
        .subgraph_status("accounts")
        .unwrap()
        .replicas
        .iter()
        .map(|(_, healthy)| *healthy)
        .collect()
}

#[tokio::test]
async fn requests_fail_over_when_a_replica_dies_and_return_when_it_is_back() {
    let mut a = Replica::start(SocketAddr::from(([127, 0, 0, 1], 0)), accounts_answer()).await;
    let b = Replica::start(SocketAddr::from(([127, 0, 0, 1], 0)), accounts_answer()).await;
    let env = env()
        .config(replicas_config(
            vec![a.url.clone(), b.url.clone()],
            LoadBalancing::RoundRobin,
        ))
        .start()
        .await;
    let query = "{ me { id } }";
    for _ in 0..4 {
        assert_eq!(
            post(&env, query, Json::Null, &[]).await.json(),
            json!({"data": {"me": {"id": "1"}}})
        );
    }
    assert_eq!((a.queries(), b.queries()), (2, 2), "round robin");

    // Kill one replica: every query still succeeds (a connection error is retried elsewhere).
    let a_addr = a.addr;
    a.stop().await;
    for _ in 0..6 {
        let reply = post(&env, query, Json::Null, &[]).await;
        assert_eq!(
            reply.json(),
            json!({"data": {"me": {"id": "1"}}}),
            "{}",
            reply.text
        );
    }
    // Health checks (and the failed connections) eject it.
    assert!(eventually(5, async || replica_health(&env) == vec![false, true]).await);
    let before = b.queries();
    for _ in 0..4 {
        post(&env, query, Json::Null, &[]).await;
    }
    assert_eq!(
        b.queries(),
        before + 4,
        "an ejected replica gets no traffic"
    );

    // Bring it back on the same address: health checks return it to the rotation.
    let a = Replica::start(a_addr, accounts_answer()).await;
    assert!(eventually(5, async || replica_health(&env) == vec![true, true]).await);
    for _ in 0..4 {
        post(&env, query, Json::Null, &[]).await;
    }
    assert_eq!(a.queries(), 2, "the returned replica takes its turns again");
}

#[tokio::test]
async fn least_outstanding_avoids_the_busy_replica() {
    let busy = Replica::start(SocketAddr::from(([127, 0, 0, 1], 0)), accounts_answer()).await;
    let idle = Replica::start(SocketAddr::from(([127, 0, 0, 1], 0)), accounts_answer()).await;
    busy.delay_ms.store(300, Ordering::SeqCst);
    let env = env()
        .config(replicas_config(
            vec![busy.url.clone(), idle.url.clone()],
            LoadBalancing::LeastOutstanding,
        ))
        .start()
        .await;
    // The first request takes the busy replica (both idle: its turn) and stays there a while;
    // the ones sent once it is there go to the idle replica.
    let first = post(&env, "{ me { id } }", Json::Null, &[]);
    let others = async {
        assert!(
            eventually(10, async || busy.queries() == 1).await,
            "the first request reached the busy replica"
        );
        for _ in 0..4 {
            post(&env, "{ me { id } }", Json::Null, &[]).await;
        }
    };
    let _ = tokio::join!(first, others);
    assert_eq!((busy.queries(), idle.queries()), (1, 4));
}

/// The value of the Prometheus sample `series` (name and labels exactly as rendered).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn fetch_failures_and_the_breaker_state_are_exported() {
    let env = env()
        .config(|c| breaker_after_two_failures(c, "accounts", Duration::from_secs(60)))
        .canned("accounts", |_| (500, "down".into()))
        .start()
        .await;
    for _ in 0..3 {
        post(&env, "{ me { name } }", Json::Null, &[]).await;
    }
    let scrape = env
        .send(env.client.get(format!("{}/metrics", env.url)))
        .await;
    assert_eq!(scrape.status, 200);
    assert!(
        scrape.content_type.starts_with("text/plain"),
        "{}",
        scrape.content_type
    );
    let text = &scrape.text;
    // Other tests of this binary fail fetches to `accounts` too: counters only grow.
    let errors = |kind: &str| {
        metric(
            text,
            &format!(
                r#"shippy_router_subgraph_fetch_errors_total{{subgraph="accounts",kind="{kind}"}}"#
            ),
        )
        .unwrap_or_else(|| panic!("no {kind} errors in\n{text}"))
    };
    assert!(errors("http_status") >= 2.0);
    assert!(errors("circuit_open") >= 1.0);
    assert!(
        metric(
            text,
            r#"shippy_router_subgraph_fetch_duration_seconds_count{subgraph="accounts",result="error"}"#
        )
        .is_some_and(|n| n >= 3.0),
        "{text}"
    );
    assert_eq!(
        metric(
            text,
            r#"shippy_router_circuit_breaker_state{subgraph="accounts"}"#
        ),
        Some(2.0),
        "open\n{text}"
    );
}
