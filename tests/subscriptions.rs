//! Whole-system subscriptions: `shippy up`, and the npm `graphql-ws` and `graphql-sse` client
//! libraries (run by node, `tests/js/subscribe.mjs`) subscribed through the router. A consignment
//! shipped through the router is seen going PENDING -> ASSIGNED with its vessel's name from the
//! vessel subgraph and the owner's name from the user subgraph; a bad token and someone else's
//! consignment are refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value as Json, json};
use support::{Running, shippy};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const UPDATES: &str =
    "subscription { consignmentUpdated { id status vessel { name owner { name } } } }";
const ONE: &str = "subscription($id: ID!) { consignmentUpdated(id: $id) { id status } }";
const SHIP: &str =
    "mutation($input: CreateConsignmentInput!) { createConsignment(input: $input) { id status } }";

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Installs the client libraries from the committed lockfile once per checkout.
fn npm_ci() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if *done || js_dir().join("node_modules/graphql-ws").exists() {
        *done = true;
        return;
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(js_dir())
        .status()
        .expect("npm runs (Node.js 20+ and npm are needed)");
    assert!(status.success(), "npm ci in tests/js failed");
    *done = true;
}

/// A node client printing one JSON object a line.
struct Node {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Node {
    fn start(mode: &str, url: &str, token: &str, query: &str, variables: Json) -> Node {
        npm_ci();
        let mut child = Command::new("node")
            .arg(js_dir().join("subscribe.mjs"))
            .args([mode, url, token, query, &variables.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Node {
            _child: child,
            lines,
        }
    }

    /// The next line, or `None` if none came within `wait`; panics if the client exited.
    async fn line_within(&mut self, wait: Duration) -> Option<Json> {
        match tokio::time::timeout(wait, self.lines.next_line()).await {
            Err(_) => None,
            Ok(line) => {
                let line = line.expect("stdout readable").expect("the client exited");
                Some(serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            }
        }
    }

    async fn line(&mut self) -> Json {
        self.line_within(Duration::from_secs(60))
            .await
            .expect("the client printed nothing in time")
    }

    /// Reads `next` results until one has `consignment` in `status`; returns the statuses seen
    /// for it, in order, and that last result.
    async fn until_status(&mut self, consignment: &str, status: &str) -> (Vec<String>, Json) {
        let mut seen = Vec::new();
        loop {
            let line = self.line().await;
            let update = &line["next"]["data"]["consignmentUpdated"];
            assert!(line.get("next").is_some(), "unexpected {line}");
            if update["id"] == consignment {
                seen.push(update["status"].as_str().unwrap().to_string());
                if update["status"] == status {
                    return (seen, line["next"].clone());
                }
            }
        }
    }
}

#[tokio::test]
async fn graphql_ws_and_graphql_sse_clients_follow_a_consignment_through_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = shippy();
    cmd.args(["--port-base", "0", "--data-dir"])
        .arg(dir.path().join("data"));
    let shippy = Running::start(cmd, "shippy is up").await;
    let router = shippy.client("router");
    let router_url = shippy.url("router");

    let mut tokens = Vec::new();
    for (name, email) in [("Ada", "ada@example.com"), ("Bob", "bob@example.com")] {
        let registered = router
            .query(
                "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                json!({ "input": { "name": name, "company": "Acme", "email": email, "password": "correct horse" } }),
                None,
            )
            .await;
        tokens.push(
            registered.data()["register"]["token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (ada, bob) = (&tokens[0], &tokens[1]);
    let vessel = router
        .query(
            "mutation { createVessel(input: {name: \"Ever Given\", capacity: 500, maxWeight: 20000}) { id } }",
            json!({}),
            Some(ada),
        )
        .await;
    assert!(vessel.body.get("errors").is_none(), "{:?}", vessel.body);

    let mut ws = Node::start("ws", &router_url, ada, UPDATES, json!({}));
    assert_eq!(ws.line().await, json!({ "connected": true }));
    let mut sse = Node::start("sse", &router_url, ada, UPDATES, json!({}));

    let ship = |description: &'static str| {
        let router = &router;
        async move {
            let input = json!({ "input": { "description": description, "weight": 100,
                "containers": [{ "customerId": "c1", "origin": "Rotterdam" }] } });
            let shipped = router.query(SHIP, input, Some(ada)).await;
            assert_eq!(
                shipped.data()["createConsignment"]["status"],
                "PENDING",
                "{:?}",
                shipped.body
            );
            shipped.data()["createConsignment"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    // The clients subscribe in the background: ship probes until both have heard of one.
    for client in [&mut ws, &mut sse] {
        let mut heard = false;
        for _ in 0..60 {
            ship("probe").await;
            if client.line_within(Duration::from_secs(1)).await.is_some() {
                heard = true;
                break;
            }
        }
        assert!(heard, "a client never received an event");
    }

    let tea = ship("Tea").await;
    for client in [&mut ws, &mut sse] {
        let (statuses, last) = client.until_status(&tea, "ASSIGNED").await;
        assert_eq!(statuses, ["PENDING", "ASSIGNED"]);
        assert_eq!(
            last,
            json!({ "data": { "consignmentUpdated": { "id": tea, "status": "ASSIGNED",
                "vessel": { "name": "Ever Given", "owner": { "name": "Ada" } } } } })
        );
    }

    // Bob may not follow Ada's consignment: the consignment subgraph refuses, and the refusal
    // reaches his client through the router.
    let mut intruder = Node::start("ws", &router_url, bob, ONE, json!({ "id": tea }));
    assert_eq!(intruder.line().await, json!({ "connected": true }));
    let refusal = intruder.line().await;
    let errors = refusal["next"]["errors"]
        .as_array()
        .or_else(|| refusal["error"].as_array())
        .unwrap_or_else(|| panic!("expected a refusal, got {refusal}"));
    assert_eq!(errors[0]["extensions"]["code"], "FORBIDDEN", "{refusal}");
    assert!(refusal["next"]["data"]["consignmentUpdated"].is_null());

    // A forged token never gets a connection.
    let mut forged = Node::start("ws", &router_url, "e30.e30.e30", UPDATES, json!({}));
    let closed = forged.line().await;
    assert_eq!(closed["closed"], 4403, "{closed}");
}
