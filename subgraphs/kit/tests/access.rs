//! Router-only subgraphs: every GraphQL route of the kit's server refuses requests without a router
//! credential (signature or shared secret) with 401, accepts valid ones, and stays open for probes;
//! `open` lets anyone in; a subgraph with no credential configured does not start.

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shippy_kit::{
    CancellationToken,
    access::{AccessError, Gate, SHARED_SECRET_HEADER, SIGNATURE_HEADER},
    auth::JwtVerifier,
    config::{AccessConfig, Secret, ServerConfig},
    server::{self, HttpContext},
    testing::{self, GraphQLClient, RouterCredential, TestServer},
};
use shippy_security::signing::{RequestSigner, unix_now};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceExt;

struct Query;

#[Object]
impl Query {
    async fn ping(&self) -> &str {
        "pong"
    }
}

const QUERY: &str = r#"{"query":"{ ping }"}"#;
const NEXT_SECRET: &str = "the-next-shared-secret-0123456789abcdef";

fn app(access: &AccessConfig) -> Router {
    testing::init();
    let server = ServerConfig::default();
    let schema = shippy_kit::graphql::configure(
        Schema::build(Query, EmptyMutation, EmptySubscription),
        &server,
    )
    .finish();
    server::app(
        schema,
        HttpContext {
            verifier: Arc::new(JwtVerifier::from_config(&testing::auth_config()).unwrap()),
            gate: Gate::from_config("user", access).unwrap(),
            checks: vec![],
            server,
            shutdown: CancellationToken::new(),
        },
    )
}

/// Sends `request` and returns the status and the JSON body (`null` if it is not JSON).
async fn send(app: Router, request: Request<Body>) -> (StatusCode, Value) {
    let resp = app.oneshot(request).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post() -> axum::http::request::Builder {
    Request::post("/graphql").header(header::CONTENT_TYPE, "application/json")
}

/// A POST of `body` signed with `key` for `audience` at `at`.
fn signed(key: &str, audience: &str, at: u64, body: &str) -> Request<Body> {
    let signature = RequestSigner::new(key.as_bytes()).unwrap().sign_at(
        at,
        audience,
        &Method::POST,
        "/graphql",
        body.as_bytes(),
    );
    post()
        .header(SIGNATURE_HEADER, signature)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn assert_refused(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("only answers the router"), "{message}");
    assert!(body.get("data").is_none(), "{body}");
}

#[tokio::test]
async fn requests_without_a_router_credential_get_401_on_every_graphql_route() {
    let app = app(&testing::access_config());
    let (status, body) = send(app.clone(), post().body(Body::from(QUERY)).unwrap()).await;
    assert_refused(status, &body);
    // GraphiQL (a GET without upgrade) and a GET query alike.
    let (status, body) = send(
        app.clone(),
        Request::get("/graphql").body(Body::empty()).unwrap(),
    )
    .await;
    assert_refused(status, &body);
    let (status, body) = send(
        app.clone(),
        Request::get("/graphql?query=%7Bping%7D")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_refused(status, &body);
    // Probes and scrapes stay open.
    for path in ["/health", "/ready"] {
        let (status, _) = send(app.clone(), Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_router_signature_for_this_subgraph_is_accepted_and_nothing_else() {
    let app = app(&testing::access_config());
    let key = testing::TEST_ROUTER_KEY;
    let (status, body) = send(app.clone(), signed(key, "user", unix_now(), QUERY)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["ping"], "pong");

    // Made for another subgraph.
    let (status, body) = send(app.clone(), signed(key, "vessel", unix_now(), QUERY)).await;
    assert_refused(status, &body);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("invalid")
    );
    // Too old (a replay after the window), and from the future.
    let (status, body) = send(app.clone(), signed(key, "user", unix_now() - 61, QUERY)).await;
    assert_refused(status, &body);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("60s accepted"),
        "{body}"
    );
    let (status, body) = send(app.clone(), signed(key, "user", unix_now() + 120, QUERY)).await;
    assert_refused(status, &body);
    // Another key.
    let other = "some-other-router-key-0123456789abcdef";
    let (status, body) = send(app.clone(), signed(other, "user", unix_now(), QUERY)).await;
    assert_refused(status, &body);
    // A signed request whose body was swapped for another operation.
    let mut tampered = signed(key, "user", unix_now(), QUERY);
    *tampered.body_mut() = Body::from(r#"{"query":"{ __schema { types { name } } }"}"#);
    let (status, body) = send(app.clone(), tampered).await;
    assert_refused(status, &body);
    // Garbage in the header.
    let (status, body) = send(
        app,
        post()
            .header(SIGNATURE_HEADER, "t=now,v1=zz")
            .body(Body::from(QUERY))
            .unwrap(),
    )
    .await;
    assert_refused(status, &body);
}

#[tokio::test]
async fn each_of_two_shared_secrets_is_accepted() {
    let access = AccessConfig {
        shared_secret_previous: Some(Secret::new(NEXT_SECRET)),
        ..testing::access_config()
    };
    let app = app(&access);
    for secret in [testing::TEST_SUBGRAPH_SECRET, NEXT_SECRET] {
        let request = post()
            .header(SHARED_SECRET_HEADER, secret)
            .body(Body::from(QUERY))
            .unwrap();
        let (status, body) = send(app.clone(), request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["ping"], "pong");
    }
    let request = post()
        .header(
            SHARED_SECRET_HEADER,
            "a-guess-at-the-secret-0123456789abcdef",
        )
        .body(Body::from(QUERY))
        .unwrap();
    let (status, body) = send(app, request).await;
    assert_refused(status, &body);
}

#[tokio::test]
async fn an_open_subgraph_answers_anyone() {
    let access = AccessConfig {
        open: true,
        ..AccessConfig::default()
    };
    let (status, body) = send(app(&access), post().body(Body::from(QUERY)).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["ping"], "pong");
}

#[test]
fn a_subgraph_without_any_credential_does_not_start() {
    let err = Gate::from_config("user", &AccessConfig::default()).unwrap_err();
    assert!(matches!(err, AccessError::NoCredential { .. }), "{err}");
    let message = err.to_string();
    for hint in [
        "SHIPPY_ROUTER_SIGNING_KEY",
        "SHIPPY_SUBGRAPH_SECRET",
        "SHIPPY_SUBGRAPH_OPEN",
    ] {
        assert!(message.contains(hint), "{message}");
    }
    let weak = AccessConfig {
        router_key: Some(Secret::new("short")),
        ..AccessConfig::default()
    };
    assert!(matches!(
        Gate::from_config("user", &weak),
        Err(AccessError::Key { .. })
    ));
}

#[tokio::test]
async fn websocket_upgrades_need_a_router_credential_and_test_clients_present_one() {
    let access = testing::access_config();
    let server = TestServer::spawn(move |listener, shutdown| {
        server::serve(listener, app(&access), shutdown)
    })
    .await;

    let mut request = format!("ws://{}/graphql", server.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("an unsigned upgrade was not refused with 401: {other:?}"),
    }
    // The test WebSocket client presents the shared secret: accepted.
    let (_ws, ack) = testing::WsClient::connect(&server.url("/graphql"), None).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");

    // The test HTTP client: shared secret by default, a signature when asked, nothing when asked.
    let client = GraphQLClient::new(server.url("/graphql"));
    assert_eq!(
        client.query("{ ping }", json!({}), None).await.data()["ping"],
        "pong"
    );
    let signed = client
        .clone()
        .with_credential(RouterCredential::Signed("user".into()));
    assert_eq!(
        signed.query("{ ping }", json!({}), None).await.data()["ping"],
        "pong"
    );
    let wrong = client
        .clone()
        .with_credential(RouterCredential::Signed("log".into()));
    assert_eq!(wrong.query("{ ping }", json!({}), None).await.status, 401);
    let bare = client.with_credential(RouterCredential::None);
    let resp = bare.query("{ ping }", json!({}), None).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.code(), Some("UNAUTHENTICATED"));
}
