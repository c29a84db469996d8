//! Test support shared by every subgraph's integration tests (feature `testing`):
//! - [`database`]: a fresh database per test on SQLite or PostgreSQL (`TEST_DATABASE_URL`);
//! - [`shared_redis`]: a key namespace of one's own on the test Redis (`TEST_REDIS_URL`) and a proxy to cut it;
//! - [`redis_server`], [`redis_cluster`]: a `redis-server`, or a Redis Cluster of six, of the test's own
//!   on free ports, to stop, restart or fail over in the middle of a test;
//! - [`config`]: settings for tests (fixed token secret and router credentials, quick relay and consumers);
//! - [`server`]: servers on `127.0.0.1:0` and readiness waits;
//! - [`client`]: a small GraphQL client over HTTP and WebSocket;
//! - [`eventually`]: polling a condition with a deadline, instead of sleeping and hoping.

pub mod client;
pub mod config;
pub mod database;
pub mod redis_cluster;
pub mod redis_server;
pub mod server;
pub mod shared_redis;

use std::{future::Future, sync::Arc, time::Duration};

pub use client::{GqlResponse, GraphQLClient, RouterCredential, WsClient};
pub use config::{access_config, auth_config, events_config, subgraph_config};
pub use database::{Backend, TestDb, drop_postgres_database_blocking, test_database_url};
pub use redis_cluster::RedisCluster;
pub use redis_server::RedisServer;
pub use server::{TestServer, wait_live};
pub use shared_redis::{RedisNamespace, TcpProxy, test_redis_url};

use crate::events::{EventBus, InProcessBus};

/// The HS256 secret test tokens are signed with.
pub const TEST_SECRET: &str = "shippy-test-secret-0123456789abcdef";

/// The router signing key test subgraphs accept ([`access_config`]).
pub const TEST_ROUTER_KEY: &str = "shippy-test-router-key-0123456789abcdef";

/// The shared secret test subgraphs accept ([`access_config`]) and [`GraphQLClient`] and [`WsClient`]
/// send by default, so tests reach subgraphs the way a third-party router does.
pub const TEST_SUBGRAPH_SECRET: &str = "shippy-test-subgraph-secret-0123456789abcdef";

/// A token for `sub` with `scopes`, issued at `iat` (Unix seconds) for [`auth_config`]'s issuer, audience
/// and lifetime and signed with its key: literal claims, for kit's own tests. (The subgraphs' tests mint
/// tokens with the user subgraph's `TokenIssuer`, which owns the issuing rules.)
pub fn signed_token(sub: &str, scopes: Vec<String>, iat: i64) -> String {
    let cfg = auth_config();
    let claims = crate::auth::Claims {
        sub: sub.to_owned(),
        email: "u@example.com".into(),
        scopes,
        iat,
        exp: iat + i64::try_from(cfg.token_ttl.as_secs()).expect("a test lifetime"),
        iss: cfg.issuer.clone(),
        aud: cfg.audience.clone(),
        jti: Some(uuid::Uuid::new_v4().to_string()),
    };
    crate::auth::TokenSigner::from_config(&cfg)
        .and_then(|signer| signer.sign(&claims))
        .expect("the test key signs")
}

/// A fresh in-process bus.
pub fn bus() -> Arc<dyn EventBus> {
    Arc::new(InProcessBus::default())
}

/// Installs the crypto provider and logging once per test binary.
pub fn init() {
    crate::install_crypto_provider();
    crate::telemetry::init_for_tests();
}

/// Waits until `condition` holds, checking every 20 ms; panics naming `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Generates, for each named `async fn(Backend)`, one `#[tokio::test]` on SQLite and one on PostgreSQL.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::testing::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::testing::Backend::Postgres).await
                }
            )*
        }
    };
}
