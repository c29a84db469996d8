//! The subgraph server's limits, on real sockets: connection caps and timeouts
//! (`server.connections`) and the GraphQL WebSocket limits it shares with the router
//! (`server.websocket`: `connection_init` in time, subscriptions per connection, message size,
//! token expiry).

use std::{sync::Arc, time::Duration};

use async_graphql::{Context, EmptyMutation, Object, Result, Schema, Subscription};
use futures::{SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use shippy_kit::{
    CancellationToken,
    auth::{self, JwtVerifier, TokenIssuer},
    config::ServerConfig,
    server::{self, HttpContext},
    testing::{self, TestServer},
};
use shippy_security::{connections::ConnectionLimits, websocket::WebSocketLimits};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, timeout},
};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

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
    /// The caller's id, then nothing more until the subscription ends.
    async fn caller(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = String>> {
        let sub = auth::require(ctx)?.sub.clone();
        Ok(futures::stream::once(async move { sub }).chain(futures::stream::pending()))
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

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(server: &TestServer) -> Socket {
    let mut req = format!("ws://{}/graphql", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket")
        .0
}

async fn send(ws: &mut Socket, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next text message as JSON, or `{"close": code, "reason": ...}` for a close frame; `None` when
/// the connection ended without one.
async fn next_json(ws: &mut Socket) -> Option<Value> {
    loop {
        match timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("message in time")?
        {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Close(frame)) => {
                return Some(json!({
                    "close": frame.as_ref().map(|f| u16::from(f.code)),
                    "reason": frame.map(|f| f.reason.to_string()),
                }));
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

async fn init(ws: &mut Socket, token: Option<&str>) {
    let payload = match token {
        Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
        None => json!({}),
    };
    send(ws, json!({ "type": "connection_init", "payload": payload })).await;
    assert_eq!(next_json(ws).await.unwrap()["type"], "connection_ack");
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
    let closed = next_json(&mut idle).await.unwrap();
    assert_eq!(closed["close"], 4408, "{closed}");
    assert_eq!(closed["reason"], "Connection initialisation timeout");
    assert!(started.elapsed() >= Duration::from_millis(250));

    // One that initialises in time stays open past the timeout.
    let mut ok = ws_connect(&server).await;
    init(&mut ok, None).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    send(&mut ok, subscribe("1", "subscription { quiet }")).await;
    send(&mut ok, json!({ "type": "ping" })).await;
    assert_eq!(next_json(&mut ok).await.unwrap()["type"], "pong");
}

#[tokio::test]
async fn subscriptions_past_the_per_connection_cap_are_refused_and_the_connection_stays() {
    let server = spawn(with_websocket(WebSocketLimits {
        max_subscriptions_per_connection: 2,
        ..WebSocketLimits::default()
    }))
    .await;
    let mut ws = ws_connect(&server).await;
    init(&mut ws, None).await;
    send(&mut ws, subscribe("1", "subscription { quiet }")).await;
    send(&mut ws, subscribe("2", "subscription { quiet }")).await;
    send(&mut ws, subscribe("3", "subscription { quiet }")).await;
    let refused = next_json(&mut ws).await.unwrap();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "3");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "SUBSCRIPTION_LIMIT_EXCEEDED"
    );
    assert_eq!(refused["payload"][0]["extensions"]["limit"], 2);

    // Ending one makes room for another on the same connection.
    send(&mut ws, json!({ "id": "1", "type": "complete" })).await;
    let complete = next_json(&mut ws).await.unwrap();
    assert_eq!(complete, json!({ "type": "complete", "id": "1" }));
    send(&mut ws, subscribe("4", "subscription { quiet }")).await;
    send(&mut ws, subscribe("5", "subscription { quiet }")).await;
    let refused = next_json(&mut ws).await.unwrap();
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
    let mut ws = ws_connect(&server).await;
    init(&mut ws, None).await;
    let padding = "x".repeat(2048);
    send(
        &mut ws,
        subscribe("1", &format!("subscription {{ quiet }} # {padding}")),
    )
    .await;
    let closed = next_json(&mut ws).await.unwrap();
    assert_eq!(closed["close"], 1009, "{closed}");
    assert_eq!(closed["reason"], "Message too big");
    assert!(
        timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await
        .is_ok(),
        "the connection stayed open"
    );
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires() {
    let server = spawn(ServerConfig::default()).await;
    let issuer = TokenIssuer::from_config(&testing::auth_config()).unwrap();
    let ttl = testing::auth_config().token_ttl.as_secs() as i64;
    // Valid for two more seconds.
    let issued_at = chrono::Utc::now().timestamp() - ttl + 2;
    let token = issuer
        .issue_at("user-1", "u@example.com", vec![], issued_at)
        .unwrap()
        .token;
    let mut ws = ws_connect(&server).await;
    init(&mut ws, Some(&token)).await;
    send(&mut ws, subscribe("1", "subscription { caller }")).await;
    let next = next_json(&mut ws).await.unwrap();
    assert_eq!(next["payload"]["data"]["caller"], "user-1", "{next}");
    let closed = next_json(&mut ws).await.unwrap();
    assert_eq!(closed["close"], 4403, "{closed}");
    assert_eq!(closed["reason"], "Forbidden: the token has expired");

    // An anonymous connection has no deadline: still open after the token's would have passed.
    let mut anon = ws_connect(&server).await;
    init(&mut anon, None).await;
    send(&mut anon, json!({ "type": "ping" })).await;
    assert_eq!(next_json(&mut anon).await.unwrap()["type"], "pong");
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
            .json(&json!({ "query": "{ ping }" }))
            .send()
    };
    assert_eq!(query().await.unwrap().status(), 200);

    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let outcomes = futures::future::join_all(idle.into_iter().map(|mut stream| async move {
        let mut first = [0u8; 64];
        match timeout(Duration::from_millis(500), stream.read(&mut first)).await {
            Ok(_) => None,
            Err(_) => Some(stream),
        }
    }))
    .await;
    let held: Vec<TcpStream> = outcomes.into_iter().flatten().collect();
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
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"query\":",
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&response).contains("REQUEST_TIMEOUT") {
                break;
            }
        }
    })
    .await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("\"REQUEST_TIMEOUT\""), "{response}");
}
