//! Group consumers: the loop that reads a stream through a consumer group and hands each event to a
//! [`Handler`], acknowledging it only once the handler has durably done its work.
//!
//! One round of [`Consumer::run`]:
//! 1. every `claim_idle / 2`, take over entries that any consumer of the group left unacknowledged for
//!    `claim_idle` (a crashed replica, or a handler that failed): `XAUTOCLAIM`;
//! 2. otherwise wait up to `block` for new entries: `XREADGROUP ... >`;
//! 3. hand each entry to the handler: success is acknowledged, with one `XACK` for all the entries of the
//!    read that succeeded, sent once the last was handled; [`HandleError::Retry`] and
//!    [`HandleError::Transient`] leave it pending, so it comes back through step 1, and pause the consumer
//!    with exponential backoff; [`HandleError::Reject`], an undecodable entry, or an entry already
//!    delivered `max_deliveries` times goes to the dead-letter stream. Deliveries that failed with
//!    [`HandleError::Transient`] (the database was down, a lock or serialization conflict) do not count
//!    toward `max_deliveries`: a shared outage must not dead-letter every event that arrived during it.
//!
//! Delivery is at least once: a consumer can stop after the handler committed but before the
//! acknowledgement (sent at the end of a read, so that may be several entries). Such entries stay pending
//! and are taken over after `claim_idle`; handlers are therefore idempotent by `event_id` (see
//! [`crate::inbox`]). An entry is never acknowledged before its handler has returned `Ok`.
//!
//! Bus failures (Redis down) never end the loop: it waits with backoff and tries again, until shutdown.
//! While it waits it probes the bus every `probe_interval`, and goes back to work as soon as a probe
//! succeeds, so a long backoff never delays the recovery once Redis answers again.
//!
//! Every [`STATS_EVERY`] a consumer also removes the group's consumers idle past `prune_idle` that hold no
//! pending entry (replicas that stopped or restarted under a new name), so groups do not collect them.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tracing::Instrument;

use crate::{
    config::ConsumerConfig,
    events::{Delivery, Event, EventBus, GroupReader},
    shutdown::CancellationToken,
};

/// Why a handler did not handle an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// A fault of the event's own that might still pass (a reference not there yet...): the entry stays
    /// pending and is retried; after `max_deliveries` deliveries it is dead-lettered.
    #[error("will retry: {0}")]
    Retry(String),
    /// A shared fault that passes by itself (database connection lost, timeout, lock or serialization
    /// conflict): the entry stays pending and is retried with backoff, and the failed delivery does not
    /// count toward `max_deliveries`, so an outage never dead-letters an event.
    #[error("transient failure, will retry: {0}")]
    Transient(String),
    /// Can never work (a payload that does not parse, a reference to nothing): dead-lettered at once.
    #[error("rejected: {0}")]
    Reject(String),
}

impl HandleError {
    /// Whether this failure says nothing about the event itself (see [`HandleError::Transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, HandleError::Transient(_))
    }
}

/// A database error classified: [`HandleError::Transient`] when [`is_transient_db_error`] says so, else
/// [`HandleError::Retry`] (the event is retried, and dead-lettered after `max_deliveries`).
impl From<sea_orm::DbErr> for HandleError {
    fn from(err: sea_orm::DbErr) -> Self {
        if is_transient_db_error(&err) {
            HandleError::Transient(format!("database unavailable: {err}"))
        } else {
            HandleError::Retry(format!("database error: {err}"))
        }
    }
}

/// Whether a database error is a passing, shared fault rather than one of the statement or its data:
/// no connection (refused, dropped, pool timed out or closed), an I/O or TLS failure, a timeout, or one of
/// the errors PostgreSQL asks clients to retry (connection exception `08*`, serialization failure `40001`,
/// deadlock `40P01`, lock not available `55P03`, statement cancelled `57014`, server shutting down or
/// starting `57P01`-`57P03`, out of resources `53*`) or SQLite's busy and locked (`5`, `6` and their
/// extended codes).
pub fn is_transient_db_error(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx::Error as Sqlx};
    let runtime = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    match sqlx.as_ref() {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed
        | Sqlx::Protocol(_) => true,
        Sqlx::Database(db) => {
            let sqlite = db
                .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
                .is_some();
            db.code().is_some_and(|code| {
                if sqlite {
                    transient_sqlite_code(&code)
                } else {
                    transient_sql_state(&code)
                }
            })
        }
        _ => false,
    }
}

/// The SQLite result codes of [`is_transient_db_error`]: extended codes keep the primary code in the low
/// byte, BUSY = 5 and LOCKED = 6.
fn transient_sqlite_code(code: &str) -> bool {
    code.parse::<u32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6))
}

/// The PostgreSQL SQLSTATEs of [`is_transient_db_error`].
fn transient_sql_state(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03"
        )
}

/// Handles the events of one stream for one consumer group. Must be idempotent by `event.event_id`.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Does the work for `event`; `Ok` once it is durable (committed). Events the handler does not care
    /// about are simply `Ok`.
    async fn handle(&self, event: &Event) -> Result<(), HandleError>;

    /// Handles `events` (several, in stream order) all together, for a handler that can do that cheaper
    /// than one by one (one multi-row statement). All or nothing: `Some(Ok)` once all are durable;
    /// `Some(Err)` when none is, and then each is handed to [`handle`](Self::handle), so that a failure
    /// is told apart per event (retried, dead-lettered). `None` (the default): the handler does not batch.
    async fn handle_batch(&self, events: &[&Event]) -> Option<Result<(), HandleError>> {
        let _ = events;
        None
    }
}

#[async_trait::async_trait]
impl<H: Handler> Handler for Arc<H> {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        (**self).handle(event).await
    }

    async fn handle_batch(&self, events: &[&Event]) -> Option<Result<(), HandleError>> {
        (**self).handle_batch(events).await
    }
}

#[async_trait::async_trait]
impl Handler for Box<dyn Handler> {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        (**self).handle(event).await
    }

    async fn handle_batch(&self, events: &[&Event]) -> Option<Result<(), HandleError>> {
        (**self).handle_batch(events).await
    }
}

/// The payload of `event` as `T`; a payload that does not decode can never be handled, so it is a
/// [`HandleError::Reject`] naming the event's kind.
pub fn payload<T: serde::de::DeserializeOwned>(event: &Event) -> Result<T, HandleError> {
    serde_json::from_value(event.payload.clone())
        .map_err(|e| HandleError::Reject(format!("bad `{}` payload: {e}", event.kind)))
}

/// How often a consumer reports its group's lag and pending count (`XINFO GROUPS`).
pub const STATS_EVERY: Duration = Duration::from_secs(5);

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Handled (or ignored) and durable: to acknowledge.
    Handled,
    /// Out of the pending list already (dead-lettered, which acknowledges it).
    Done,
    /// Still pending: retried later.
    Failed,
}

/// A consumer: one member of a consumer group, running a handler.
pub struct Consumer<H> {
    bus: Arc<dyn EventBus>,
    stream: String,
    group: String,
    name: String,
    handler: H,
    config: ConsumerConfig,
}

impl<H: Handler> Consumer<H> {
    /// A consumer of `stream` in `group`, named by `config` (see [`ConsumerConfig::resolved_name`]).
    pub fn new(
        bus: Arc<dyn EventBus>,
        stream: &str,
        group: &str,
        handler: H,
        config: ConsumerConfig,
    ) -> Self {
        Self {
            bus,
            stream: stream.to_owned(),
            group: group.to_owned(),
            name: config.resolved_name(),
            handler,
            config,
        }
    }

    /// Runs until `shutdown` is cancelled. Never fails: trouble with the bus or the handler is logged and
    /// retried with backoff. An event being handled when shutdown comes is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = &self.config;
        let batch = cfg.batch_size.max(1);
        // Look for abandoned entries twice per idle period, so none waits much longer than `claim_idle`.
        let claim_every = (cfg.claim_idle / 2).max(Duration::from_millis(10));
        let mut bus_backoff = cfg.retry_initial;
        let mut handler_backoff = cfg.retry_initial;

        let mut reader = loop {
            match self
                .bus
                .join_group(&self.stream, &self.group, &self.name)
                .await
            {
                Ok(reader) => break reader,
                Err(err) => {
                    tracing::warn!(stream = %self.stream, group = %self.group, error = %err, retry_in = ?bus_backoff, "cannot join consumer group; retrying");
                    if self.bus_pause(&shutdown, &mut bus_backoff).await.is_none() {
                        return;
                    }
                }
            }
        };
        tracing::info!(stream = %self.stream, group = %self.group, consumer = %self.name, "consumer started");

        let mut next_claim = Instant::now();
        let mut next_stats = Instant::now();
        let mut transient = TransientFailures::default();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if Instant::now() >= next_stats {
                next_stats = Instant::now() + STATS_EVERY;
                self.report_stats(reader.as_mut()).await;
                self.prune_consumers(reader.as_mut()).await;
            }
            let read = if Instant::now() >= next_claim {
                let claimed = reader.claim_idle(cfg.claim_idle, batch).await;
                // A full batch means more may be waiting: claim again right away.
                if !matches!(&claimed, Ok(d) if d.len() >= batch) {
                    next_claim = Instant::now() + claim_every;
                }
                claimed
            } else {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    read = reader.read_new(batch, cfg.block.min(next_claim.saturating_duration_since(Instant::now())).max(Duration::from_millis(1))) => read,
                }
            };
            let deliveries = match read {
                Ok(deliveries) => {
                    bus_backoff = cfg.retry_initial;
                    deliveries
                }
                Err(err) => {
                    tracing::warn!(stream = %self.stream, group = %self.group, error = %err, retry_in = ?bus_backoff, "consumer cannot read; retrying");
                    match self.bus_pause(&shutdown, &mut bus_backoff).await {
                        None => return,
                        Some(true) => {
                            tracing::info!(stream = %self.stream, group = %self.group, "event bus answers again; consumer resumes");
                            // Entries left pending during the outage are taken back first.
                            next_claim = Instant::now();
                        }
                        Some(false) => {}
                    }
                    continue;
                }
            };

            let mut failed = false;
            // Acknowledged together once the whole read is handled: one `XACK` per read instead of
            // one per entry (most entries of a shared stream are ones a group ignores, which cost
            // nothing else). A stop before it leaves them pending, to be redelivered: never lost.
            let mut handled = Vec::with_capacity(deliveries.len());
            let deliveries = self
                .handle_together(deliveries, &mut handled, &mut transient)
                .await;
            for delivery in deliveries {
                let id = delivery.id.clone();
                match self
                    .process(reader.as_mut(), delivery, &mut transient)
                    .await
                {
                    Outcome::Handled => handled.push(id),
                    Outcome::Done => {}
                    Outcome::Failed => failed = true,
                }
            }
            self.ack(reader.as_mut(), &handled).await;
            if failed {
                // Most handler failures are shared ones (the database is down): slow down rather than burn
                // through every entry's delivery budget.
                if !pause(&shutdown, handler_backoff).await {
                    return;
                }
                handler_backoff = (handler_backoff * 2).min(cfg.retry_max);
            } else {
                handler_backoff = cfg.retry_initial;
            }
        }
    }

    /// Pauses after a bus failure ([`pause_probing`]) and moves `backoff` on: back to `retry_initial` when
    /// the bus answered, doubled (up to `retry_max`) when the whole wait passed. `None` on shutdown, else
    /// whether the bus answered.
    async fn bus_pause(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Duration,
    ) -> Option<bool> {
        let cfg = &self.config;
        match pause_probing(shutdown, self.bus.as_ref(), *backoff, cfg.probe_interval).await {
            Pause::Shutdown => None,
            Pause::BusAnswered => {
                *backoff = cfg.retry_initial;
                Some(true)
            }
            Pause::Elapsed => {
                *backoff = (*backoff * 2).min(cfg.retry_max);
                Some(false)
            }
        }
    }

    /// Sets the lag and pending gauges of this group.
    async fn report_stats(&self, reader: &mut dyn GroupReader) {
        use shippy_telemetry::metrics::names;
        match reader.stats().await {
            Ok(stats) => {
                let labels = [
                    ("stream", self.stream.clone()),
                    ("group", self.group.clone()),
                ];
                if let Some(lag) = stats.lag {
                    metrics::gauge!(names::STREAM_CONSUMER_LAG, &labels).set(lag as f64);
                }
                metrics::gauge!(names::STREAM_PENDING, &labels).set(stats.pending as f64);
            }
            Err(err) => {
                tracing::debug!(stream = %self.stream, group = %self.group, error = %err, "cannot read consumer group stats")
            }
        }
    }

    /// Removes consumers idle past `prune_idle` that hold no pending entry (dead replicas), when enabled.
    async fn prune_consumers(&self, reader: &mut dyn GroupReader) {
        if self.config.prune_idle.is_zero() {
            return;
        }
        match reader.prune_consumers(self.config.prune_idle).await {
            Ok(pruned) if !pruned.is_empty() => metrics::counter!(
                shippy_telemetry::metrics::names::STREAM_CONSUMERS_PRUNED,
                "stream" => self.stream.clone(),
                "group" => self.group.clone()
            )
            .increment(pruned.len() as u64),
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(stream = %self.stream, group = %self.group, error = %err, "cannot prune idle consumers")
            }
        }
    }

    /// Offers the deliveries of a read that are ready to handle (decoded, within `max_deliveries`) to
    /// the handler's [`Handler::handle_batch`], when there are several. When it handled them, their ids
    /// join `handled` and the other deliveries are returned, for one-by-one processing; otherwise all
    /// are returned. Each event of the batch has its `events.consume` span, open while the batch runs.
    async fn handle_together(
        &self,
        deliveries: Vec<Delivery>,
        handled: &mut Vec<String>,
        transient: &mut TransientFailures,
    ) -> Vec<Delivery> {
        let max = self.config.max_deliveries.max(1);
        let ready: Vec<bool> = deliveries
            .iter()
            .map(|d| d.event.is_ok() && transient.counted(d) <= max)
            .collect();
        if ready.iter().filter(|r| **r).count() < 2 {
            return deliveries;
        }
        let together = deliveries.iter().zip(&ready).filter(|(_, r)| **r);
        let events: Vec<&Event> = together
            .clone()
            .filter_map(|(d, _)| d.event.as_ref().ok())
            .collect();
        let spans: Vec<tracing::Span> = together.map(|(d, _)| self.consume_span(d)).collect();
        match self.handler.handle_batch(&events).await {
            None => deliveries,
            Some(Ok(())) => {
                let mut rest = Vec::new();
                for (delivery, ready) in deliveries.into_iter().zip(ready) {
                    if ready {
                        transient.forget(&delivery.id);
                        handled.push(delivery.id);
                    } else {
                        rest.push(delivery);
                    }
                }
                rest
            }
            Some(Err(err)) => {
                for span in &spans {
                    span.record("otel.status_code", "ERROR");
                }
                tracing::debug!(stream = %self.stream, group = %self.group, events = events.len(), error = %err, "batch not handled; handling its events one by one");
                deliveries
            }
        }
    }

    /// The `events.consume` span of `delivery`, linked to the span that published it (a link, not a
    /// parent: the consumer's work is its own trace).
    fn consume_span(&self, delivery: &Delivery) -> tracing::Span {
        let span = tracing::info_span!(target: shippy_telemetry::SPANS, "events.consume",
            otel.kind = "consumer",
            messaging.system = "shippy",
            messaging.destination.name = %self.stream,
            messaging.consumer.group.name = %self.group,
            messaging.message.id = %delivery.id,
            event.kind = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        if let Ok(event) = &delivery.event {
            span.record("event.kind", event.kind.as_str());
            shippy_telemetry::propagation::link_to_traceparent(&span, event.traceparent.as_deref());
        }
        span
    }

    /// Handles one delivery in its `events.consume` span ([`consume_span`](Self::consume_span)).
    async fn process(
        &self,
        reader: &mut dyn GroupReader,
        delivery: Delivery,
        transient: &mut TransientFailures,
    ) -> Outcome {
        let span = self.consume_span(&delivery);
        let outcome = self
            .process_in_span(reader, delivery, transient)
            .instrument(span.clone())
            .await;
        if outcome == Outcome::Failed {
            span.record("otel.status_code", "ERROR");
        }
        outcome
    }

    async fn process_in_span(
        &self,
        reader: &mut dyn GroupReader,
        delivery: Delivery,
        transient: &mut TransientFailures,
    ) -> Outcome {
        let max = self.config.max_deliveries.max(1);
        if transient.counted(&delivery) > max {
            transient.forget(&delivery.id);
            let reason = format!("not handled after {max} deliveries");
            return self.dead_letter(reader, &delivery, &reason).await;
        }
        let event = match &delivery.event {
            Ok(event) => event,
            Err(reason) => {
                let reason = format!("undecodable entry: {reason}");
                return self.dead_letter(reader, &delivery, &reason).await;
            }
        };
        let result = self.handler.handle(event).await;
        if !matches!(result, Err(HandleError::Transient(_))) {
            transient.forget(&delivery.id);
        }
        match result {
            Ok(()) => Outcome::Handled,
            Err(HandleError::Reject(reason)) => self.dead_letter(reader, &delivery, &reason).await,
            Err(HandleError::Transient(reason)) => {
                transient.record(&delivery.id);
                metrics::counter!(
                    shippy_telemetry::metrics::names::CONSUMER_TRANSIENT_FAILURES,
                    "stream" => self.stream.clone(),
                    "group" => self.group.clone()
                )
                .increment(1);
                tracing::warn!(
                    stream = %self.stream,
                    group = %self.group,
                    entry = %delivery.id,
                    event_id = %event.event_id,
                    kind = %event.kind,
                    %reason,
                    "handler failed transiently; the event stays pending, is retried and will not be dead-lettered for it"
                );
                Outcome::Failed
            }
            Err(HandleError::Retry(reason)) => {
                tracing::warn!(
                    stream = %self.stream,
                    group = %self.group,
                    entry = %delivery.id,
                    event_id = %event.event_id,
                    kind = %event.kind,
                    deliveries = delivery.deliveries,
                    %reason,
                    "handler failed; the event stays pending and will be retried"
                );
                Outcome::Failed
            }
        }
    }

    /// Acknowledges the entries `handled` (committed by the handler) in one `XACK`.
    async fn ack(&self, reader: &mut dyn GroupReader, handled: &[String]) {
        let Some(first) = handled.first() else {
            return;
        };
        if let Err(err) = reader.ack(handled).await {
            // Handled and committed: a redelivery is absorbed by the handler's idempotency.
            tracing::warn!(stream = %self.stream, group = %self.group, entries = handled.len(), %first, error = %err, "acknowledgement failed; the events will be delivered again");
        }
    }

    async fn dead_letter(
        &self,
        reader: &mut dyn GroupReader,
        delivery: &Delivery,
        reason: &str,
    ) -> Outcome {
        match reader.dead_letter(delivery, reason).await {
            Ok(()) => {
                metrics::counter!(
                    shippy_telemetry::metrics::names::STREAM_DEAD_LETTERED,
                    "stream" => self.stream.clone(),
                    "group" => self.group.clone()
                )
                .increment(1);
                Outcome::Done
            }
            Err(err) => {
                tracing::warn!(stream = %self.stream, group = %self.group, entry = %delivery.id, error = %err, "cannot dead-letter; the entry stays pending");
                Outcome::Failed
            }
        }
    }
}

/// Entries whose deliveries failed transiently in this consumer, with how many did: those deliveries do
/// not count toward `max_deliveries`. Kept per consumer (a takeover by another replica starts afresh, which
/// errs on the side of retrying) and bounded, since entries taken over elsewhere are never forgotten here.
#[derive(Debug, Default)]
struct TransientFailures(std::collections::HashMap<String, u64>);

/// Most entries [`TransientFailures`] remembers; past it, it starts afresh.
const TRANSIENT_MEMORY: usize = 10_000;

impl TransientFailures {
    /// The deliveries of `delivery` that count toward `max_deliveries`.
    fn counted(&self, delivery: &Delivery) -> u64 {
        delivery
            .deliveries
            .saturating_sub(self.0.get(&delivery.id).copied().unwrap_or(0))
    }

    fn record(&mut self, id: &str) {
        if self.0.len() >= TRANSIENT_MEMORY && !self.0.contains_key(id) {
            self.0.clear();
        }
        *self.0.entry(id.to_owned()).or_default() += 1;
    }

    fn forget(&mut self, id: &str) {
        self.0.remove(id);
    }
}

/// How a [`pause_probing`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    /// Shutdown came first.
    Shutdown,
    /// The whole wait passed without the bus answering a probe.
    Elapsed,
    /// A probe (`PING`) succeeded: the bus is back, the wait was cut short.
    BusAnswered,
}

/// Waits up to `wait` after a bus failure, probing the bus every `probe_every`; ends as soon as a probe
/// succeeds, so the backoff never outlasts the outage by more than one probe interval.
async fn pause_probing(
    shutdown: &CancellationToken,
    bus: &dyn EventBus,
    wait: Duration,
    probe_every: Duration,
) -> Pause {
    let probe_every = probe_every.max(Duration::from_millis(10));
    let deadline = Instant::now() + wait;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Pause::Elapsed;
        }
        let nap = probe_every.min(deadline - now);
        if !pause(shutdown, nap).await {
            return Pause::Shutdown;
        }
        if Instant::now() < deadline && bus.ping().await.is_ok() {
            return Pause::BusAnswered;
        }
    }
}

/// Sleeps for `wait` unless shutdown comes first; `false` when it did.
async fn pause(shutdown: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::events::{InProcessBus, dead_letters};

    /// Fails each event `failures` times with `error`, then succeeds; records what it handled.
    struct Scripted {
        failures: usize,
        error: HandleError,
        attempts: Mutex<std::collections::HashMap<uuid::Uuid, usize>>,
        handled: Mutex<Vec<i64>>,
    }

    impl Scripted {
        fn new(failures: usize, error: HandleError) -> Arc<Self> {
            Arc::new(Self {
                failures,
                error,
                attempts: Mutex::default(),
                handled: Mutex::default(),
            })
        }
    }

    #[async_trait::async_trait]
    impl Handler for Scripted {
        async fn handle(&self, event: &Event) -> Result<(), HandleError> {
            let attempt = {
                let mut attempts = self.attempts.lock().unwrap();
                let n = attempts.entry(event.event_id).or_default();
                *n += 1;
                *n
            };
            if attempt <= self.failures {
                return Err(self.error.clone());
            }
            self.handled
                .lock()
                .unwrap()
                .push(event.payload["n"].as_i64().unwrap());
            Ok(())
        }
    }

    fn config() -> ConsumerConfig {
        ConsumerConfig {
            name: Some("test".into()),
            block: Duration::from_millis(50),
            claim_idle: Duration::from_millis(100),
            max_deliveries: 3,
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(40),
            ..ConsumerConfig::default()
        }
    }

    fn event(n: i64) -> Event {
        Event::new(
            "log",
            "test",
            "test.happened",
            None,
            "n",
            serde_json::json!({ "n": n }),
        )
    }

    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    #[tokio::test]
    async fn retried_events_are_handled_once_they_succeed_and_rejected_ones_dead_lettered() {
        let bus = Arc::new(InProcessBus::default());
        let mut dead = bus
            .join_group(&dead_letters("log"), "ops", "t")
            .await
            .unwrap();
        let flaky = Scripted::new(2, HandleError::Retry("database down".into()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Consumer::new(bus.clone(), "log", "g", flaky.clone(), config()).run(shutdown.clone()),
        );
        bus.publish(&event(1)).await.unwrap();
        eventually("the retried event", || {
            *flaky.handled.lock().unwrap() == [1]
        })
        .await;
        // Handled on the third delivery, within max_deliveries = 3: nothing was dead-lettered.
        assert!(dead.read_new(10, Duration::ZERO).await.unwrap().is_empty());
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the consumer stops on shutdown")
            .unwrap();

        let rejecting = Scripted::new(usize::MAX, HandleError::Reject("nonsense".into()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Consumer::new(bus.clone(), "log", "g2", rejecting.clone(), config())
                .run(shutdown.clone()),
        );
        // g2 is a new group: it starts at the oldest retained event (1), then sees 2.
        bus.publish(&event(2)).await.unwrap();
        let mut buried = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while buried.len() < 2 {
                buried.extend(dead.read_new(10, Duration::from_millis(50)).await.unwrap());
            }
        })
        .await
        .expect("both dead-lettered");
        assert_eq!(
            rejecting.attempts.lock().unwrap().values().sum::<usize>(),
            2,
            "a rejected event is not retried"
        );
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn an_event_that_keeps_failing_is_dead_lettered_after_max_deliveries() {
        let bus = Arc::new(InProcessBus::default());
        let mut dead = bus
            .join_group(&dead_letters("log"), "ops", "t")
            .await
            .unwrap();
        let broken = Scripted::new(usize::MAX, HandleError::Retry("still down".into()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Consumer::new(bus.clone(), "log", "g", broken.clone(), config()).run(shutdown.clone()),
        );
        bus.publish(&event(9)).await.unwrap();
        let buried = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let got = dead.read_new(10, Duration::from_millis(50)).await.unwrap();
                if !got.is_empty() {
                    return got;
                }
            }
        })
        .await
        .expect("dead-lettered in time");
        assert_eq!(buried[0].event.as_ref().unwrap().payload["n"], 9);
        assert_eq!(
            broken.attempts.lock().unwrap().values().sum::<usize>(),
            3,
            "tried exactly max_deliveries times"
        );
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn transient_failures_are_retried_past_max_deliveries_and_never_dead_lettered() {
        let bus = Arc::new(InProcessBus::default());
        let mut dead = bus
            .join_group(&dead_letters("log"), "ops", "t")
            .await
            .unwrap();
        // Three times max_deliveries transient failures (the database was down), then it works.
        let outage = Scripted::new(
            9,
            HandleError::from(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal(
                "connection refused".into(),
            ))),
        );
        assert!(outage.error.is_transient());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Consumer::new(bus.clone(), "log", "g", outage.clone(), config()).run(shutdown.clone()),
        );
        bus.publish(&event(4)).await.unwrap();
        eventually("the event after the outage", || {
            *outage.handled.lock().unwrap() == [4]
        })
        .await;
        assert_eq!(outage.attempts.lock().unwrap().values().sum::<usize>(), 10);
        assert!(
            dead.read_new(10, Duration::ZERO).await.unwrap().is_empty(),
            "an outage dead-letters nothing"
        );
        shutdown.cancel();
        task.await.unwrap();
    }

    /// The in-process bus, with every `XACK` its group readers send recorded.
    struct AckCounting {
        inner: InProcessBus,
        acks: Arc<Mutex<Vec<Vec<String>>>>,
    }

    struct CountingReader {
        inner: Box<dyn GroupReader>,
        acks: Arc<Mutex<Vec<Vec<String>>>>,
    }

    #[async_trait::async_trait]
    impl GroupReader for CountingReader {
        async fn claim_idle(
            &mut self,
            min_idle: Duration,
            count: usize,
        ) -> Result<Vec<Delivery>, crate::events::BusError> {
            self.inner.claim_idle(min_idle, count).await
        }
        async fn read_new(
            &mut self,
            count: usize,
            block: Duration,
        ) -> Result<Vec<Delivery>, crate::events::BusError> {
            self.inner.read_new(count, block).await
        }
        async fn ack(&mut self, ids: &[String]) -> Result<(), crate::events::BusError> {
            self.acks.lock().unwrap().push(ids.to_vec());
            self.inner.ack(ids).await
        }
        async fn dead_letter(
            &mut self,
            delivery: &Delivery,
            reason: &str,
        ) -> Result<(), crate::events::BusError> {
            self.inner.dead_letter(delivery, reason).await
        }
        async fn stats(&mut self) -> Result<crate::events::GroupStats, crate::events::BusError> {
            self.inner.stats().await
        }
        async fn prune_consumers(
            &mut self,
            idle: Duration,
        ) -> Result<Vec<String>, crate::events::BusError> {
            self.inner.prune_consumers(idle).await
        }
    }

    #[async_trait::async_trait]
    impl EventBus for AckCounting {
        async fn publish(&self, event: &Event) -> Result<(), crate::events::BusError> {
            self.inner.publish(event).await
        }
        async fn subscribe(
            &self,
            stream: &str,
        ) -> Result<crate::events::EventStream, crate::events::BusError> {
            self.inner.subscribe(stream).await
        }
        async fn join_group(
            &self,
            stream: &str,
            group: &str,
            consumer: &str,
        ) -> Result<Box<dyn GroupReader>, crate::events::BusError> {
            Ok(Box::new(CountingReader {
                inner: self.inner.join_group(stream, group, consumer).await?,
                acks: self.acks.clone(),
            }))
        }
        async fn ping(&self) -> Result<(), crate::events::BusError> {
            Ok(())
        }
        async fn mark_epoch(&self, _holder: &str) -> Result<bool, crate::events::BusError> {
            Ok(false)
        }
    }

    /// Handles events, but the first delivery of event `stall` never returns (the process dies there).
    struct Stalling {
        stall: i64,
        stalled: tokio::sync::Notify,
        seen: Mutex<Vec<i64>>,
    }

    #[async_trait::async_trait]
    impl Handler for Stalling {
        async fn handle(&self, event: &Event) -> Result<(), HandleError> {
            let n = event.payload["n"].as_i64().unwrap();
            let first = {
                let mut seen = self.seen.lock().unwrap();
                let first = !seen.contains(&n);
                seen.push(n);
                first
            };
            if n == self.stall && first {
                self.stalled.notify_one();
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_read_is_acknowledged_in_one_xack_and_a_crash_before_it_only_redelivers() {
        let bus = Arc::new(AckCounting {
            inner: InProcessBus::default(),
            acks: Arc::default(),
        });
        let mut dead = bus
            .inner
            .join_group(&dead_letters("log"), "ops", "t")
            .await
            .unwrap();
        // Published before the consumer starts, so its first read takes them all.
        for n in 1..=5 {
            bus.publish(&event(n)).await.unwrap();
        }
        let all = Scripted::new(0, HandleError::Retry("unused".into()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Consumer::new(bus.clone(), "log", "g", all.clone(), config()).run(shutdown.clone()),
        );
        eventually("all five handled", || {
            all.handled.lock().unwrap().len() == 5
        })
        .await;
        eventually("the acknowledgement", || {
            !bus.acks.lock().unwrap().is_empty()
        })
        .await;
        shutdown.cancel();
        task.await.unwrap();
        let acks = bus.acks.lock().unwrap().clone();
        assert_eq!(acks.len(), 1, "one XACK for the read: {acks:?}");
        assert_eq!(acks[0].len(), 5);

        // A second group whose consumer dies while handling the third event of its read: the two
        // handled before are committed but not acknowledged, so they stay pending with the rest.
        bus.acks.lock().unwrap().clear();
        let stalling = Arc::new(Stalling {
            stall: 3,
            stalled: tokio::sync::Notify::new(),
            seen: Mutex::default(),
        });
        let crashed = tokio::spawn(
            Consumer::new(bus.clone(), "log", "g2", stalling.clone(), config())
                .run(CancellationToken::new()),
        );
        tokio::time::timeout(Duration::from_secs(10), stalling.stalled.notified())
            .await
            .expect("the handler reaches the third event");
        crashed.abort();
        let _ = crashed.await;
        assert!(bus.acks.lock().unwrap().is_empty(), "nothing acknowledged");
        let mut probe = bus.inner.join_group("log", "g2", "probe").await.unwrap();
        assert_eq!(probe.stats().await.unwrap().pending, 5);

        // Another replica takes the entries over once they idled: the two handled ones are handled
        // again (the handler's inbox absorbs that), and none is lost.
        let replica = ConsumerConfig {
            name: Some("replica".into()),
            ..config()
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Consumer::new(bus.clone(), "log", "g2", stalling.clone(), replica)
                .run(shutdown.clone()),
        );
        let mut pending = u64::MAX;
        tokio::time::timeout(Duration::from_secs(10), async {
            while pending != 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                pending = probe.stats().await.unwrap().pending;
            }
        })
        .await
        .expect("every entry acknowledged in the end");
        shutdown.cancel();
        task.await.unwrap();
        let mut seen = stalling.seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, [1, 1, 2, 2, 3, 3, 4, 5]);
        assert!(
            dead.read_new(10, Duration::ZERO).await.unwrap().is_empty(),
            "nothing dead-lettered"
        );
    }

    /// Handles a batch at once, except that the first batch fails when `fail_first` is set.
    struct Batching {
        fail_first: std::sync::atomic::AtomicBool,
        batches: Mutex<Vec<Vec<i64>>>,
        one_by_one: Mutex<Vec<i64>>,
    }

    #[async_trait::async_trait]
    impl Handler for Batching {
        async fn handle(&self, event: &Event) -> Result<(), HandleError> {
            let n = event.payload["n"].as_i64().unwrap();
            self.one_by_one.lock().unwrap().push(n);
            Ok(())
        }

        async fn handle_batch(&self, events: &[&Event]) -> Option<Result<(), HandleError>> {
            let numbers = events.iter().map(|e| e.payload["n"].as_i64().unwrap());
            self.batches.lock().unwrap().push(numbers.collect());
            if self
                .fail_first
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                return Some(Err(HandleError::Transient("database down".into())));
            }
            Some(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_read_goes_to_handle_batch_and_one_by_one_when_the_batch_fails() {
        let bus = Arc::new(AckCounting {
            inner: InProcessBus::default(),
            acks: Arc::default(),
        });
        for n in 1..=4 {
            bus.publish(&event(n)).await.unwrap();
        }
        for (group, fail_first) in [("g", false), ("g2", true)] {
            bus.acks.lock().unwrap().clear();
            let handler = Arc::new(Batching {
                fail_first: fail_first.into(),
                batches: Mutex::default(),
                one_by_one: Mutex::default(),
            });
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(
                Consumer::new(bus.clone(), "log", group, handler.clone(), config())
                    .run(shutdown.clone()),
            );
            eventually("the acknowledgement", || {
                !bus.acks.lock().unwrap().is_empty()
            })
            .await;
            shutdown.cancel();
            task.await.unwrap();
            assert_eq!(*handler.batches.lock().unwrap(), [vec![1, 2, 3, 4]]);
            let expected: &[i64] = if fail_first { &[1, 2, 3, 4] } else { &[] };
            assert_eq!(*handler.one_by_one.lock().unwrap(), expected, "{group}");
            let acks = bus.acks.lock().unwrap().clone();
            assert_eq!(acks.len(), 1, "{group}: {acks:?}");
            assert_eq!(acks[0].len(), 4, "{group}");
        }
    }

    #[test]
    fn database_errors_are_classified() {
        use std::sync::Arc as A;

        use sea_orm::{DbErr, RuntimeErr, sqlx::Error as Sqlx};
        let sqlx = |e: Sqlx| DbErr::Query(RuntimeErr::SqlxError(A::new(e)));
        for transient in [
            DbErr::Conn(RuntimeErr::Internal("refused".into())),
            DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout),
            sqlx(Sqlx::PoolTimedOut),
            sqlx(Sqlx::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            ))),
        ] {
            assert!(is_transient_db_error(&transient), "{transient}");
            assert!(HandleError::from(transient).is_transient());
        }
        for permanent in [
            DbErr::Custom("bad".into()),
            DbErr::RecordNotFound("x".into()),
            sqlx(Sqlx::RowNotFound),
            DbErr::Exec(RuntimeErr::Internal("syntax".into())),
        ] {
            assert!(!is_transient_db_error(&permanent), "{permanent}");
            assert!(matches!(
                HandleError::from(permanent),
                HandleError::Retry(_)
            ));
        }
        for code in [
            "08006", "08001", "40001", "40P01", "55P03", "57014", "57P01", "53300",
        ] {
            assert!(transient_sql_state(code), "{code}");
        }
        for code in ["23505", "22012", "42P01"] {
            assert!(!transient_sql_state(code), "{code}");
        }
        for code in ["5", "517", "6", "262"] {
            assert!(transient_sqlite_code(code), "{code}");
        }
        for code in ["19", "2067", "1"] {
            assert!(!transient_sqlite_code(code), "{code}");
        }
    }
}
