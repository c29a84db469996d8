//! Revoked token ids (`jti`): written by `logout` in the user subgraph, read by the router on every
//! authenticated request.
//!
//! A revocation only has to last until the token would have expired anyway, so every entry carries
//! that time and disappears with it; the store never grows beyond the tokens revoked within one
//! token lifetime. Two stores:
//! - [`MemoryRevocations`]: one process (`shippy up` without Redis, where the router and the user
//!   subgraph share one `Arc`);
//! - [`RedisRevocations`]: `SET {prefix}{jti} 1 EX <seconds until exp>`, shared by every router
//!   replica and user subgraph that uses the same Redis and prefix (the router's rate-limit Redis).
//!
//! Neither caches: a revocation applies to the very next request, on every replica. The Redis store
//! costs one `EXISTS` per authenticated request, bounded by its timeout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;

use crate::redis::{LazyConnection, RedisClient};

/// Key prefix of the Redis store unless configured otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "shippy:revoked:";

/// Time allowed for one Redis round trip unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// Most revoked ids the memory store holds unless configured otherwise: far more than one process
/// sees log out within a token lifetime, small enough (~100 bytes each) to stay bounded.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Longest `jti` accepted: ours are UUIDs; a longer one is not worth a store entry.
pub const MAX_JTI_LEN: usize = 128;

/// Why the store could not answer. The router refuses the request (it cannot tell whether the token
/// was revoked); `logout` reports the failure, so a user is never told they are logged out when
/// they are not.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// The token id is empty or longer than [`MAX_JTI_LEN`].
    #[error("the token id is empty or longer than {MAX_JTI_LEN} bytes")]
    BadId,
    /// The memory store is full of live revocations.
    #[error("the revocation store is full ({0} live entries)")]
    Full(usize),
    /// Redis did not answer in time.
    #[error("the revocation store did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or could not be reached.
    #[error("the revocation store failed: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Where revoked token ids live until their tokens expire.
#[async_trait::async_trait]
pub trait RevocationStore: Send + Sync + std::fmt::Debug {
    /// Revokes `jti` until `expires_at` (Unix seconds, the token's `exp`). Revoking a token that
    /// has already expired is a no-op: nothing would accept it anyway.
    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), RevocationError>;

    /// Whether `jti` is revoked (and its token not yet expired).
    async fn is_revoked(&self, jti: &str) -> Result<bool, RevocationError>;
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn check_id(jti: &str) -> Result<(), RevocationError> {
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        Err(RevocationError::BadId)
    } else {
        Ok(())
    }
}

/// Revocations of this process only.
#[derive(Debug)]
pub struct MemoryRevocations {
    /// `jti` → `exp` (Unix seconds). Expired entries are swept when the map is full, and ignored
    /// by lookups until then. Never held across an await.
    entries: Mutex<HashMap<String, i64>>,
    max_entries: usize,
}

impl Default for MemoryRevocations {
    fn default() -> Self {
        MemoryRevocations::new(DEFAULT_MAX_ENTRIES)
    }
}

impl MemoryRevocations {
    /// A store holding at most `max_entries` live revocations.
    pub fn new(max_entries: usize) -> MemoryRevocations {
        MemoryRevocations {
            entries: Mutex::new(HashMap::new()),
            max_entries,
        }
    }

    /// Live revocations right now (for tests and metrics).
    pub fn len(&self) -> usize {
        let now = unix_now();
        self.lock().values().filter(|exp| **exp >= now).count()
    }

    /// Whether no revocation is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and
        // removals), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl RevocationStore for MemoryRevocations {
    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), RevocationError> {
        check_id(jti)?;
        let now = unix_now();
        if expires_at < now {
            return Ok(());
        }
        let mut entries = self.lock();
        if entries.len() >= self.max_entries && !entries.contains_key(jti) {
            entries.retain(|_, exp| *exp >= now);
            if entries.len() >= self.max_entries {
                return Err(RevocationError::Full(entries.len()));
            }
        }
        let exp = entries.entry(jti.to_owned()).or_insert(expires_at);
        *exp = (*exp).max(expires_at);
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, RevocationError> {
        check_id(jti)?;
        Ok(self.lock().get(jti).is_some_and(|exp| *exp >= unix_now()))
    }
}

/// Revocations in Redis, shared by every process that uses the same Redis and key prefix.
pub struct RedisRevocations {
    connection: LazyConnection,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only where keys go.
        f.debug_struct("RedisRevocations")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a Redis revocation store could not be set up (a start-up error for the operator).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not a Redis URL.
    #[error("`{url}` is not a Redis URL: {source}")]
    Url {
        /// The URL as configured, its password replaced by `***`.
        url: String,
        /// What the Redis client said.
        #[source]
        source: redis::RedisError,
    },
}

impl RedisRevocations {
    /// A store at `url` (`redis://host:port[/db]`, or a cluster: `redis+cluster://host1:port,...`)
    /// writing keys `{prefix}{jti}` (one key per command, so any slot will do); every Redis round trip
    /// gets `timeout`. Does not connect yet.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<RedisRevocations, StoreError> {
        let client = RedisClient::open(url).map_err(|source| StoreError::Url {
            url: crate::redis::redacted(url),
            source,
        })?;
        Ok(RedisRevocations {
            connection: LazyConnection::new(client, timeout),
            prefix: prefix.to_owned(),
            timeout,
        })
    }

    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, RevocationError>>,
    ) -> Result<T, RevocationError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| RevocationError::Timeout(self.timeout))?
    }
}

#[async_trait::async_trait]
impl RevocationStore for RedisRevocations {
    async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), RevocationError> {
        check_id(jti)?;
        // Until `exp` inclusive, so the entry outlives the last second the token is accepted in.
        let Ok(seconds) = u64::try_from(expires_at - unix_now() + 1) else {
            return Ok(());
        };
        self.bounded(async {
            let mut connection = self.connection.get().await?;
            let () = connection
                .set_ex(format!("{}{jti}", self.prefix), 1u8, seconds.max(1))
                .await?;
            Ok(())
        })
        .await
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, RevocationError> {
        check_id(jti)?;
        self.bounded(async {
            let mut connection = self.connection.get().await?;
            Ok(connection.exists(format!("{}{jti}", self.prefix)).await?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn redis_url() -> String {
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A prefix no other test run shares, so runs never see each other's keys.
    fn unique_prefix() -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("shippy:test:revoked:{}:{nanos}:", std::process::id())
    }

    /// The contract both stores keep.
    async fn behaves_like_a_store(store: Arc<dyn RevocationStore>) {
        let now = unix_now();
        assert!(!store.is_revoked("a").await.unwrap());
        store.revoke("a", now + 600).await.unwrap();
        assert!(store.is_revoked("a").await.unwrap());
        assert!(!store.is_revoked("b").await.unwrap());
        // Revoking twice is harmless.
        store.revoke("a", now + 600).await.unwrap();
        assert!(store.is_revoked("a").await.unwrap());
        // An already expired token needs no entry.
        store.revoke("old", now - 10).await.unwrap();
        assert!(!store.is_revoked("old").await.unwrap());
        // Ids nobody issues are refused, not stored.
        assert!(matches!(
            store.revoke("", now + 600).await,
            Err(RevocationError::BadId)
        ));
        let long = "x".repeat(MAX_JTI_LEN + 1);
        assert!(matches!(
            store.is_revoked(&long).await,
            Err(RevocationError::BadId)
        ));
        // An entry ends when its token expires.
        store.revoke("short", now + 1).await.unwrap();
        assert!(store.is_revoked("short").await.unwrap());
        tokio::time::sleep(Duration::from_millis(3100)).await;
        assert!(!store.is_revoked("short").await.unwrap());
        assert!(store.is_revoked("a").await.unwrap());
    }

    #[tokio::test]
    async fn memory_store_keeps_the_contract() {
        behaves_like_a_store(Arc::new(MemoryRevocations::default())).await;
    }

    #[tokio::test]
    async fn redis_store_keeps_the_contract() {
        let store =
            RedisRevocations::new(&redis_url(), &unique_prefix(), Duration::from_secs(2)).unwrap();
        behaves_like_a_store(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn redis_store_is_shared_by_processes_with_the_same_prefix() {
        let prefix = unique_prefix();
        let timeout = Duration::from_secs(2);
        let writer = RedisRevocations::new(&redis_url(), &prefix, timeout).unwrap();
        let reader = RedisRevocations::new(&redis_url(), &prefix, timeout).unwrap();
        let elsewhere =
            RedisRevocations::new(&redis_url(), &format!("{prefix}other:"), timeout).unwrap();
        writer.revoke("shared", unix_now() + 600).await.unwrap();
        assert!(reader.is_revoked("shared").await.unwrap());
        assert!(!elsewhere.is_revoked("shared").await.unwrap());
        // The key expires with the token: its TTL is the time left, plus the second of `exp`.
        let mut connection = redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let ttl: i64 = connection.ttl(format!("{prefix}shared")).await.unwrap();
        assert!((595..=601).contains(&ttl), "{ttl}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_error_within_the_timeout() {
        // Nothing listens on port 1; the answer must be an error, never "not revoked".
        let timeout = Duration::from_millis(300);
        let store = RedisRevocations::new("redis://127.0.0.1:1", "x:", timeout).unwrap();
        let started = std::time::Instant::now();
        assert!(store.is_revoked("a").await.is_err());
        assert!(store.revoke("a", unix_now() + 60).await.is_err());
        assert!(started.elapsed() < timeout * 4, "{:?}", started.elapsed());
        assert!(RedisRevocations::new("not a url", "x:", timeout).is_err());
        // The Debug output never shows the URL (it may carry a password).
        let secret = RedisRevocations::new("redis://:hunter2@127.0.0.1:1", "x:", timeout).unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn memory_store_is_bounded_and_sweeps_expired_entries() {
        let store = MemoryRevocations::new(2);
        let now = unix_now();
        store.revoke("a", now + 600).await.unwrap();
        store.revoke("b", now + 1).await.unwrap();
        assert_eq!(store.len(), 2);
        // Full of live entries: refused, loudly.
        assert!(matches!(
            store.revoke("c", now + 600).await,
            Err(RevocationError::Full(2))
        ));
        // Re-revoking a known id needs no room.
        store.revoke("a", now + 900).await.unwrap();
        // Once `b` has expired, its room is reused.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        store.revoke("c", now + 600).await.unwrap();
        assert!(store.is_revoked("c").await.unwrap());
        assert!(!store.is_revoked("b").await.unwrap());
        assert_eq!(store.len(), 2);
        assert!(!store.is_empty());
    }
}
