//! What the edge tests share: the secured supergraph, tokens, requests with headers, and
//! stand-alone subgraph replicas that can be stopped and restarted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value as Json, json};

use crate::harness::{Reply, TestEnv};

use crate::mock::MockServer;

pub const SECRET: &str = "edge-tests-secret-edge-tests-secret!";

/// The benchmark supergraph with the security and rate-limit features linked and used:
/// `me` needs a token, `users` the `admin` scope, `User.birthday` `birthday:read` or `admin`,
/// `User.id` (non-null) a token, and `topProducts` is limited to 3 per hour by `@rateLimit`.
pub fn secured(supergraph: String) -> String {
    let mut sdl = supergraph.replacen(
        "@link(url: \"https://specs.apollo.dev/join/v0.3\", for: EXECUTION)",
        "@link(url: \"https://specs.apollo.dev/join/v0.3\", for: EXECUTION)\n  \
         @link(url: \"https://specs.apollo.dev/authenticated/v0.1\", for: SECURITY)\n  \
         @link(url: \"https://specs.apollo.dev/requiresScopes/v0.1\", for: SECURITY)\n  \
         @link(url: \"https://shippy.dev/rate-limit/v0.1\", import: [\"@rateLimit\"])",
        1,
    );
    for (from, to) in [
        (
            "  me: User @join__field(graph: ACCOUNTS)",
            "  me: User @join__field(graph: ACCOUNTS) @authenticated",
        ),
        (
            "  users: [User] @join__field(graph: ACCOUNTS)",
            "  users: [User] @join__field(graph: ACCOUNTS) @requiresScopes(scopes: [[\"admin\"]])",
        ),
        (
            "  birthday: Int @join__field(graph: ACCOUNTS)",
            "  birthday: Int @join__field(graph: ACCOUNTS) @requiresScopes(scopes: [[\"birthday:read\"], [\"admin\"]])",
        ),
        (
            "  topProducts(first: Int = 5): [Product] @join__field(graph: PRODUCTS)",
            "  topProducts(first: Int = 5): [Product] @join__field(graph: PRODUCTS) @rateLimit(limit: 3, duration: \"1h\")",
        ),
    ] {
        assert!(sdl.contains(from), "the fixture changed: {from}");
        sdl = sdl.replacen(from, to, 1);
    }
    // `User.id` is non-null: refusing it shows null propagation.
    let user = sdl.find("type User\n").expect("type User");
    let id = user + sdl[user..].find("  id: ID!").expect("User.id");
    sdl.replace_range(id..id + "  id: ID!".len(), "  id: ID! @authenticated");
    sdl.push_str(
        "\ndirective @authenticated on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM\n\
         directive @requiresScopes(scopes: [[requiresScopes__Scope!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM\n\
         scalar requiresScopes__Scope\n\
         directive @rateLimit(limit: Int!, duration: String!, by: String) on FIELD_DEFINITION\n",
    );
    sdl
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims our tokens carry, for `sub` with `scopes`.
pub fn claims(sub: &str, scopes: &[&str]) -> Json {
    json!({"sub": sub, "iss": "shippy", "aud": "shippy", "exp": now() + 600, "scopes": scopes})
}

pub fn hs256(claims: &Json) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn key_file(name: &str) -> String {
    format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn rs256(claims: &Json, private_key: &str, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    let pem = std::fs::read(key_file(private_key)).unwrap();
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

/// Verifies HS256 tokens signed with [`SECRET`] for issuer and audience `shippy`.
pub fn with_jwt(config: &mut shippy_router::RouterConfig) {
    config.auth.jwt.secret = Some(shippy_router::config::Secret::new(SECRET));
    config.auth.jwt.issuers = vec!["shippy".into()];
    config.auth.jwt.audiences = vec!["shippy".into()];
}

/// POSTs `query` (and `variables`) as JSON with extra headers.
pub async fn post(env: &TestEnv, query: &str, variables: Json, headers: &[(&str, &str)]) -> Reply {
    let mut request = env
        .client
        .post(format!("{}/graphql", env.url))
        .header("content-type", "application/json")
        .header("accept", "application/graphql-response+json")
        .body(json!({"query": query, "variables": variables}).to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    env.send(request).await
}

pub async fn post_as(env: &TestEnv, query: &str, token: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    post(env, query, Json::Null, &[("authorization", &bearer)]).await
}

/// A stand-alone subgraph replica answering every request with `answer(body)`, counting queries.
/// Stopping it closes the listener and its keep-alive connections.
pub struct Replica {
    pub addr: SocketAddr,
    pub url: String,
    /// Requests other than health checks.
    pub queries: Arc<AtomicUsize>,
    /// Added before answering a query (not a health check), in milliseconds.
    pub delay_ms: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Dropping it fails the test if the replica panicked.
    server: MockServer,
}

pub type Answer = Arc<dyn Fn(&str) -> (u16, String) + Send + Sync>;

impl Replica {
    pub async fn start(addr: SocketAddr, answer: Answer) -> Replica {
        let queries = Arc::new(AtomicUsize::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (query_counter, delay) = (Arc::clone(&queries), Arc::clone(&delay_ms));
        let app = axum::Router::new().route(
            "/graphql",
            axum::routing::post(move |body: String| {
                let answer = Arc::clone(&answer);
                let query_counter = Arc::clone(&query_counter);
                let delay = Arc::clone(&delay);
                async move {
                    if !body.contains("__ShippyHealthCheck") {
                        query_counter.fetch_add(1, Ordering::SeqCst);
                        let ms = delay.load(Ordering::SeqCst);
                        if ms > 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        }
                    }
                    let (status, body) = answer(&body);
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = MockServer::spawn(listener, app, async move {
            let _ = stopped.await;
        });
        Replica {
            addr,
            url: format!("http://{addr}/graphql"),
            queries,
            delay_ms,
            stop: Some(stop),
            server,
        }
    }

    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes idle connections; returns once the server is gone.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.join().await;
    }
}

/// Answers `{ me { id } }` queries and health checks like the accounts subgraph would.
pub fn accounts_answer() -> Answer {
    Arc::new(|body: &str| {
        if body.contains("__ShippyHealthCheck") {
            (200, r#"{"data":{"__typename":"Query"}}"#.to_string())
        } else {
            (200, r#"{"data":{"me":{"id":"1"}}}"#.to_string())
        }
    })
}

/// Polls `check` until it holds or `seconds` pass (for background tasks on real time).
pub async fn eventually(seconds: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}
