//! The router's WebSocket client to subgraphs: one graphql-transport-ws connection per upstream
//! stream, opened on a replica of the subgraph that owns the subscription's root field.
//!
//! The caller's identity goes along twice: the forwarded headers (`authorization`, `traceparent`...)
//! on the upgrade request, and `Authorization` in the `connection_init` payload, which is where
//! subgraphs (like the kit's server) read it for WebSocket connections. The upgrade request carries
//! the router's signature like every subgraph request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::SubscriptionsConfig;
use crate::subgraph::SubgraphClient;

const PROTOCOL: &str = "graphql-transport-ws";
/// The only operation on a connection: one connection per upstream stream.
const ID: &str = "1";

/// Why a subgraph's stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("`{0}` cannot be turned into a WebSocket URL")]
    Url(String),
    #[error("the WebSocket handshake failed: {0}")]
    Handshake(#[from] tungstenite::Error),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("no connection_ack within {0:?}")]
    Timeout(Duration),
    #[error("the subgraph refused connection_init: {0}")]
    Refused(String),
}

/// What the subgraph sent on the stream.
#[derive(Debug)]
pub(crate) enum UpstreamEvent {
    /// A `next` payload: a GraphQL response, as sent.
    Next(Bytes),
    /// An `error` message: the subgraph refused the operation (these GraphQL errors).
    Error(Vec<serde_json::Value>),
    Complete,
    /// The connection ended without `complete` (closed, reset, or a protocol violation).
    Closed(String),
}

/// An open subscription on a subgraph.
pub(crate) struct UpstreamSubscription {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    keep_alive: tokio::time::Interval,
    /// Pings sent since the subgraph last sent anything.
    unanswered: u8,
}

#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default, borrow)]
    payload: Option<sonic_rs::LazyValue<'a>>,
}

impl UpstreamSubscription {
    /// Connects to `client`'s WebSocket URL (`subscriptions.subgraph_urls`, else a replica's
    /// URL as `ws://`), initializes with the caller's `authorization`, and
    /// subscribes with `body` (`{"query":…,"variables":…}`).
    pub(crate) async fn open(
        client: &SubgraphClient,
        headers: &HeaderMap,
        authorization: Option<&HeaderValue>,
        body: Bytes,
        config: &SubscriptionsConfig,
    ) -> Result<UpstreamSubscription, UpstreamError> {
        let url = match config.subgraph_urls.get(&client.name) {
            Some(url) => url.clone(),
            None => {
                let replica = client.replicas().pick(&[]);
                websocket_url(&client.replicas().replicas()[replica].uri.to_string())?
            }
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(UpstreamError::Handshake)?;
        for (name, value) in headers {
            request.headers_mut().append(name, value.clone());
        }
        request.headers_mut().insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(PROTOCOL),
        );
        let uri = request.uri().clone();
        client.sign(request.headers_mut(), &http::Method::GET, &uri, b"");
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(config.max_message_size))
            .max_frame_size(Some(config.max_message_size));
        let timeout = config.upstream_connect_timeout;
        let init = async {
            let tls = crate::tls::client_config()?;
            let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(ws_config),
                true,
                Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls))),
            )
            .await?;
            let payload = match authorization.and_then(|v| v.to_str().ok()) {
                Some(value) => serde_json::json!({ "Authorization": value }),
                None => serde_json::json!({}),
            };
            let init = serde_json::json!({ "type": "connection_init", "payload": payload });
            socket.send(Message::text(init.to_string())).await?;
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let kind = sonic_rs::from_str::<Incoming<'_>>(&text)
                            .map(|m| m.kind.to_string())
                            .unwrap_or_default();
                        match kind.as_str() {
                            "connection_ack" => break,
                            "ping" => {
                                socket.send(Message::text(r#"{"type":"pong"}"#)).await?;
                            }
                            other => {
                                return Err(UpstreamError::Refused(format!(
                                    "expected connection_ack, got `{other}`"
                                )));
                            }
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Err(UpstreamError::Refused(
                            frame
                                .map(|f| format!("closed with {} {}", u16::from(f.code), f.reason))
                                .unwrap_or_else(|| "closed".into()),
                        ));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.into()),
                    None => return Err(UpstreamError::Refused("connection closed".into())),
                }
            }
            let mut subscribe = Vec::with_capacity(body.len() + 40);
            subscribe.extend_from_slice(br#"{"type":"subscribe","id":"1","payload":"#);
            subscribe.extend_from_slice(&body);
            subscribe.push(b'}');
            let text = String::from_utf8(subscribe)
                .map_err(|_| UpstreamError::Refused("request body is not UTF-8".into()))?;
            socket.send(Message::text(text)).await?;
            Ok(socket)
        };
        let socket = tokio::time::timeout(timeout, init)
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))??;
        let mut keep_alive = tokio::time::interval(config.keep_alive);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keep_alive.reset();
        Ok(UpstreamSubscription {
            socket,
            keep_alive,
            unanswered: 0,
        })
    }

    /// The next event. Answers pings, and pings the subgraph every `keep_alive`: a subgraph that
    /// stays silent for two whole intervals after a ping is taken as gone (one interval would be
    /// too little on a loaded machine).
    pub(crate) async fn next(&mut self) -> UpstreamEvent {
        loop {
            let message = tokio::select! {
                message = self.socket.next() => message,
                _ = self.keep_alive.tick() => {
                    if self.unanswered >= 2 {
                        return UpstreamEvent::Closed("no answer to keep-alive pings".into());
                    }
                    self.unanswered += 1;
                    if let Err(error) = self.socket.send(Message::Ping(Bytes::new())).await {
                        return UpstreamEvent::Closed(error.to_string());
                    }
                    continue;
                }
            };
            self.unanswered = 0;
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    return UpstreamEvent::Closed(
                        frame
                            .map(|f| format!("closed with {} {}", u16::from(f.code), f.reason))
                            .unwrap_or_else(|| "closed".into()),
                    );
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => return UpstreamEvent::Closed(error.to_string()),
                None => return UpstreamEvent::Closed("connection closed".into()),
            };
            let Ok(message) = sonic_rs::from_str::<Incoming<'_>>(&text) else {
                return UpstreamEvent::Closed("a message that is not graphql-transport-ws".into());
            };
            match message.kind {
                "next" => {
                    let payload = message.payload.as_ref().map_or("null", |p| p.as_raw_str());
                    return UpstreamEvent::Next(Bytes::copy_from_slice(payload.as_bytes()));
                }
                "error" => {
                    let errors = message
                        .payload
                        .and_then(|p| {
                            serde_json::from_str::<Vec<serde_json::Value>>(p.as_raw_str()).ok()
                        })
                        .unwrap_or_default();
                    return UpstreamEvent::Error(errors);
                }
                "complete" => return UpstreamEvent::Complete,
                "ping" => {
                    if let Err(error) = self.socket.send(Message::text(r#"{"type":"pong"}"#)).await
                    {
                        return UpstreamEvent::Closed(error.to_string());
                    }
                }
                _ => {}
            }
        }
    }

    /// Tells the subgraph the router is no longer interested, and closes the connection.
    pub(crate) async fn complete(mut self) {
        let complete = format!(r#"{{"type":"complete","id":"{ID}"}}"#);
        let _ = self.socket.send(Message::text(complete)).await;
        let _ = self.socket.close(None).await;
    }
}

/// `http(s)://host/path` as `ws(s)://host/path`.
fn websocket_url(url: &str) -> Result<String, UpstreamError> {
    if let Some(rest) = url.strip_prefix("http://") {
        Ok(format!("ws://{rest}"))
    } else if let Some(rest) = url.strip_prefix("https://") {
        Ok(format!("wss://{rest}"))
    } else {
        Err(UpstreamError::Url(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_keep_host_and_path() {
        assert_eq!(
            websocket_url("http://127.0.0.1:4003/graphql").unwrap(),
            "ws://127.0.0.1:4003/graphql"
        );
        assert_eq!(
            websocket_url("https://c.example/g").unwrap(),
            "wss://c.example/g"
        );
        assert!(matches!(
            websocket_url("ftp://x"),
            Err(UpstreamError::Url(_))
        ));
    }
}
