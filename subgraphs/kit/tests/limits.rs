//! The subgraph server's limits, on real sockets: connection caps and timeouts
//! (`server.connections`) and the GraphQL WebSocket limits it shares with the router
//! (`server.websocket`: `connection_init` in time, subscriptions per connection, message size,
//! token expiry).

use std::{sync::Arc, time::Duration};

use async_graphql::{EmptyMutation, Object, Schema, Subscription};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use shippy_kit::{
    CancellationToken,
    auth::JwtVerifier,
    config::ServerConfig,
    server::{self, HttpContext},
    testing::{self, TestServer, WsClient},
};
use shippy_security::{
    connections::{
        ConnectionLimits,
        testing::{idle_connections, stalled_body},
    },
    signing::SHARED_SECRET_HEADER,
    websocket::WebSocketLimits,
};
use tokio::{
    io::AsyncReadExt,
    time::{Instant, timeout},
};

struct Query;

#[Object]
impl Query {
    async fn ping(&self) -> bool {
        true
    }
}

struct Subscription;

#[Subscription]
impl Subscription {
    /// One event, then nothing more until the subscription ends.
    async fn once(&self) -> impl Stream<Item = bool> {
        futures::stream::once(async { true }).chain(futures::stream::pending())
    }
    /// Nothing, until the subscription ends.
    async fn quiet(&self) -> impl Stream<Item = bool> {
        futures::stream::pending()
    }
}

async fn spawn(server: ServerConfig) -> TestServer {
    TestServer::spawn(move |listener, shutdown: CancellationToken| {
        let schema = shippy_kit::graphql::configure(
            Schema::build(Query, EmptyMutation, Subscription),
            &server,
        )
        .finish();
        let verifier = Arc::new(JwtVerifier::from_config(&testing::auth_config()).unwrap());
        let limits = server.connections.clone();
        let app = server::app(
            schema,
            HttpContext {
                verifier,
                gate: shippy_kit::access::Gate::from_config("test", &testing::access_config())
                    .unwrap(),
                checks: vec![],
                server,
                shutdown: shutdown.clone(),
                token_leeway: Duration::ZERO,
            },
        );
        server::serve("test", listener, app, limits, shutdown)
    })
    .await
}

fn with_websocket(limits: WebSocketLimits) -> ServerConfig {
    ServerConfig {
        websocket: limits,
        ..ServerConfig::default()
    }
}

/// Long enough for any message the tests expect.
const WAIT: Duration = Duration::from_secs(10);

/// A WebSocket that has sent nothing yet.
async fn ws_connect(server: &TestServer) -> WsClient {
    WsClient::open(&server.url("/graphql")).await
}

/// A WebSocket whose `connection_init` (with `token`, if any) was acknowledged.
async fn ws_initialised(server: &TestServer, token: Option<&str>) -> WsClient {
    let (ws, first) = WsClient::connect(&server.url("/graphql"), token).await;
    assert_eq!(first["type"], "connection_ack", "{first}");
    ws
}

fn subscribe(id: &str, query: &str) -> Value {
    json!({ "id": id, "type": "subscribe", "payload": { "query": query } })
}

#[tokio::test]
async fn a_websocket_without_connection_init_is_closed_with_4408() {
    let server = spawn(with_websocket(WebSocketLimits {
        connection_init_timeout: Duration::from_millis(300),
        ..WebSocketLimits::default()
    }))
    .await;
    let mut idle = ws_connect(&server).await;
    let started = Instant::now();
    let closed = idle.next(WAIT).await.unwrap();
    assert_eq!(closed["close"], 4408, "{closed}");
    assert_eq!(closed["reason"], "Connection initialisation timeout");
    assert!(started.elapsed() >= Duration::from_millis(250));

    // One that initialises in time stays open past the timeout.
    let mut ok = ws_initialised(&server, None).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    ok.send(subscribe("1", "subscription { quiet }")).await;
    ok.send(json!({ "type": "ping" })).await;
    assert_eq!(ok.next(WAIT).await.unwrap()["type"], "pong");
}

#[tokio::test]
async fn subscriptions_past_the_per_connection_cap_are_refused_and_the_connection_stays() {
    let server = spawn(with_websocket(WebSocketLimits {
        max_subscriptions_per_connection: 2,
        ..WebSocketLimits::default()
    }))
    .await;
    let mut ws = ws_initialised(&server, None).await;
    ws.send(subscribe("1", "subscription { quiet }")).await;
    ws.send(subscribe("2", "subscription { quiet }")).await;
    ws.send(subscribe("3", "subscription { quiet }")).await;
    let refused = ws.next(WAIT).await.unwrap();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "3");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "SUBSCRIPTION_LIMIT_EXCEEDED"
    );
    assert_eq!(refused["payload"][0]["extensions"]["limit"], 2);

    // Ending one makes room for another on the same connection.
    ws.send(json!({ "id": "1", "type": "complete" })).await;
    let complete = ws.next(WAIT).await.unwrap();
    assert_eq!(complete, json!({ "type": "complete", "id": "1" }));
    ws.send(subscribe("4", "subscription { quiet }")).await;
    ws.send(subscribe("5", "subscription { quiet }")).await;
    let refused = ws.next(WAIT).await.unwrap();
    assert_eq!(refused["id"], "5", "{refused}");
    assert_eq!(refused["type"], "error");
}

#[tokio::test]
async fn an_oversized_message_closes_the_websocket_with_1009() {
    let server = spawn(with_websocket(WebSocketLimits {
        max_message_size: 1024,
        ..WebSocketLimits::default()
    }))
    .await;
    let mut ws = ws_initialised(&server, None).await;
    let padding = "x".repeat(2048);
    ws.send(subscribe(
        "1",
        &format!("subscription {{ quiet }} # {padding}"),
    ))
    .await;
    let closed = ws.next(WAIT).await.unwrap();
    assert_eq!(closed["close"], 1009, "{closed}");
    assert_eq!(closed["reason"], "Message too big");
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires() {
    let server = spawn(ServerConfig::default()).await;
    let ttl = testing::auth_config().token_ttl.as_secs() as i64;
    // Valid for two more seconds.
    let issued_at = chrono::Utc::now().timestamp() - ttl + 2;
    let token = testing::signed_token("user-1", vec![], issued_at);
    let mut ws = ws_initialised(&server, Some(&token)).await;
    ws.send(subscribe("1", "subscription { once }")).await;
    let next = ws.next(WAIT).await.unwrap();
    assert_eq!(next["payload"]["data"]["once"], true, "{next}");
    let closed = ws.next(WAIT).await.unwrap();
    assert_eq!(closed["close"], 4403, "{closed}");
    assert_eq!(closed["reason"], "Forbidden: the token has expired");

    // An anonymous connection has no deadline: still open after the token's would have passed.
    let mut anon = ws_initialised(&server, None).await;
    anon.send(json!({ "type": "ping" })).await;
    assert_eq!(anon.next(WAIT).await.unwrap()["type"], "pong");
}

/// Many idle or slow connections: past the cap they are refused at once, a client that was already
/// connected keeps being answered, and the idle ones are closed by the header timeout, after which
/// new clients get in.
#[tokio::test]
async fn idle_connections_cannot_starve_the_subgraph() {
    let server = spawn(ServerConfig {
        connections: ConnectionLimits {
            max_connections: 16,
            max_connections_per_ip: 16,
            header_read_timeout: Duration::from_millis(1500),
            ..ConnectionLimits::default()
        },
        ..ServerConfig::default()
    })
    .await;
    // One client connected before the flood (keep-alive, reused by reqwest).
    let client = reqwest::Client::new();
    let query = || {
        client
            .post(server.url("/graphql"))
            .header(SHARED_SECRET_HEADER, testing::TEST_SUBGRAPH_SECRET)
            .json(&json!({ "query": "{ ping }" }))
            .send()
    };
    assert_eq!(query().await.unwrap().status(), 200);

    let held = idle_connections(server.addr, 60).await;
    assert_eq!(
        held.len(),
        15,
        "the cap of 16 holds the client and 15 idle sockets"
    );

    let started = Instant::now();
    let answer: Value = query().await.unwrap().json().await.unwrap();
    assert_eq!(answer["data"]["ping"], true);
    assert!(started.elapsed() < Duration::from_secs(1));

    for mut stream in held {
        let mut rest = Vec::new();
        let read = timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(
            read.is_ok(),
            "an idle connection outlived the header timeout"
        );
    }
    let fresh: Value = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header(SHARED_SECRET_HEADER, testing::TEST_SUBGRAPH_SECRET)
        .json(&json!({ "query": "{ ping }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fresh["data"]["ping"], true);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let server = spawn(ServerConfig {
        connections: ConnectionLimits {
            body_read_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let response = stalled_body(server.addr, "/graphql").await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("\"REQUEST_TIMEOUT\""), "{response}");
}
