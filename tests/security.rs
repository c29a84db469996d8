//! Whole-system tests of secrets and router-only subgraphs (issue 14, points 1 and 2): a default
//! `shippy up` generates its JWT secret and router signing key into private files and refuses tokens
//! forged with the old built-in development secret; its subgraphs refuse every direct call without a
//! router credential (query, `login`, introspection, `_service`, WebSocket upgrade) while the router's
//! signed calls work; `shippy subgraph` and `shippy router` refuse to start without their credentials
//! and say how to set them.

mod support;

use std::{os::unix::fs::PermissionsExt, path::Path};

use serde_json::json;
use shippy_kit::{
    config::{AuthConfig, Secret},
    testing::{self, RouterCredential},
};
use shippy_user::tokens::TokenIssuer;
use support::{Running, shippy};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The secret every default install used to sign with (kit's former `DEV_SECRET`).
const OLD_DEV_SECRET: &str = "shippy-development-secret: anyone can forge tokens signed with this";

const REGISTER: &str =
    "mutation($input: RegisterInput!) { register(input: $input) { token user { id email } } }";

/// `shippy up` as installed: no JWT secret, no signing key, no shared secret configured.
fn default_up(data_dir: &Path) -> Command {
    let mut cmd = shippy();
    for var in [
        "SHIPPY_JWT_SECRET",
        "SHIPPY_ROUTER_SIGNING_KEY",
        "SHIPPY_ROUTER__SUBGRAPH_SIGNING__KEY",
        "SHIPPY_SUBGRAPH_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(["--port-base", "0", "--data-dir"]).arg(data_dir);
    cmd
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read_secret(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

#[tokio::test]
async fn default_up_generates_private_secrets_and_refuses_forged_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let shippy = Running::start(default_up(&data), "shippy is up").await;

    // Both secrets were generated: 32 random bytes as hex, readable by the owner only.
    let jwt_file = data.join("jwt-secret");
    let key_file = data.join("router-signing-key");
    for file in [&jwt_file, &key_file] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        let secret = read_secret(file);
        assert_eq!(secret.len(), 64, "{}", file.display());
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_ne!(read_secret(&jwt_file), read_secret(&key_file));

    // An admin token minted with the old built-in secret opens nothing, through the router or not.
    let forged = TokenIssuer::from_config(&AuthConfig {
        secret: Some(Secret::new(OLD_DEV_SECRET)),
        ..AuthConfig::default()
    })
    .unwrap()
    .issue(
        "0191d9a4-1b2c-7d3e-8f40-123456789abc",
        "eve@example.com",
        vec!["admin".into()],
    )
    .unwrap()
    .token;
    let router = shippy.client("router");
    let users = router
        .query("{ users { id email } }", json!({}), Some(&forged))
        .await;
    assert_eq!(users.status, 401, "{}", users.body);
    assert_eq!(users.code(), Some("UNAUTHENTICATED"), "{}", users.body);
    assert!(users.body["data"].is_null(), "{}", users.body);

    // The router's own (signed) calls work: register, then a token from this install is accepted.
    let input = json!({ "input": { "name": "Ada", "email": "ada@example.com", "password": "correct horse" } });
    let registered = router.query(REGISTER, input, None).await;
    let token = registered.data()["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = router
        .query("{ me { email } }", json!({}), Some(&token))
        .await;
    assert_eq!(me.data()["me"]["email"], "ada@example.com");

    // Every subgraph refuses direct calls: a query, the login mutation, introspection, `_service`.
    let user = shippy
        .client("user")
        .with_credential(RouterCredential::None);
    for (query, variables) in [
        ("{ me { email } }", json!({})),
        (
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            json!({ "e": "ada@example.com", "p": "correct horse" }),
        ),
        ("{ __schema { queryType { name } } }", json!({})),
        ("{ _service { sdl } }", json!({})),
    ] {
        let resp = user.query(query, variables, Some(&token)).await;
        assert_eq!(resp.status, 401, "{query}: {}", resp.body);
        assert_eq!(resp.code(), Some("UNAUTHENTICATED"), "{query}");
        assert!(
            resp.message().unwrap().contains("only answers the router"),
            "{}",
            resp.body
        );
    }
    for name in ["vessel", "consignment", "log"] {
        let resp = shippy
            .client(name)
            .with_credential(RouterCredential::None)
            .query("{ _service { sdl } }", json!({}), None)
            .await;
        assert_eq!(resp.status, 401, "{name}: {}", resp.body);
    }
    // ...and direct WebSocket upgrades.
    let mut upgrade = shippy
        .url("log")
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .unwrap();
    upgrade.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(upgrade).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("a direct WebSocket upgrade was not refused: {other:?}"),
    }
    // A signature with some other key is no better; the probes stay open.
    let wrong_key = shippy
        .client("user")
        .with_credential(RouterCredential::Signed("user".into()));
    assert_eq!(
        wrong_key
            .query("{ me { email } }", json!({}), None)
            .await
            .status,
        401
    );
    for probe in ["/health", "/ready", "/metrics"] {
        let resp = reqwest::get(shippy.url("user").replace("/graphql", probe))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{probe}");
    }
    assert!(shippy.stop("-TERM").await);

    // A restart reuses the files: the token issued before still works.
    let before = (read_secret(&jwt_file), read_secret(&key_file));
    let shippy = Running::start(default_up(&data), "shippy is up").await;
    assert_eq!((read_secret(&jwt_file), read_secret(&key_file)), before);
    let me = shippy
        .client("router")
        .query("{ me { email } }", json!({}), Some(&token))
        .await;
    assert_eq!(me.data()["me"]["email"], "ada@example.com");
    assert!(shippy.stop("-TERM").await);

    // A secret file others can read is refused, not used or repaired.
    std::fs::set_permissions(&jwt_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = default_up(&data).output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("jwt-secret") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert_eq!(mode(&jwt_file), 0o644);
}

/// Runs `cmd` to its end and returns whether it succeeded and its stderr.
async fn fails_with(mut cmd: Command) -> String {
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("exits in time")
        .unwrap();
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn processes_refuse_to_start_without_their_credentials() {
    testing::init();
    let dir = tempfile::tempdir().unwrap();

    // A subgraph without a JWT secret.
    let mut cmd = shippy();
    cmd.env_remove("SHIPPY_JWT_SECRET")
        .args(["subgraph", "user", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path());
    let stderr = fails_with(cmd).await;
    assert!(stderr.contains("SHIPPY_JWT_SECRET"), "{stderr}");

    // A subgraph without any router credential.
    let mut cmd = shippy();
    cmd.env_remove("SHIPPY_ROUTER_SIGNING_KEY")
        .env_remove("SHIPPY_SUBGRAPH_SECRET")
        .args([
            "subgraph",
            "vessel",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path());
    let stderr = fails_with(cmd).await;
    for hint in [
        "SHIPPY_ROUTER_SIGNING_KEY",
        "SHIPPY_SUBGRAPH_SECRET",
        "SHIPPY_SUBGRAPH_OPEN",
    ] {
        assert!(stderr.contains(hint), "{stderr}");
    }

    // A router without a signing key, and one over Shippy's supergraph (it has @authenticated
    // fields) without a token key.
    let router = || {
        let supergraph = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/supergraph.graphql");
        let mut cmd = shippy();
        cmd.args([
            "router",
            "--listen",
            "127.0.0.1:0",
            "--supergraph",
            supergraph,
        ]);
        cmd
    };
    let mut cmd = router();
    cmd.env_remove("SHIPPY_ROUTER__SUBGRAPH_SIGNING__KEY")
        .env("SHIPPY_ROUTER__AUTH__JWT__SECRET", support::SECRET);
    let stderr = fails_with(cmd).await;
    assert!(
        stderr.contains("SHIPPY_ROUTER__SUBGRAPH_SIGNING__KEY"),
        "{stderr}"
    );
    let stderr = fails_with(router()).await;
    assert!(
        stderr.contains("SHIPPY_ROUTER__AUTH__JWT__SECRET"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_open_subgraph_serves_direct_calls() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = shippy();
    cmd.env_remove("SHIPPY_ROUTER_SIGNING_KEY")
        .env_remove("SHIPPY_SUBGRAPH_SECRET")
        .env("SHIPPY_SUBGRAPH_OPEN", "true")
        .args(["subgraph", "user", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path());
    let running = Running::start(cmd, "user").await;
    let resp = running
        .client("user")
        .with_credential(RouterCredential::None)
        .query("{ _service { sdl } }", json!({}), None)
        .await;
    assert!(
        resp.data()["_service"]["sdl"]
            .as_str()
            .unwrap()
            .contains("type User")
    );
    assert!(running.stop("-TERM").await);
}
