//! What the subscription tests share: a scripted `events` subgraph speaking graphql-transport-ws
//! (the test pushes events, completes, refuses or kills it), an HTTP `names` subgraph resolving
//! `Tick.label`, a router over both, and a small graphql-transport-ws client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use futures::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value as Json, json};
use shippy_router::{Router, RouterConfig};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::mock::{MockServer, Panics};

pub const SECRET: &str = "subscription-tests-secret-0123456789";
/// Generous: the machine is shared and loaded.
pub const WAIT: Duration = Duration::from_secs(20);

/// A token for `sub`; the same text every time (the events subgraph compares it).
pub fn token(sub: &str) -> String {
    // 2100-01-01: fixed, so that a token does not depend on the second it was made in.
    token_until(sub, 4_102_444_800)
}

/// A token for `sub` that expires at `exp` (Unix seconds).
pub fn token_until(sub: &str, exp: u64) -> String {
    let claims = json!({"sub": sub, "iss": "shippy", "aud": "shippy", "exp": exp});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// What the scripted events subgraph does and saw.
pub struct Events {
    /// Each value is sent as a `next` payload to every open subscription.
    pub feed: broadcast::Sender<Command>,
    /// `connection_init` payloads received.
    pub inits: Mutex<Vec<Json>>,
    /// `subscribe` payloads received.
    pub subscribes: Mutex<Vec<Json>>,
    /// Subscriptions open right now.
    pub open: AtomicUsize,
    /// Only these `Authorization`s may subscribe; others get an `error` message.
    pub allowed: Mutex<Vec<String>>,
    /// Set to drop every connection at once, as a dying process does.
    pub killed: tokio::sync::watch::Sender<bool>,
    /// Set to stop reading and answering on every connection (a hung process).
    pub frozen: tokio::sync::watch::Sender<bool>,
    /// Whether `connection_init` is acknowledged.
    pub ack: std::sync::atomic::AtomicBool,
    /// Panics of the subgraph's handlers and WebSocket connections.
    pub panics: Panics,
}

#[derive(Clone, Debug)]
pub enum Command {
    Next(Json),
    Complete,
}

impl Events {
    /// Lets `token` subscribe too.
    pub fn allow(&self, token: &str) {
        self.allowed.lock().unwrap().push(format!("Bearer {token}"));
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Sends a tick (`id` `t<n>`) to every open subscription.
    pub fn tick(&self, n: i64) {
        let _ = self.feed.send(Command::Next(
            json!({"data": {"ticks": {"__typename": "Tick", "id": format!("t{n}"), "n": n}}}),
        ));
    }
}

async fn events_socket(
    State(events): State<Arc<Events>>,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    ws.protocols(["graphql-transport-ws"])
        .on_upgrade(move |socket| async move {
            let panics = events.panics.clone();
            panics.catch(serve_events(events, socket)).await;
        })
}

async fn serve_events(events: Arc<Events>, mut socket: WebSocket) {
    let mut feed = events.feed.subscribe();
    let mut killed = events.killed.subscribe();
    let mut frozen = events.frozen.subscribe();
    let mut subscribed: Option<String> = None;
    let mut allowed = false;
    loop {
        tokio::select! {
            _ = killed.changed() => return,
            _ = frozen.changed() => {
                // Hold the socket without reading it: no pongs, no frames.
                let _ = killed.changed().await;
                return;
            }
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(AxMessage::Text(text))) => text,
                    // axum answers pings itself.
                    Some(Ok(AxMessage::Ping(_) | AxMessage::Pong(_))) => continue,
                    _ => break,
                };
                let message: Json = serde_json::from_str(text.as_str()).unwrap();
                match message["type"].as_str().unwrap() {
                    "connection_init" => {
                        let presented = message["payload"]["Authorization"].as_str();
                        allowed = presented
                            .is_some_and(|p| events.allowed.lock().unwrap().iter().any(|a| a == p));
                        events.inits.lock().unwrap().push(message["payload"].clone());
                        if events.ack.load(Ordering::SeqCst) {
                            let _ = socket.send(AxMessage::text(r#"{"type":"connection_ack"}"#)).await;
                        }
                    }
                    "subscribe" => {
                        let id = message["id"].as_str().unwrap().to_string();
                        events.subscribes.lock().unwrap().push(message["payload"].clone());
                        if !allowed {
                            let error = json!({"type": "error", "id": id, "payload": [
                                {"message": "not yours", "extensions": {"code": "FORBIDDEN"}}]});
                            let _ = socket.send(AxMessage::text(error.to_string())).await;
                            continue;
                        }
                        events.open.fetch_add(1, Ordering::SeqCst);
                        subscribed = Some(id);
                    }
                    "complete" if subscribed.take().is_some() => {
                        events.open.fetch_sub(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
            command = feed.recv() => {
                let Some(id) = subscribed.clone() else { continue };
                let frame = match command {
                    Ok(Command::Next(payload)) => json!({"type": "next", "id": id, "payload": payload}),
                    Ok(Command::Complete) => {
                        subscribed = None;
                        events.open.fetch_sub(1, Ordering::SeqCst);
                        json!({"type": "complete", "id": id})
                    }
                    Err(_) => continue,
                };
                if socket.send(AxMessage::text(frame.to_string())).await.is_err() {
                    break;
                }
            }
        }
    }
    if subscribed.is_some() {
        events.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the names subgraph saw and how it answers.
#[derive(Default)]
pub struct Names {
    /// `authorization` headers received.
    pub seen: Mutex<Vec<String>>,
    /// Characters appended to every label (to make events large).
    pub padding: AtomicUsize,
}

/// Answers `_entities` for `Tick` with `label: "tick <id>"` (plus padding), recording the
/// `authorization` headers.
async fn names(
    State(names): State<Arc<Names>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> impl IntoResponse {
    let body: Json = serde_json::from_str(&body).unwrap();
    names.seen.lock().unwrap().push(
        headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default(),
    );
    let entities: Vec<Json> = body["variables"]["representations"]
        .as_array()
        .map(|reps| {
            reps.iter()
                .map(|r| {
                    let padding = ".".repeat(names.padding.load(Ordering::SeqCst));
                    json!({"__typename": "Tick", "label": format!("tick {}{padding}", r["id"].as_str().unwrap())})
                })
                .collect()
        })
        .unwrap_or_default();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({"data": {"_entities": entities}}).to_string(),
    )
}

pub struct Env {
    pub router: Router,
    /// The supergraph the router loaded (subgraph URLs pointed at the mocks).
    pub supergraph: String,
    pub url: String,
    pub ws_url: String,
    pub events: Arc<Events>,
    pub names: Arc<Names>,
    /// The events subgraph; dropping it fails the test if it panicked.
    events_server: MockServer,
    /// The names subgraph; dropping it fails the test if it panicked.
    _names_server: MockServer,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn start(configure: impl FnOnce(&mut RouterConfig)) -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let events = Arc::new(Events {
        feed: broadcast::channel(256).0,
        inits: Mutex::new(Vec::new()),
        subscribes: Mutex::new(Vec::new()),
        open: AtomicUsize::new(0),
        allowed: Mutex::new(vec![format!("Bearer {}", token("alice"))]),
        killed: tokio::sync::watch::channel(false).0,
        frozen: tokio::sync::watch::channel(false).0,
        ack: std::sync::atomic::AtomicBool::new(true),
        panics: Panics::default(),
    });
    let events_app = axum::Router::new()
        .route("/graphql", axum::routing::get(events_socket))
        .with_state(Arc::clone(&events));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let events_url = format!("http://{}/graphql", listener.local_addr().unwrap());
    let events_server = MockServer::spawn_with(
        events.panics.clone(),
        listener,
        events_app,
        std::future::pending(),
    );
    let names_state = Arc::new(Names::default());
    let names_app = axum::Router::new()
        .route("/graphql", axum::routing::post(names))
        .with_state(Arc::clone(&names_state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let names_url = format!("http://{}/graphql", listener.local_addr().unwrap());
    let names_server = MockServer::spawn(listener, names_app, std::future::pending());

    let supergraph = std::fs::read_to_string(format!(
        "{}/tests/fixtures/subscriptions.supergraph.graphql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("http://127.0.0.1:9/events", &events_url)
    .replace("http://127.0.0.1:9/names", &names_url);
    let mut config = RouterConfig::default();
    config.auth.jwt.secret = Some(shippy_router::config::Secret::new(SECRET));
    config.auth.jwt.issuers = vec!["shippy".into()];
    config.auth.jwt.audiences = vec!["shippy".into()];
    configure(&mut config);
    let router = Router::from_supergraph_sdl(&supergraph, config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = router.clone();
    let served = tokio::spawn(async move {
        serving
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await
    });
    Env {
        router,
        supergraph,
        url: format!("http://{addr}/graphql"),
        ws_url: format!("ws://{addr}/graphql"),
        events,
        names: names_state,
        events_server,
        _names_server: names_server,
        shutdown: Some(tx),
        served: Some(served),
    }
}

impl Env {
    /// Kills the events subgraph: its listener and every connection it has.
    pub fn kill_events(&mut self) {
        self.events_server.abort();
        self.events.killed.send_replace(true);
    }

    /// Starts the router's shutdown.
    pub fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits until `condition` holds (polling), or panics after [`WAIT`].
    pub async fn until(&self, what: &str, condition: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !condition() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws (or legacy graphql-ws) client connection.
pub struct Client {
    pub socket: Socket,
}

/// How a connection ended, or what came instead.
#[derive(Debug, PartialEq)]
pub enum Got {
    Message(Json),
    Closed(u16, String),
}

/// A graphql-transport-ws upgrade request for `url`, for tests that add headers or expect a refusal.
pub fn upgrade_request(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    upgrade_request_for(url, "graphql-transport-ws")
}

fn upgrade_request_for(
    url: &str,
    protocol: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    request
}

/// The HTTP status of an upgrade the router refuses (panics if it accepts it).
pub async fn refused_upgrade_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(upgrade_request(url)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("expected the upgrade to be refused, got {other:?}"),
    }
}

impl Client {
    pub async fn connect(url: &str, protocol: &str) -> Client {
        let request = upgrade_request_for(url, protocol);
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            protocol,
            "the router picked another protocol"
        );
        Client { socket }
    }

    /// Connects and initializes with `Authorization: Bearer <token>`, expecting the ack.
    pub async fn init(url: &str, token: &str) -> Client {
        let mut client = Client::connect(url, "graphql-transport-ws").await;
        client
            .send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}))
            .await;
        assert_eq!(client.message().await["type"], "connection_ack");
        client
    }

    pub async fn send(&mut self, message: Json) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Json) {
        self.send(json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": variables}}))
            .await;
    }

    /// The next protocol message or the close, skipping keep-alive pings.
    pub async fn next(&mut self) -> Got {
        self.next_raw(true).await
    }

    /// The next protocol message or the close; keep-alive pings too unless `skip_pings`.
    pub async fn next_raw(&mut self, skip_pings: bool) -> Got {
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("nothing from the router in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    let json: Json = serde_json::from_str(text.as_str()).unwrap();
                    if skip_pings && (json["type"] == "ping" || json["type"] == "ka") {
                        continue;
                    }
                    return Got::Message(json);
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Got::Closed(code, reason);
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Got::Closed(1006, error.to_string()),
                None => return Got::Closed(1006, "ended".into()),
            }
        }
    }

    pub async fn message(&mut self) -> Json {
        match self.next().await {
            Got::Message(json) => json,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    pub async fn closed(&mut self) -> (u16, String) {
        match self.next().await {
            Got::Closed(code, reason) => (code, reason),
            other => panic!("expected the close, got {other:?}"),
        }
    }
}

pub const TICKS: &str = "subscription($from: Int!) { ticks(from: $from) { n label } }";

/// Reads an SSE response until `count` events (`event:` blocks, comments skipped) arrived.
pub async fn sse_events(response: &mut reqwest::Response, count: usize) -> Vec<(String, String)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .expect("no SSE data in time")
            .unwrap()
            .expect("the stream ended early");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_string());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            if let Some(event) = event {
                events.push((event, data));
            }
        }
    }
    events
}
