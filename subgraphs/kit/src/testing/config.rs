//! Settings for tests: a fixed token secret, a quick outbox relay, and consumers that read, retry and
//! take over quickly.

use std::time::Duration;

use super::TEST_SECRET;
use crate::{
    config::{AuthConfig, ConsumerConfig, EventsConfig, RelayConfig, Secret, ServerConfig},
    server::SubgraphConfig,
};

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
