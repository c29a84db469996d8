//! The Redis backend: GCRA in one Lua script, so that check-and-update is atomic and every router
//! replica using the same Redis and key prefix shares one quota.
//!
//! The script reads Redis's own clock (`TIME`), so replicas with skewed clocks still agree. Each
//! key holds the "theoretical arrival time" of the next selection and expires once its quota has
//! fully recovered, so idle keys cost nothing. When Redis cannot answer in time, the configured
//! policy decides (fail open or closed) and the failure is logged.
//!
//! On a Redis Cluster nothing changes: the script touches one key (`<prefix><field>:<client>`), so
//! every limit lives on one slot and the key names are those of a single server. A primary failover
//! can lose the last few increments of the keys it held (replication is asynchronous): for a moment
//! a client gets up to one more burst, which a rate limit tolerates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shippy_security::redis::{LazyConnection, RedisClient};

use super::Decision;
use super::LimitError;
use crate::config::{FailurePolicy, FieldRateLimit, RedisRateLimitConfig};

/// KEYS[1]: the counter. ARGV[1]: emission interval in microseconds (period / limit).
/// ARGV[2]: the limit (burst). Returns {1, 0} when allowed, {0, microseconds to wait} when not.
const GCRA: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local period = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, 0}
"#;

pub(crate) struct RedisLimiter {
    connection: LazyConnection,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
    on_error: FailurePolicy,
    /// Seconds (since the limiter was made) of the last failure logged: an unreachable Redis is
    /// logged at most every few seconds, not once per limited field of every request.
    last_failure_log: AtomicU64,
    created: tokio::time::Instant,
}

/// Shortest time between two logged Redis failures.
const FAILURE_LOG_INTERVAL_SECS: u64 = 10;

impl RedisLimiter {
    pub(crate) fn new(config: &RedisRateLimitConfig) -> Result<RedisLimiter, LimitError> {
        let url = config.url.as_deref().ok_or(LimitError::RedisUrlMissing)?;
        let client = RedisClient::open(url).map_err(|source| LimitError::RedisUrl {
            // The configured URL may carry a password.
            url: shippy_security::redis::redacted(url),
            source,
        })?;
        Ok(RedisLimiter {
            connection: LazyConnection::new(client, config.timeout),
            script: redis::Script::new(GCRA),
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            on_error: config.on_error,
            last_failure_log: AtomicU64::new(0),
            created: tokio::time::Instant::now(),
        })
    }

    pub(crate) async fn check(
        &self,
        coordinate: &str,
        rule: &FieldRateLimit,
        key: &str,
    ) -> Decision {
        match tokio::time::timeout(self.timeout, self.run(coordinate, rule, key)).await {
            Ok(Ok(decision)) => decision,
            Ok(Err(error)) => self.failed(coordinate, &error.to_string()),
            Err(_) => self.failed(coordinate, "timed out"),
        }
    }

    async fn run(
        &self,
        coordinate: &str,
        rule: &FieldRateLimit,
        key: &str,
    ) -> redis::RedisResult<Decision> {
        let mut connection = self.connection.get().await?;
        let interval = (rule.per.as_micros() / u128::from(rule.limit.max(1))).max(1);
        let (allowed, wait): (i64, i64) = self
            .script
            .key(format!("{}{coordinate}:{key}", self.prefix))
            .arg(u64::try_from(interval).unwrap_or(u64::MAX))
            .arg(rule.limit)
            .invoke_async(&mut connection)
            .await?;
        Ok(if allowed == 1 {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after: Duration::from_micros(u64::try_from(wait).unwrap_or(0)),
            }
        })
    }

    fn failed(&self, coordinate: &str, reason: &str) -> Decision {
        metrics::counter!("shippy_router_rate_limit_store_errors_total").increment(1);
        let now = self.created.elapsed().as_secs() + FAILURE_LOG_INTERVAL_SECS;
        let last = self.last_failure_log.load(Ordering::Relaxed);
        let log = now >= last + FAILURE_LOG_INTERVAL_SECS
            && self
                .last_failure_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        match self.on_error {
            FailurePolicy::Open => {
                if log {
                    tracing::error!(
                        field = coordinate,
                        reason,
                        "rate limit store unreachable; letting limited fields through (on_error: open)"
                    );
                }
                Decision::Allowed
            }
            FailurePolicy::Closed => {
                if log {
                    tracing::error!(
                        field = coordinate,
                        reason,
                        "rate limit store unreachable; refusing limited fields (on_error: closed)"
                    );
                }
                Decision::Limited {
                    retry_after: Duration::from_secs(1),
                }
            }
        }
    }
}
