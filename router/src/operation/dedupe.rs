//! Inbound deduplication: identical queries in flight at the same time (same operation, variables,
//! forwarded headers and identity, and the same fields removed by `authorize` and `rate_limit`)
//! share one execution and one response body. Mutations are never deduplicated.
//!
//! The first request runs the execution inside a `OnceCell`; identical ones arriving meanwhile
//! await it. The entry is removed once answered, so only truly concurrent requests share. If the
//! first request is cancelled (its client went away), the cell stays empty and the next waiter
//! runs the execution itself.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::OnceCell;

#[derive(Default)]
pub struct InboundDedupe {
    in_flight: DashMap<u128, Arc<OnceCell<Bytes>>, ahash::RandomState>,
}

impl InboundDedupe {
    /// The body for `key`: computed by `execute` unless an identical request is computing it.
    pub async fn run<F>(&self, key: u128, execute: impl FnOnce() -> F) -> Bytes
    where
        F: Future<Output = Bytes>,
    {
        let cell = self
            .in_flight
            .entry(key)
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let led = AtomicBool::new(false);
        let body = cell
            .get_or_init(|| {
                led.store(true, Ordering::Relaxed);
                execute()
            })
            .await
            .clone();
        self.in_flight
            .remove_if(&key, |_, current| Arc::ptr_eq(current, &cell));
        if !led.load(Ordering::Relaxed) {
            metrics::counter!("shippy_router_inbound_deduplicated_total").increment(1);
        }
        body
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_identical_requests_share_one_execution() {
        let dedupe = InboundDedupe::default();
        let runs = AtomicUsize::new(0);
        let execute = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Bytes::from_static(b"body")
        };
        let (a, b, c) = tokio::join!(
            dedupe.run(1, execute),
            dedupe.run(1, execute),
            dedupe.run(2, execute)
        );
        assert_eq!(
            (a.as_ref(), b.as_ref(), c.as_ref()),
            (&b"body"[..], &b"body"[..], &b"body"[..])
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(dedupe.in_flight(), 0);
        // Sequential requests are not shared.
        dedupe.run(1, execute).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
