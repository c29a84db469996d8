//! Clients for tests: GraphQL over HTTP POST ([`GraphQLClient`]) and graphql-transport-ws ([`WsClient`]).

use std::time::Duration;

use serde_json::{Value, json};

use super::{TEST_ROUTER_KEY, TEST_SUBGRAPH_SECRET};
use crate::access::{SHARED_SECRET_HEADER, SIGNATURE_HEADER};

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

/// The router credential a test client presents to subgraphs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterCredential {
    /// None: what a direct caller sends.
    None,
    /// [`TEST_SUBGRAPH_SECRET`] in `shippy-subgraph-secret`, as a third-party router sends it.
    SharedSecret,
    /// A signature with [`TEST_ROUTER_KEY`] for the named subgraph, as our router makes it.
    Signed(String),
}

/// Sends GraphQL over HTTP POST, with [`RouterCredential::SharedSecret`] unless told otherwise.
#[derive(Debug, Clone)]
pub struct GraphQLClient {
    http: reqwest::Client,
    url: String,
    credential: RouterCredential,
}

impl GraphQLClient {
    /// A client for `url`.
    pub fn new(url: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            url,
            credential: RouterCredential::SharedSecret,
        }
    }

    /// The same client presenting `credential` instead.
    pub fn with_credential(self, credential: RouterCredential) -> Self {
        Self { credential, ..self }
    }

    /// Runs `query` with `variables`, as the bearer of `token` if given.
    pub async fn query(&self, query: &str, variables: Value, token: Option<&str>) -> GqlResponse {
        let body = json!({ "query": query, "variables": variables }).to_string();
        let mut req = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        match &self.credential {
            RouterCredential::None => {}
            RouterCredential::SharedSecret => {
                req = req.header(SHARED_SECRET_HEADER.as_str(), TEST_SUBGRAPH_SECRET);
            }
            RouterCredential::Signed(audience) => {
                let uri: axum::http::Uri = self.url.parse().expect("a URL");
                let signature =
                    shippy_security::signing::RequestSigner::new(TEST_ROUTER_KEY.as_bytes())
                        .expect("the test key is long enough")
                        .sign(
                            audience,
                            &axum::http::Method::POST,
                            shippy_security::signing::path_and_query(&uri),
                            body.as_bytes(),
                        );
                req = req.header(SIGNATURE_HEADER.as_str(), signature);
            }
        }
        let mut req = req.body(body);
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
        // The router credential subgraphs require on the upgrade (routers ignore it).
        request.headers_mut().insert(
            SHARED_SECRET_HEADER,
            TEST_SUBGRAPH_SECRET.parse().expect("header"),
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
