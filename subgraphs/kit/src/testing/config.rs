//! Settings for tests: a fixed token secret and router credentials, a quick outbox relay, and consumers that read, retry and
//! take over quickly.

use std::time::Duration;

use super::{TEST_ROUTER_KEY, TEST_SECRET, TEST_SUBGRAPH_SECRET};
use crate::{
    config::{
        AccessConfig, AssignmentConfig, AuthConfig, ConsumerConfig, EventsConfig, RelayConfig,
        Secret, ServerConfig,
    },
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

/// Access settings tests use: only routers, with the test signing key or the test shared secret.
pub fn access_config() -> AccessConfig {
    AccessConfig {
        router_key: Some(Secret::new(TEST_ROUTER_KEY)),
        shared_secret: Some(Secret::new(TEST_SUBGRAPH_SECRET)),
        ..AccessConfig::default()
    }
}

/// A subgraph configuration for tests: the given database, test auth and access, a quick relay.
pub fn subgraph_config(database_url: &str) -> SubgraphConfig {
    SubgraphConfig {
        database_url: database_url.to_owned(),
        auth: auth_config(),
        access: access_config(),
        server: ServerConfig::default(),
        relay: RelayConfig {
            poll_interval: Duration::from_millis(50),
            retry_initial: Duration::from_millis(20),
            retry_max: Duration::from_millis(500),
            ..RelayConfig::default()
        },
        events: events_config("shippy-test:"),
        assignment: AssignmentConfig::default(),
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
