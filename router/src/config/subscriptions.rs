//! Subscription settings: the client transports (WebSocket, SSE), their limits and keep-alive,
//! and the upstream WebSocket connections to subgraphs. The WebSocket limits
//! (`connection_init_timeout`, `max_subscriptions_per_connection`, `max_message_size`) take their
//! defaults from `shippy_security::websocket::WebSocketLimits`, which the subgraphs apply too.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shippy_security::websocket::WebSocketLimits;

/// Subscriptions over WebSocket (`graphql-transport-ws`, legacy `graphql-ws`) and SSE on the
/// GraphQL path. Restart-only: a reload that changes it is ignored and reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionsConfig {
    /// Accept subscriptions over WebSocket and SSE.
    pub enabled: bool,
    /// Open subscription connections (WebSocket connections plus SSE streams) the router
    /// accepts at once; an upgrade beyond it gets HTTP 503.
    pub max_connections: usize,
    /// Subscriptions one WebSocket connection may run at once; one more is refused with an
    /// `error` message (`SUBSCRIPTION_LIMIT_EXCEEDED`), the connection stays open.
    pub max_subscriptions_per_connection: usize,
    /// Events buffered per subscriber that the client has not read yet.
    pub buffer_size: usize,
    /// What happens when a subscriber's buffer is full.
    pub slow_client: SlowClientPolicy,
    /// How often the router pings idle WebSocket clients (and upstream subgraphs), and sends an
    /// SSE comment, so that proxies keep the connection and dead peers are noticed.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// How long a WebSocket client has to send `connection_init` (closed with 4408 after).
    #[serde(with = "humantime_serde")]
    pub connection_init_timeout: Duration,
    /// How long the router waits for a subgraph to open its WebSocket and acknowledge
    /// `connection_init`.
    #[serde(with = "humantime_serde")]
    pub upstream_connect_timeout: Duration,
    /// Largest message accepted from a client or a subgraph, in bytes.
    pub max_message_size: usize,
    /// WebSocket URL (`ws://` or `wss://`) per subgraph name, for subgraphs that serve
    /// subscriptions elsewhere than at their HTTP URL. Default: the subgraph's URL (its first
    /// healthy replica's) with `http` turned into `ws`.
    pub subgraph_urls: BTreeMap<String, String>,
}

/// A subscriber whose buffer is full is either closed (it must resubscribe, and knows it:
/// WebSocket close 1008 / an SSE error event) or loses the events that do not fit, each loss
/// reported as an error item (`SUBSCRIPTION_EVENTS_DROPPED` with the count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowClientPolicy {
    /// Close the subscription (WebSocket 1008, an SSE error event).
    Close,
    /// Drop the events that do not fit and report how many were lost.
    Drop,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        SubscriptionsConfig {
            enabled: true,
            max_connections: 20_000,
            max_subscriptions_per_connection: WebSocketLimits::MAX_SUBSCRIPTIONS_PER_CONNECTION,
            buffer_size: 128,
            slow_client: SlowClientPolicy::Close,
            keep_alive: Duration::from_secs(15),
            connection_init_timeout: WebSocketLimits::CONNECTION_INIT_TIMEOUT,
            upstream_connect_timeout: Duration::from_secs(10),
            max_message_size: WebSocketLimits::MAX_MESSAGE_SIZE,
            subgraph_urls: BTreeMap::new(),
        }
    }
}

impl SubscriptionsConfig {
    /// Problems serde cannot find, for `RouterConfig::check`.
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        for (name, value) in [
            ("max_connections", self.max_connections),
            (
                "max_subscriptions_per_connection",
                self.max_subscriptions_per_connection,
            ),
            ("buffer_size", self.buffer_size),
            ("max_message_size", self.max_message_size),
        ] {
            if value == 0 {
                problems.push(format!("`subscriptions.{name}` must be at least 1"));
            }
        }
        for (name, value) in [
            ("keep_alive", self.keep_alive),
            ("connection_init_timeout", self.connection_init_timeout),
            ("upstream_connect_timeout", self.upstream_connect_timeout),
        ] {
            if value.is_zero() {
                problems.push(format!("`subscriptions.{name}` must be longer than zero"));
            }
        }
        for (name, url) in &self.subgraph_urls {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                problems.push(format!(
                    "`subscriptions.subgraph_urls.{name}`: `{url}` is not a ws:// or wss:// URL"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_zeros_are_refused() {
        let mut problems = Vec::new();
        SubscriptionsConfig::default().check(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let zero = SubscriptionsConfig {
            max_connections: 0,
            max_subscriptions_per_connection: 0,
            buffer_size: 0,
            max_message_size: 0,
            keep_alive: Duration::ZERO,
            connection_init_timeout: Duration::ZERO,
            upstream_connect_timeout: Duration::ZERO,
            ..SubscriptionsConfig::default()
        };
        zero.check(&mut problems);
        assert_eq!(problems.len(), 7, "{problems:?}");
        assert!(problems[0].contains("`subscriptions.max_connections` must be at least 1"));
        let mut problems = Vec::new();
        let mut urls = SubscriptionsConfig::default();
        urls.subgraph_urls
            .insert("events".into(), "http://events/graphql".into());
        urls.check(&mut problems);
        assert_eq!(
            problems,
            [
                "`subscriptions.subgraph_urls.events`: `http://events/graphql` is not a ws:// or wss:// URL"
            ]
        );
    }

    #[test]
    fn the_slow_client_policy_reads_from_config_text() {
        let config: SubscriptionsConfig =
            serde_json::from_str(r#"{"slow_client": "drop", "keep_alive": "5s"}"#).unwrap();
        assert_eq!(config.slow_client, SlowClientPolicy::Drop);
        assert_eq!(config.keep_alive, Duration::from_secs(5));
        assert!(serde_json::from_str::<SubscriptionsConfig>(r#"{"slow_client": "wait"}"#).is_err());
    }
}
