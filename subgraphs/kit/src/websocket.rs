//! A subgraph's GraphQL WebSocket connection, under the limits the router applies to its own
//! ([`shippy_security::websocket`]), so that a client calling a subgraph directly gets no more.
//!
//! async-graphql speaks the protocol (graphql-transport-ws, or the legacy graphql-ws); this module
//! sits between it and the socket and adds what it lacks:
//! - a client that has not sent `connection_init` (and been acknowledged) within
//!   `connection_init_timeout` is closed with 4408;
//! - one subscription past `max_subscriptions_per_connection` is refused with an `error` message
//!   (`SUBSCRIPTION_LIMIT_EXCEEDED`) and the connection stays open;
//! - a message larger than `max_message_size` closes the connection with 1009;
//! - a connection authenticated with a token is closed with 4403 when the token expires (`exp`
//!   plus the verifier's leeway), since a request with that token is refused from then on;
//! - shutdown closes it with 1001.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_graphql::{
    Data, Executor,
    http::{WebSocket as Engine, WebSocketProtocols, WsMessage},
};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use shippy_security::websocket::{
    Protocol, SubscriptionCounter, Verdict, WebSocketLimits, close, token_deadline,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

use crate::{auth::Caller, shutdown::CancellationToken};

/// Client messages read ahead of the protocol engine; past it the client is not read until the
/// engine catches up.
const INPUT_BUFFER: usize = 32;

/// What one connection runs under.
pub(crate) struct Settings {
    /// The shared limits (the subgraph's `server.websocket`).
    pub limits: WebSocketLimits,
    /// The token verifier's clock leeway: a token is accepted until `exp` plus this.
    pub token_leeway: Duration,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
}

/// Serves `socket` with `executor` until either side ends it. `authenticate` turns the
/// `connection_init` payload into the caller (an error refuses the connection).
pub(crate) async fn serve<E, A>(
    socket: WebSocket,
    executor: E,
    protocol: WebSocketProtocols,
    settings: Settings,
    authenticate: A,
) where
    E: Executor,
    A: FnOnce(&serde_json::Value) -> async_graphql::Result<Caller> + Send + 'static,
{
    let Settings {
        limits,
        token_leeway,
        shutdown,
    } = settings;
    let (mut sink, mut stream) = socket.split();
    let (input, input_rx) = mpsc::channel::<Vec<u8>>(INPUT_BUFFER);
    let input_rx = futures::stream::unfold(input_rx, |mut rx| async move {
        rx.recv().await.map(|message| (message, rx))
    });
    // Written by the engine when it accepts `connection_init`, read once it acknowledges.
    let token_expires: Arc<Mutex<Option<Instant>>> = Arc::default();
    let expires_slot = Arc::clone(&token_expires);
    let engine =
        Engine::new(executor, input_rx, protocol).on_connection_init(move |payload| async move {
            let caller = authenticate(&payload)?;
            if let Caller::User(claims) = &caller {
                *expires_slot.lock().unwrap_or_else(PoisonError::into_inner) =
                    token_deadline(claims.exp as f64, token_leeway);
            }
            let mut data = Data::default();
            data.insert(caller);
            Ok(data)
        });
    let mut engine = pin!(engine);
    let mut counter = SubscriptionCounter::new(
        match protocol {
            WebSocketProtocols::GraphQLWS => Protocol::TransportWs,
            WebSocketProtocols::SubscriptionsTransportWS => Protocol::LegacyWs,
        },
        &limits,
    );
    let init_timeout = pin!(tokio::time::sleep(limits.connection_init_timeout));
    let mut init_timeout = init_timeout;
    let mut acknowledged = false;
    // Armed at `connection_ack` for a caller with a token.
    let mut expired: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(std::future::pending());

    let closing: Option<(u16, String)> = loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Some((close::GOING_AWAY, "Going away".into())),
            () = &mut expired => {
                tracing::info!("closing a WebSocket connection: its token expired");
                break Some((close::FORBIDDEN, close::TOKEN_EXPIRED_REASON.into()));
            }
            () = &mut init_timeout, if !acknowledged => {
                break Some((close::INIT_TIMEOUT, close::INIT_TIMEOUT_REASON.into()));
            }
            out = engine.next() => match out {
                Some(WsMessage::Text(text)) => {
                    if !acknowledged && text.starts_with(r#"{"type":"connection_ack""#) {
                        acknowledged = true;
                        let at = *token_expires.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Some(at) = at {
                            expired = Box::pin(tokio::time::sleep_until(at));
                        }
                    }
                    counter.on_server_message(&text);
                    if sink.send(Message::text(text)).await.is_err() {
                        break None;
                    }
                }
                Some(WsMessage::Close(code, reason)) => break Some((code, reason)),
                None => break None,
            },
            message = stream.next(), if input.capacity() > 0 => {
                let bytes = match message {
                    Some(Ok(Message::Text(text))) => text.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(err)) if is_too_big(&err) => {
                        break Some((close::MESSAGE_TOO_BIG, close::MESSAGE_TOO_BIG_REASON.into()));
                    }
                    Some(Err(_)) => break None,
                };
                // Binary frames that are not text are the engine's to refuse.
                let verdict = match std::str::from_utf8(&bytes) {
                    Ok(text) => counter.on_client_message(text),
                    Err(_) => Verdict::Forward,
                };
                match verdict {
                    // Room is checked above and only this loop sends.
                    Verdict::Forward => {
                        let _ = input.try_send(bytes);
                    }
                    Verdict::Reply(reply) => {
                        if sink.send(Message::text(reply)).await.is_err() {
                            break None;
                        }
                    }
                }
            }
        }
    };
    if let Some((code, reason)) = closing {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
}

/// Whether reading failed on a message (or frame) past `max_message_size`.
fn is_too_big(err: &axum::Error) -> bool {
    // axum's error is a thin wrapper; its source is the engine's own error.
    matches!(
        std::error::Error::source(err).and_then(|inner| inner.downcast_ref::<tungstenite::Error>()),
        Some(tungstenite::Error::Capacity(_))
    )
}
