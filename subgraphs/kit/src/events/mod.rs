//! Events and the bus that carries them: our one wrapper around the messaging engine.
//!
//! Subgraphs never publish directly: they record an [`Event`] in their outbox inside the transaction of the
//! change (see [`crate::outbox`]) and the relay publishes it. Two buses implement [`EventBus`]:
//! - [`InProcessBus`], the embedded bus of `shippy up`: everything in one process, in memory;
//! - [`RedisBus`], used whenever `REDIS_URL` is set: Redis streams, shared by every process (one Redis
//!   server or a Redis Cluster).
//!
//! Both offer the same two ways to read:
//! - [`EventBus::subscribe`]: a live feed from now on, for GraphQL subscriptions. Every process reads the
//!   whole stream itself, so a subscriber on any replica sees events published by any other.
//! - [`EventBus::join_group`]: a consumer group, for work that must happen once per event (storing a log
//!   entry, reserving vessel capacity). Each entry goes to one consumer of the group, stays pending until
//!   acknowledged, and is taken over by another consumer when left pending too long. The
//!   [`crate::consumer`] runner drives a [`GroupReader`].
//!
//! Stream names are logical (`log`, `consignment`: which streams exist is the subgraphs' business, see
//! `shippy-contracts`); the Redis bus prefixes them (`shippy:log`).

mod memory;
mod redis_streams;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use memory::InProcessBus;
pub use redis_streams::RedisBus;

use crate::config::EventsConfig;

/// The stream that receives the entries of `stream` that failed too often, by logical name (the in-process
/// bus's `log:dead`). The Redis bus keeps them under `{<prefix><stream>}:dead`, on the stream's cluster
/// slot (see [`RedisBus::dead_letters_key`]); `<prefix><stream>:dead` was their key before.
pub fn dead_letters(stream: &str) -> String {
    format!("{stream}:dead")
}

/// One entry of a dead-letter stream (see [`RedisBus::dead_letters`]): an event a consumer group gave up
/// on, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The logical stream the event was read from (`log`, not `{shippy:log}:dead`).
    pub stream: String,
    /// The dead-letter entry's id (in the stream's dead letters); what `replay` takes.
    pub id: String,
    /// The id the entry had in its own stream.
    pub source_id: String,
    /// The consumer group that gave up.
    pub group: String,
    /// The consumer that gave up.
    pub consumer: String,
    /// Why.
    pub reason: String,
    /// How many times it had been delivered.
    pub deliveries: u64,
    /// The event, or why the entry holds none that decodes (it cannot be replayed then).
    pub event: Result<Event, String>,
}

/// One event, as recorded in an outbox and carried by the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per event; consumers use it to ignore redeliveries.
    pub event_id: Uuid,
    /// The stream it is published to.
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
    /// The W3C `traceparent` of the request that caused it (when that request was traced), so the
    /// work it triggers elsewhere links back to it. Absent in events from before tracing existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
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
            traceparent: shippy_telemetry::propagation::current_traceparent(),
        }
    }
}

/// Why the bus refused an operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// The bus cannot be reached (Redis down or too slow), or cannot take more right now (an in-process
    /// stream is full); the caller retries later.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// The event could not be encoded.
    #[error("cannot encode event: {0}")]
    Encode(String),
    /// The bus answered with an error (a Redis error reply, an unexpected reply shape, a bad URL).
    #[error("event bus error: {0}")]
    Command(String),
}

/// A live feed of events on one stream.
pub type EventStream = BoxStream<'static, Event>;

/// One stream entry handed to a member of a consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The entry's id on the bus (a Redis stream id such as `1700000000000-0`); passed back to acknowledge.
    pub id: String,
    /// The event, or why the entry could not be decoded (such an entry is dead-lettered at once).
    pub event: Result<Event, String>,
    /// How many times the entry has been delivered to the group, this delivery included.
    pub deliveries: u64,
}

/// How far a consumer group is behind on its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupStats {
    /// Entries in the stream not yet delivered to the group; `None` when the bus cannot tell (Redis
    /// after entries were deleted from the middle of a stream).
    pub lag: Option<u64>,
    /// Entries delivered to the group's consumers and not acknowledged yet.
    pub pending: u64,
}

/// One consumer's handle on a consumer group. Entries read through it stay pending (owned by this consumer)
/// until acknowledged or dead-lettered.
#[async_trait::async_trait]
pub trait GroupReader: Send {
    /// Takes over up to `count` entries that any consumer of the group has left unacknowledged for at least
    /// `min_idle` (`XAUTOCLAIM`), counting a delivery for each.
    async fn claim_idle(
        &mut self,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BusError>;

    /// Up to `count` entries the group has not seen yet, waiting at most `block` for the first
    /// (`XREADGROUP ... >`). An empty list means none arrived in time.
    async fn read_new(&mut self, count: usize, block: Duration) -> Result<Vec<Delivery>, BusError>;

    /// Marks entries as handled (`XACK`): they are never delivered again.
    async fn ack(&mut self, ids: &[String]) -> Result<(), BusError>;

    /// Moves an entry to the dead-letter stream with `reason`, and acknowledges it, in one step.
    async fn dead_letter(&mut self, delivery: &Delivery, reason: &str) -> Result<(), BusError>;

    /// The group's lag and pending count (`XINFO GROUPS`), for metrics.
    async fn stats(&mut self) -> Result<GroupStats, BusError>;

    /// Removes the group's other consumers that have been idle for longer than `idle` and hold no pending
    /// entry (`XGROUP DELCONSUMER`): replicas that stopped, or restarted under a new name. Returns their names.
    async fn prune_consumers(&mut self, idle: Duration) -> Result<Vec<String>, BusError>;
}

/// Publishes events, feeds live subscribers and serves consumer groups.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes one event to `event.stream`. `Ok` means the bus has accepted it: the outbox row may then be
    /// marked sent.
    async fn publish(&self, event: &Event) -> Result<(), BusError>;

    /// Publishes `events` in order, in as few round trips as the bus can (the Redis bus: one per stream in
    /// the batch, sent together), and says what became of each: `results[i]` is the outcome of `events[i]`,
    /// as [`publish`](Self::publish) would have answered it. The results may be fewer than the events
    /// when the bus stopped at a failure: the events past the last result were not tried.
    ///
    /// Events of one stream enter it in the order given, and none enters it after one of the batch that
    /// failed (the Redis bus refuses it too). An event of another stream may still be accepted after a
    /// failure: the caller treats only the leading accepted ones as sent and publishes the rest again later,
    /// which the bus's dedupe marker absorbs. The default publishes one by one, stopping at the first failure.
    async fn publish_batch(&self, events: &[Event]) -> Vec<Result<(), BusError>> {
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            let result = self.publish(event).await;
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        results
    }

    /// Follows `stream` from now on (events published before are not replayed). A subscriber that falls too
    /// far behind misses events rather than slowing publishers down: this feed is for live views (GraphQL
    /// subscriptions), not for consumers that must see every event (those use [`join_group`](Self::join_group)).
    async fn subscribe(&self, stream: &str) -> Result<EventStream, BusError>;

    /// Joins consumer group `group` of `stream` as `consumer`, creating the group (and stream) if needed. A
    /// new group starts at the oldest entry the stream still holds, so events published before any consumer
    /// ran are not skipped.
    async fn join_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
    ) -> Result<Box<dyn GroupReader>, BusError>;

    /// Whether the bus is reachable (for `/ready`).
    async fn ping(&self) -> Result<(), BusError>;

    /// Makes sure the bus holds `holder`'s marker, setting it when missing; `true` when it was missing. An
    /// outbox relay calls it every round: a marker that vanished means the bus lost its data (Redis restarted
    /// without persistence), so the relay publishes its retained rows again.
    async fn mark_epoch(&self, holder: &str) -> Result<bool, BusError>;
}

/// The bus a process should use: Redis streams when `redis_url` is set, else a fresh in-process bus.
/// Connecting to Redis is lazy: a Redis that is down at start is retried by whoever uses the bus.
pub fn connect(
    redis_url: Option<&str>,
    config: &EventsConfig,
) -> Result<std::sync::Arc<dyn EventBus>, BusError> {
    Ok(match redis_url {
        Some(url) => std::sync::Arc::new(RedisBus::open(url, config.clone())?),
        None => std::sync::Arc::new(InProcessBus::new(config.live_capacity)),
    })
}
