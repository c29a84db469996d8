//! A Redis connection made on first use, for the Redis-backed stores of the router and the
//! subgraphs (the rate limiter, the revocation store): one place that says how they connect.
//!
//! Stores are built synchronously, possibly before a runtime exists, so connecting waits for the
//! first command. A failed attempt leaves nothing behind and the next command tries again; the
//! `ConnectionManager` reconnects by itself after that.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// A connection to one Redis server, opened at the first [`get`](Self::get).
pub struct LazyConnection {
    client: redis::Client,
    /// Set by the first successful connect; empty after a failed one.
    connection: OnceCell<ConnectionManager>,
    timeout: Duration,
}

impl std::fmt::Debug for LazyConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's URL may carry a password.
        f.debug_struct("LazyConnection")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl LazyConnection {
    /// A connection to `client`'s server whose connect and every response get `timeout`.
    pub fn new(client: redis::Client, timeout: Duration) -> LazyConnection {
        LazyConnection {
            client,
            connection: OnceCell::new(),
            timeout,
        }
    }

    /// The connection (cheap to clone), connecting first if needed.
    pub async fn get(&self) -> redis::RedisResult<ConnectionManager> {
        let connection = self
            .connection
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(connection.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_on_first_use_and_retries_after_a_failure() {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let lazy = LazyConnection::new(redis::Client::open(url).unwrap(), Duration::from_secs(2));
        let mut connection = lazy.get().await.unwrap();
        let pong: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(pong, "PONG");

        let down = LazyConnection::new(
            redis::Client::open("redis://:hunter2@127.0.0.1:1").unwrap(),
            Duration::from_millis(200),
        );
        assert!(down.get().await.is_err());
        assert!(down.get().await.is_err(), "a failed attempt is tried again");
        assert!(!format!("{down:?}").contains("hunter2"));
    }
}
