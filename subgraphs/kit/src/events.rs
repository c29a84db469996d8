//! Events and the bus that carries them: our one wrapper around the messaging engine.
//!
//! Subgraphs never publish directly: they record an [`Event`] in their outbox inside the transaction of the
//! change (see [`crate::outbox`]) and the relay publishes it. [`InProcessBus`] is the embedded bus used by
//! `shippy up`; a Redis-streams bus implements the same trait for deployments with several processes.

use std::{collections::HashMap, sync::Mutex};

use chrono::{DateTime, SubsecRound, Utc};
use futures::{StreamExt, stream::BoxStream};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Stream names (Redis stream keys, in-process channel names).
pub mod streams {
    /// Log events from every service, stored by the log subgraph.
    pub const LOG: &str = "shippy:log";
    /// Consignment domain events (creation, assignment, status changes).
    pub const CONSIGNMENT: &str = "shippy:consignment";
}

/// One event, as recorded in an outbox and carried by the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per event; consumers use it to ignore redeliveries.
    pub event_id: Uuid,
    /// The stream it is published to (see [`streams`]).
    pub stream: String,
    /// The service that recorded it, e.g. `user`.
    pub service: String,
    /// What happened, e.g. `user.registered`.
    pub kind: String,
    /// The user it concerns (who acted, or whose data changed), if any.
    pub user_id: Option<String>,
    /// A short human-readable description.
    pub message: String,
    /// Details, as JSON.
    pub payload: serde_json::Value,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
}

impl Event {
    /// A new event for `stream` with a fresh id and the current time.
    pub fn new(
        stream: &str,
        service: &str,
        kind: &str,
        user_id: Option<String>,
        message: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            stream: stream.to_owned(),
            service: service.to_owned(),
            kind: kind.to_owned(),
            user_id,
            message: message.into(),
            payload,
            // Microseconds: what PostgreSQL keeps, so an event read back from an outbox equals the original.
            occurred_at: Utc::now().trunc_subsecs(6),
        }
    }

    /// A new log event (stream [`streams::LOG`]).
    pub fn log(
        service: &str,
        kind: &str,
        user_id: Option<String>,
        message: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        Self::new(streams::LOG, service, kind, user_id, message, payload)
    }
}

/// Why the bus refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus cannot be reached (Redis down); the caller retries later.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// The event could not be encoded.
    #[error("cannot encode event: {0}")]
    Encode(String),
}

/// A live feed of events on one stream.
pub type EventStream = BoxStream<'static, Event>;

/// Publishes events and feeds live subscribers.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes one event to `event.stream`. `Ok` means the bus has accepted it: the outbox row may then be
    /// marked sent.
    async fn publish(&self, event: &Event) -> Result<(), BusError>;

    /// Follows `stream` from now on (events published before the call are not replayed). A subscriber that
    /// falls too far behind misses events rather than slowing publishers down: this feed is for live views
    /// (GraphQL subscriptions), not for consumers that must see every event.
    async fn subscribe(&self, stream: &str) -> Result<EventStream, BusError>;

    /// Whether the bus is reachable (for `/ready`).
    async fn ping(&self) -> Result<(), BusError>;
}

/// The embedded bus: one bounded broadcast channel per stream, inside this process.
///
/// Publishing never blocks: with no subscriber the event is dropped (it is still in the outbox table), and a
/// subscriber more than `capacity` events behind skips the oldest ones (logged as a warning).
pub struct InProcessBus {
    /// One sender per stream name, created on first use. The lock is held only to look up or insert.
    channels: Mutex<HashMap<String, broadcast::Sender<Event>>>,
    capacity: usize,
}

impl InProcessBus {
    /// A bus whose subscribers may lag `capacity` events behind.
    pub fn new(capacity: usize) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn sender(&self, stream: &str) -> broadcast::Sender<Event> {
        // A poisoned lock only means another thread panicked while inserting; the map itself is still valid.
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        channels
            .entry(stream.to_owned())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .clone()
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

#[async_trait::async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event: &Event) -> Result<(), BusError> {
        // Err only means nobody is listening right now, which is fine for a live feed.
        let _ = self.sender(&event.stream).send(event.clone());
        Ok(())
    }

    async fn subscribe(&self, stream: &str) -> Result<EventStream, BusError> {
        let rx = self.sender(stream).subscribe();
        let name = stream.to_owned();
        let feed = futures::stream::unfold(rx, move |mut rx| {
            let name = name.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => return Some((event, rx)),
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(stream = %name, missed, "event subscriber fell behind and skipped events");
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(feed.boxed())
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stream: &str, n: i64) -> Event {
        Event::new(
            stream,
            "test",
            "test.happened",
            None,
            "n",
            serde_json::json!({ "n": n }),
        )
    }

    #[tokio::test]
    async fn subscribers_see_their_stream_only() {
        let bus = InProcessBus::default();
        let mut log = bus.subscribe(streams::LOG).await.unwrap();
        let mut cons = bus.subscribe(streams::CONSIGNMENT).await.unwrap();
        bus.publish(&event(streams::LOG, 1)).await.unwrap();
        bus.publish(&event(streams::CONSIGNMENT, 2)).await.unwrap();
        assert_eq!(log.next().await.unwrap().payload["n"], 1);
        assert_eq!(cons.next().await.unwrap().payload["n"], 2);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_skips_rather_than_blocks() {
        let bus = InProcessBus::new(2);
        let mut slow = bus.subscribe(streams::LOG).await.unwrap();
        for n in 0..5 {
            bus.publish(&event(streams::LOG, n)).await.unwrap();
        }
        // Capacity 2: the three oldest are gone, the newest two remain.
        assert_eq!(slow.next().await.unwrap().payload["n"], 3);
        assert_eq!(slow.next().await.unwrap().payload["n"], 4);
    }
}
