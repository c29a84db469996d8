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
//! Each connection is one task that reads the client, pings, and turns its subscriptions' events
//! into frames, written one at a time. A subscription is no task of its own: it is a
//! [`Subscription`] the connection polls, first its way through the operation path (boxed, so
//! that the large future is freed once started), then its receiver on the shared stream. Nothing
//! is queued per subscriber: a client that does not read blocks its connection's writes, so its
//! subscriptions fall behind their streams' shared buffers (`subscriptions.buffer_size` events),
//! where the slow-client policy applies, and its memory stays what it was.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::{FutureExt, SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;

use super::AppState;
use super::http::http_response;
use super::request::MediaType;
use crate::auth::Identity;
use crate::config::SlowClientPolicy;
use crate::error::render_errors;
use crate::error::{GraphQLError, codes};
use crate::operation::{Caller, GraphQLRequest, PipelineError};
use crate::subscriptions::{
    CONNECTIONS_GAUGE, ConnectionSlot, Event, Received, Started, Subscriber, Subscribing, expiry,
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
    // tungstenite's defaults (128 KiB read buffer, allocated up front and zero-filled before every
    // read, and 128 KiB of writes gathered before a flush) would cost every connection a quarter
    // MiB. Clients send little (`connection_init`, `subscribe`, `pong`, `complete`): a larger
    // message is read in several calls into a buffer grown to fit it. Frames are flushed one by
    // one.
    let upgrade = upgrade
        .read_buffer_size(READ_BUFFER_SIZE)
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
        headers: owned_headers(&parts.headers),
        ip,
        session: None,
        subscriptions: Subscriptions::default(),
    };
    upgrade.on_upgrade(move |socket| connection.run(socket, slot))
}

/// The WebSocket read buffer of a connection, in bytes: what every connection holds for reading.
const READ_BUFFER_SIZE: usize = 1024;

/// A copy of `headers` that owns its values. hyper's are slices of the connection's read buffer
/// (8 KiB at least), which a connection keeping its upgrade request's headers would hold for its
/// whole life.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        // hyper admits only bytes a header value may hold, so the copy cannot fail; if it ever
        // did, sharing the value keeps the header at the cost of the buffer.
        let copy = match HeaderValue::from_bytes(value.as_bytes()) {
            Ok(mut copy) => {
                copy.set_sensitive(value.is_sensitive());
                copy
            }
            Err(_) => value.clone(),
        };
        owned.append(name.clone(), copy);
    }
    owned
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
    /// The upgrade request's headers until `connection_init` moves them into the session.
    headers: HeaderMap,
    ip: Option<IpAddr>,
    session: Option<Session>,
    /// Running subscriptions.
    subscriptions: Subscriptions,
}

/// What a subscription asks of its connection.
enum Outbound {
    Frame(String),
    /// The subscription ended (it is forgotten already): send its last frame.
    Finished(String),
    /// Close the connection (a slow subscriber under the `close` policy).
    Close(u16, String),
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
    async fn run(mut self, mut socket: WebSocket, _slot: ConnectionSlot) {
        let _gauge = Gauge::open();
        let config = self.state.hub.config().clone();
        let policy = config.slow_client;
        let shutdown = self.state.hub.shutting_down();
        tokio::pin!(shutdown);
        let reload = self.state.hub.next_reload();
        tokio::pin!(reload);
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
                        let frames: Vec<String> = self
                            .subscriptions
                            .running
                            .iter()
                            .map(|subscription| subscription.writer.error(&error))
                            .collect();
                        for frame in frames {
                            if socket.send(Message::text(frame)).await.is_err() {
                                break 'connection None;
                            }
                        }
                    }
                    break Some(close_with(
                        close::FORBIDDEN,
                        close::TOKEN_EXPIRED_REASON.into(),
                    ));
                }
                () = &mut init_deadline, if self.session.is_none() => {
                    break Some(close_with(
                        close::INIT_TIMEOUT,
                        close::INIT_TIMEOUT_REASON.into(),
                    ));
                }
                out = std::future::poll_fn(|cx| self.subscriptions.poll_next(cx, policy)),
                    if !self.subscriptions.running.is_empty() =>
                {
                    let frame = match out {
                        Outbound::Frame(frame) | Outbound::Finished(frame) => frame,
                        Outbound::Close(code, reason) => break Some(close_with(code, reason)),
                    };
                    if socket.send(Message::text(frame)).await.is_err() {
                        break None;
                    }
                }
                _ = keep_alive.tick() => {
                    let ping = match self.protocol {
                        Protocol::Transport => r#"{"type":"ping"}"#,
                        Protocol::Legacy if self.session.is_some() => r#"{"type":"ka"}"#,
                        Protocol::Legacy => continue,
                    };
                    if socket.send(Message::text(ping)).await.is_err() {
                        break None;
                    }
                }
                message = socket.recv() => {
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
                    let flow = self.on_message(text.as_str()).await;
                    if !armed && let Some(session) = &self.session {
                        expired = Box::pin(expiry::passed(session.expires));
                        armed = true;
                    }
                    match flow {
                        Flow::Continue => {}
                        Flow::Reply(reply) => {
                            if socket.send(Message::text(reply)).await.is_err() {
                                break None;
                            }
                        }
                        Flow::Close(code, reason) => break Some(close_with(code, reason)),
                        Flow::ReplyThenClose(reply, code, reason) => {
                            if socket.send(Message::text(reply)).await.is_err() {
                                break None;
                            }
                            break Some(close_with(code, reason));
                        }
                    }
                }
            }
        };
        // Leave the shared streams before the goodbye, which may wait on a slow client.
        self.subscriptions.running.clear();
        if let Some(frame) = final_frame {
            let _ = socket.send(frame).await;
        }
        let _ = socket.close().await;
    }

    async fn on_message(&mut self, text: &str) -> Flow {
        let Ok(message) = serde_json::from_str::<ClientMessage>(text) else {
            return Flow::Close(close::BAD_REQUEST, "Invalid message received".into());
        };
        let legacy = self.protocol == Protocol::Legacy;
        match (message.kind.as_str(), legacy) {
            // Boxed: verifying a token is the largest future of a connection, and needed once;
            // inline, every connection's task would keep room for it.
            ("connection_init", _) => self.init(message.payload).boxed().await,
            ("ping", false) => Flow::Reply(r#"{"type":"pong"}"#.into()),
            ("pong", false) => Flow::Continue,
            ("subscribe", false) | ("start", true) => self.subscribe(message.id, message.payload),
            ("complete", false) | ("stop", true) => {
                if let Some(id) = message.id {
                    self.subscriptions.remove(&id);
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
        // Moved, not copied: a connection keeps one set of headers, its session's.
        let mut headers = std::mem::take(&mut self.headers);
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

    fn subscribe(&mut self, id: Option<String>, payload: Option<serde_json::Value>) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Close(close::UNAUTHORIZED, "Unauthorized".into());
        };
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            return Flow::Close(close::BAD_REQUEST, "A subscription needs an `id`".into());
        };
        if self.subscriptions.contains(&id) {
            return Flow::Close(
                close::DUPLICATE_ID,
                format!("Subscriber for {id} already exists"),
            );
        }
        let writer = Writer::new(self.protocol, id);
        let config = self.state.hub.config();
        if self.subscriptions.running.len() >= config.max_subscriptions_per_connection {
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
        let starting = starting(&self.state, session, self.ip, request);
        self.subscriptions.running.push(Subscription {
            writer,
            state: State::Starting(starting),
        });
        Flow::Continue
    }
}

/// The operation path of one subscription (prepare, admit, plan, join the shared stream), on the
/// supergraph current when it starts. Boxed and owning what it needs, so the connection can poll
/// it among its other work and free it once it has started.
fn starting(
    state: &AppState,
    session: Session,
    ip: Option<IpAddr>,
    request: GraphQLRequest,
) -> Pin<Box<dyn Future<Output = Result<Started, PipelineError>> + Send>> {
    let core = state.core();
    let hub = Arc::clone(&state.hub);
    Box::pin(async move {
        let who = Subscribing {
            caller: Caller {
                headers: &session.headers,
                identity: session.identity.as_deref(),
                ip,
            },
            identity: session.identity.clone(),
            authorization: session.authorization.clone(),
        };
        start(&core, &hub, &request, who).await
    })
}

/// A connection's running subscriptions, polled by its task. Few (at most
/// `max_subscriptions_per_connection`), so a list searched by id.
#[derive(Default)]
struct Subscriptions {
    running: Vec<Subscription>,
    /// Where the next poll starts, so that one busy subscription does not starve the others
    /// into the slow-client policy.
    next: usize,
}

impl Subscriptions {
    fn contains(&self, id: &str) -> bool {
        self.running.iter().any(|s| s.writer.id == id)
    }

    /// Stops the subscription `id` (leaving its stream), if it runs.
    fn remove(&mut self, id: &str) {
        self.running.retain(|s| s.writer.id != id);
    }

    /// The next thing a subscription asks; a finished subscription is removed first.
    fn poll_next(&mut self, cx: &mut Context<'_>, policy: SlowClientPolicy) -> Poll<Outbound> {
        let count = self.running.len();
        for step in 0..count {
            let index = (self.next + step) % count;
            if let Poll::Ready(out) = self.running[index].poll_next(cx, policy) {
                self.next = index + 1;
                if matches!(out, Outbound::Finished(_)) {
                    self.running.swap_remove(index);
                }
                return Poll::Ready(out);
            }
        }
        Poll::Pending
    }
}

/// One client subscription: starting, then forwarding its stream's events as frames.
struct Subscription {
    writer: Writer,
    state: State,
}

enum State {
    /// On the operation path.
    Starting(Pin<Box<dyn Future<Output = Result<Started, PipelineError>> + Send>>),
    /// Receiving the stream's events (`None`: the stream ended without a final event).
    Streaming(BoxStream<'static, Option<Received>>),
    /// Its last frame is due next (a query's `complete`, after its response).
    Finishing(String),
}

impl Subscription {
    fn poll_next(&mut self, cx: &mut Context<'_>, policy: SlowClientPolicy) -> Poll<Outbound> {
        let writer = &self.writer;
        loop {
            let events = match &mut self.state {
                State::Starting(starting) => match ready!(starting.as_mut().poll(cx)) {
                    Err(refused) => {
                        return Poll::Ready(Outbound::Finished(writer.error(refused.errors())));
                    }
                    Ok(Started::Single(body)) => {
                        self.state = State::Finishing(writer.complete());
                        return Poll::Ready(Outbound::Frame(writer.next(&body)));
                    }
                    Ok(Started::Stream(subscriber)) => {
                        self.state = State::Streaming(events(subscriber));
                        continue;
                    }
                },
                State::Finishing(frame) => {
                    return Poll::Ready(Outbound::Finished(std::mem::take(frame)));
                }
                State::Streaming(events) => events,
            };
            let out = match ready!(events.poll_next_unpin(cx)).flatten() {
                Some(Received::Event(Event::Next(body))) => Outbound::Frame(writer.next(&body)),
                Some(Received::Event(Event::Error(errors))) => {
                    Outbound::Finished(writer.error(&errors))
                }
                Some(Received::Event(Event::Complete)) => Outbound::Finished(writer.complete()),
                Some(Received::Lagged(missed)) => match policy {
                    SlowClientPolicy::Close => {
                        tracing::info!(missed, "closing a subscriber that fell behind");
                        Outbound::Close(
                            close::POLICY_VIOLATION,
                            "Subscriber too slow: events could not be delivered".into(),
                        )
                    }
                    SlowClientPolicy::Drop => {
                        let body = render_errors(&[crate::subscriptions::dropped_error(missed)]);
                        Outbound::Frame(writer.next(&body))
                    }
                },
                None => {
                    let error = GraphQLError::new(
                        "The subscription ended",
                        codes::SUBSCRIPTION_UPSTREAM_CLOSED,
                    );
                    Outbound::Finished(writer.error(&[error]))
                }
            };
            return Poll::Ready(out);
        }
    }
}

/// `subscriber`'s events as a stream the connection can poll again and again: the receiver and
/// its pending `recv` live in one allocation, reused for every event.
fn events(subscriber: Subscriber) -> BoxStream<'static, Option<Received>> {
    futures::stream::unfold(subscriber, |mut subscriber| async move {
        let received = subscriber.recv().await;
        Some((received, subscriber))
    })
    .boxed()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_headers_do_not_hold_the_request_buffer() {
        let buffer = bytes::Bytes::from(vec![b'x'; 8192]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-tenant",
            HeaderValue::from_maybe_shared(buffer.slice(0..16)).unwrap(),
        );
        let mut secret = HeaderValue::from_maybe_shared(buffer.slice(16..32)).unwrap();
        secret.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, secret);
        let owned = owned_headers(&headers);
        assert_eq!(owned, headers);
        assert!(owned[http::header::AUTHORIZATION].is_sensitive());
        let range = buffer.as_ptr_range();
        for value in owned.values() {
            assert!(
                !range.contains(&value.as_bytes().as_ptr()),
                "a kept value still points into the request buffer"
            );
        }
    }

    #[tokio::test]
    async fn subscriptions_take_turns_and_are_forgotten_when_finished() {
        let query = |id: &str| Subscription {
            writer: Writer::new(Protocol::Transport, id.into()),
            state: State::Starting(Box::pin(async {
                Ok(Started::Single(bytes::Bytes::from_static(b"{}")))
            })),
        };
        let mut subscriptions = Subscriptions::default();
        subscriptions.running.push(query("a"));
        subscriptions.running.push(query("b"));
        let mut sent = Vec::new();
        while !subscriptions.running.is_empty() {
            let out =
                std::future::poll_fn(|cx| subscriptions.poll_next(cx, SlowClientPolicy::Close))
                    .await;
            let (Outbound::Frame(frame) | Outbound::Finished(frame)) = out else {
                panic!("nothing here closes the connection");
            };
            let frame: serde_json::Value = serde_json::from_str(&frame).unwrap();
            sent.push(format!("{} {}", frame["type"], frame["id"]));
        }
        assert_eq!(
            sent,
            [
                r#""next" "a""#,
                r#""next" "b""#,
                r#""complete" "a""#,
                r#""complete" "b""#
            ]
        );
    }

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
