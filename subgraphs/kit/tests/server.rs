//! The HTTP layer every subgraph shares, tested on a small schema: routes, limits, timeouts, token handling,
//! readiness, and graphql-transport-ws subscriptions with auth and shutdown.

use std::{sync::Arc, time::Duration};

use async_graphql::{Context, EmptyMutation, Object, Result, Schema, Subscription};
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use futures::{SinkExt, Stream, StreamExt};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shippy_kit::{
    CancellationToken,
    access::{Gate, SHARED_SECRET_HEADER},
    auth::{self, JwtVerifier},
    config::ServerConfig,
    server::{self, HttpContext, ReadinessCheck},
    testing::{self, TestServer},
};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use tower::ServiceExt;

struct Query;

struct Node {
    depth: i32,
}

#[Object]
impl Node {
    async fn depth(&self) -> i32 {
        self.depth
    }
    async fn child(&self) -> Node {
        Node {
            depth: self.depth + 1,
        }
    }
}

#[Object]
impl Query {
    async fn whoami(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(auth::require(ctx)?.sub.clone())
    }
    async fn admin_only(&self, ctx: &Context<'_>) -> Result<bool> {
        auth::require_scope(ctx, auth::SCOPE_ADMIN)?;
        Ok(true)
    }
    async fn slow(&self) -> bool {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        true
    }
    async fn root(&self) -> Node {
        Node { depth: 0 }
    }
}

struct Subscription;

#[Subscription]
impl Subscription {
    /// The caller's id, then nothing more until the connection closes.
    async fn caller(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = String>> {
        let sub = auth::require(ctx)?.sub.clone();
        Ok(futures::stream::once(async move { sub }).chain(futures::stream::pending()))
    }
}

type TestSchema = Schema<Query, EmptyMutation, Subscription>;

struct Failing;

#[async_trait::async_trait]
impl ReadinessCheck for Failing {
    fn name(&self) -> &str {
        "broken"
    }
    async fn check(&self) -> Result<(), String> {
        Err("it is broken at 10.1.2.3".into())
    }
}

fn app_with(
    server: ServerConfig,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    shutdown: CancellationToken,
) -> Router {
    testing::init();
    let schema: TestSchema =
        shippy_kit::graphql::configure(Schema::build(Query, EmptyMutation, Subscription), &server)
            .finish();
    let verifier = Arc::new(JwtVerifier::from_config(&testing::auth_config()).unwrap());
    server::app(
        schema,
        HttpContext {
            verifier,
            gate: Gate::from_config("test", &testing::access_config()).unwrap(),
            checks,
            server,
            shutdown,
            token_leeway: Duration::ZERO,
        },
    )
}

fn app() -> Router {
    app_with(ServerConfig::default(), vec![], CancellationToken::new())
}

fn token(scopes: Vec<String>) -> String {
    testing::signed_token("user-1", scopes, chrono::Utc::now().timestamp())
}

async fn post(app: Router, body: Value, bearer: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(SHARED_SECRET_HEADER, testing::TEST_SUBGRAPH_SECRET);
    if let Some(token) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let resp = app
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn health_ready_and_graphiql() {
    let resp = app()
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let resp = app()
        .oneshot(
            Request::get("/graphql")
                .header(SHARED_SECRET_HEADER, testing::TEST_SUBGRAPH_SECRET)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&html)
            .to_lowercase()
            .contains("graphiql")
    );

    let resp = app()
        .oneshot(Request::get("/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let broken = app_with(
        ServerConfig::default(),
        vec![Arc::new(Failing)],
        CancellationToken::new(),
    );
    let resp = broken
        .oneshot(Request::get("/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("\"broken\":\"unavailable\""), "{body}");
    assert!(
        !body.contains("10.1.2.3"),
        "readiness leaked internals: {body}"
    );
}

#[tokio::test]
async fn ready_checks_a_redis_bus() {
    let ns = testing::RedisNamespace::new();
    let up = server::BusCheck(ns.bus());
    let app = app_with(
        ServerConfig::default(),
        vec![Arc::new(up)],
        CancellationToken::new(),
    );
    let resp = app
        .oneshot(Request::get("/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Nothing listens on port 1.
    let down = server::BusCheck(Arc::new(
        shippy_kit::events::RedisBus::open("redis://127.0.0.1:1", ns.events()).unwrap(),
    ));
    let app = app_with(
        ServerConfig::default(),
        vec![Arc::new(down)],
        CancellationToken::new(),
    );
    let resp = app
        .oneshot(Request::get("/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({ "events": "unavailable" })
    );
}

#[tokio::test]
async fn tokens_decide_the_caller() {
    let (status, body) = post(app(), json!({ "query": "{ whoami }" }), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&body), "UNAUTHENTICATED");

    let (_, body) = post(
        app(),
        json!({ "query": "{ whoami }" }),
        Some(&token(vec![])),
    )
    .await;
    assert_eq!(body["data"]["whoami"], "user-1");

    let (_, body) = post(
        app(),
        json!({ "query": "{ adminOnly }" }),
        Some(&token(vec![])),
    )
    .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let (_, body) = post(
        app(),
        json!({ "query": "{ adminOnly }" }),
        Some(&token(vec!["admin".into()])),
    )
    .await;
    assert_eq!(body["data"]["adminOnly"], true);
}

#[tokio::test]
async fn bad_tokens_get_401_with_a_reason() {
    let expired = testing::signed_token("user-1", vec![], chrono::Utc::now().timestamp() - 7200);
    let (status, body) = post(app(), json!({ "query": "{ whoami }" }), Some(&expired)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    // Claim `admin` by editing the payload: the signature no longer matches.
    let good = token(vec![]);
    let parts: Vec<&str> = good.split('.').collect();
    use base64_like::encode;
    let forged_payload = encode(
        &json!({
            "sub": "user-1", "email": "u@example.com", "scopes": ["admin"],
            "iat": 0, "exp": 4_000_000_000i64, "iss": "shippy", "aud": "shippy"
        })
        .to_string(),
    );
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let (status, body) = post(app(), json!({ "query": "{ adminOnly }" }), Some(&forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{body}"
    );

    let (status, body) = post(app(), json!({ "query": "{ whoami }" }), Some("garbage")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

/// Unpadded URL-safe base64, enough to forge a JWT payload in a test.
mod base64_like {
    pub fn encode(input: &str) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = input.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let req = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(SHARED_SECRET_HEADER, testing::TEST_SUBGRAPH_SECRET)
        .body(Body::from("{not json"))
        .unwrap();
    let resp = app().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(code(&body), "BAD_REQUEST");

    let (status, body) = post(app(), json!({ "query": "{ nope }" }), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nope"),
        "{body}"
    );
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");
    let (_, body) = post(app(), json!({ "query": "{ whoami " }), None).await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let server = ServerConfig {
        body_limit: 1024,
        ..ServerConfig::default()
    };
    let app = app_with(server, vec![], CancellationToken::new());
    let query = format!("{{ whoami # {} }}", "x".repeat(2048));
    // Without Content-Length the body is cut off while it is read...
    let (status, body) = post(app.clone(), json!({ "query": &query }), None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // ...with it, refused before reading.
    let body = json!({ "query": &query }).to_string();
    let req = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(SHARED_SECRET_HEADER, testing::TEST_SUBGRAPH_SECRET)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    assert_eq!(
        app.oneshot(req).await.unwrap().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test(start_paused = true)]
async fn slow_requests_get_408() {
    let server = ServerConfig {
        request_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let app = app_with(server, vec![], CancellationToken::new());
    let resp = app
        .oneshot(
            Request::post("/graphql")
                .header(header::CONTENT_TYPE, "application/json")
                .header(SHARED_SECRET_HEADER, testing::TEST_SUBGRAPH_SECRET)
                .body(Body::from(json!({ "query": "{ slow }" }).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
}

#[tokio::test]
async fn deep_queries_are_refused() {
    let server = ServerConfig {
        max_query_depth: 4,
        ..ServerConfig::default()
    };
    let app = app_with(server, vec![], CancellationToken::new());
    let (_, body) = post(
        app.clone(),
        json!({ "query": "{ root { child { depth } } }" }),
        None,
    )
    .await;
    assert_eq!(body["data"]["root"]["child"]["depth"], 1);
    let (_, body) = post(
        app,
        json!({ "query": "{ root { child { child { child { depth } } } } }" }),
        None,
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn complex_queries_are_refused() {
    let server = ServerConfig {
        max_query_complexity: 3,
        ..ServerConfig::default()
    };
    let app = app_with(server, vec![], CancellationToken::new());
    let (_, body) = post(app.clone(), json!({ "query": "{ root { depth } }" }), None).await;
    assert_eq!(body["data"]["root"]["depth"], 0);
    let wide = "{ a: root { depth } b: root { depth } c: root { depth } }";
    let (_, body) = post(app, json!({ "query": wide }), None).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{body}"
    );
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");
}

async fn ws_connect(
    server: &TestServer,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}/graphql", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    req.headers_mut().insert(
        SHARED_SECRET_HEADER,
        testing::TEST_SUBGRAPH_SECRET.parse().unwrap(),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket")
        .0
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
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

#[tokio::test]
async fn websocket_subscriptions_authenticate_and_close_on_shutdown() {
    let server = TestServer::spawn(|listener, shutdown| {
        let app = app_with(ServerConfig::default(), vec![], shutdown.clone());
        server::serve("test", listener, app, Default::default(), shutdown)
    })
    .await;

    // A valid token in connection_init: the subscription sees the caller.
    let mut ws = ws_connect(&server).await;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", token(vec![])) } });
    ws.send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "connection_ack");
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { caller }" } });
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let next = next_json(&mut ws).await.unwrap();
    assert_eq!(next["type"], "next");
    assert_eq!(next["payload"]["data"]["caller"], "user-1");

    // A bad token in connection_init: the connection is closed with the reason (async-graphql uses 1002).
    let mut bad = ws_connect(&server).await;
    let init =
        json!({ "type": "connection_init", "payload": { "Authorization": "Bearer forged" } });
    bad.send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    let closed = next_json(&mut bad).await.unwrap();
    assert_eq!(closed["close"], 1002, "{closed}");
    assert_eq!(closed["reason"], "the token is malformed");

    // No token: connected, but the protected subscription errors.
    let mut anon = ws_connect(&server).await;
    anon.send(Message::Text(
        json!({ "type": "connection_init" }).to_string().into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_json(&mut anon).await.unwrap()["type"],
        "connection_ack"
    );
    anon.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let reply = next_json(&mut anon).await.unwrap();
    assert_eq!(reply["type"], "next", "{reply}");
    assert_eq!(
        reply["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{reply}"
    );

    // Shutdown ends the open subscription's connection.
    server.stop().await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "WebSocket stayed open after shutdown");
}

#[tokio::test]
async fn a_failing_background_task_stops_the_subgraph() {
    testing::init();
    let db = testing::TestDb::create(testing::Backend::Sqlite).await;
    let runtime = server::Runtime::start::<shippy_migrations::user::Migrator>(
        "user",
        testing::subgraph_config(&db.url),
        testing::bus(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let app = app_with(ServerConfig::default(), vec![], shutdown.clone());
    let consumer = server::BackgroundTask {
        name: "consumer".into(),
        run: Box::pin(async { Err("lost the stream".into()) }),
    };
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        runtime.serve("test", listener, app, vec![consumer], shutdown.clone()),
    )
    .await
    .expect("the subgraph stops");
    let err = result.unwrap_err();
    assert_eq!(err.to_string(), "test consumer failed: lost the stream");
    assert!(
        shutdown.is_cancelled(),
        "the server and relay were told to stop"
    );
}

#[tokio::test]
#[should_panic(expected = "failed: no database for you")]
async fn a_test_server_that_fails_says_why_instead_of_timing_out() {
    TestServer::spawn(|_listener, _shutdown| async {
        Err::<(), _>(std::io::Error::other("no database for you"))
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "the server panicked")]
async fn a_test_server_that_panics_passes_the_panic_on() {
    TestServer::spawn(|_listener, _shutdown| async {
        panic!("the server panicked");
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    })
    .await;
}
