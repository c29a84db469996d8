//! Per-endpoint traffic counters, served at `GET /stats`: how many calls and bytes a router spends
//! on the subgraphs per client request, which is exactly what outbound deduplication saves.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};

/// Live counters of one endpoint; updated with relaxed atomics (totals only, no ordering needed).
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
}

impl Counters {
    pub fn record(&self, request_bytes: usize, response_bytes: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.request_bytes
            .fetch_add(request_bytes as u64, Ordering::Relaxed);
        self.response_bytes
            .fetch_add(response_bytes as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Traffic {
        Traffic {
            requests: self.requests.load(Ordering::Relaxed),
            request_bytes: self.request_bytes.load(Ordering::Relaxed),
            response_bytes: self.response_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Totals of one endpoint since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub requests: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// `GET /stats`: traffic by endpoint name.
pub type StatsSnapshot = BTreeMap<String, Traffic>;

/// Traffic of all endpoints between two snapshots.
pub fn total_between(before: &StatsSnapshot, after: &StatsSnapshot) -> Traffic {
    let mut total = Traffic::default();
    for (name, late) in after {
        let early = before.get(name).copied().unwrap_or_default();
        total.requests += late.requests.saturating_sub(early.requests);
        total.request_bytes += late.request_bytes.saturating_sub(early.request_bytes);
        total.response_bytes += late.response_bytes.saturating_sub(early.response_bytes);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_differences_span_endpoints() {
        let counters = Counters::default();
        counters.record(10, 100);
        counters.record(5, 50);
        let accounts = counters.snapshot();
        assert_eq!(
            accounts,
            Traffic {
                requests: 2,
                request_bytes: 15,
                response_bytes: 150
            }
        );

        let before = StatsSnapshot::from([(
            "accounts".into(),
            Traffic {
                requests: 1,
                request_bytes: 10,
                response_bytes: 100,
            },
        )]);
        let after = StatsSnapshot::from([
            ("accounts".into(), accounts),
            (
                "reviews".into(),
                Traffic {
                    requests: 3,
                    request_bytes: 1,
                    response_bytes: 2,
                },
            ),
        ]);
        assert_eq!(
            total_between(&before, &after),
            Traffic {
                requests: 4,
                request_bytes: 6,
                response_bytes: 52
            }
        );
    }
}
