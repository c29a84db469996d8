//! Retries of subgraph queries: which failures are worth retrying, how long to wait, and a
//! budget that caps retries to a fraction of recent traffic (plus a small floor), so a failing
//! subgraph sees at most `1 + budget_ratio` times its normal load, never `max_attempts` times.
//! The budget is tower's `TpsBudget` (Finagle's retry budget).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;
use tower::retry::budget::{Budget, TpsBudget};

use crate::config::RetryConfig;

pub(crate) struct RetryPolicy {
    config: RetryConfig,
    /// First attempts deposit, retries withdraw, over `budget_window`; `budget_min_per_second`
    /// is the reserve that allows retries without traffic.
    budget: TpsBudget,
    jitter_seed: ahash::RandomState,
    jitter_counter: AtomicU64,
}

impl RetryPolicy {
    pub(crate) fn new(config: RetryConfig) -> RetryPolicy {
        RetryPolicy {
            budget: TpsBudget::new(
                config.budget_window,
                config.budget_min_per_second,
                config.budget_ratio as f32,
            ),
            config,
            jitter_seed: ahash::RandomState::new(),
            jitter_counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn max_attempts(&self) -> u32 {
        self.config.max_attempts.max(1)
    }

    /// Counts a first attempt: it earns the budget `budget_ratio` retries.
    pub(crate) fn record_request(&self) {
        self.budget.deposit();
    }

    /// Takes one retry from the budget, if there is one left.
    pub(crate) fn try_retry(&self) -> bool {
        self.budget.withdraw()
    }

    /// Wait before retry number `retry` (1 for the first): exponential, capped, with jitter
    /// between half and all of it so that clients retrying together spread out.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exponential = self
            .config
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let capped = exponential.min(self.config.max_backoff);
        let random = self
            .jitter_seed
            .hash_one(self.jitter_counter.fetch_add(1, Ordering::Relaxed));
        let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
        capped.mul_f64(fraction)
    }
}

/// HTTP statuses that mean "this replica could not serve it now": safe to retry for queries.
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ratio: f64, floor: u32) -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            budget_ratio: ratio,
            budget_min_per_second: floor,
            budget_window: Duration::from_secs(10),
            ..RetryConfig::default()
        })
    }

    #[test]
    fn the_budget_is_a_fraction_of_recent_requests() {
        let policy = policy(0.2, 0);
        assert!(!policy.try_retry(), "no traffic, no floor: no retries");
        for _ in 0..10 {
            policy.record_request();
        }
        assert!(policy.try_retry());
        assert!(policy.try_retry());
        assert!(!policy.try_retry(), "20% of 10 is 2");
        let floor = self::policy(0.0, 1);
        for _ in 0..10 {
            assert!(floor.try_retry());
        }
        assert!(!floor.try_retry(), "1 per second over 10 seconds");
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = RetryPolicy::new(RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            ..RetryConfig::default()
        });
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(150) && third <= Duration::from_millis(300));
        }
        assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retryable_status(StatusCode::INTERNAL_SERVER_ERROR));
    }
}
