//! Subgraph resilience settings: circuit breaker, retries, load balancing and health checks.
//! Each section sits in `subgraph_defaults` and may be replaced per subgraph.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A circuit breaker per subgraph, with the knobs of Hystrix. Statistics are kept over a
/// rolling `window`; once it holds at least `request_volume_threshold` requests of which at
/// least `error_percent_threshold` percent failed (transport errors, timeouts, HTTP 5xx,
/// concurrency rejections), the breaker opens and that subgraph's fetches fail at once with
/// `SUBREQUEST_CIRCUIT_OPEN`. After `sleep_window` one probe request is let through
/// (half-open): its success closes the breaker, its failure opens it for another window.
/// The request timeout is the subgraph's `timeout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Turns the breaker on.
    pub enabled: bool,
    /// Requests in flight to the subgraph beyond which new ones fail at once with
    /// `SUBREQUEST_CONCURRENCY_EXCEEDED` (and count as failures).
    pub max_concurrent_requests: usize,
    /// Fewest requests in the window before the error rate can open the breaker.
    pub request_volume_threshold: u32,
    /// Failure percentage (1–100) at or above which the breaker opens.
    pub error_percent_threshold: u8,
    /// How long an open breaker rejects before letting one probe through.
    #[serde(with = "humantime_serde")]
    pub sleep_window: Duration,
    /// Length of the rolling statistics window (kept in 10 buckets).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            enabled: true,
            max_concurrent_requests: 1024,
            request_volume_threshold: 20,
            error_percent_threshold: 50,
            sleep_window: Duration::from_secs(5),
            window: Duration::from_secs(10),
        }
    }
}

/// Retries of failed subgraph queries (never mutations): on connection errors and HTTP 502,
/// 503 and 504, with exponential backoff, preferring another replica, and within a budget so
/// retries cannot multiply the load on a struggling subgraph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Turns retries on.
    pub enabled: bool,
    /// Attempts per fetch, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time, with jitter.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Retries allowed as a fraction of the requests in the last `budget_window`.
    pub budget_ratio: f64,
    /// Retries allowed per second on top of the ratio, so a quiet subgraph can still retry.
    pub budget_min_per_second: u32,
    /// Window over which requests and retries are counted for the budget (1s to 60s).
    #[serde(with = "humantime_serde")]
    pub budget_window: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            max_attempts: 3,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_millis(500),
            budget_ratio: 0.2,
            budget_min_per_second: 10,
            budget_window: Duration::from_secs(10),
        }
    }
}

/// How a request picks one of a subgraph's URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancing {
    /// In turn.
    RoundRobin,
    /// The replica with the fewest requests in flight (ties in turn).
    LeastOutstanding,
}

/// Active health checks of a subgraph's replicas (run only when it has several URLs): every
/// `interval` each replica gets `POST {"query":"{ __typename }"}`; `unhealthy_threshold`
/// failures in a row eject it (so do as many connection failures of real requests), and
/// `healthy_threshold` successes in a row bring it back. When every replica is ejected, all are
/// tried again rather than failing everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Turns health checks on.
    pub enabled: bool,
    /// Time between checks of one replica.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Time allowed for one check.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Failed checks in a row that take a replica out of rotation.
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that put it back.
    pub healthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            enabled: true,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            unhealthy_threshold: 2,
            healthy_threshold: 2,
        }
    }
}
