//! Live feeds for GraphQL subscriptions: one reader of a stream per process, fanned out to every
//! subscriber through a bounded broadcast channel.
//!
//! [`LiveFeed::run`] is a long-lived task (run it under the subgraph's supervisor) that follows the stream
//! with [`EventBus::subscribe`]; each replica runs its own, so every replica sees every event whichever
//! replica published it. A subscriber that falls more than the channel's capacity behind gets
//! [`Live::Lagged`] with the number of events it missed, and decides itself how to catch up: the feed
//! never waits for slow subscribers.

use std::{sync::Arc, time::Duration};

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

/// The fan-out point of one stream in this process. Cheap to clone.
#[derive(Clone)]
pub struct LiveFeed {
    stream: String,
    /// Every subscriber holds a receiver; `run` is the only sender.
    sender: broadcast::Sender<Arc<Event>>,
    /// Set by `run` once it follows the stream; [`following`](Self::following) waits for it.
    following: Arc<watch::Sender<bool>>,
}

impl LiveFeed {
    /// A feed of `stream` keeping at most `capacity` events for slow subscribers.
    pub fn new(stream: &str, capacity: usize) -> Self {
        Self {
            stream: stream.to_owned(),
            sender: broadcast::channel(capacity.max(1)).0,
            following: Arc::new(watch::channel(false).0),
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
        self.sender.receiver_count()
    }

    /// The stream it follows.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Events from now on.
    pub fn subscribe(&self) -> BoxStream<'static, Live> {
        futures::stream::unfold(self.sender.subscribe(), |mut rx| async move {
            match rx.recv().await {
                Ok(event) => Some((Live::Event(event), rx)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((Live::Lagged(missed), rx))
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
        shutdown.cancel();
        assert!(task.await.unwrap().is_ok());
    }
}
