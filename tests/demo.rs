//! `shippy demo`: the whole flow through the router of a real `shippy up`, a clear error when the
//! router is unreachable, and a bounded wait when the consignment is never assigned.

mod support;

use std::{process::Stdio, time::Duration};

use axum::{Json, routing::post};
use serde_json::{Value, json};
use support::{Running, shippy};

/// Runs `shippy demo <args>`; its exit success, stdout and stderr.
async fn demo(args: &[&str]) -> (bool, String, String) {
    let mut cmd = shippy();
    cmd.arg("demo")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("the demo finishes in time")
        .expect("the demo runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn demo_ships_a_consignment_through_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let shippy = Running::up(&dir.path().join("data")).await;
    // The base URL works as well as the endpoint.
    let base = shippy.router_base();
    let (ok, stdout, stderr) = demo(&["--router", &base]).await;
    assert!(ok, "{stdout}\n{stderr}");
    for line in [
        "1. registered Demo Shipper",
        "2. logged in",
        "3. created vessel Boaty McBoatface",
        "4. shipped consignment",
        "5. consignment ASSIGNED:",
        "\"name\": \"Demo Shipper\"",
        "\"origin\": \"Manchester, United Kingdom\"",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    // Again: each run registers its own user.
    let (ok, stdout, stderr) = demo(&["--router", &shippy.url("router")]).await;
    assert!(ok, "{stdout}\n{stderr}");
    // Every operation went as a trusted document of the router's first-party manifest.
    let by_manifest = shippy
        .metric(
            "router",
            "shippy_router_persisted_documents_total",
            "outcome=\"manifest\"",
        )
        .await;
    assert!(
        by_manifest >= 10.0,
        "only {by_manifest} operations were sent by id"
    );
    assert!(shippy.stop("-TERM").await);
}

#[tokio::test]
async fn demo_runs_against_a_router_that_only_takes_trusted_documents() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = shippy();
    cmd.env("SHIPPY_ROUTER__PERSISTED_DOCUMENTS__ONLY", "true")
        .args(["--port-base", "0", "--data-dir"])
        .arg(dir.path().join("data"));
    let shippy = Running::start(cmd, "shippy is up").await;
    let (ok, stdout, stderr) = demo(&["--router", &shippy.url("router")]).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("5. consignment ASSIGNED:"), "{stdout}");
    // Anything else is refused.
    let refused: Value = reqwest::Client::new()
        .post(shippy.url("router"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_IN_LIST",
        "{refused}"
    );
    assert!(shippy.stop("-TERM").await);
}

#[tokio::test]
async fn demo_says_when_the_router_is_unreachable() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    drop(listener);
    let (ok, _, stderr) = demo(&["--router", &url]).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "cannot reach the router at {url} (is `shippy up` running?)"
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn demo_gives_up_on_a_consignment_that_stays_pending() {
    // A stand-in router that accepts everything and never assigns the consignment.
    let app = axum::Router::new().route(
        "/graphql",
        post(|Json(request): Json<Value>| async move {
            // Like a router without Shippy's manifest: ids are unknown, the demo sends the text.
            if request.get("documentId").is_some() {
                return Json(json!({ "errors": [{ "message": "PersistedQueryNotFound",
                    "extensions": { "code": "PERSISTED_QUERY_NOT_FOUND" } }] }));
            }
            let query = request["query"].as_str().unwrap_or_default();
            let data = if query.contains("register(") {
                json!({ "register": { "user": { "id": "u1", "name": "Demo Shipper", "email": null } } })
            } else if query.contains("login(") {
                json!({ "login": { "token": "t" } })
            } else if query.contains("createVessel(") {
                json!({ "createVessel": { "id": "v1", "name": "Boaty", "capacity": 500, "maxWeight": 1 } })
            } else if query.contains("createConsignment(") {
                json!({ "createConsignment": { "id": "c1", "status": "PENDING" } })
            } else {
                json!({ "consignment": { "id": "c1", "status": "PENDING" } })
            };
            Json(json!({ "data": data }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (ok, stdout, stderr) = demo(&["--router", &url, "--timeout", "1s"]).await;
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("4. shipped consignment c1: PENDING"),
        "{stdout}"
    );
    assert!(
        stderr.contains("the consignment was still PENDING after 1s"),
        "{stderr}"
    );
}

#[tokio::test]
async fn demo_reports_the_api_error_of_the_step_that_failed() {
    let app = axum::Router::new().route(
        "/graphql",
        post(|| async {
            Json(json!({ "data": null, "errors": [{ "message": "Too many requests; retry in 60s", "extensions": { "code": "RATE_LIMITED", "retryAfter": 60 } }] }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (ok, _, stderr) = demo(&["--router", &url]).await;
    assert!(!ok);
    assert!(
        stderr.contains("register failed: Too many requests; retry in 60s (RATE_LIMITED)"),
        "{stderr}"
    );
}
