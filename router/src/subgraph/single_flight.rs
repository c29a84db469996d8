//! Single flight: identical work in flight at the same time runs once and every caller gets a
//! clone of its result. Used for inbound deduplication of identical client queries
//! (`operation`, keyed by everything a response depends on) and outbound deduplication of
//! identical subgraph fetches (`subgraph`, keyed by body and forwarded headers).
//!
//! The first caller runs the work inside a `OnceCell`; identical ones arriving meanwhile await
//! it. The entry is removed once answered, so only truly concurrent calls share. If the first
//! caller is cancelled (its client went away), the cell stays empty and the next waiter runs the
//! work itself.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::DashMap;
use tokio::sync::OnceCell;

/// Work in flight by key; see the module documentation.
pub(crate) struct SingleFlight<T> {
    in_flight: DashMap<u128, Arc<OnceCell<T>>, ahash::RandomState>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            in_flight: DashMap::with_hasher(ahash::RandomState::new()),
        }
    }
}

/// What [`SingleFlight::run`] returns: the result, and whether it was shared with a caller
/// that ran the work (for the deduplication counters).
pub(crate) struct Flight<T> {
    pub(crate) value: T,
    pub(crate) shared: bool,
}

impl<T: Clone> SingleFlight<T> {
    /// The result for `key`: computed by `work` unless an identical call is computing it.
    pub(crate) async fn run<F>(&self, key: u128, work: impl FnOnce() -> F) -> Flight<T>
    where
        F: Future<Output = T>,
    {
        let cell = self
            .in_flight
            .entry(key)
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let led = AtomicBool::new(false);
        let value = cell
            .get_or_init(|| {
                led.store(true, Ordering::Relaxed);
                work()
            })
            .await
            .clone();
        self.in_flight
            .remove_if(&key, |_, current| Arc::ptr_eq(current, &cell));
        Flight {
            value,
            shared: !led.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn concurrent_identical_calls_share_one_run() {
        let flights = SingleFlight::<Bytes>::default();
        let runs = AtomicUsize::new(0);
        let work = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Bytes::from_static(b"body")
        };
        let (a, b, c) = tokio::join!(
            flights.run(1, work),
            flights.run(1, work),
            flights.run(2, work)
        );
        assert_eq!(
            (a.value.as_ref(), b.value.as_ref(), c.value.as_ref()),
            (&b"body"[..], &b"body"[..], &b"body"[..])
        );
        assert_eq!([a.shared, b.shared, c.shared], [false, true, false]);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(flights.in_flight.len(), 0);
        // Sequential calls are not shared.
        let again = flights.run(1, work).await;
        assert!(!again.shared);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
