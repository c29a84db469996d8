//! Whole-system tests of the `shippy` binary: `shippy up` serves the flow a person follows (register, log in,
//! create and find a vessel), keeps data across restarts, stops cleanly on SIGTERM; `shippy subgraph` and
//! `shippy migrate` work on PostgreSQL; bad configuration is refused with a clear message.

use std::{collections::HashMap, path::Path, process::Stdio, time::Duration};

use serde_json::json;
use shippy_kit::testing::{self, Backend, GraphQLClient, TestDb};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const SECRET: &str = "whole-system-test-secret-0123456789abcdef";

fn shippy() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shippy"));
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "SHIPPY_CONFIG",
        "SHIPPY_PORT_BASE",
        "SHIPPY_HOST",
        "SHIPPY_DATA_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("SHIPPY_JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

/// A running `shippy` process and the URLs it printed, by service name.
struct Running {
    child: Child,
    urls: HashMap<String, String>,
}

impl Running {
    /// Starts `shippy <args>` and waits until it has printed its URLs and each answers `/health`.
    async fn start(mut cmd: Command, until: &str) -> Self {
        testing::init();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("shippy starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut urls = HashMap::new();
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("stdout readable") {
                if let Some((name, url)) = line.split_once(" http://") {
                    urls.insert(name.trim().to_owned(), format!("http://{url}"));
                }
                if line.starts_with(until) {
                    return;
                }
            }
            panic!("shippy exited before printing {until:?}");
        })
        .await
        .expect("shippy printed its URLs in time");
        // Keep reading so the pipe never fills up and blocks the process.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let http = reqwest::Client::new();
        for url in urls.values() {
            let health = url.replace("/graphql", "/health");
            let mut healthy = false;
            for _ in 0..200 {
                if http
                    .get(&health)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    healthy = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(healthy, "{health} never answered");
        }
        Self { child, urls }
    }

    fn client(&self, service: &str) -> GraphQLClient {
        GraphQLClient::new(
            self.urls
                .get(service)
                .unwrap_or_else(|| panic!("no {service} URL"))
                .clone(),
        )
    }

    /// Sends `signal` and waits for the process to exit; returns whether it exited successfully.
    async fn stop(mut self, signal: &str) -> bool {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits in time");
        exit.expect("wait").success()
    }
}

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
    "query($c: Int!, $w: Float!) { findAvailableVessel(capacity: $c, maxWeight: $w) { id name } }";

#[tokio::test]
async fn up_serves_the_whole_flow_keeps_data_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let shippy = Running::start(up(&data), "shippy is up").await;
    assert!(
        ["router", "user", "vessel"]
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

    let input = json!({ "input": { "name": "Ever Given", "capacity": 500, "maxWeight": 20000.0 } });
    let created = vessels.query(CREATE, input, Some(&token)).await;
    let vessel = &created.data()["createVessel"];
    assert_eq!(vessel["owner"]["id"], user_id.as_str());
    let vessel_id = vessel["id"].as_str().unwrap().to_owned();

    let found = vessels
        .query(FIND, json!({ "c": 100, "w": 1000.0 }), None)
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
    assert!(data.join("user.db").exists() && data.join("vessel.db").exists());

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

    let mut cmd = shippy();
    cmd.args(["subgraph", "vessel", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &db.url);
    let running = Running::start(cmd, "vessel").await;
    let token = shippy_kit::auth::TokenIssuer::from_config(&shippy_kit::config::AuthConfig {
        secret: Some(shippy_kit::config::Secret::new(SECRET)),
        ..Default::default()
    })
    .unwrap()
    .issue(&uuid_like(), "o@example.com", vec![])
    .unwrap()
    .token;
    let input = json!({ "input": { "name": "Maersk", "capacity": 10, "maxWeight": 10.0 } });
    let created = running
        .client("vessel")
        .query(CREATE, input, Some(&token))
        .await;
    assert_eq!(created.data()["createVessel"]["name"], "Maersk");
    assert!(running.stop("-TERM").await);
}

fn uuid_like() -> String {
    // Any UUID: the vessel subgraph takes the owner id from the token.
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
    for name in ["user", "vessel"] {
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
        err.contains("user") && err.contains("vessel"),
        "lists the subgraphs: {err}"
    );

    // A busy port: nothing starts, the error names the port.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
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
        "SHIPPY_JWT_SECRET",
        "--data-dir",
        "--port-base",
        "--host",
        "--config",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
