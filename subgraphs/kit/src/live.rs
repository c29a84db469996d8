//! Live feeds for GraphQL subscriptions: one reader of a stream per process, fanned out to every
//! subscriber through a bounded broadcast channel.
//!
//! [`LiveFeed::run`] is a long-lived task (run it under the subgraph's supervisor) that follows the stream
//! with [`EventBus::subscribe`]; each replica runs its own, so every replica sees every event whichever
//! replica published it. A subscriber that falls more than the channel's capacity behind gets
//! [`Live::Lagged`] with the number of events it missed, and decides itself how to catch up: the feed
//! never waits for slow subscribers.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, stream::BoxStream};
use tokio::sync::{broadcast, watch};

use crate::{
    events::{Event, EventBus},
    shutdown::CancellationToken,
    supervisor::TaskError,
};

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Live {
    /// The next event.
    Event(Arc<Event>),
    /// The subscriber was too slow and this many events were skipped.
    Lagged(u64),
}

/// One subscriber in the live-subscriber gauge, for as long as it lives (operators see who listens;
/// tests wait for a subscription to be in place instead of sleeping). Counted apart from the broadcast
/// receivers so that the order in which a dropped stream releases its parts cannot skew the figure.
struct Counted {
    stream: String,
    count: Arc<AtomicUsize>,
}

impl Counted {
    fn new(feed: &LiveFeed) -> Self {
        let now = feed.counted.fetch_add(1, Ordering::Relaxed) + 1;
        publish(&feed.stream, now);
        Self {
            stream: feed.stream.clone(),
            count: Arc::clone(&feed.counted),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let now = self.count.fetch_sub(1, Ordering::Relaxed) - 1;
        publish(&self.stream, now);
    }
}

fn publish(stream: &str, subscribers: usize) {
    metrics::gauge!(
        shippy_telemetry::metrics::names::SUBGRAPH_LIVE_SUBSCRIBERS,
        "stream" => stream.to_owned()
    )
    .set(subscribers as f64);
}

/// The fan-out point of one stream in this process. Cheap to clone.
#[derive(Clone)]
pub struct LiveFeed {
    stream: String,
    /// Every subscriber holds a receiver; `run` is the only sender.
    sender: broadcast::Sender<Arc<Event>>,
    /// Set by `run` once it follows the stream; [`following`](Self::following) waits for it.
    following: Arc<watch::Sender<bool>>,
    /// Subscribers alive now, for the gauge (see [`Counted`]).
    counted: Arc<AtomicUsize>,
}

impl LiveFeed {
    /// A feed of `stream` keeping at most `capacity` events for slow subscribers.
    pub fn new(stream: &str, capacity: usize) -> Self {
        Self {
            stream: stream.to_owned(),
            sender: broadcast::channel(capacity.max(1)).0,
            following: Arc::new(watch::channel(false).0),
            counted: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Resolves once [`run`](Self::run) follows the stream: every event published from then on reaches
    /// the subscribers (a readiness signal, instead of waiting and hoping).
    pub async fn following(&self) {
        let mut following = self.following.subscribe();
        // Err only if the sender is gone, which cannot happen while `self` holds it.
        let _ = following.wait_for(|on| *on).await;
    }

    /// How many subscribers are listening now.
    pub fn subscribers(&self) -> usize {
        self.counted.load(Ordering::Relaxed)
    }

    /// The stream it follows.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Events from now on. The subscriber counts in the `shippy_subgraph_live_subscribers` gauge until
    /// the stream is dropped.
    pub fn subscribe(&self) -> BoxStream<'static, Live> {
        let state = (self.sender.subscribe(), Counted::new(self));
        futures::stream::unfold(state, |(mut rx, counted)| async move {
            match rx.recv().await {
                Ok(event) => Some((Live::Event(event), (rx, counted))),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((Live::Lagged(missed), (rx, counted)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }

    /// Follows the stream and broadcasts each event until `shutdown`. The bus retries its own failures, so
    /// the feed only ends early if the bus's feed ends, which is reported as an error.
    pub async fn run(
        self,
        bus: Arc<dyn EventBus>,
        shutdown: CancellationToken,
    ) -> Result<(), TaskError> {
        let mut backoff = Duration::from_millis(100);
        let mut feed = loop {
            match bus.subscribe(&self.stream).await {
                Ok(feed) => break feed,
                Err(err) => {
                    tracing::warn!(stream = %self.stream, error = %err, retry_in = ?backoff, "cannot follow stream; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        };
        self.following.send_replace(true);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                next = feed.next() => match next {
                    // Err only means nobody is subscribed right now.
                    Some(event) => { let _ = self.sender.send(Arc::new(event)); }
                    None => return Err(format!("the `{}` event feed ended", self.stream).into()),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::InProcessBus;

    #[tokio::test]
    async fn fans_out_and_reports_lag() {
        let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::default());
        let feed = LiveFeed::new("log", 2);
        let mut fast = feed.subscribe();
        let mut slow = feed.subscribe();
        assert_eq!(feed.subscribers(), 2);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(feed.clone().run(bus.clone(), shutdown.clone()));
        feed.following().await;
        for n in 0..4 {
            let event = Event::new("log", "t", "t.n", None, "n", serde_json::json!({ "n": n }));
            bus.publish(&event).await.unwrap();
            let Some(Live::Event(got)) = fast.next().await else {
                panic!("fast subscriber missed {n}");
            };
            assert_eq!(got.payload["n"], n);
        }
        assert!(matches!(slow.next().await, Some(Live::Lagged(2))));
        assert!(matches!(slow.next().await, Some(Live::Event(e)) if e.payload["n"] == 2));
        assert!(matches!(slow.next().await, Some(Live::Event(e)) if e.payload["n"] == 3));
        // A subscriber dropped while waiting for its next event leaves the count at once.
        let waiting = tokio::spawn(async move { slow.next().await.is_some() });
        tokio::task::yield_now().await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        assert_eq!(feed.subscribers(), 1);
        drop(fast);
        assert_eq!(feed.subscribers(), 0);
        shutdown.cancel();
        assert!(task.await.unwrap().is_ok());
    }
}
