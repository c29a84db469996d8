//! The replicas of one subgraph: which one a request goes to (round-robin or least
//! outstanding), and which are healthy. Active health checks (run by the subgraph client) and
//! connection failures of real requests eject a replica; consecutive successful checks bring it
//! back. Without health checks nothing is ejected, since nothing could bring a replica back.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use http::Uri;

use crate::config::LoadBalancing;

pub(crate) struct Replica {
    pub(crate) uri: Uri,
    outstanding: AtomicUsize,
    healthy: AtomicBool,
    failures: AtomicU32,
    successes: AtomicU32,
}

impl Replica {
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }
}

pub(crate) struct Balancer {
    subgraph: String,
    replicas: Vec<Replica>,
    strategy: LoadBalancing,
    next: AtomicUsize,
    /// Whether replicas can be ejected (only when health checks can bring them back).
    ejection: bool,
    unhealthy_threshold: u32,
    healthy_threshold: u32,
}

/// Marks one request in flight to a replica, for least-outstanding balancing.
pub(crate) struct Outstanding<'b> {
    replica: &'b Replica,
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.replica.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balancer {
    pub(crate) fn new(
        subgraph: &str,
        uris: Vec<Uri>,
        strategy: LoadBalancing,
        ejection: bool,
        unhealthy_threshold: u32,
        healthy_threshold: u32,
    ) -> Balancer {
        Balancer {
            subgraph: subgraph.to_string(),
            replicas: uris
                .into_iter()
                .map(|uri| Replica {
                    uri,
                    outstanding: AtomicUsize::new(0),
                    healthy: AtomicBool::new(true),
                    failures: AtomicU32::new(0),
                    successes: AtomicU32::new(0),
                })
                .collect(),
            strategy,
            next: AtomicUsize::new(0),
            ejection,
            unhealthy_threshold: unhealthy_threshold.max(1),
            healthy_threshold: healthy_threshold.max(1),
        }
    }

    pub(crate) fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// Picks a replica, preferring healthy ones not in `avoid` (replicas this request already
    /// tried). When every replica is unhealthy, all are candidates again.
    pub(crate) fn pick(&self, avoid: &[usize]) -> usize {
        if self.replicas.len() == 1 {
            return 0;
        }
        let healthy_untried: Vec<usize> = (0..self.replicas.len())
            .filter(|i| self.replicas[*i].is_healthy() && !avoid.contains(i))
            .collect();
        let candidates = if !healthy_untried.is_empty() {
            healthy_untried
        } else {
            let healthy: Vec<usize> = (0..self.replicas.len())
                .filter(|i| self.replicas[*i].is_healthy())
                .collect();
            if healthy.is_empty() {
                (0..self.replicas.len()).collect()
            } else {
                healthy
            }
        };
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        match self.strategy {
            LoadBalancing::RoundRobin => candidates[turn % candidates.len()],
            LoadBalancing::LeastOutstanding => {
                let least = candidates
                    .iter()
                    .map(|i| self.replicas[*i].outstanding())
                    .min()
                    .unwrap_or(0);
                let tied: Vec<usize> = candidates
                    .into_iter()
                    .filter(|i| self.replicas[*i].outstanding() == least)
                    .collect();
                tied[turn % tied.len()]
            }
        }
    }

    pub(crate) fn begin(&self, replica: usize) -> Outstanding<'_> {
        let replica = &self.replicas[replica];
        replica.outstanding.fetch_add(1, Ordering::Relaxed);
        Outstanding { replica }
    }

    /// A real request reached the replica (`true`) or could not connect (`false`).
    pub(crate) fn report_request(&self, replica: usize, reachable: bool) {
        let r = &self.replicas[replica];
        if reachable {
            r.failures.store(0, Ordering::Relaxed);
        } else {
            let failures = r.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= self.unhealthy_threshold {
                self.eject(replica, "connection failures");
            }
        }
    }

    /// An active health check passed or failed.
    pub(crate) fn report_check(&self, replica: usize, healthy: bool) {
        let r = &self.replicas[replica];
        if healthy {
            r.failures.store(0, Ordering::Relaxed);
            let successes = r.successes.fetch_add(1, Ordering::Relaxed) + 1;
            if successes >= self.healthy_threshold && !r.healthy.swap(true, Ordering::AcqRel) {
                tracing::info!(subgraph = %self.subgraph, replica = %r.uri, "replica healthy again");
            }
        } else {
            r.successes.store(0, Ordering::Relaxed);
            let failures = r.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= self.unhealthy_threshold {
                self.eject(replica, "failed health checks");
            }
        }
    }

    fn eject(&self, replica: usize, why: &str) {
        let r = &self.replicas[replica];
        if self.ejection && r.healthy.swap(false, Ordering::AcqRel) {
            r.successes.store(0, Ordering::Relaxed);
            tracing::warn!(subgraph = %self.subgraph, replica = %r.uri, why, "replica ejected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(strategy: LoadBalancing) -> Balancer {
        let uris = (1..=3)
            .map(|i| format!("http://127.0.0.1:{i}/").parse().unwrap())
            .collect();
        Balancer::new("s", uris, strategy, true, 2, 2)
    }

    #[test]
    fn round_robin_takes_turns_and_skips_ejected_and_tried_replicas() {
        let b = balancer(LoadBalancing::RoundRobin);
        let picks: Vec<usize> = (0..6).map(|_| b.pick(&[])).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        b.report_request(1, false);
        assert!(
            b.replicas()[1].is_healthy(),
            "one failure is below the threshold"
        );
        b.report_request(1, false);
        assert!(!b.replicas()[1].is_healthy());
        assert!((0..6).all(|_| b.pick(&[]) != 1));
        assert!((0..6).all(|_| b.pick(&[0]) == 2));
        // Two passing checks bring it back.
        b.report_check(1, true);
        assert!(!b.replicas()[1].is_healthy());
        b.report_check(1, true);
        assert!(b.replicas()[1].is_healthy());
    }

    #[test]
    fn all_ejected_means_all_are_tried() {
        let b = balancer(LoadBalancing::RoundRobin);
        for i in 0..3 {
            b.report_check(i, false);
            b.report_check(i, false);
        }
        let mut picks: Vec<usize> = (0..3).map(|_| b.pick(&[])).collect();
        picks.sort();
        assert_eq!(picks, vec![0, 1, 2]);
    }

    #[test]
    fn least_outstanding_prefers_idle_replicas() {
        let b = balancer(LoadBalancing::LeastOutstanding);
        let _busy0 = b.begin(0);
        let _busy2a = b.begin(2);
        let _busy2b = b.begin(2);
        assert!((0..5).all(|_| b.pick(&[]) == 1));
        drop(_busy0);
        let picks: Vec<usize> = (0..4).map(|_| b.pick(&[])).collect();
        assert!(picks.contains(&0) && picks.contains(&1) && !picks.contains(&2));
    }

    #[test]
    fn without_health_checks_nothing_is_ejected() {
        let uris = vec!["http://a/".parse().unwrap(), "http://b/".parse().unwrap()];
        let b = Balancer::new("s", uris, LoadBalancing::RoundRobin, false, 1, 1);
        b.report_request(0, false);
        assert!(b.replicas()[0].is_healthy());
    }
}
