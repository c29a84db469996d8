//! Per-field rate limits (config and `@rateLimit`, memory, Redis and a Redis Cluster) and the
//! whole-request limit.

use std::time::Duration;

use axum::body::Body;
use serde_json::{Value as Json, json};
use shippy_router::config::{FailurePolicy, FieldRateLimit, RateLimitBackend};
use shippy_security::revocation::RevocationStore;
use tower::ServiceExt;

use crate::harness::{TestEnv, env};
use crate::support::*;

/// Sends `query` straight into the router's app (no socket), so paused time is never advanced
/// behind the test's back by idle I/O.
async fn oneshot(env: &TestEnv, query: &str, token: Option<&str>) -> (u16, Option<String>, Json) {
    let mut request = http::Request::post("/graphql")
        .header("content-type", "application/json")
        .header("accept", "application/graphql-response+json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Body::from(json!({"query": query}).to_string()))
        .unwrap();
    let response = env.router.app().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, retry_after, serde_json::from_slice(&bytes).unwrap())
}

fn rule(text: &str) -> FieldRateLimit {
    FieldRateLimit::parse(text).unwrap()
}

#[tokio::test]
async fn a_limited_field_is_dropped_then_recovers_with_time() {
    let env = env()
        .config(|c| {
            c.rate_limit
                .fields
                .insert("Query.topProducts".into(), rule("2 per 1h"));
        })
        .start()
        .await;
    let alone = "{ topProducts(first: 1) { upc } }";
    let mixed = "{ me { name } topProducts(first: 1) { upc } }";
    for _ in 0..2 {
        let (status, _, body) = oneshot(&env, alone, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"]["topProducts"], json!([{"upc": "1"}]), "{body}");
    }
    // Over the limit: the field is null with RATE_LIMITED, the rest of the operation runs.
    let (status, _, body) = oneshot(&env, mixed, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"], json!({"name": "Uri Goldshtein"}));
    assert_eq!(body["data"]["topProducts"], Json::Null);
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(error["path"], json!(["topProducts"]));
    let retry_after = error["extensions"]["retryAfter"].as_u64().unwrap();
    assert!((1700..=1800).contains(&retry_after), "{retry_after}");

    // Time stands still: the operation (already prepared, so no planning thread runs) stays
    // limited, and reaches no subgraph, so no idle I/O lets the paused clock run.
    tokio::time::pause();
    let products_calls = env.knobs("products").calls();
    let (status, header, _) = oneshot(&env, alone, None).await;
    assert_eq!(status, 429);
    let header: u64 = header.unwrap().parse().unwrap();
    assert!(
        header + 1 >= retry_after && header <= retry_after,
        "{header} vs {retry_after}"
    );
    tokio::time::advance(Duration::from_secs(retry_after - 5)).await;
    assert_eq!(oneshot(&env, alone, None).await.0, 429);
    // Half an hour after the limit was hit one selection's worth of quota is back.
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::time::resume();
    let (status, _, body) = oneshot(&env, alone, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.knobs("products").calls(), products_calls + 1);
    assert_eq!(oneshot(&env, alone, None).await.0, 429);
}

#[tokio::test]
async fn aliases_count_separately_and_only_root_limited_gets_429() {
    let env = env().supergraph(secured).start().await;
    // `@rateLimit(limit: 3, duration: "1h")` on topProducts: two aliases cost two.
    let (status, _, body) = oneshot(
        &env,
        "{ a: topProducts(first: 1) { upc } b: topProducts(first: 2) { upc } }",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body.get("errors"), None, "{body}");
    let (status, _, body) = oneshot(
        &env,
        "{ a: topProducts(first: 1) { upc } b: topProducts(first: 2) { upc } }",
        None,
    )
    .await;
    // One left: `a` runs, `b` is limited.
    assert_eq!(status, 200);
    assert_eq!(body["data"]["a"], json!([{"upc": "1"}]));
    assert_eq!(body["data"]["b"], Json::Null);
    assert_eq!(body["errors"][0]["path"], json!(["b"]));
    // Nothing left, and the operation has no other root field: 429 with Retry-After.
    let calls = env.knobs("products").calls();
    let (status, retry_after, body) = oneshot(&env, "{ topProducts { upc } }", None).await;
    assert_eq!(status, 429);
    let retry_after: u64 = retry_after.unwrap().parse().unwrap();
    assert!(retry_after > 0);
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(
        env.knobs("products").calls(),
        calls,
        "429 reaches no subgraph"
    );
}

#[tokio::test]
async fn config_overrides_the_directive_and_limits_are_per_caller() {
    let env = env()
        .config(|c| {
            with_jwt(c);
            c.rate_limit
                .fields
                .insert("Query.topProducts".into(), rule("1 per 1h per user"));
        })
        .supergraph(secured)
        .start()
        .await;
    let alice = hs256(&claims("alice", &[]));
    let bob = hs256(&claims("bob", &[]));
    let query = "{ topProducts(first: 1) { upc } }";
    assert_eq!(oneshot(&env, query, Some(&alice)).await.0, 200);
    // The directive says 3, the config 1.
    assert_eq!(oneshot(&env, query, Some(&alice)).await.0, 429);
    // Bob has his own quota; anonymous callers share the IP's.
    assert_eq!(oneshot(&env, query, Some(&bob)).await.0, 200);
    assert_eq!(oneshot(&env, query, None).await.0, 200);
    assert_eq!(oneshot(&env, query, None).await.0, 429);
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
async fn two_routers_share_one_redis_quota() {
    two_routers_share_one_quota_on(&redis_url()).await;
}

/// The same on a Redis Cluster of the test's own: the limit script touches one key, so it runs on that
/// key's slot, and both routers find the same key through the cluster's routing. The revocation store,
/// the other Redis store the router reads, works there too.
#[tokio::test]
async fn two_routers_share_one_quota_on_a_redis_cluster() {
    let cluster = shippy_kit::testing::RedisCluster::start().await;
    two_routers_share_one_quota_on(&cluster.url()).await;

    let store = shippy_security::revocation::RedisRevocations::new(
        &cluster.url(),
        "shippy-test:revoked:",
        Duration::from_secs(2),
    )
    .unwrap();
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 60;
    for jti in ["a", "b", "c"] {
        store.revoke(jti, expires).await.unwrap();
    }
    for jti in ["a", "b", "c"] {
        assert!(store.is_revoked(jti).await.unwrap(), "{jti} revoked");
    }
    assert!(!store.is_revoked("d").await.unwrap());
}

/// Two routers on the Redis at `url` with one key prefix: three selections between them, then both
/// refuse; exactly one key was written (and is deleted at the end).
async fn two_routers_share_one_quota_on(url: &str) {
    let prefix = format!(
        "shippy-test:{}:{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let configure = |c: &mut shippy_router::RouterConfig| {
        c.rate_limit.backend = RateLimitBackend::Redis;
        c.rate_limit.redis.url = Some(url.to_owned());
        c.rate_limit.redis.key_prefix = prefix.clone();
        c.rate_limit.redis.on_error = FailurePolicy::Closed;
        c.rate_limit
            .fields
            .insert("Query.topProducts".into(), rule("3 per 1h"));
    };
    let first = env().config(configure).start().await;
    let second = env().config(configure).start().await;
    let query = "{ topProducts(first: 1) { upc } }";
    assert_eq!(oneshot(&first, query, None).await.0, 200);
    assert_eq!(oneshot(&second, query, None).await.0, 200);
    assert_eq!(oneshot(&first, query, None).await.0, 200);
    // Three used between them: both refuse now.
    let (status, retry_after, _) = oneshot(&second, query, None).await;
    assert_eq!(status, 429);
    assert!(retry_after.unwrap().parse::<u64>().unwrap() > 1000);
    assert_eq!(oneshot(&first, query, None).await.0, 429);

    // On a cluster, SCAN every primary: the key is on whichever holds its slot.
    let mut connection = shippy_security::redis::RedisClient::open(url)
        .unwrap()
        .connect(Duration::from_secs(2), Duration::from_secs(5))
        .await
        .unwrap();
    let keys = connection
        .scan_all(&format!("{prefix}*"), None)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_redis_follows_the_failure_policy() {
    for (policy, expected) in [(FailurePolicy::Open, 200), (FailurePolicy::Closed, 429)] {
        let env = env()
            .config(|c| {
                c.rate_limit.backend = RateLimitBackend::Redis;
                c.rate_limit.redis.url = Some("redis://127.0.0.1:1".into());
                c.rate_limit.redis.timeout = Duration::from_millis(300);
                c.rate_limit.redis.on_error = policy;
                c.rate_limit
                    .fields
                    .insert("Query.topProducts".into(), rule("3 per 1h"));
            })
            .start()
            .await;
        let (status, _, body) = oneshot(&env, "{ topProducts(first: 1) { upc } }", None).await;
        assert_eq!(status, expected, "{policy:?}: {body}");
    }
}

#[tokio::test]
async fn whole_request_limit_per_client_ip() {
    let env = env()
        .config(|c| {
            c.rate_limit.requests.enabled = true;
            c.rate_limit.requests.limit = 2;
            c.rate_limit.requests.per = Duration::from_secs(60);
        })
        .start()
        .await;
    for _ in 0..2 {
        assert_eq!(
            post(&env, "{ __typename }", Json::Null, &[]).await.status,
            200
        );
    }
    let reply = post(&env, "{ __typename }", Json::Null, &[]).await;
    assert_eq!(reply.status, 429);
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(reply.error_codes(), vec!["RATE_LIMITED"]);
    // Health probes are never limited.
    let health = env
        .send(env.client.get(format!("{}/health", env.url)))
        .await;
    assert_eq!(health.status, 200);
    // Off by default.
    let open = env_without_request_limit().await;
    for _ in 0..5 {
        assert_eq!(
            post(&open, "{ __typename }", Json::Null, &[]).await.status,
            200
        );
    }
}

async fn env_without_request_limit() -> TestEnv {
    env().start().await
}
