//! Test environment builder: subgraphs on port 0, a router over them, and a client.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;
use shippy_router::{Router, RouterConfig};

use super::subgraphs::{Data, Knobs, Running, start_all};
use crate::mock::{Down, MockServer};

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The benchmark supergraph plus a `Mutation` type served by accounts (for mutation tests).
pub fn supergraph_with_mutation() -> String {
    fixture("bench.supergraph.graphql").replacen(
        "  query: Query\n",
        "  query: Query\n  mutation: Mutation\n",
        1,
    ) + "\ntype Mutation @join__type(graph: ACCOUNTS) {\n  updateName(id: ID!, name: String!): User @join__field(graph: ACCOUNTS)\n}\n"
}

/// Gives `subgraph` a circuit breaker that opens after two failed requests (of two) and stays
/// open for `sleep_window`, with no retries or deduplication to blur the count.
#[allow(dead_code)] // tests/edge.rs and tests/http_api/supergraph.rs use it; not every binary
pub fn breaker_after_two_failures(
    config: &mut RouterConfig,
    subgraph: &str,
    sleep_window: std::time::Duration,
) {
    use shippy_router::config::{CircuitBreakerConfig, RetryConfig, SubgraphOverride};
    config.subgraphs.insert(
        subgraph.into(),
        SubgraphOverride {
            circuit_breaker: Some(CircuitBreakerConfig {
                request_volume_threshold: 2,
                error_percent_threshold: 50,
                sleep_window,
                ..CircuitBreakerConfig::default()
            }),
            retry: Some(RetryConfig {
                enabled: false,
                ..RetryConfig::default()
            }),
            dedupe: Some(false),
            ..Default::default()
        },
    );
    config.http.dedupe = false;
}

pub struct TestEnv {
    pub router: Router,
    /// The supergraph the router loaded (subgraph URLs pointed at this environment's).
    #[allow(dead_code)] // tests/http_api/supergraph.rs reads it; tests/edge.rs does not
    pub supergraph: String,
    pub url: String,
    pub data: Arc<Data>,
    pub knobs: HashMap<&'static str, Arc<Knobs>>,
    pub client: reqwest::Client,
    /// Dropping it shuts the router down.
    _shutdown: tokio::sync::oneshot::Sender<()>,
    /// Canned subgraphs; dropping them fails the test if one panicked.
    _mocks: Vec<MockServer>,
    /// Subgraphs that are down, their ports held.
    _down: Vec<Down>,
    /// The four subgraphs; dropping them fails the test if one panicked.
    _subgraphs: Vec<Running>,
}

/// Answers a subgraph request body with a status and a body.
pub type Canned = Arc<dyn Fn(&str) -> (u16, String) + Send + Sync>;

pub struct Builder {
    config: RouterConfig,
    /// Edits the supergraph text before the router loads it (e.g. to add directives).
    supergraph: Option<Box<dyn FnOnce(String) -> String>>,
    /// Subgraph names whose URL points at nothing listening.
    down: Vec<&'static str>,
    /// Subgraphs replaced by a canned handler.
    canned: Vec<(&'static str, Canned)>,
    /// Extra response headers of the canned subgraphs, by subgraph.
    canned_headers: Vec<(&'static str, Vec<(&'static str, &'static str)>)>,
}

pub fn env() -> Builder {
    Builder {
        config: RouterConfig::default(),
        supergraph: None,
        down: Vec::new(),
        canned: Vec::new(),
        canned_headers: Vec::new(),
    }
}

async fn serve_canned(
    canned: Canned,
    headers: Vec<(&'static str, &'static str)>,
) -> (String, MockServer) {
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::post(move |body: String| {
            let canned = Arc::clone(&canned);
            let headers = headers.clone();
            async move {
                let (status, body) = canned(&body);
                let mut reply = axum::http::HeaderMap::new();
                reply.insert(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                );
                for (name, value) in headers {
                    reply.append(name, axum::http::HeaderValue::from_static(value));
                }
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    reply,
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    (
        url,
        MockServer::spawn(listener, app, std::future::pending()),
    )
}

impl Builder {
    pub fn config(mut self, f: impl FnOnce(&mut RouterConfig)) -> Builder {
        f(&mut self.config);
        self
    }

    #[allow(dead_code)] // tests/edge.rs uses it; tests/http_api.rs does not
    pub fn supergraph(mut self, edit: impl FnOnce(String) -> String + 'static) -> Builder {
        self.supergraph = Some(Box::new(edit));
        self
    }

    pub fn down(mut self, subgraph: &'static str) -> Builder {
        self.down.push(subgraph);
        self
    }

    pub fn canned(
        mut self,
        subgraph: &'static str,
        f: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
    ) -> Builder {
        self.canned.push((subgraph, Arc::new(f)));
        self
    }

    /// Response headers a canned subgraph adds to every answer.
    pub fn canned_headers(
        mut self,
        subgraph: &'static str,
        headers: Vec<(&'static str, &'static str)>,
    ) -> Builder {
        self.canned_headers.push((subgraph, headers));
        self
    }

    pub async fn start(self) -> TestEnv {
        // reqwest is built without a default TLS backend; ignore "already installed".
        let _ = rustls::crypto::ring::default_provider().install_default();
        let expected: Json =
            serde_json::from_str(&fixture("bench.expected_response.json")).unwrap();
        let data = Arc::new(Data::from_expected_response(&expected));
        let running = start_all(Arc::clone(&data)).await;
        let mut supergraph = supergraph_with_mutation();
        if let Some(edit) = self.supergraph {
            supergraph = edit(supergraph);
        }
        let mut mocks = Vec::new();
        let mut down = Vec::new();
        for subgraph in &running {
            let canned = self.canned.iter().find(|(name, _)| *name == subgraph.name);
            let url = if let Some((_, canned)) = canned {
                let headers = self
                    .canned_headers
                    .iter()
                    .find(|(name, _)| *name == subgraph.name)
                    .map(|(_, headers)| headers.clone())
                    .unwrap_or_default();
                let (url, server) = serve_canned(Arc::clone(canned), headers).await;
                mocks.push(server);
                url
            } else if self.down.contains(&subgraph.name) {
                let stopped = Down::start().await;
                let url = stopped.url.clone();
                down.push(stopped);
                url
            } else {
                subgraph.url.clone()
            };
            supergraph =
                supergraph.replace(&format!("http://0.0.0.0:4200/{}", subgraph.name), &url);
        }
        let router = Router::from_supergraph_sdl(&supergraph, self.config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = router.clone();
        tokio::spawn(async move {
            serving
                .serve(listener, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap()
        });
        TestEnv {
            router,
            supergraph,
            url,
            data,
            knobs: running
                .iter()
                .map(|r| (r.name, Arc::clone(&r.knobs)))
                .collect(),
            client: reqwest::Client::new(),
            _shutdown: tx,
            _mocks: mocks,
            _down: down,
            _subgraphs: running,
        }
    }
}

/// A response: status, content type and body (parsed when it is JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn error_codes(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestEnv {
    pub fn knobs(&self, subgraph: &str) -> &Arc<Knobs> {
        &self.knobs[subgraph]
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        Reply {
            status,
            content_type,
            text,
            headers,
        }
    }

    /// POSTs `{"query", "variables"}` as `application/json`, accepting `accept`.
    pub async fn post_with(&self, accept: &str, query: &str, variables: Json) -> Reply {
        let body = serde_json::json!({"query": query, "variables": variables});
        self.send(
            self.client
                .post(format!("{}/graphql", self.url))
                .header("content-type", "application/json")
                .header("accept", accept)
                .body(body.to_string()),
        )
        .await
    }

    pub async fn post(&self, query: &str) -> Reply {
        self.post_with("application/graphql-response+json", query, Json::Null)
            .await
    }

    pub async fn raw(
        &self,
        method: reqwest::Method,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}/graphql", self.url))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }
}
