//! The in-process backend: one keyed `governor` GCRA limiter per rule.
//!
//! Its clock is tokio's, so tests that pause time (`tokio::time::pause`) control the limits'
//! windows exactly. Key maps are bounded: `housekeeping` drops keys whose quota recovered, and
//! a map that is still full refuses new keys rather than grow without bound.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::Decision;
use crate::config::FieldRateLimit;

/// Tokio's (pausable) monotonic clock, as durations since the limiter was made.
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    start: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

type Keyed = RateLimiter<
    String,
    DashMapStateStore<String>,
    TokioClock,
    governor::middleware::NoOpMiddleware<Duration>,
>;

struct Limiter {
    limiter: Keyed,
    clock: TokioClock,
    /// Time one selection's quota takes to come back; the wait given when the map is full.
    emission: Duration,
}

pub(crate) struct MemoryLimiter {
    limiters: Vec<Limiter>,
    max_keys: usize,
}

/// `limit` per `per` as a governor quota: one cell every `per / limit`, bursts of `limit`.
pub(crate) fn quota(rule: &FieldRateLimit) -> (Quota, Duration) {
    let limit = NonZeroU32::new(rule.limit.max(1)).unwrap_or(NonZeroU32::MIN);
    let emission = (rule.per / limit.get()).max(Duration::from_nanos(1));
    let quota = Quota::with_period(emission)
        .unwrap_or_else(|| Quota::per_second(limit))
        .allow_burst(limit);
    (quota, emission)
}

impl MemoryLimiter {
    pub(crate) fn new<'a>(
        rules: impl Iterator<Item = &'a FieldRateLimit>,
        max_keys: usize,
    ) -> MemoryLimiter {
        let limiters = rules
            .map(|rule| {
                let (quota, emission) = quota(rule);
                let clock = TokioClock::default();
                Limiter {
                    limiter: RateLimiter::new(quota, DashMapStateStore::default(), clock.clone()),
                    clock,
                    emission,
                }
            })
            .collect();
        MemoryLimiter {
            limiters,
            max_keys: max_keys.max(1),
        }
    }

    pub(crate) fn check(&self, rule: usize, key: &str) -> Decision {
        let Some(limiter) = self.limiters.get(rule) else {
            return Decision::Allowed;
        };
        let key = key.to_string();
        if limiter.limiter.len() >= self.max_keys {
            limiter.limiter.retain_recent();
            if limiter.limiter.len() >= self.max_keys {
                tracing::warn!(
                    max_keys = self.max_keys,
                    "rate limiter key map is full; refusing new keys"
                );
                return Decision::Limited {
                    retry_after: limiter.emission,
                };
            }
        }
        match limiter.limiter.check_key(&key) {
            Ok(()) => Decision::Allowed,
            Err(not_until) => Decision::Limited {
                retry_after: not_until.wait_time_from(limiter.clock.now()),
            },
        }
    }

    pub(crate) fn retain_recent(&self) {
        for limiter in &self.limiters {
            limiter.limiter.retain_recent();
            limiter.limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitKey;

    fn limiter(limit: u32, per: Duration, max_keys: usize) -> MemoryLimiter {
        let rule = FieldRateLimit::new(limit, per, LimitKey::User).unwrap();
        MemoryLimiter::new(std::iter::once(&rule), max_keys)
    }

    #[tokio::test(start_paused = true)]
    async fn exhausts_then_recovers_with_time() {
        let limiter = limiter(3, Duration::from_secs(60), 100);
        for _ in 0..3 {
            assert_eq!(limiter.check(0, "a"), Decision::Allowed);
        }
        let Decision::Limited { retry_after } = limiter.check(0, "a") else {
            panic!("the fourth selection within a minute must be limited");
        };
        assert!(
            retry_after > Duration::from_secs(19) && retry_after <= Duration::from_secs(20),
            "{retry_after:?}"
        );
        // Another key has its own quota.
        assert_eq!(limiter.check(0, "b"), Decision::Allowed);
        tokio::time::advance(retry_after).await;
        assert_eq!(limiter.check(0, "a"), Decision::Allowed);
        assert!(matches!(limiter.check(0, "a"), Decision::Limited { .. }));
        // A full period restores the whole burst.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert_eq!(limiter.check(0, "a"), Decision::Allowed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_key_map_refuses_new_keys_until_old_ones_recover() {
        let limiter = limiter(1, Duration::from_secs(10), 2);
        assert_eq!(limiter.check(0, "a"), Decision::Allowed);
        assert_eq!(limiter.check(0, "b"), Decision::Allowed);
        assert!(matches!(limiter.check(0, "c"), Decision::Limited { .. }));
        // Governor forgets a key one emission interval after its quota fully recovered.
        tokio::time::advance(Duration::from_secs(21)).await;
        // "a" and "b" recovered fully and are dropped to make room.
        assert_eq!(limiter.check(0, "c"), Decision::Allowed);
    }
}
