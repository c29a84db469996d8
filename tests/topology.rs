//! The topology of `compose.yaml`, as processes: the four subgraphs (`shippy subgraph`, each on its own
//! fresh PostgreSQL database, events over Redis streams) and two `shippy router` replicas sharing their
//! rate limits through Redis. Requests through either router work, and calls split across both spend one
//! budget: `createConsignment` allows 10 a minute per user (`@rateLimit`) however they are spread.

mod support;

use serde_json::json;
use shippy_kit::testing::{Backend, GraphQLClient, RedisNamespace, TestDb};
use support::{Running, SECRET, config_file, shippy, subgraph};
use tokio::process::Command;

/// `shippy router` over the committed supergraph, pointed at the running subgraphs, with its rate
/// limits in Redis under `prefix`.
fn router(subgraphs: &[(&str, &Running)], redis: &str, prefix: &str) -> Command {
    let mut cmd = shippy();
    cmd.args(["router", "--listen", "127.0.0.1:0", "--supergraph"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/supergraph.graphql"
        ))
        .env("SHIPPY_ROUTER__AUTH__JWT__SECRET", SECRET)
        .env("SHIPPY_ROUTER__RATE_LIMIT__BACKEND", "redis")
        .env("SHIPPY_ROUTER__RATE_LIMIT__REDIS__URL", redis)
        .env(
            "SHIPPY_ROUTER__RATE_LIMIT__REDIS__KEY_PREFIX",
            format!("{prefix}ratelimit:"),
        );
    for (name, running) in subgraphs {
        cmd.env(
            format!("SHIPPY_ROUTER__SUBGRAPHS__{}__URL", name.to_uppercase()),
            running.url(name),
        );
    }
    cmd
}

const REGISTER: &str =
    "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";
const SHIP: &str = "mutation { createConsignment(input: {description: \"Tea\", weight: 10, containers: [{customerId: \"c1\", origin: \"Rotterdam\"}]}) { id } }";

/// Whether a `createConsignment` through `router` was refused by the rate limit.
async fn ship_limited(router: &GraphQLClient, token: &str) -> bool {
    let resp = router.query(SHIP, json!({}), Some(token)).await;
    match resp.body["data"]["createConsignment"]["id"].as_str() {
        Some(_) => false,
        None => {
            assert_eq!(resp.status, 429, "{:?}", resp.body);
            assert_eq!(resp.code(), Some("RATE_LIMITED"), "{:?}", resp.body);
            true
        }
    }
}

#[tokio::test]
async fn two_routers_over_separate_subgraphs_share_one_rate_limit() {
    let ns = RedisNamespace::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let dbs = [
        TestDb::create(Backend::Postgres).await,
        TestDb::create(Backend::Postgres).await,
        TestDb::create(Backend::Postgres).await,
        TestDb::create(Backend::Postgres).await,
    ];
    let names = ["user", "vessel", "consignment", "log"];
    let start = |name: &'static str, db: &TestDb| {
        Running::start(
            subgraph(name, "a", &db.url, &ns.url, &ns.prefix, &config),
            name,
        )
    };
    let (user, vessel, consignment, log) = tokio::join!(
        start(names[0], &dbs[0]),
        start(names[1], &dbs[1]),
        start(names[2], &dbs[2]),
        start(names[3], &dbs[3]),
    );
    let subgraphs = [
        ("user", &user),
        ("vessel", &vessel),
        ("consignment", &consignment),
        ("log", &log),
    ];
    let (a, b) = tokio::join!(
        Running::start(router(&subgraphs, &ns.url, &ns.prefix), "router"),
        Running::start(router(&subgraphs, &ns.url, &ns.prefix), "router"),
    );
    // What compose.yaml's health checks probe.
    let http = reqwest::Client::new();
    for url in [
        a.url("router"),
        b.url("router"),
        user.url("user"),
        log.url("log"),
    ] {
        let ready = url.replace("/graphql", "/ready");
        let status = http.get(&ready).send().await.unwrap().status();
        assert_eq!(status, 200, "{ready}");
    }
    let (a, b) = (a.client("router"), b.client("router"));

    // Register through one router, read back through the other: both reach the same subgraphs.
    let registered = a
        .query(
            REGISTER,
            json!({ "input": { "name": "Ada", "email": "ada@example.com", "password": "correct horse" } }),
            None,
        )
        .await;
    let token = registered.data()["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = b.query("{ me { name } }", json!({}), Some(&token)).await;
    assert_eq!(me.data(), &json!({ "me": { "name": "Ada" } }));

    // Ten calls alternating between the routers all pass; the budget is then spent on both.
    for n in 0..10 {
        let router = if n % 2 == 0 { &a } else { &b };
        assert!(
            !ship_limited(router, &token).await,
            "call {n} is within the budget"
        );
    }
    assert!(
        ship_limited(&a, &token).await,
        "router A sees the spent budget"
    );
    assert!(
        ship_limited(&b, &token).await,
        "router B sees the spent budget"
    );
}
