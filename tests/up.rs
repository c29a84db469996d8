//! Whole-system tests of the `shippy` binary: `shippy up` serves the flow a person follows (register, log in,
//! create and find a vessel, ship a consignment that the in-process bus gets assigned, read the activity
//! log), through the subgraphs and through the router, keeps data across restarts, stops cleanly on
//! SIGTERM; `shippy subgraph` and `shippy migrate` work on PostgreSQL; bad configuration is refused with a
//! clear message.

mod support;

use std::{path::Path, time::Duration};

use serde_json::json;
use shippy_kit::testing::{self, Backend, GraphQLClient, TestDb};
use support::{Running, SECRET, shippy};
use tokio::process::Command;

fn up(data_dir: &Path) -> Command {
    let mut cmd = shippy();
    // No subcommand: `up` is the default.
    cmd.args(["--port-base", "0", "--data-dir"]).arg(data_dir);
    cmd
}

const REGISTER: &str =
    "mutation($input: RegisterInput!) { register(input: $input) { token user { id email } } }";
const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token user { id } } }";
const CREATE: &str =
    "mutation($input: CreateVesselInput!) { createVessel(input: $input) { id name owner { id } } }";
const FIND: &str =
    "query($c: Int!, $w: Int!) { findAvailableVessel(capacity: $c, maxWeight: $w) { id name } }";
const SHIP: &str =
    "mutation($input: CreateConsignmentInput!) { createConsignment(input: $input) { id status } }";
/// Issue 5's query: user (me) -> consignment (User.consignments) -> vessel (Vessel.owner) -> user (name).
const MY_SHIPMENTS: &str = "{ me { consignments { status vessel { owner { name } } } } }";

/// Asks `query` through `client` until `done` holds for its data (the bus works in the background).
async fn eventually(
    client: &GraphQLClient,
    query: &str,
    token: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..200 {
        let resp = client.query(query, json!({}), Some(token)).await;
        last = resp.body.clone();
        if resp.body.get("errors").is_none() && done(&resp.body["data"]) {
            return resp.body["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{query} never got there; last answer: {last}");
}

#[tokio::test]
async fn up_serves_the_whole_flow_keeps_data_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let shippy = Running::start(up(&data), "shippy is up").await;
    assert!(
        ["router", "user", "vessel", "consignment", "log"]
            .iter()
            .all(|name| shippy.urls.contains_key(*name)),
        "{:?}",
        shippy.urls
    );
    let users = shippy.client("user");
    let vessels = shippy.client("vessel");

    let input = json!({ "input": { "name": "Ada", "company": "Acme", "email": "ada@example.com", "password": "correct horse" } });
    let registered = users.query(REGISTER, input, None).await;
    let user_id = registered.data()["register"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let login = users
        .query(
            LOGIN,
            json!({ "e": "ada@example.com", "p": "correct horse" }),
            None,
        )
        .await;
    let token = login.data()["login"]["token"].as_str().unwrap().to_owned();

    let input = json!({ "input": { "name": "Ever Given", "capacity": 500, "maxWeight": 20000 } });
    let created = vessels.query(CREATE, input, Some(&token)).await;
    let vessel = &created.data()["createVessel"];
    assert_eq!(vessel["owner"]["id"], user_id.as_str());
    let vessel_id = vessel["id"].as_str().unwrap().to_owned();

    let found = vessels
        .query(FIND, json!({ "c": 100, "w": 1000 }), None)
        .await;
    assert_eq!(
        found.data()["findAvailableVessel"]["id"],
        vessel_id.as_str()
    );

    // The same data through the router: one query joins the vessel subgraph with the user subgraph (the
    // owner entity), and the caller's token reaches the subgraph behind `me`.
    let router = shippy.client("router");
    let joined = router
        .query(
            "query($id: ID!) { vessel(id: $id) { name owner { id name company } } me { email } }",
            json!({ "id": vessel_id }),
            Some(&token),
        )
        .await;
    assert_eq!(
        joined.data(),
        &json!({
            "vessel": { "name": "Ever Given", "owner": { "id": user_id, "name": "Ada", "company": "Acme" } },
            "me": { "email": "ada@example.com" }
        })
    );
    // `me` is `@authenticated`: the router refuses it to anonymous callers without asking the subgraph,
    // and refuses a forged token outright.
    let anonymous = router.query("{ me { id } }", json!({}), None).await;
    assert_eq!(
        anonymous.code(),
        Some("UNAUTHORIZED_FIELD_OR_TYPE"),
        "{:?}",
        anonymous.body
    );
    let forged = router
        .query("{ me { id } }", json!({}), Some("e30.e30.e30"))
        .await;
    assert_eq!(forged.status, 401, "{:?}", forged.body);
    assert_eq!(forged.code(), Some("UNAUTHENTICATED"));

    // Ship a consignment through the router; the vessel subgraph books it on Ada's vessel over the
    // in-process bus, and one query then crosses three subgraphs to name the vessel's owner.
    let input = json!({ "input": { "description": "Tea", "weight": 100, "containers": [
        { "customerId": "c1", "origin": "Rotterdam" }, { "customerId": "c2", "origin": "Rotterdam" }
    ] } });
    let shipped = router.query(SHIP, input, Some(&token)).await;
    assert_eq!(shipped.data()["createConsignment"]["status"], "PENDING");
    let mine = eventually(&router, MY_SHIPMENTS, &token, |data| {
        data["me"]["consignments"][0]["status"] == "ASSIGNED"
    })
    .await;
    assert_eq!(
        mine,
        json!({ "me": { "consignments": [
            { "status": "ASSIGNED", "vessel": { "owner": { "name": "Ada" } } }
        ] } })
    );
    let remaining = router
        .query(
            "query($id: ID!) { vessel(id: $id) { remainingCapacity } }",
            json!({ "id": vessel_id }),
            None,
        )
        .await;
    assert_eq!(remaining.data()["vessel"]["remainingCapacity"], 498);
    // The activity log heard about it all, and shows Ada her own entries.
    let activity = eventually(
        &router,
        "{ logs(filter: {service: \"consignment\"}) { kind } me { activity(first: 100) { kind } } }",
        &token,
        |data| data["logs"].as_array().is_some_and(|l| l.len() == 2),
    )
    .await;
    assert_eq!(
        activity["logs"],
        json!([{ "kind": "consignment.created" }, { "kind": "consignment.assigned" }])
    );
    let kinds: Vec<&str> = activity["me"]["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in [
        "user.registered",
        "user.logged_in",
        "vessel.created",
        "vessel.reserved",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }

    for (name, url) in &shippy.urls {
        // The router is ready as soon as it serves; subgraphs report their database on /ready.
        let probe = if name == "router" {
            "/health"
        } else {
            "/ready"
        };
        let ready = reqwest::get(url.replace("/graphql", probe)).await.unwrap();
        assert_eq!(ready.status(), 200);
    }
    assert!(
        shippy.stop("-TERM").await,
        "shippy did not exit cleanly on SIGTERM"
    );
    for name in ["user", "vessel", "consignment", "log"] {
        assert!(data.join(format!("{name}.db")).exists(), "{name}.db");
    }

    // Restart on the same data: the account and the vessel are still there.
    let shippy = Running::start(up(&data), "shippy is up").await;
    let login = shippy
        .client("user")
        .query(
            LOGIN,
            json!({ "e": "ada@example.com", "p": "correct horse" }),
            None,
        )
        .await;
    assert_eq!(login.data()["login"]["user"]["id"], user_id.as_str());
    let listed = shippy
        .client("vessel")
        .query("{ vessels { id } }", json!({}), None)
        .await;
    assert_eq!(listed.data()["vessels"], json!([{ "id": vessel_id }]));
    let kept = shippy
        .client("router")
        .query(MY_SHIPMENTS, json!({}), Some(&login_token(&login)))
        .await;
    assert_eq!(
        kept.data()["me"]["consignments"][0]["status"],
        "ASSIGNED",
        "consignments survive a restart"
    );
    assert!(
        shippy.stop("-INT").await,
        "shippy did not exit cleanly on SIGINT"
    );
}

#[tokio::test]
async fn migrate_and_a_standalone_subgraph_on_postgres() {
    let db = TestDb::create(Backend::Postgres).await;
    let out = shippy()
        .args(["migrate", "vessel"])
        .env("DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("vessel: migrations applied"));
    // A standalone vessel subgraph hears no `user.registered` (no Redis here): record the owner as its
    // consumer would have, so that it may own a vessel.
    let owner: uuid::Uuid = uuid_like().parse().unwrap();
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    shippy_vessel::commands::remember_user(&conn, owner)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let mut cmd = shippy();
    cmd.args(["subgraph", "vessel", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &db.url);
    let running = Running::start(cmd, "vessel").await;
    let token = shippy_user::tokens::TokenIssuer::from_config(&shippy_kit::config::AuthConfig {
        secret: Some(shippy_kit::config::Secret::new(SECRET)),
        ..Default::default()
    })
    .unwrap()
    .issue(&uuid_like(), "o@example.com", vec![])
    .unwrap()
    .token;
    let input = json!({ "input": { "name": "Maersk", "capacity": 10, "maxWeight": 10 } });
    let created = running
        .client("vessel")
        .query(CREATE, input, Some(&token))
        .await;
    assert_eq!(created.data()["createVessel"]["name"], "Maersk");
    assert!(running.stop("-TERM").await);
}

fn login_token(login: &testing::GqlResponse) -> String {
    login.data()["login"]["token"].as_str().unwrap().to_owned()
}

fn uuid_like() -> String {
    // Any UUID: the vessel subgraph takes the owner id from the token (and must know it as a user).
    "0191d9a4-1b2c-7d3e-8f40-123456789abc".into()
}

#[tokio::test]
async fn up_on_postgres_gives_each_subgraph_its_own_database() {
    let base = TestDb::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = up(dir.path());
    cmd.env("DATABASE_URL", &base.url);
    let running = Running::start(cmd, "shippy is up").await;
    let input = json!({ "input": { "name": "Ada", "email": "ada@example.com", "password": "correct horse" } });
    let registered = running.client("user").query(REGISTER, input, None).await;
    assert_eq!(
        registered.data()["register"]["user"]["email"],
        "ada@example.com"
    );
    assert!(running.stop("-TERM").await);
    assert!(
        !dir.path().join("user.db").exists(),
        "PostgreSQL mode must not write SQLite files"
    );
    for name in ["user", "vessel", "consignment", "log"] {
        let url = shippy_kit::db::with_database_name(
            &base.url,
            &format!("{}_{name}", db_name(&base.url)),
        )
        .unwrap();
        let conn = shippy_kit::db::connect(&url)
            .await
            .expect("per-subgraph database exists");
        conn.close().await.unwrap();
        testing::drop_postgres_database_blocking(&url);
    }
}

fn db_name(url: &str) -> String {
    shippy_kit::db::split_postgres_url(url).unwrap().1
}

#[tokio::test]
async fn bad_configuration_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>| async move {
        let out = shippy().args(&args).output().await.unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let missing = dir.path().join("missing.toml").display().to_string();
    let (code, err) = run(vec![
        "--config".into(),
        missing,
        "schema".into(),
        "export".into(),
    ])
    .await;
    assert_eq!(code, Some(2));
    assert!(err.contains("does not exist"), "{err}");

    let unknown = dir.path().join("shippy.toml");
    std::fs::write(&unknown, "[server]\nrequest_timout = \"5s\"\n").unwrap();
    let (code, err) = run(vec![
        "--config".into(),
        unknown.display().to_string(),
        "up".into(),
    ])
    .await;
    assert_eq!(code, Some(2));
    assert!(err.contains("request_timout"), "{err}");

    let (code, err) = run(vec!["--request-timeout".into(), "soon".into(), "up".into()]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("request_timeout"), "{err}");

    let (code, err) = run(vec!["subgraph".into(), "nope".into()]).await;
    assert_eq!(code, Some(2));
    assert!(
        ["user", "vessel", "consignment", "log"]
            .iter()
            .all(|name| err.contains(name)),
        "lists the subgraphs: {err}"
    );

    // A busy port: nothing starts, the error names the port.
    // The router takes port - 1 first; other tests share this machine, so pick a busy port whose
    // predecessor was free a moment ago (else the error could name a port someone else holds).
    // `_busy` (not `_`) keeps the port taken until the end of the test.
    let (_busy, port) = loop {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port - 1)).is_ok() {
            break (busy, port);
        }
    };
    let data = dir.path().join("data").display().to_string();
    let (code, err) = run(vec![
        "up".into(),
        "--port-base".into(),
        (port - 1).to_string(),
        "--data-dir".into(),
        data,
    ])
    .await;
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");

    let (code, err) = run(vec!["up".into(), "--port-base".into(), "65534".into()]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("65535"), "{err}");
}

#[tokio::test]
async fn help_documents_every_setting() {
    let out = shippy().arg("--help").output().await.unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "up",
        "subgraph",
        "migrate",
        "schema",
        "DATABASE_URL",
        "REDIS_URL",
        "SHIPPY_STREAM_PREFIX",
        "SHIPPY_CONSUMER_NAME",
        "SHIPPY_JWT_SECRET",
        "--data-dir",
        "--port-base",
        "--host",
        "--config",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
