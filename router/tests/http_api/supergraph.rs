//! Supergraph updates while serving: swaps under load, bad supergraphs ignored, caches per
//! supergraph, the watched file and a polled URL (a local registry whose answer changes).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value as Json, json};
use shippy_router::{RouterError, SupergraphSource, SupergraphUpdate};

use super::harness::{TestEnv, breaker_after_two_failures, env, fixture};

/// The supergraph with one more field, `User.nickname` (served by nobody's queries here): a real
/// schema change, with a different hash, that every operation of the other one survives.
fn with_nickname(supergraph: &str) -> String {
    let field = "  name: String @join__field(graph: ACCOUNTS)\n";
    assert!(supergraph.contains(field));
    supergraph.replacen(
        field,
        &format!("{field}  nickname: String @join__field(graph: ACCOUNTS)\n"),
        1,
    )
}

/// Held by the tests that make supergraph loads fail, so that each can count its own failures
/// in the process-wide `shippy_router_supergraph_loads_total`.
static COUNTING_FAILURES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn ready(env: &TestEnv) -> Json {
    let reply = env.send(env.client.get(format!("{}/ready", env.url))).await;
    assert_eq!(reply.status, 200);
    reply.json()
}

/// The value of the counter line `shippy_router_supergraph_loads_total{outcome="..."}`.
async fn loads(env: &TestEnv, outcome: &str) -> f64 {
    let reply = env
        .send(env.client.get(format!("{}/metrics", env.url)))
        .await;
    let prefix = format!("shippy_router_supergraph_loads_total{{outcome=\"{outcome}\"}} ");
    reply
        .text
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_swaps_under_steady_load_fail_no_request() {
    let env = Arc::new(env().start().await);
    let first = env.supergraph.clone();
    let second = with_nickname(&first);
    let operation = fixture("bench.operation.graphql");
    let expected = fixture("bench.expected_response.json");
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..6 {
        let (env, stop, served, failures) = (
            Arc::clone(&env),
            Arc::clone(&stop),
            Arc::clone(&served),
            Arc::clone(&failures),
        );
        let (operation, expected) = (operation.clone(), expected.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = env.post(&operation).await;
                if reply.status != 200 || reply.text != expected.trim_end() {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{} {}", reply.status, reply.text));
                }
                served.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Traffic first, so that every swap lands among requests in flight.
    while served.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut during = Vec::new();
    for swap in 0..20 {
        let sdl = if swap % 2 == 0 { &second } else { &first };
        let before = served.load(Ordering::Relaxed);
        let outcome = env.router.update_supergraph(sdl.clone()).await.unwrap();
        assert_eq!(
            outcome,
            SupergraphUpdate::Applied {
                hash: sha256_hex(sdl)
            }
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        during.push(served.load(Ordering::Relaxed) - before);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed across the swaps; first: {}",
        failures.len(),
        served.load(Ordering::Relaxed),
        failures[0]
    );
    // The figures (`-- --nocapture`): what the router served while it swapped.
    eprintln!(
        "{} requests, 0 failed, across 20 swaps; served during each swap window: {during:?}",
        served.load(Ordering::Relaxed)
    );
    // Requests were served around every swap, not only before and after them.
    assert!(
        during.iter().all(|&n| n > 0),
        "requests per swap: {during:?}"
    );
    // The last swap put the first supergraph back.
    assert_eq!(ready(&env).await["supergraph"]["hash"], sha256_hex(&first));
}

#[tokio::test]
async fn a_bad_supergraph_is_refused_counted_and_the_old_one_keeps_serving() {
    let _counting = COUNTING_FAILURES.lock().await;
    let env = env()
        .config(|c| {
            c.subgraphs.entry("inventory".into()).or_default().timeout =
                Some(Duration::from_secs(5));
        })
        .start()
        .await;
    let serving = sha256_hex(&env.supergraph);
    let before = ready(&env).await;
    assert_eq!(before["status"], "pass");
    assert_eq!(before["supergraph"]["hash"], serving.as_str());
    assert!(
        before["supergraph"]["loaded_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let failed_before = loads(&env, "failed").await;

    let not_sdl = env
        .router
        .update_supergraph("type Query { broken".into())
        .await;
    assert!(
        matches!(not_sdl, Err(RouterError::Supergraph(_))),
        "{not_sdl:?}"
    );
    let unsupported = env
        .router
        .update_supergraph(env.supergraph.replace("join/v0.3", "join/v9.9"))
        .await;
    assert!(
        matches!(unsupported, Err(RouterError::Supergraph(_))),
        "{unsupported:?}"
    );
    let no_url = env
        .router
        .update_supergraph(regex_replace_url(&env.supergraph, "accounts", ""));
    let no_url = no_url.await;
    assert!(
        matches!(no_url, Err(RouterError::SubgraphUrl { .. })),
        "{no_url:?}"
    );

    // The configuration names `inventory`, which this one calls `stock`.
    let renamed = env
        .router
        .update_supergraph(
            env.supergraph
                .replace("name: \"inventory\"", "name: \"stock\""),
        )
        .await;
    assert!(
        matches!(&renamed, Err(RouterError::UnknownSubgraph(name)) if name == "inventory"),
        "{renamed:?}"
    );

    // Nothing changed: same supergraph, same answers.
    assert_eq!(ready(&env).await["supergraph"], before["supergraph"]);
    let reply = env.post(&fixture("bench.operation.graphql")).await;
    assert_eq!(
        reply.text,
        fixture("bench.expected_response.json").trim_end()
    );
    assert_eq!(
        loads(&env, "failed").await,
        failed_before + 4.0,
        "every refusal is counted"
    );
    let metrics = env
        .send(env.client.get(format!("{}/metrics", env.url)))
        .await
        .text;
    assert!(
        metrics.contains(&format!(
            "shippy_router_supergraph_info{{hash=\"{serving}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("shippy_router_supergraph_loaded_timestamp_seconds "));
}

/// `supergraph` with subgraph `name`'s URL set to `url`.
fn regex_replace_url(supergraph: &str, name: &str, url: &str) -> String {
    let marker = format!("@join__graph(name: \"{name}\", url: \"");
    let start = supergraph.find(&marker).unwrap() + marker.len();
    let end = start + supergraph[start..].find('"').unwrap();
    format!("{}{url}{}", &supergraph[..start], &supergraph[end..])
}

#[tokio::test]
async fn caches_are_per_supergraph_and_warmed_from_the_old_one() {
    let env = env().start().await;
    let query = "{ me { name } }";
    assert_eq!(
        env.post(query).await.json(),
        json!({"data": {"me": {"name": "Uri Goldshtein"}}})
    );
    env.post(query).await;
    let old = env.router.cache_stats();
    assert_eq!((old.operation_hits, old.operation_misses), (1, 1));

    let unchanged = env.router.update_supergraph(env.supergraph.clone()).await;
    assert_eq!(unchanged.unwrap(), SupergraphUpdate::Unchanged);
    assert_eq!(
        env.router.cache_stats(),
        old,
        "the same supergraph keeps its caches"
    );

    let second = with_nickname(&env.supergraph);
    env.router.update_supergraph(second).await.unwrap();
    let new = env.router.cache_stats();
    // A fresh cache, holding only what the warm-up planned: the operation served before.
    assert_eq!(
        (new.operation_hits, new.operation_misses, new.plans_cached),
        (0, 1, 1)
    );
    assert_eq!(
        env.post(query).await.json(),
        json!({"data": {"me": {"name": "Uri Goldshtein"}}})
    );
    assert_eq!(env.router.cache_stats().operation_hits, 1, "warmed");
    // The router validates and plans it now (the test subgraph itself has no such field).
    let nickname = env.post("{ me { nickname } }").await;
    assert!(
        !nickname.text.contains("GRAPHQL_VALIDATION_FAILED"),
        "{}",
        nickname.text
    );

    // Back to the first: the field is gone again, for new requests only, and that alone is no
    // reason to refuse the supergraph.
    let first = env.supergraph.clone();
    env.router.update_supergraph(first).await.unwrap();
    assert_eq!(
        env.post("{ me { nickname } }").await.error_codes(),
        ["GRAPHQL_VALIDATION_FAILED"]
    );
}

#[tokio::test]
async fn the_supergraph_file_is_watched() {
    let _counting = COUNTING_FAILURES.lock().await;
    let env = env().start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("supergraph.graphql");
    std::fs::write(&file, &env.supergraph).unwrap();
    let watcher = tokio::spawn(
        env.router
            .clone()
            .watch_supergraph(file.clone(), Duration::from_millis(50)),
    );
    let second = with_nickname(&env.supergraph);
    std::fs::write(&file, &second).unwrap();
    until(|| async { env.router.api_schema_sdl().contains("nickname") }).await;
    assert_eq!(ready(&env).await["supergraph"]["hash"], sha256_hex(&second));
    // A broken file is ignored; fixing it applies it.
    std::fs::write(&file, "type Query {").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ready(&env).await["supergraph"]["hash"], sha256_hex(&second));
    std::fs::write(&file, &env.supergraph).unwrap();
    until(|| async { !env.router.api_schema_sdl().contains("nickname") }).await;
    // A file that goes away is reported once (not on every check); the router keeps serving.
    let unreadable = loads(&env, "fetch_failed").await;
    std::fs::remove_file(&file).unwrap();
    until(|| async { loads(&env, "fetch_failed").await > unreadable }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(loads(&env, "fetch_failed").await, unreadable + 1.0);
    assert_eq!(
        ready(&env).await["supergraph"]["hash"],
        sha256_hex(&env.supergraph)
    );
    std::fs::write(&file, with_nickname(&env.supergraph)).unwrap();
    until(|| async { env.router.api_schema_sdl().contains("nickname") }).await;
    watcher.abort();
}

/// A schema registry on port 0: serves the current SDL with an `ETag` (unless `etags` is off),
/// answers 304 to a matching `If-None-Match`, and requires `x-registry-key: k1`.
struct Registry {
    sdl: Mutex<String>,
    etags: AtomicBool,
    requests: AtomicUsize,
    not_modified: AtomicUsize,
    unauthorized: AtomicUsize,
}

async fn serve_registry(registry: Arc<Registry>) -> String {
    let app = axum::Router::new().route(
        "/supergraph",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let registry = Arc::clone(&registry);
            async move {
                registry.requests.fetch_add(1, Ordering::Relaxed);
                if headers.get("x-registry-key").map(|v| v.as_bytes()) != Some(b"k1") {
                    registry.unauthorized.fetch_add(1, Ordering::Relaxed);
                    return (
                        axum::http::StatusCode::UNAUTHORIZED,
                        [("etag", String::new())],
                        String::new(),
                    );
                }
                let sdl = registry.sdl.lock().unwrap().clone();
                if !registry.etags.load(Ordering::Relaxed) {
                    return (
                        axum::http::StatusCode::OK,
                        [("cache-control", "no-cache".into())],
                        sdl,
                    );
                }
                let etag = format!("\"{}\"", &sha256_hex(&sdl)[..16]);
                if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str())
                {
                    registry.not_modified.fetch_add(1, Ordering::Relaxed);
                    return (
                        axum::http::StatusCode::NOT_MODIFIED,
                        [("etag", etag)],
                        String::new(),
                    );
                }
                (axum::http::StatusCode::OK, [("etag", etag)], sdl)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/supergraph", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn a_polled_registry_url_is_followed_with_etags_and_the_auth_header() {
    let _counting = COUNTING_FAILURES.lock().await;
    let env = env().start().await;
    let registry = Arc::new(Registry {
        sdl: Mutex::new(env.supergraph.clone()),
        etags: AtomicBool::new(true),
        requests: AtomicUsize::new(0),
        not_modified: AtomicUsize::new(0),
        unauthorized: AtomicUsize::new(0),
    });
    let url = serve_registry(Arc::clone(&registry)).await;

    // Without the header the registry refuses: the fetch fails with its status.
    let anonymous = SupergraphSource::url(&url, None).unwrap();
    let refused = anonymous.fetch().await.unwrap_err().to_string();
    assert!(refused.contains("401"), "{refused}");
    assert!(SupergraphSource::url(&url, Some("no colon here")).is_err());

    let source = SupergraphSource::url(&url, Some("x-registry-key: k1")).unwrap();
    let poller = tokio::spawn(
        env.router
            .clone()
            .poll_supergraph(source, Duration::from_millis(50)),
    );
    // Unchanged answers cost 304s once the first one was fetched.
    until(|| async { registry.not_modified.load(Ordering::Relaxed) >= 2 }).await;
    assert_eq!(
        ready(&env).await["supergraph"]["hash"],
        sha256_hex(&env.supergraph)
    );

    let second = with_nickname(&env.supergraph);
    *registry.sdl.lock().unwrap() = second.clone();
    until(|| async { env.router.api_schema_sdl().contains("nickname") }).await;
    assert_eq!(ready(&env).await["supergraph"]["hash"], sha256_hex(&second));
    // The router validates and plans it now (the test subgraph itself has no such field).
    let nickname = env.post("{ me { nickname } }").await;
    assert!(
        !nickname.text.contains("GRAPHQL_VALIDATION_FAILED"),
        "{}",
        nickname.text
    );

    // A broken answer is ignored, the one serving stays.
    let failed_before = loads(&env, "failed").await;
    *registry.sdl.lock().unwrap() = "schema { query: Nope }".into();
    until(|| async { loads(&env, "failed").await > failed_before }).await;
    assert_eq!(ready(&env).await["supergraph"]["hash"], sha256_hex(&second));
    // Without `ETag`s the same broken answer comes back on every poll: refused (logged,
    // counted) once, not on every poll.
    registry.etags.store(false, Ordering::Relaxed);
    let requests = registry.requests.load(Ordering::Relaxed);
    until(|| async { registry.requests.load(Ordering::Relaxed) >= requests + 4 }).await;
    assert_eq!(loads(&env, "failed").await, failed_before + 1.0);
    // A good answer is applied again, ETag or not.
    *registry.sdl.lock().unwrap() = env.supergraph.clone();
    until(|| async { !env.router.api_schema_sdl().contains("nickname") }).await;
    assert_eq!(
        registry.unauthorized.load(Ordering::Relaxed),
        1,
        "only the anonymous fetch"
    );
    poller.abort();
}

/// Polls `condition` until it holds (at most 10 s).
async fn until<F: std::future::Future<Output = bool>>(condition: impl Fn() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_supergraph_that_cannot_plan_an_operation_in_use_is_refused() {
    let _counting = COUNTING_FAILURES.lock().await;
    let env = env().start().await;
    let query = "{ topProducts(first: 1) { upc name } }";
    let served = env.post(query).await;
    assert_eq!(
        served.json()["data"]["topProducts"][0]["upc"],
        "1",
        "{}",
        served.text
    );
    // `Product.name` moved to a subgraph that has no `Product` entity: the field is still in the
    // API schema, so the operation validates, but no plan can reach it.
    let field = "  name: String @join__field(graph: PRODUCTS)\n";
    assert!(env.supergraph.contains(field));
    let unreachable = env
        .supergraph
        .replace(field, "  name: String @join__field(graph: ACCOUNTS)\n");
    let refused = env.router.update_supergraph(unreachable).await;
    assert!(
        matches!(&refused, Err(RouterError::Unplannable { .. })),
        "{refused:?}"
    );
    assert_eq!(
        env.post(query).await.text,
        served.text,
        "the old one serves"
    );
    assert_eq!(
        ready(&env).await["supergraph"]["hash"],
        sha256_hex(&env.supergraph)
    );
}

#[tokio::test]
async fn subgraph_clients_survive_a_swap_unless_their_url_changes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let env = env()
        .config(|c| breaker_after_two_failures(c, "accounts", Duration::from_secs(60)))
        .canned("accounts", move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            (500, "down".into())
        })
        .start()
        .await;
    let query = "{ me { name } }";
    for _ in 0..2 {
        env.post(query).await;
    }
    assert_eq!(
        env.router.subgraph_status("accounts").unwrap().breaker,
        Some("open")
    );

    // Same name, same URL: the same client, its breaker still open after the swap.
    env.router
        .update_supergraph(with_nickname(&env.supergraph))
        .await
        .unwrap();
    assert_eq!(
        env.router.subgraph_status("accounts").unwrap().breaker,
        Some("open")
    );
    assert_eq!(
        env.post(query).await.error_codes(),
        ["SUBREQUEST_CIRCUIT_OPEN"]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "failed fast, not called");

    // A new URL: a new client (closed breaker) at the new address.
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::post(|| async {
            (
                [("content-type", "application/json")],
                r#"{"data":{"me":{"name":"Moved"}}}"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let moved = format!("http://{}/graphql", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    env.router
        .update_supergraph(regex_replace_url(&env.supergraph, "accounts", &moved))
        .await
        .unwrap();
    assert_eq!(
        env.router.subgraph_status("accounts").unwrap().breaker,
        Some("closed")
    );
    assert_eq!(
        env.post(query).await.json(),
        json!({"data": {"me": {"name": "Moved"}}})
    );
}

#[tokio::test]
async fn a_swap_rebuilds_the_progressive_override_planners() {
    let env = env()
        .canned("reviews", crate::reviews_knows_me)
        .start()
        .await;
    assert_eq!(crate::served_by_reviews(&env, 20, &[]).await, 0);
    // `Query.me` moved to reviews for every request, then for none.
    let all = crate::override_me("percent(100)")(env.supergraph.clone());
    env.router.update_supergraph(all).await.unwrap();
    assert_eq!(crate::served_by_reviews(&env, 20, &[]).await, 20);
    let none = crate::override_me("percent(0)")(env.supergraph.clone());
    env.router.update_supergraph(none).await.unwrap();
    assert_eq!(crate::served_by_reviews(&env, 20, &[]).await, 0);
}

#[tokio::test]
async fn a_supergraph_over_the_override_label_cap_is_refused() {
    let _counting = COUNTING_FAILURES.lock().await;
    let env = env()
        .config(|c| c.override_labels.max_labels = 0)
        .start()
        .await;
    let labelled = crate::override_me("beta")(env.supergraph.clone());
    let refused = env.router.update_supergraph(labelled).await;
    assert!(
        matches!(&refused, Err(RouterError::Supergraph(e)) if e.to_string().contains("override_labels.max_labels")),
        "{refused:?}"
    );
    assert_eq!(
        ready(&env).await["supergraph"]["hash"],
        sha256_hex(&env.supergraph)
    );
}
