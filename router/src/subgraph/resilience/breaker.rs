//! A circuit breaker with Hystrix's knobs (see `CircuitBreakerConfig`): closed → open when the
//! error rate over the rolling window crosses the threshold with enough volume; open → half-open
//! after the sleep window, letting exactly one probe through; the probe's outcome closes the
//! breaker or opens it again.
//!
//! Every admitted request holds a [`Permit`] and reports its outcome through it; a permit
//! dropped without a report (the request was cancelled) frees its concurrency slot, and a
//! cancelled probe lets the next request probe instead.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::Instant;

use super::window::RollingWindow;
use crate::config::CircuitBreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// One probe is (or may be) in flight.
    HalfOpen {
        probing: bool,
    },
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    Open,
    Concurrency,
}

struct State {
    phase: Phase,
    /// (successes, failures)
    window: RollingWindow,
}

pub(crate) struct CircuitBreaker {
    subgraph: String,
    config: CircuitBreakerConfig,
    state: Mutex<State>,
    in_flight: AtomicUsize,
}

/// An admitted request. Report its outcome with [`Permit::finish`].
pub(crate) struct Permit<'b> {
    breaker: &'b CircuitBreaker,
    probe: bool,
    finished: bool,
}

impl Permit<'_> {
    pub(crate) fn finish(mut self, success: bool) {
        self.finished = true;
        self.breaker.record(self.probe, success);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.breaker.in_flight.fetch_sub(1, Ordering::AcqRel);
        if !self.finished && self.probe {
            let mut state = self.breaker.lock();
            if let Phase::HalfOpen { probing: true } = state.phase {
                state.phase = Phase::HalfOpen { probing: false };
            }
        }
    }
}

impl CircuitBreaker {
    pub(crate) fn new(subgraph: &str, config: CircuitBreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            subgraph: subgraph.to_string(),
            state: Mutex::new(State {
                phase: Phase::Closed,
                window: RollingWindow::new(config.window),
            }),
            config,
            in_flight: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// Admits a request, or says why not.
    pub(crate) fn admit(&self) -> Result<Permit<'_>, Rejected> {
        let probe = {
            let mut state = self.lock();
            match state.phase {
                Phase::Closed => false,
                Phase::Open { until } if Instant::now() >= until => {
                    tracing::info!(subgraph = %self.subgraph, "circuit half-open: probing");
                    state.phase = Phase::HalfOpen { probing: true };
                    true
                }
                Phase::Open { .. } | Phase::HalfOpen { probing: true } => {
                    return Err(Rejected::Open);
                }
                Phase::HalfOpen { probing: false } => {
                    state.phase = Phase::HalfOpen { probing: true };
                    true
                }
            }
        };
        let in_flight = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = Permit {
            breaker: self,
            probe,
            finished: false,
        };
        if in_flight >= self.config.max_concurrent_requests {
            // Counted as a failure, as Hystrix does: an overloaded subgraph should trip too.
            permit.finish(false);
            return Err(Rejected::Concurrency);
        }
        Ok(permit)
    }

    fn record(&self, probe: bool, success: bool) {
        let mut state = self.lock();
        if probe {
            if success {
                tracing::info!(subgraph = %self.subgraph, "circuit closed: probe succeeded");
                state.phase = Phase::Closed;
                state.window.clear();
            } else {
                tracing::warn!(subgraph = %self.subgraph, "circuit open again: probe failed");
                state.phase = Phase::Open {
                    until: Instant::now() + self.config.sleep_window,
                };
            }
            return;
        }
        state.window.add(u64::from(success), u64::from(!success));
        if success || state.phase != Phase::Closed {
            return;
        }
        let (successes, failures) = state.window.totals();
        let total = successes + failures;
        if total >= u64::from(self.config.request_volume_threshold)
            && failures * 100 >= u64::from(self.config.error_percent_threshold) * total
        {
            tracing::warn!(
                subgraph = %self.subgraph,
                failures,
                total,
                sleep_window = ?self.config.sleep_window,
                "circuit open: too many failures"
            );
            metrics::counter!("shippy_router_circuit_opened_total", "subgraph" => self.subgraph.clone())
                .increment(1);
            state.phase = Phase::Open {
                until: Instant::now() + self.config.sleep_window,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(
            "s",
            CircuitBreakerConfig {
                enabled: true,
                max_concurrent_requests: 2,
                request_volume_threshold: 4,
                error_percent_threshold: 50,
                sleep_window: Duration::from_secs(5),
                window: Duration::from_secs(10),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_errors_then_half_opens_and_closes() {
        let breaker = breaker();
        // Below the volume threshold nothing happens, whatever the error rate.
        for _ in 0..3 {
            breaker.admit().unwrap().finish(false);
        }
        assert_eq!(breaker.phase(), Phase::Closed);
        breaker.admit().unwrap().finish(false);
        assert!(matches!(breaker.phase(), Phase::Open { .. }));
        assert_eq!(breaker.admit().err(), Some(Rejected::Open));

        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = breaker.admit().unwrap();
        assert_eq!(breaker.phase(), Phase::HalfOpen { probing: true });
        // Only one probe at a time.
        assert_eq!(breaker.admit().err(), Some(Rejected::Open));
        probe.finish(false);
        assert!(matches!(breaker.phase(), Phase::Open { .. }));

        tokio::time::advance(Duration::from_secs(5)).await;
        breaker.admit().unwrap().finish(true);
        assert_eq!(breaker.phase(), Phase::Closed);
        // The window restarted: one failure does not reopen it.
        breaker.admit().unwrap().finish(false);
        assert_eq!(breaker.phase(), Phase::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn successes_keep_it_closed_and_old_failures_expire() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.admit().unwrap().finish(false);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        breaker.admit().unwrap().finish(false);
        assert_eq!(breaker.phase(), Phase::Closed);
        for _ in 0..3 {
            breaker.admit().unwrap().finish(true);
        }
        breaker.admit().unwrap().finish(false);
        assert_eq!(
            breaker.phase(),
            Phase::Closed,
            "2 failures of 6 is under 50%"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded_and_a_cancelled_probe_frees_the_slot() {
        let breaker = breaker();
        let a = breaker.admit().unwrap();
        let b = breaker.admit().unwrap();
        assert_eq!(breaker.admit().err(), Some(Rejected::Concurrency));
        drop(a);
        let c = breaker.admit().unwrap();
        drop((b, c));
        // The concurrency rejection counted as one failure; three more open the breaker.
        for _ in 0..3 {
            breaker.admit().unwrap().finish(false);
        }
        assert!(matches!(breaker.phase(), Phase::Open { .. }));
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = breaker.admit().unwrap();
        drop(probe);
        assert_eq!(breaker.phase(), Phase::HalfOpen { probing: false });
        breaker.admit().unwrap().finish(true);
        assert_eq!(breaker.phase(), Phase::Closed);
    }
}
