//! Test support shared by every subgraph's integration tests (feature `testing`): a fresh database per test
//! on SQLite or PostgreSQL, servers on `127.0.0.1:0`, and a small GraphQL client.
//!
//! PostgreSQL tests create `shippy_t_<uuid>` through `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and drop it when the [`TestDb`] is dropped, even after a panic.
//! Redis tests share `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) with every other test, so each
//! takes a [`RedisNamespace`]: a unique key prefix whose keys are deleted when it is dropped. A [`TcpProxy`]
//! in front of Redis lets a test cut the connection and bring it back.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    config::{AuthConfig, ConsumerConfig, EventsConfig, RelayConfig, Secret, ServerConfig},
    db,
    events::{EventBus, InProcessBus},
    server::SubgraphConfig,
    shutdown::CancellationToken,
    supervisor::TaskError,
};

/// The HS256 secret test tokens are signed with.
pub const TEST_SECRET: &str = "shippy-test-secret-0123456789abcdef";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh PostgreSQL database on `TEST_DATABASE_URL`'s server.
    Postgres,
}

/// `TEST_DATABASE_URL`, or the local default.
pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `TEST_REDIS_URL`, or the local default.
pub fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A database that exists for one test.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    /// Keeps the SQLite directory alive; removed on drop.
    _dir: Option<tempfile::TempDir>,
    /// For PostgreSQL: (server URL to connect for the drop, database name).
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// Creates an empty database (no migrations: the subgraph applies its own at start).
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("test.db");
                Self {
                    url: db::sqlite_url(&path),
                    backend,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            Backend::Postgres => {
                let base = test_database_url();
                let name = format!("shippy_t_{}", uuid::Uuid::new_v4().simple());
                let url = db::with_database_name(&base, &name)
                    .expect("TEST_DATABASE_URL must name a database");
                db::ensure_database(&url).await.unwrap_or_else(|err| {
                    panic!(
                        "cannot create test database on {}: {err}",
                        db::redact(&base)
                    )
                });
                let (server, _) = db::split_postgres_url(&url).expect("postgres url");
                Self {
                    url,
                    backend,
                    _dir: None,
                    postgres: Some((server, name)),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        drop_postgres_database_blocking(&format!("{server}/{name}"));
    }
}

/// Drops a PostgreSQL database (closing its connections), from sync code such as `Drop`, even inside a
/// runtime: the work runs on a thread with its own runtime. Failures are printed, not raised.
pub fn drop_postgres_database_blocking(url: &str) {
    let url = url.to_owned();
    let dropper = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            use sea_orm::ConnectionTrait;
            let (server, name) =
                db::split_postgres_url(&url).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
            let admin = sea_orm::Database::connect(format!("{server}/postgres")).await?;
            let sql = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                db::quote_ident(&name)
            );
            admin.execute_unprepared(&sql).await?;
            admin.close().await
        })
    });
    match dropper.join() {
        Ok(Ok(())) => {}
        Ok(Err(err)) => eprintln!("warning: could not drop test database: {err}"),
        Err(_) => eprintln!("warning: test database drop panicked"),
    }
}

/// Auth settings tests use: a fixed secret and no clock leeway (so expiry is exact).
pub fn auth_config() -> AuthConfig {
    AuthConfig {
        secret: Some(Secret::new(TEST_SECRET)),
        leeway: Duration::ZERO,
        ..AuthConfig::default()
    }
}

/// A subgraph configuration for tests: the given database, test auth, a quick relay.
pub fn subgraph_config(database_url: &str) -> SubgraphConfig {
    SubgraphConfig {
        database_url: database_url.to_owned(),
        redis_url: None,
        auth: auth_config(),
        server: ServerConfig::default(),
        relay: RelayConfig {
            poll_interval: Duration::from_millis(50),
            retry_initial: Duration::from_millis(20),
            retry_max: Duration::from_millis(500),
            ..RelayConfig::default()
        },
        events: events_config("shippy-test:"),
        revocations: None,
    }
}

/// Event settings tests use: keys under `prefix`, consumers that read, retry and take over quickly.
pub fn events_config(prefix: &str) -> EventsConfig {
    EventsConfig {
        stream_prefix: prefix.to_owned(),
        command_timeout: Duration::from_secs(2),
        consumer: ConsumerConfig {
            block: Duration::from_millis(200),
            claim_idle: Duration::from_secs(1),
            retry_initial: Duration::from_millis(20),
            retry_max: Duration::from_millis(500),
            ..ConsumerConfig::default()
        },
        ..EventsConfig::default()
    }
}

/// A key prefix of its own on the test Redis; every key under it is deleted on drop.
pub struct RedisNamespace {
    /// `TEST_REDIS_URL`.
    pub url: String,
    /// `shippy-t-<uuid>:`.
    pub prefix: String,
}

impl RedisNamespace {
    /// A fresh prefix.
    pub fn new() -> Self {
        Self {
            url: test_redis_url(),
            prefix: format!("shippy-t-{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    /// [`events_config`] under this prefix.
    pub fn events(&self) -> EventsConfig {
        events_config(&self.prefix)
    }

    /// A Redis bus on the test Redis under this prefix.
    pub fn bus(&self) -> Arc<dyn EventBus> {
        Arc::new(crate::events::RedisBus::open(&self.url, self.events()).expect("Redis URL"))
    }

    /// A plain connection to the test Redis, for looking at keys directly.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("Redis URL")
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|err| panic!("cannot reach the test Redis at {}: {err}", self.url))
    }
}

impl Default for RedisNamespace {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = format!("{}*", self.prefix);
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut conn = redis::Client::open(url.as_str())?
                    .get_multiplexed_async_connection()
                    .await?;
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await?;
                    if !keys.is_empty() {
                        redis::cmd("DEL")
                            .arg(&keys)
                            .query_async::<()>(&mut conn)
                            .await?;
                    }
                    if next == 0 {
                        return Ok::<_, redis::RedisError>(());
                    }
                    cursor = next;
                }
            })
        });
        match cleaner.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("warning: could not delete test Redis keys: {err}"),
            Err(_) => eprintln!("warning: deleting test Redis keys panicked"),
        }
    }
}

/// A TCP proxy on `127.0.0.1:0` to another address, which a test can take down (open connections are cut,
/// new ones closed at once) and bring back, on the same port.
pub struct TcpProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `true` while traffic passes. Every connection task watches it.
    up: tokio::sync::watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// A proxy to `target`, up.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (up, _) = tokio::sync::watch::channel(true);
        let watch = up.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut state = watch.subscribe();
                if !*state.borrow_and_update() {
                    continue; // dropped: closed at once
                }
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up, accept }
    }

    /// A proxy to the test Redis.
    pub async fn to_test_redis() -> Self {
        let url = test_redis_url();
        let host_port = url
            .trim_start_matches("redis://")
            .split(['/', '?'])
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        let target = tokio::net::lookup_host(&host_port)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("cannot resolve the test Redis address {host_port}"));
        Self::start(target).await
    }

    /// `redis://<addr>`.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Lets traffic through (`true`) or cuts it (`false`).
    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.set_up(false);
        self.accept.abort();
    }
}

/// A fresh in-process bus.
pub fn bus() -> Arc<dyn EventBus> {
    Arc::new(InProcessBus::default())
}

/// Installs the crypto provider and logging once per test binary.
pub fn init() {
    crate::install_crypto_provider();
    crate::telemetry::init_for_tests();
}

/// A server running in the background on `127.0.0.1:0`. Dropping it shuts it down.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), TaskError>>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0`, starts `run(listener, shutdown)` and waits until `/health` answers.
    pub async fn spawn<F, Fut, E>(run: F) -> Self
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<TaskError>,
    {
        init();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let fut = run(listener, shutdown.clone());
        let handle = tokio::spawn(async move { fut.await.map_err(Into::into) });
        let server = Self {
            addr,
            shutdown,
            handle: Some(handle),
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(resp) = client.get(self.url("/health")).send().await
                && resp.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server on {} did not become healthy in 10s", self.addr);
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A GraphQL client for this server's `/graphql`.
    pub fn client(&self) -> GraphQLClient {
        GraphQLClient::new(self.url("/graphql"))
    }

    /// Requests shutdown and waits for the server's result.
    pub async fn stop(mut self) -> Result<(), TaskError> {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("running");
        handle.await.expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A GraphQL response as tests see it.
#[derive(Debug, Clone)]
pub struct GqlResponse {
    /// HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl GqlResponse {
    /// `data`, panicking with the body when there are errors (for the happy path).
    pub fn data(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {}",
            self.body
        );
        &self.body["data"]
    }

    /// `errors[0].extensions.code`, if any.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    /// `errors[0].message`, if any.
    pub fn message(&self) -> Option<&str> {
        self.body["errors"][0]["message"].as_str()
    }
}

/// Sends GraphQL over HTTP POST.
#[derive(Debug, Clone)]
pub struct GraphQLClient {
    http: reqwest::Client,
    url: String,
}

impl GraphQLClient {
    /// A client for `url`.
    pub fn new(url: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            url,
        }
    }

    /// Runs `query` with `variables`, as the bearer of `token` if given.
    pub async fn query(&self, query: &str, variables: Value, token: Option<&str>) -> GqlResponse {
        let mut req = self
            .http
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
        GqlResponse { status, body }
    }
}

/// A graphql-transport-ws client: connect with a token, subscribe, read what the server pushes.
pub struct WsClient {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClient {
    /// Connects to `url` (`http://.../graphql` or `ws://...`) and sends `connection_init` with the token,
    /// if any. Returns the server's first answer as well: `connection_ack`, or the close frame
    /// (`{"close": code, "reason": ...}`) when the token is refused.
    pub async fn connect(url: &str, token: Option<&str>) -> (Self, Value) {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;

        let url = url.replacen("http://", "ws://", 1);
        let mut request = url.into_client_request().expect("WebSocket URL");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket connects");
        let mut client = Self { socket };
        let payload = match token {
            Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        client
            .socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                json!({ "type": "connection_init", "payload": payload })
                    .to_string()
                    .into(),
            ))
            .await
            .expect("connection_init sent");
        let first = client
            .next(Duration::from_secs(10))
            .await
            .expect("an answer to connection_init");
        (client, first)
    }

    /// Starts subscription `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        use futures::SinkExt;
        let message = json!({
            "id": id,
            "type": "subscribe",
            "payload": { "query": query, "variables": variables },
        });
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                message.to_string().into(),
            ))
            .await
            .expect("subscribe sent");
    }

    /// The next message (pings answered and skipped), or `None` if nothing came within `wait` or the
    /// socket ended. A close frame is returned as `{"close": code, "reason": ...}`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??;
            match message {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON message");
                    if value["type"] == "ping" {
                        let _ = self
                            .socket
                            .send(Message::Text(json!({ "type": "pong" }).to_string().into()))
                            .await;
                        continue;
                    }
                    return Some(value);
                }
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

    /// The `payload` of the next `next` message of subscription `id`, skipping other messages; panics
    /// with what came instead if nothing does within `wait`.
    pub async fn next_payload(&mut self, id: &str, wait: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no message for subscription {id} within {wait:?}"));
            if message["id"] == id && message["type"] == "next" {
                return message["payload"].clone();
            }
            assert!(
                message["id"] != id || message["type"] != "complete",
                "subscription {id} completed: {message}"
            );
            assert!(
                message.get("close").is_none(),
                "socket closed while waiting for {id}: {message}"
            );
        }
    }
}

/// Generates, for each named `async fn(Backend)`, one `#[tokio::test]` on SQLite and one on PostgreSQL.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::testing::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::testing::Backend::Postgres).await
                }
            )*
        }
    };
}
