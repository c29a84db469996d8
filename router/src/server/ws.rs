//! WebSocket subscriptions on the GraphQL path: the `graphql-transport-ws` protocol (the
//! `graphql-ws` library's) and, when a client asks for it, the legacy `graphql-ws` protocol of
//! `subscriptions-transport-ws`.
//!
//! Authentication: `connection_init`'s `Authorization` (or `authorization`) entry if present,
//! else the upgrade request's header, verified like an HTTP request's token. A bad token closes
//! the connection with 4403. So does the token expiring (`exp` plus `auth.jwt.leeway`) while the
//! connection is open, with the reason "Forbidden: the token has expired"; under the legacy
//! protocol each running subscription first gets an `error` (`UNAUTHENTICATED`), since its
//! clients report the close only to the connection. Anonymous connections have no deadline. Protocol errors close with the codes of graphql-transport-ws's
//! PROTOCOL.md: 4400 invalid message, 4401 subscribe before `connection_ack`, 4408 no
//! `connection_init` in time, 4409 a duplicate subscription id, 4429 a second `connection_init`.
//! Router shutdown closes with 1001 (going away); a reload that changes the rules subscriptions are
//! admitted under (see `subscriptions::reload`) with 1012 (service restart: clients reconnect, and are admitted under the new rules); a slow subscriber
//! under the `close` policy with 1008 (policy violation).
//!
//! Each connection is one task that reads the client, writes frames, and pings; each active
//! subscription is a task that turns its stream's events into frames. Frames go through a bounded
//! channel (`subscriptions.buffer_size`), so a client that does not read makes its subscriptions
//! fall behind their streams, where the slow-client policy applies.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::AppState;
use super::http::http_response;
use super::request::MediaType;
use crate::auth::Identity;
use crate::config::SlowClientPolicy;
use crate::error::render_errors;
use crate::error::{GraphQLError, codes};
use crate::operation::Caller;
use crate::subscriptions::{
    CONNECTIONS_GAUGE, ConnectionSlot, Event, Received, Started, Subscribing, expiry,
    request_from_payload, start,
};

pub(crate) const TRANSPORT_WS: &str = "graphql-transport-ws";
pub(crate) const LEGACY_WS: &str = "graphql-ws";

/// Close codes and reasons (graphql-transport-ws PROTOCOL.md, and RFC 6455), shared with the
/// subgraphs' WebSockets.
pub(crate) use shippy_security::websocket::close;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `graphql-transport-ws`.
    Transport,
    /// `graphql-ws` (subscriptions-transport-ws).
    Legacy,
}

/// Whether `headers` ask for a WebSocket upgrade.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Upgrades the request to a subscription connection, or says why not (HTTP status with a
/// GraphQL error body).
pub(crate) async fn handle(state: Arc<AppState>, request: http::Request<Body>) -> Response {
    let (mut parts, _) = request.into_parts();
    let refuse = |status: StatusCode, message: &str, code: &str| {
        http_response(
            status,
            MediaType::Json,
            render_errors(&[GraphQLError::new(message.to_string(), code)]),
        )
    };
    let config = state.hub.config().clone();
    if !config.enabled {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Subscriptions are disabled on this router",
            codes::UNSUPPORTED_OPERATION,
        );
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(slot) = state.hub.connect() else {
        tracing::warn!(
            limit = config.max_connections,
            "subscription connection refused: at the limit"
        );
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many subscription connections",
            codes::SUBSCRIPTION_LIMIT_EXCEEDED,
        );
    };
    // tungstenite's defaults (128 KiB read buffer, allocated up front, and 128 KiB of writes
    // gathered before a flush) would cost every connection a quarter MiB; GraphQL messages are
    // small and each is flushed on its own.
    let upgrade = upgrade
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .protocols([TRANSPORT_WS, LEGACY_WS])
        .max_message_size(config.max_message_size)
        .max_frame_size(config.max_message_size);
    let protocol = match upgrade.selected_protocol() {
        Some(p) if p == LEGACY_WS => Protocol::Legacy,
        _ => Protocol::Transport,
    };
    let ip = crate::rate_limit::client_ip(
        &parts.headers,
        &parts.extensions,
        state.core().client_ip_header.as_ref(),
    );
    let connection = Connection {
        state,
        protocol,
        headers: parts.headers,
        ip,
        session: None,
        active: HashMap::new(),
    };
    upgrade.on_upgrade(move |socket| connection.run(socket, slot))
}

/// The caller of an initialized connection.
#[derive(Clone)]
struct Session {
    /// The upgrade request's headers, with `connection_init`'s credential in place of its own.
    headers: Arc<HeaderMap>,
    identity: Option<Arc<Identity>>,
    authorization: Option<HeaderValue>,
    /// When the token stops being accepted; `None` for anonymous connections.
    expires: Option<tokio::time::Instant>,
}

struct Connection {
    state: Arc<AppState>,
    protocol: Protocol,
    headers: HeaderMap,
    ip: Option<IpAddr>,
    session: Option<Session>,
    /// Running subscriptions by client id.
    active: HashMap<String, AbortHandle>,
}

/// What a subscription task sends to its connection.
enum Outbound {
    Frame(String),
    /// The subscription ended: forget its id, then send its last frame.
    Finished {
        id: String,
        frame: String,
    },
}

/// What handling one client message asks of the connection.
enum Flow {
    Continue,
    Reply(String),
    Close(u16, String),
    ReplyThenClose(String, u16, String),
}

#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<serde_json::Value>,
}

struct Gauge;

impl Gauge {
    fn open() -> Gauge {
        metrics::gauge!(CONNECTIONS_GAUGE).increment(1.0);
        Gauge
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_GAUGE).decrement(1.0);
    }
}

impl Connection {
    async fn run(mut self, socket: WebSocket, _slot: ConnectionSlot) {
        let _gauge = Gauge::open();
        let config = self.state.hub.config().clone();
        let shutdown = self.state.hub.shutting_down();
        tokio::pin!(shutdown);
        let reload = self.state.hub.next_reload();
        tokio::pin!(reload);
        let (mut sink, mut stream) = socket.split();
        let (frames, mut outbound) = mpsc::channel::<Outbound>(config.buffer_size);
        let (closer, mut closes) = mpsc::unbounded_channel::<(u16, String)>();
        let init_deadline = tokio::time::sleep(config.connection_init_timeout);
        tokio::pin!(init_deadline);
        let mut keep_alive = tokio::time::interval(config.keep_alive);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keep_alive.reset();
        // Armed once `connection_init` is accepted, with that token's deadline.
        let mut expired: Pin<Box<dyn Future<Output = ()> + Send>> =
            Box::pin(std::future::pending());
        let mut armed = false;
        let close_with = |code: u16, reason: String| {
            Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))
        };
        let final_frame: Option<Message> = 'connection: loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    break Some(close_with(close::GOING_AWAY, "Going away".into()));
                }
                () = &mut reload => {
                    break Some(close_with(
                        close::SERVICE_RESTART,
                        "Configuration reloaded; reconnect".into(),
                    ));
                }
                () = &mut expired => {
                    tracing::info!("closing a subscription connection: its token expired");
                    if self.protocol == Protocol::Legacy {
                        let error = [expiry::expired_error()];
                        for id in self.active.keys() {
                            let frame = Writer::new(self.protocol, id.clone()).error(&error);
                            if sink.send(Message::text(frame)).await.is_err() {
                                break 'connection None;
                            }
                        }
                    }
                    break Some(close_with(
                        close::FORBIDDEN,
                        close::TOKEN_EXPIRED_REASON.into(),
                    ));
                }
                Some((code, reason)) = closes.recv() => break Some(close_with(code, reason)),
                () = &mut init_deadline, if self.session.is_none() => {
                    break Some(close_with(
                        close::INIT_TIMEOUT,
                        close::INIT_TIMEOUT_REASON.into(),
                    ));
                }
                Some(out) = outbound.recv() => {
                    let frame = match out {
                        Outbound::Frame(frame) => frame,
                        Outbound::Finished { id, frame } => {
                            self.active.remove(&id);
                            frame
                        }
                    };
                    if sink.send(Message::text(frame)).await.is_err() {
                        break None;
                    }
                }
                _ = keep_alive.tick() => {
                    let ping = match self.protocol {
                        Protocol::Transport => r#"{"type":"ping"}"#,
                        Protocol::Legacy if self.session.is_some() => r#"{"type":"ka"}"#,
                        Protocol::Legacy => continue,
                    };
                    if sink.send(Message::text(ping)).await.is_err() {
                        break None;
                    }
                }
                message = stream.next() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => {
                            break Some(close_with(
                                close::BAD_REQUEST,
                                "Binary messages are not supported".into(),
                            ));
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
                    };
                    let flow = self.on_message(text.as_str(), &frames, &closer).await;
                    if !armed && let Some(session) = &self.session {
                        expired = Box::pin(expiry::passed(session.expires));
                        armed = true;
                    }
                    match flow {
                        Flow::Continue => {}
                        Flow::Reply(reply) => {
                            if sink.send(Message::text(reply)).await.is_err() {
                                break None;
                            }
                        }
                        Flow::Close(code, reason) => break Some(close_with(code, reason)),
                        Flow::ReplyThenClose(reply, code, reason) => {
                            if sink.send(Message::text(reply)).await.is_err() {
                                break None;
                            }
                            break Some(close_with(code, reason));
                        }
                    }
                }
            }
        };
        for (_, task) in self.active.drain() {
            task.abort();
        }
        if let Some(frame) = final_frame {
            let _ = sink.send(frame).await;
        }
        let _ = sink.close().await;
    }

    async fn on_message(
        &mut self,
        text: &str,
        frames: &mpsc::Sender<Outbound>,
        closer: &mpsc::UnboundedSender<(u16, String)>,
    ) -> Flow {
        let Ok(message) = serde_json::from_str::<ClientMessage>(text) else {
            return Flow::Close(close::BAD_REQUEST, "Invalid message received".into());
        };
        let legacy = self.protocol == Protocol::Legacy;
        match (message.kind.as_str(), legacy) {
            ("connection_init", _) => self.init(message.payload).await,
            ("ping", false) => Flow::Reply(r#"{"type":"pong"}"#.into()),
            ("pong", false) => Flow::Continue,
            ("subscribe", false) | ("start", true) => {
                self.subscribe(message.id, message.payload, frames, closer)
            }
            ("complete", false) | ("stop", true) => {
                if let Some(task) = message.id.and_then(|id| self.active.remove(&id)) {
                    task.abort();
                }
                Flow::Continue
            }
            ("connection_terminate", true) => Flow::Close(1000, "Normal closure".into()),
            (other, _) => Flow::Close(
                close::BAD_REQUEST,
                format!("Unexpected message type `{other}`"),
            ),
        }
    }

    async fn init(&mut self, payload: Option<serde_json::Value>) -> Flow {
        if self.session.is_some() {
            return Flow::Close(
                close::TOO_MANY_INITS,
                "Too many initialisation requests".into(),
            );
        }
        let live = self.state.core().live.load_full();
        let header_name = live.auth_header.clone();
        let presented = payload.as_ref().and_then(|p| {
            p.get("Authorization")
                .or_else(|| p.get("authorization"))
                .and_then(|v| v.as_str())
        });
        let mut headers = self.headers.clone();
        if let Some(value) = presented {
            match HeaderValue::from_str(value) {
                Ok(value) => {
                    headers.insert(header_name.clone(), value);
                }
                Err(_) => {
                    return self
                        .refuse_init("Invalid token: the value is not a valid header value");
                }
            }
        }
        let identity = match &live.verifier {
            None => None,
            Some(verifier) => match verifier.authenticate(&headers).await {
                Ok(identity) => identity.map(Arc::new),
                Err(error) => {
                    tracing::debug!(%error, "subscription connection refused: bad token");
                    return self.refuse_init(&format!("Invalid token: {error}"));
                }
            },
        };
        let authorization = headers.get(&header_name).cloned();
        let expires = expiry::deadline(identity.as_deref(), live.config.auth.jwt.leeway);
        self.session = Some(Session {
            headers: Arc::new(headers),
            identity,
            authorization,
            expires,
        });
        Flow::Reply(r#"{"type":"connection_ack"}"#.into())
    }

    /// A refused `connection_init`: graphql-transport-ws closes with 4403; the legacy protocol
    /// says why in `connection_error` first, with the message and code an HTTP request with the
    /// same token gets.
    fn refuse_init(&self, reason: &str) -> Flow {
        match self.protocol {
            Protocol::Transport => Flow::Close(close::FORBIDDEN, "Forbidden".into()),
            Protocol::Legacy => Flow::ReplyThenClose(
                serde_json::json!({
                    "type": "connection_error",
                    "payload": GraphQLError::new(reason, codes::UNAUTHENTICATED),
                })
                .to_string(),
                close::FORBIDDEN,
                "Forbidden".into(),
            ),
        }
    }

    fn subscribe(
        &mut self,
        id: Option<String>,
        payload: Option<serde_json::Value>,
        frames: &mpsc::Sender<Outbound>,
        closer: &mpsc::UnboundedSender<(u16, String)>,
    ) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Close(close::UNAUTHORIZED, "Unauthorized".into());
        };
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            return Flow::Close(close::BAD_REQUEST, "A subscription needs an `id`".into());
        };
        if self.active.contains_key(&id) {
            return Flow::Close(
                close::DUPLICATE_ID,
                format!("Subscriber for {id} already exists"),
            );
        }
        let writer = Writer::new(self.protocol, id.clone());
        let config = self.state.hub.config();
        if self.active.len() >= config.max_subscriptions_per_connection {
            let error = GraphQLError::new(
                format!(
                    "A connection may run at most {} subscriptions",
                    config.max_subscriptions_per_connection
                ),
                codes::SUBSCRIPTION_LIMIT_EXCEEDED,
            )
            .with_extension("limit", config.max_subscriptions_per_connection);
            return Flow::Reply(writer.error(&[error]));
        }
        let request = match payload
            .as_ref()
            .ok_or_else(|| GraphQLError::new("`subscribe` needs a payload", codes::BAD_REQUEST))
            .and_then(request_from_payload)
        {
            Ok(request) => request,
            Err(error) => return Flow::Reply(writer.error(&[error])),
        };
        let task = SubscriptionTask {
            state: Arc::clone(&self.state),
            session,
            ip: self.ip,
            writer,
            frames: frames.clone(),
            closer: closer.clone(),
            policy: config.slow_client,
        };
        let handle = tokio::spawn(task.run(request));
        self.active.insert(id, handle.abort_handle());
        Flow::Continue
    }
}

/// Formats a subscription's frames in its connection's protocol.
struct Writer {
    protocol: Protocol,
    id: String,
    /// `"id":<the id as JSON>`, written into every frame (encoded once, not per event).
    id_field: String,
}

impl Writer {
    fn new(protocol: Protocol, id: String) -> Writer {
        let id_field = format!(r#""id":{}"#, serde_json::to_string(&id).unwrap_or_default());
        Writer {
            protocol,
            id,
            id_field,
        }
    }

    fn frame(&self, kind: &str, payload: Option<&[u8]>) -> String {
        let capacity = 32 + self.id_field.len() + payload.map_or(0, <[u8]>::len);
        let mut frame = String::with_capacity(capacity);
        frame.push_str(r#"{"type":""#);
        frame.push_str(kind);
        frame.push_str(r#"","#);
        frame.push_str(&self.id_field);
        if let Some(payload) = payload {
            frame.push_str(r#","payload":"#);
            // Payloads are JSON we rendered; the check only guards the frame's text type.
            frame.push_str(&String::from_utf8_lossy(payload));
        }
        frame.push('}');
        frame
    }

    fn next(&self, body: &[u8]) -> String {
        let kind = match self.protocol {
            Protocol::Transport => "next",
            Protocol::Legacy => "data",
        };
        self.frame(kind, Some(body))
    }

    fn error(&self, errors: &[GraphQLError]) -> String {
        let payload = serde_json::to_vec(errors).unwrap_or_else(|_| b"[]".to_vec());
        self.frame("error", Some(&payload))
    }

    fn complete(&self) -> String {
        self.frame("complete", None)
    }
}

/// One client subscription: starts it, then forwards its stream's events as frames.
struct SubscriptionTask {
    state: Arc<AppState>,
    session: Session,
    ip: Option<IpAddr>,
    writer: Writer,
    frames: mpsc::Sender<Outbound>,
    closer: mpsc::UnboundedSender<(u16, String)>,
    policy: SlowClientPolicy,
}

impl SubscriptionTask {
    async fn run(self, request: crate::operation::GraphQLRequest) {
        let who = Subscribing {
            caller: Caller {
                headers: &self.session.headers,
                identity: self.session.identity.as_deref(),
                ip: self.ip,
            },
            identity: self.session.identity.clone(),
            authorization: self.session.authorization.clone(),
        };
        // Each subscription runs on the supergraph current when it starts.
        let core = self.state.core();
        let mut subscriber = match start(&core, &self.state.hub, &request, who).await {
            Err(refused) => {
                self.finish(self.writer.error(refused.errors())).await;
                return;
            }
            Ok(Started::Single(body)) => {
                let _ = self
                    .frames
                    .send(Outbound::Frame(self.writer.next(&body)))
                    .await;
                self.finish(self.writer.complete()).await;
                return;
            }
            Ok(Started::Stream(subscriber)) => subscriber,
        };
        loop {
            let frame = match subscriber.recv().await {
                Some(Received::Event(Event::Next(body))) => self.writer.next(&body),
                Some(Received::Event(Event::Error(errors))) => {
                    self.finish(self.writer.error(&errors)).await;
                    return;
                }
                Some(Received::Event(Event::Complete)) => {
                    self.finish(self.writer.complete()).await;
                    return;
                }
                Some(Received::Lagged(missed)) => match self.policy {
                    SlowClientPolicy::Close => {
                        tracing::info!(missed, "closing a subscriber that fell behind");
                        let _ = self.closer.send((
                            close::POLICY_VIOLATION,
                            "Subscriber too slow: events could not be delivered".into(),
                        ));
                        return;
                    }
                    SlowClientPolicy::Drop => {
                        let body = render_errors(&[crate::subscriptions::dropped_error(missed)]);
                        self.writer.next(&body)
                    }
                },
                None => {
                    let error = GraphQLError::new(
                        "The subscription ended",
                        codes::SUBSCRIPTION_UPSTREAM_CLOSED,
                    );
                    self.finish(self.writer.error(&[error])).await;
                    return;
                }
            };
            if self.frames.send(Outbound::Frame(frame)).await.is_err() {
                return;
            }
        }
    }

    async fn finish(&self, frame: String) {
        let _ = self
            .frames
            .send(Outbound::Finished {
                id: self.writer.id.clone(),
                frame,
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_escape_the_id_and_follow_the_protocol() {
        let writer = Writer::new(Protocol::Transport, "a\"b".into());
        let next: serde_json::Value =
            serde_json::from_str(&writer.next(br#"{"data":{"n":1}}"#)).unwrap();
        assert_eq!(
            next,
            serde_json::json!({"type": "next", "id": "a\"b", "payload": {"data": {"n": 1}}})
        );
        let complete: serde_json::Value = serde_json::from_str(&writer.complete()).unwrap();
        assert_eq!(
            complete,
            serde_json::json!({"type": "complete", "id": "a\"b"})
        );
        let legacy = Writer::new(Protocol::Legacy, "1".into());
        let data: serde_json::Value = serde_json::from_str(&legacy.next(b"{}")).unwrap();
        assert_eq!(data["type"], "data");
        let error = GraphQLError::new("no", codes::BAD_REQUEST);
        let error: serde_json::Value = serde_json::from_str(&legacy.error(&[error])).unwrap();
        assert_eq!(error["payload"][0]["extensions"]["code"], "BAD_REQUEST");
    }
}
