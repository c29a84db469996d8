//! Limits of GraphQL WebSocket connections, shared by the router and the subgraphs.
//!
//! One definition of what a subscription connection may do, so that a subgraph called directly
//! holds its clients to what the router holds them to:
//! - [`WebSocketLimits`]: the settings (time to send `connection_init`, subscriptions per
//!   connection, largest message) with their defaults;
//! - [`close`]: the close codes and reasons (graphql-transport-ws's PROTOCOL.md and RFC 6455);
//! - [`token_deadline`]: when a connection authenticated with a token must end (its `exp` plus the
//!   verifier's leeway: an HTTP request with that token is refused from then on);
//! - [`SubscriptionCounter`]: counts the running operations of one connection from the messages
//!   going both ways, and refuses one past the cap with an `error` message for its id (the
//!   connection stays open), for servers whose protocol engine has no such cap of its own.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// What one GraphQL WebSocket connection may do. The router's `subscriptions` section and the
/// subgraphs' `server.websocket` section use these keys and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketLimits {
    /// How long a client has to send `connection_init` after the upgrade; the connection is
    /// closed with 4408 after. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub connection_init_timeout: Duration,
    /// Operations one connection may run at once; one more is refused with an `error` message
    /// (`SUBSCRIPTION_LIMIT_EXCEEDED`) and the connection stays open. Default 100.
    pub max_subscriptions_per_connection: usize,
    /// Largest message (and frame) accepted from a client, in bytes; a larger one closes the
    /// connection (1009 where the server can still say so). Default 1 MiB.
    pub max_message_size: usize,
}

impl WebSocketLimits {
    /// Default of [`Self::connection_init_timeout`].
    pub const CONNECTION_INIT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`Self::max_subscriptions_per_connection`].
    pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 100;
    /// Default of [`Self::max_message_size`].
    pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;

    /// Every problem with these limits (keys relative to the section), for start-up checks.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.connection_init_timeout.is_zero() {
            problems.push("`connection_init_timeout` must be longer than zero".to_owned());
        }
        for (name, value) in [
            (
                "max_subscriptions_per_connection",
                self.max_subscriptions_per_connection,
            ),
            ("max_message_size", self.max_message_size),
        ] {
            if value == 0 {
                problems.push(format!("`{name}` must be at least 1"));
            }
        }
        problems
    }
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        Self {
            connection_init_timeout: Self::CONNECTION_INIT_TIMEOUT,
            max_subscriptions_per_connection: Self::MAX_SUBSCRIPTIONS_PER_CONNECTION,
            max_message_size: Self::MAX_MESSAGE_SIZE,
        }
    }
}

/// Close codes: graphql-transport-ws's PROTOCOL.md (44xx) and RFC 6455 (10xx).
pub mod close {
    /// An invalid message.
    pub const BAD_REQUEST: u16 = 4400;
    /// `subscribe` before `connection_ack`.
    pub const UNAUTHORIZED: u16 = 4401;
    /// A refused or expired token.
    pub const FORBIDDEN: u16 = 4403;
    /// No `connection_init` within the timeout.
    pub const INIT_TIMEOUT: u16 = 4408;
    /// A subscription id already in use.
    pub const DUPLICATE_ID: u16 = 4409;
    /// A second `connection_init`.
    pub const TOO_MANY_INITS: u16 = 4429;
    /// The server shuts down.
    pub const GOING_AWAY: u16 = 1001;
    /// A slow subscriber under the `close` policy.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message larger than `max_message_size`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The rules changed; reconnect.
    pub const SERVICE_RESTART: u16 = 1012;

    /// Reason sent with [`INIT_TIMEOUT`].
    pub const INIT_TIMEOUT_REASON: &str = "Connection initialisation timeout";
    /// Reason sent with [`FORBIDDEN`] when the token expires while the connection is open.
    pub const TOKEN_EXPIRED_REASON: &str = "Forbidden: the token has expired";
    /// Reason sent with [`MESSAGE_TOO_BIG`].
    pub const MESSAGE_TOO_BIG_REASON: &str = "Message too big";
}

/// The `extensions.code` of a subscription refused past the per-connection cap.
pub const SUBSCRIPTION_LIMIT_EXCEEDED: &str = "SUBSCRIPTION_LIMIT_EXCEEDED";

/// When a connection authenticated with a token whose `exp` is `exp` (seconds since the Unix
/// epoch) must end: `exp` plus `leeway` in whole seconds, as verifiers apply it. Now for a time
/// already past; `None` for an `exp` so far ahead that no timer can hold it (it never passes while
/// we run) or that is not a number.
pub fn token_deadline(exp: f64, leeway: Duration) -> Option<Instant> {
    if !exp.is_finite() {
        return None;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let remaining = exp + leeway.as_secs() as f64 - now;
    if remaining <= 0.0 {
        return Some(Instant::now());
    }
    Instant::now().checked_add(Duration::try_from_secs_f64(remaining).ok()?)
}

/// The GraphQL-over-WebSocket protocol of a connection, as chosen by `Sec-WebSocket-Protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws` (the `graphql-ws` library's): `subscribe` / `complete`.
    TransportWs,
    /// `graphql-ws` (the legacy subscriptions-transport-ws): `start` / `stop`.
    LegacyWs,
}

impl Protocol {
    /// The protocol of subprotocol name `name`, if it is one of the two.
    pub fn from_subprotocol(name: &str) -> Option<Protocol> {
        match name {
            "graphql-transport-ws" => Some(Protocol::TransportWs),
            "graphql-ws" => Some(Protocol::LegacyWs),
            _ => None,
        }
    }

    fn starts(self, kind: &str) -> bool {
        match self {
            Protocol::TransportWs => kind == "subscribe",
            Protocol::LegacyWs => kind == "start",
        }
    }

    fn stops(self, kind: &str) -> bool {
        match self {
            Protocol::TransportWs => kind == "complete",
            Protocol::LegacyWs => kind == "stop",
        }
    }
}

/// What to do with a client's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the protocol engine.
    Forward,
    /// Do not; send this message to the client instead (the connection stays open).
    Reply(String),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
}

/// The running operations of one connection, counted from the messages going both ways.
///
/// An operation starts with the client's `subscribe` (`start`) and ends with the client's
/// `complete` (`stop`) or the server's `complete` or `error` for its id. Messages that do not
/// parse are forwarded untouched: the engine answers them as the protocol says.
#[derive(Debug)]
pub struct SubscriptionCounter {
    protocol: Protocol,
    max: usize,
    active: HashSet<String>,
}

impl SubscriptionCounter {
    /// A counter for a connection speaking `protocol` under `limits`.
    pub fn new(protocol: Protocol, limits: &WebSocketLimits) -> Self {
        Self {
            protocol,
            max: limits.max_subscriptions_per_connection,
            active: HashSet::new(),
        }
    }

    /// Operations running now.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// A message from the client.
    pub fn on_client_message(&mut self, text: &str) -> Verdict {
        let Ok(message) = serde_json::from_str::<Envelope<'_>>(text) else {
            return Verdict::Forward;
        };
        let Some(id) = message.id else {
            return Verdict::Forward;
        };
        if self.protocol.starts(&message.kind) {
            // A duplicate id is the engine's to refuse; it does not start a second operation.
            if !self.active.contains(id.as_ref()) {
                if self.active.len() >= self.max {
                    return Verdict::Reply(self.limit_error(&id));
                }
                self.active.insert(id.into_owned());
            }
        } else if self.protocol.stops(&message.kind) {
            self.active.remove(id.as_ref());
        }
        Verdict::Forward
    }

    /// A message from the server to the client.
    pub fn on_server_message(&mut self, text: &str) {
        // Events are most of the traffic and end nothing: skip them without parsing their data.
        if text.starts_with(r#"{"type":"next""#) || text.starts_with(r#"{"type":"data""#) {
            return;
        }
        let Ok(message) = serde_json::from_str::<Envelope<'_>>(text) else {
            return;
        };
        if let (Some(id), "complete" | "error") = (message.id, message.kind.as_ref()) {
            self.active.remove(id.as_ref());
        }
    }

    fn limit_error(&self, id: &str) -> String {
        serde_json::json!({
            "type": "error",
            "id": id,
            "payload": [{
                "message": format!("A connection may run at most {} subscriptions", self.max),
                "extensions": { "code": SUBSCRIPTION_LIMIT_EXCEEDED, "limit": self.max },
            }],
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> WebSocketLimits {
        WebSocketLimits {
            max_subscriptions_per_connection: max,
            ..WebSocketLimits::default()
        }
    }

    fn subscribe(id: &str) -> String {
        format!(
            r#"{{"type":"subscribe","id":"{id}","payload":{{"query":"subscription {{ a }}"}}}}"#
        )
    }

    #[test]
    fn defaults_pass_the_check_and_zeros_do_not() {
        let defaults = WebSocketLimits::default();
        assert!(defaults.check().is_empty());
        assert_eq!(defaults.connection_init_timeout, Duration::from_secs(10));
        assert_eq!(defaults.max_subscriptions_per_connection, 100);
        assert_eq!(defaults.max_message_size, 1024 * 1024);
        let zero = WebSocketLimits {
            connection_init_timeout: Duration::ZERO,
            max_subscriptions_per_connection: 0,
            max_message_size: 0,
        };
        assert_eq!(
            zero.check(),
            [
                "`connection_init_timeout` must be longer than zero",
                "`max_subscriptions_per_connection` must be at least 1",
                "`max_message_size` must be at least 1",
            ]
        );
    }

    #[test]
    fn limits_read_from_config_text_and_refuse_unknown_keys() {
        let limits: WebSocketLimits =
            serde_json::from_str(r#"{"connection_init_timeout": "3s", "max_message_size": 10}"#)
                .unwrap();
        assert_eq!(limits.connection_init_timeout, Duration::from_secs(3));
        assert_eq!(limits.max_message_size, 10);
        assert_eq!(limits.max_subscriptions_per_connection, 100);
        assert!(serde_json::from_str::<WebSocketLimits>(r#"{"max_subscriptions": 1}"#).is_err());
    }

    #[test]
    fn one_subscription_past_the_cap_is_refused_with_an_error_for_its_id() {
        let mut counter = SubscriptionCounter::new(Protocol::TransportWs, &limits(2));
        assert_eq!(counter.on_client_message(&subscribe("1")), Verdict::Forward);
        assert_eq!(counter.on_client_message(&subscribe("2")), Verdict::Forward);
        let Verdict::Reply(reply) = counter.on_client_message(&subscribe("3")) else {
            panic!("the third subscription must be refused");
        };
        let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["type"], "error");
        assert_eq!(reply["id"], "3");
        assert_eq!(
            reply["payload"][0]["extensions"]["code"],
            SUBSCRIPTION_LIMIT_EXCEEDED
        );
        assert_eq!(reply["payload"][0]["extensions"]["limit"], 2);
        assert_eq!(counter.active(), 2);
        // A duplicate id is the engine's business, and counts once.
        assert_eq!(counter.on_client_message(&subscribe("1")), Verdict::Forward);
        assert_eq!(counter.active(), 2);
    }

    #[test]
    fn operations_end_by_either_side() {
        let mut counter = SubscriptionCounter::new(Protocol::TransportWs, &limits(2));
        counter.on_client_message(&subscribe("1"));
        counter.on_client_message(&subscribe("2"));
        counter.on_client_message(r#"{"type":"complete","id":"1"}"#);
        assert_eq!(counter.active(), 1);
        counter.on_server_message(r#"{"type":"next","id":"2","payload":{"data":{}}}"#);
        assert_eq!(counter.active(), 1, "events end nothing");
        counter.on_server_message(r#"{"type":"error","id":"2","payload":[]}"#);
        assert_eq!(counter.active(), 0);
        counter.on_client_message(&subscribe("3"));
        counter.on_server_message(r#"{"id":"3","type":"complete"}"#);
        assert_eq!(counter.active(), 0);
        assert_eq!(counter.on_client_message(&subscribe("4")), Verdict::Forward);
    }

    #[test]
    fn the_legacy_protocol_counts_start_and_stop() {
        let mut counter = SubscriptionCounter::new(Protocol::LegacyWs, &limits(1));
        let start = |id: &str| format!(r#"{{"type":"start","id":"{id}","payload":{{}}}}"#);
        assert_eq!(counter.on_client_message(&start("a")), Verdict::Forward);
        assert!(matches!(
            counter.on_client_message(&start("b")),
            Verdict::Reply(_)
        ));
        // `subscribe` means nothing in this protocol.
        assert_eq!(counter.on_client_message(&subscribe("c")), Verdict::Forward);
        counter.on_client_message(r#"{"type":"stop","id":"a"}"#);
        assert_eq!(counter.active(), 0);
        assert_eq!(
            Protocol::from_subprotocol("graphql-ws"),
            Some(Protocol::LegacyWs)
        );
        assert_eq!(
            Protocol::from_subprotocol("graphql-transport-ws"),
            Some(Protocol::TransportWs)
        );
        assert_eq!(Protocol::from_subprotocol("mqtt"), None);
    }

    #[test]
    fn messages_that_do_not_parse_are_the_engines_to_answer() {
        let mut counter = SubscriptionCounter::new(Protocol::TransportWs, &limits(1));
        assert_eq!(counter.on_client_message("not json"), Verdict::Forward);
        assert_eq!(
            counter.on_client_message(r#"{"type":"subscribe"}"#),
            Verdict::Forward
        );
        counter.on_server_message("{");
        assert_eq!(counter.active(), 0);
    }

    #[test]
    fn the_token_deadline_is_exp_plus_leeway() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let leeway = Duration::from_secs(30);
        let left = token_deadline(now + 100.0, leeway).unwrap() - Instant::now();
        assert!(
            left > Duration::from_secs(125) && left <= Duration::from_secs(131),
            "{left:?}"
        );
        // Expired but within the leeway: accepted for the rest of it.
        let left = token_deadline(now - 10.0, leeway).unwrap() - Instant::now();
        assert!(left > Duration::from_secs(15), "{left:?}");
        // Past both: due now.
        let at = token_deadline(now - 100.0, leeway).unwrap();
        assert!(at <= Instant::now());
        assert_eq!(token_deadline(1e300, leeway), None);
        assert_eq!(token_deadline(f64::NAN, leeway), None);
    }
}
