//! The transactional outbox: events are written to an `outbox` table in the same transaction as the change
//! they describe, and a relay task publishes committed rows to the [`EventBus`], then marks them sent.
//!
//! A change that rolls back takes its outbox row with it, so nothing is ever published for it; a crash
//! between publishing and marking means the row is published again later (at least once), which consumers
//! absorb by ignoring an `event_id` they have already handled.
//!
//! Published rows are kept for `retention` (default 24 h), then deleted. Within that window they are a copy
//! of what the bus should hold: each round the relay checks its marker on the bus
//! ([`EventBus::mark_epoch`]), and when the marker is gone (Redis restarted empty) it marks every retained
//! row unpublished again, so the events the bus lost are published again instead of silently missing.
//!
//! After a failed round the relay waits with backoff, probing what failed every `probe_interval`; the
//! first probe that succeeds ends the wait.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    FromQueryResult, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    TransactionTrait,
    sea_query::{CommonTableExpression, Expr, ExprTrait, LockBehavior, LockType, WithClause},
};
use tokio::sync::Notify;

use crate::{
    config::RelayConfig,
    events::{BusError, Event, EventBus},
    shutdown::CancellationToken,
};

/// The `outbox` table, created by each subgraph's migrator (`shippy-migrations`).
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One recorded event.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        /// Insertion order; the relay publishes in this order.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The event's unique id.
        #[sea_orm(unique)]
        pub event_id: Uuid,
        /// Target stream.
        pub stream: String,
        /// Recording service.
        pub service: String,
        /// Event kind, e.g. `user.registered`.
        pub kind: String,
        /// The user concerned.
        pub user_id: Option<String>,
        /// Human-readable description.
        pub message: String,
        /// Details.
        pub payload: Json,
        /// When the change happened.
        pub occurred_at: DateTimeUtc,
        /// When the bus accepted it; `NULL` while pending.
        pub published_at: Option<DateTimeUtc>,
        /// Publish attempts so far.
        pub attempts: i32,
        /// The last publish failure, for operators.
        pub last_error: Option<String>,
        /// The W3C trace position of the request that recorded it.
        pub traceparent: Option<String>,
        /// Until when a relay has claimed the row to publish it; other relays skip it until then.
        pub leased_until: Option<DateTimeUtc>,
    }

    /// No relations: the outbox stands alone.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl Model {
        /// The event this row carries.
        pub fn to_event(&self) -> crate::events::Event {
            crate::events::Event {
                event_id: self.event_id,
                stream: self.stream.clone(),
                service: self.service.clone(),
                kind: self.kind.clone(),
                user_id: self.user_id.clone(),
                message: self.message.clone(),
                payload: self.payload.clone(),
                occurred_at: self.occurred_at,
                traceparent: self.traceparent.clone(),
            }
        }
    }
}

/// Records `event` through `conn`, which should be the transaction making the change it describes.
pub async fn record<C: ConnectionTrait>(conn: &C, event: &Event) -> Result<(), DbErr> {
    record_all(conn, std::slice::from_ref(event)).await
}

/// Most rows in one `INSERT` of [`record_all`]: 14 parameters a row stays far below PostgreSQL's 65,535
/// and SQLite's 32,766 bound parameters per statement.
const ROWS_PER_INSERT: usize = 500;

/// Records `events`, in order, through `conn` (the transaction making the changes they describe): one
/// multi-row `INSERT` instead of one statement per event, for a handler that applies several events in
/// one transaction. Nothing to record costs nothing.
pub async fn record_all<C: ConnectionTrait>(conn: &C, events: &[Event]) -> Result<(), DbErr> {
    for chunk in events.chunks(ROWS_PER_INSERT) {
        entity::Entity::insert_many(chunk.iter().map(row_of))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// The outbox row recording `event`, pending.
pub fn row_of(event: &Event) -> entity::ActiveModel {
    entity::ActiveModel {
        id: NotSet,
        event_id: Set(event.event_id),
        stream: Set(event.stream.clone()),
        service: Set(event.service.clone()),
        kind: Set(event.kind.clone()),
        user_id: Set(event.user_id.clone()),
        message: Set(event.message.clone()),
        payload: Set(event.payload.clone()),
        occurred_at: Set(event.occurred_at),
        published_at: Set(None),
        attempts: Set(0),
        last_error: Set(None),
        traceparent: Set(event.traceparent.clone()),
        leased_until: Set(None),
    }
}

/// Inserts `row` and records `events` (which describe it) atomically, and returns the row as stored.
///
/// On PostgreSQL this is one statement, the outbox rows inserted by a data-modifying `WITH` of the
/// row's `INSERT ... RETURNING`, which is atomic by itself: one round trip instead of four (`BEGIN`,
/// two `INSERT`s, `COMMIT`). For a service whose main write is "a new row and its events" (a new
/// consignment), that is most of its statements; on the event pipeline benchmark PostgreSQL's CPU
/// is the limit (bench/README.md, "Event pipeline"). Elsewhere (SQLite), or with more events than
/// one `INSERT` takes, it is a transaction of the same statements.
pub async fn insert_recording<A>(
    db: &DatabaseConnection,
    row: A,
    events: &[Event],
) -> Result<<A::Entity as EntityTrait>::Model, DbErr>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    let backend = db.get_database_backend();
    if backend != DatabaseBackend::Postgres || events.is_empty() || events.len() > ROWS_PER_INSERT {
        let txn = db.begin().await?;
        let stored = A::Entity::insert(row).exec_with_returning(&txn).await?;
        record_all(&txn, events).await?;
        txn.commit().await?;
        return Ok(stored);
    }
    let recorded = entity::Entity::insert_many(events.iter().map(row_of)).into_query();
    let mut insert = A::Entity::insert(row).into_query();
    insert.returning_all();
    let statement = WithClause::new()
        .cte(
            CommonTableExpression::new()
                .query(recorded)
                .table_name("recorded")
                .to_owned(),
        )
        .to_owned()
        .query(insert);
    <A::Entity as EntityTrait>::Model::find_by_statement(backend.build(&statement))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)
}

/// A cheap handle that lets request handlers wake the relay right after they commit, instead of waiting for
/// its next poll.
#[derive(Clone, Default)]
pub struct Outbox {
    /// Notified after each commit that recorded events. `Notify` keeps one permit when the relay is busy, so a
    /// wake-up is never lost.
    wake: Arc<Notify>,
}

impl Outbox {
    /// A new handle with its own wake-up signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells the relay that committed rows are waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The relay task for this outbox.
    pub fn relay(
        &self,
        db: DatabaseConnection,
        bus: Arc<dyn EventBus>,
        config: RelayConfig,
    ) -> Relay {
        Relay {
            db,
            bus,
            wake: self.wake.clone(),
            config,
            service: None,
            next_backlog_sample: std::time::Instant::now(),
            next_prune: std::time::Instant::now(),
        }
    }
}

/// The oldest `published_at` a row may have and still be retained.
fn retention_start(retention: std::time::Duration) -> chrono::DateTime<Utc> {
    chrono::Duration::from_std(retention)
        .ok()
        .and_then(|window| Utc::now().checked_sub_signed(window))
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
}

/// Why a relay round failed; the relay logs it and retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading or marking rows failed.
    #[error("outbox database error: {0}")]
    Db(#[from] DbErr),
    /// The bus did not answer the check for a reset ([`EventBus::mark_epoch`]).
    #[error("cannot check the event bus: {0}")]
    Bus(#[source] BusError),
    /// The bus refused an event; it stays pending.
    #[error("publishing event {event_id} failed after {published} were sent this round: {source}")]
    Publish {
        /// Rows sent before the failure.
        published: usize,
        /// The row that failed.
        event_id: uuid::Uuid,
        /// Why.
        #[source]
        source: BusError,
    },
}

/// Publishes committed outbox rows, oldest first.
pub struct Relay {
    db: DatabaseConnection,
    bus: Arc<dyn EventBus>,
    wake: Arc<Notify>,
    config: RelayConfig,
    /// The subgraph it relays for; when set, the backlog is exported as `shippy_outbox_backlog`.
    service: Option<String>,
    /// When the backlog is counted next (at most every [`BACKLOG_SAMPLE_EVERY`]).
    next_backlog_sample: std::time::Instant,
    /// When rows past `retention` are deleted next (at most every [`PRUNE_EVERY`]).
    next_prune: std::time::Instant,
}

/// How often the relay deletes published rows older than `retention`.
pub const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the relay counts its pending rows for the backlog gauge: often enough for alerts,
/// rarely enough that the count costs nothing.
pub const BACKLOG_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Relay {
    /// Exports this relay's backlog under `service`.
    pub fn for_service(mut self, service: &str) -> Self {
        self.service = Some(service.to_owned());
        self
    }

    /// The relay's name for its marker on the bus: its service, or `outbox`.
    fn holder(&self) -> &str {
        self.service.as_deref().unwrap_or("outbox")
    }

    /// When the bus lost this relay's marker (it restarted empty), marks every row published within
    /// `retention` as unpublished again, so this round and the next publish them anew. Returns how many.
    pub async fn recover_bus_reset(&self) -> Result<u64, RelayError> {
        use entity::{Column, Entity};
        let reset = self
            .bus
            .mark_epoch(self.holder())
            .await
            .map_err(RelayError::Bus)?;
        if !reset {
            return Ok(0);
        }
        let since = retention_start(self.config.retention);
        let result = Entity::update_many()
            .col_expr(
                Column::PublishedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(Column::PublishedAt.gte(since))
            .exec(&self.db)
            .await?;
        let republish = result.rows_affected;
        if republish > 0 {
            tracing::warn!(
                service = self.holder(),
                republish,
                retention = ?self.config.retention,
                "the event bus lost its data (Redis restarted empty?); publishing the retained outbox events again"
            );
            metrics::counter!(
                shippy_telemetry::metrics::names::OUTBOX_REPUBLISHES,
                "service" => self.holder().to_owned()
            )
            .increment(1);
            metrics::counter!(
                shippy_telemetry::metrics::names::OUTBOX_REPUBLISHED_EVENTS,
                "service" => self.holder().to_owned()
            )
            .increment(republish);
        }
        Ok(republish)
    }

    /// Deletes published rows older than `retention`; returns how many.
    pub async fn prune(&self) -> Result<u64, DbErr> {
        use entity::{Column, Entity};
        let result = Entity::delete_many()
            .filter(Column::PublishedAt.lt(retention_start(self.config.retention)))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Runs [`prune`](Self::prune) when it is due.
    async fn prune_when_due(&mut self) {
        if std::time::Instant::now() < self.next_prune {
            return;
        }
        self.next_prune = std::time::Instant::now() + PRUNE_EVERY;
        match self.prune().await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "deleted published outbox rows past retention"),
            Err(err) => tracing::debug!(error = %err, "cannot delete old outbox rows"),
        }
    }

    /// Rows recorded and not published yet.
    pub async fn backlog(&self) -> Result<u64, DbErr> {
        use sea_orm::PaginatorTrait;
        entity::Entity::find()
            .filter(entity::Column::PublishedAt.is_null())
            .count(&self.db)
            .await
    }

    /// Updates the backlog gauge when it is due.
    async fn sample_backlog(&mut self) {
        let Some(service) = &self.service else {
            return;
        };
        if std::time::Instant::now() < self.next_backlog_sample {
            return;
        }
        self.next_backlog_sample = std::time::Instant::now() + BACKLOG_SAMPLE_EVERY;
        match self.backlog().await {
            Ok(count) => metrics::gauge!(
                shippy_telemetry::metrics::names::OUTBOX_BACKLOG,
                "service" => service.clone()
            )
            .set(count as f64),
            Err(err) => tracing::debug!(error = %err, "cannot count the outbox backlog"),
        }
    }

    /// The event of `row`, with the `events.publish` span it is published in: the span continues the trace
    /// of the request that recorded the row, and the event carries the span's own position, so consumers
    /// link to the publish. The span stays open until the bus has answered for the whole batch.
    fn prepare(row: &entity::Model) -> (Event, tracing::Span) {
        let mut event = row.to_event();
        let span = tracing::info_span!(target: shippy_telemetry::SPANS, "events.publish",
            otel.kind = "producer",
            messaging.system = "shippy",
            messaging.destination.name = %event.stream,
            messaging.message.id = %event.event_id,
            event.kind = %event.kind,
            otel.status_code = tracing::field::Empty,
        );
        if let Some(traceparent) = &event.traceparent {
            shippy_telemetry::propagation::set_parent_from_traceparent(&span, traceparent);
        }
        if let Some(own) = span.in_scope(shippy_telemetry::propagation::current_traceparent) {
            event.traceparent = Some(own);
        }
        (event, span)
    }

    /// Publishes `rows` in one batch ([`EventBus::publish_batch`], one Redis round trip), each in its own
    /// `events.publish` span. Returns how many leading rows the bus took, and why the next one failed
    /// (`None` when all were taken).
    async fn publish(&self, rows: &[entity::Model]) -> (usize, Option<BusError>) {
        let (events, spans): (Vec<Event>, Vec<tracing::Span>) =
            rows.iter().map(Self::prepare).unzip();
        let results = self.bus.publish_batch(&events).await;
        let published = results
            .iter()
            .take(rows.len())
            .take_while(|result| result.is_ok())
            .count();
        if published == rows.len() {
            return (published, None);
        }
        spans[published].record("otel.status_code", "ERROR");
        let failure = match results.into_iter().nth(published) {
            Some(Err(err)) => err,
            // The bus stopped without saying why: only a bug of the bus can do that.
            _ => BusError::Command("the bus returned no result for this event".into()),
        };
        (published, Some(failure))
    }

    /// One round: claims up to `batch_size` pending rows, publishes them, and marks them; stops at the first
    /// failure so events leave in order. Returns how many were published.
    ///
    /// No transaction or row lock is held while Redis is called: the rows are claimed first in one
    /// statement (their `leased_until` set `lease` ahead; on PostgreSQL chosen with `FOR UPDATE SKIP
    /// LOCKED`, so relays of several replicas sharing a database never claim the same row), published
    /// as one batch ([`EventBus::publish_batch`]), then the leading ones the bus took are marked sent in
    /// one statement. A slow Redis therefore stalls only this relay's batch, never another replica's. Rows of a relay that died mid-batch
    /// are claimed by another once the lease runs out (they may then be published twice, which the
    /// bus's dedupe marker and the consumers absorb).
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        use entity::{Column, Entity};

        // A bus that does not answer the check will not take the rows either: go on, so the failed publish
        // is recorded on the oldest row (`attempts`, `last_error`) for operators; the next round checks again.
        match self.recover_bus_reset().await {
            Ok(_) => {}
            Err(RelayError::Bus(err)) => {
                tracing::debug!(error = %err, "cannot check the event bus for a reset this round");
            }
            Err(err) => return Err(err),
        }

        let rows = self.claim().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // The whole batch goes to the bus in one round trip, not one per event: under load every
        // round trip waits behind the requests for the two cores, and the relay paced the whole
        // pipeline (bench/README.md, "Event pipeline").
        let (published, failure) = self.publish(&rows).await;
        let (sent, rest) = rows.split_at(published);
        // `publish` reports a failure only for a row it did not count as published.
        let (failure, rest) = match (failure, rest.split_first()) {
            (Some(err), Some((row, rest))) => (Some((row, err)), rest),
            _ => (None, rest),
        };
        let sent: Vec<i64> = sent.iter().map(|row| row.id).collect();
        // The rows the bus took are marked sent in one statement, not one per row, for the same
        // reason. Dying before this leaves them leased, so they are published again once the lease
        // runs out, as after a crash between publish and mark before; the bus's dedupe marker and
        // the consumers absorb the copies.
        if !sent.is_empty() {
            Entity::update_many()
                .col_expr(Column::PublishedAt, Expr::value(Utc::now()))
                .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
                .col_expr(
                    Column::LeasedUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(Column::Id.is_in(sent))
                .exec(&self.db)
                .await?;
        }
        let failure = match failure {
            Some((row, err)) => {
                Entity::update_many()
                    .col_expr(
                        Column::Attempts,
                        Expr::value(row.attempts.saturating_add(1)),
                    )
                    .col_expr(Column::LastError, Expr::value(err.to_string()))
                    .col_expr(
                        Column::LeasedUntil,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .filter(Column::Id.eq(row.id))
                    .exec(&self.db)
                    .await?;
                Some((row.event_id, err))
            }
            None => None,
        };
        // Rows claimed after a failure are released for the next round. The bus may have taken some
        // of them anyway (an event of another stream, in the same round trip): they are published
        // again then, and the dedupe marker absorbs the copy.
        let untried: Vec<i64> = rest.iter().map(|row| row.id).collect();
        if !untried.is_empty() {
            Entity::update_many()
                .col_expr(
                    Column::LeasedUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(Column::Id.is_in(untried))
                .exec(&self.db)
                .await?;
        }
        match failure {
            Some((event_id, source)) => Err(RelayError::Publish {
                published,
                event_id,
                source,
            }),
            None => Ok(published),
        }
    }

    /// Claims up to `batch_size` pending rows whose lease is free or ran out, oldest first, in one
    /// statement: `UPDATE ... SET leased_until WHERE id IN (SELECT ... LIMIT n) RETURNING`, the rows
    /// chosen on PostgreSQL `FOR UPDATE SKIP LOCKED` (rows another relay is claiming are passed over).
    /// One round trip instead of a transaction's four (`BEGIN`, the `SELECT`, the lease `UPDATE`,
    /// `COMMIT`), and each row gets one new version instead of a lock then an update: the relay of
    /// the busiest outbox paced the event pipeline (bench/README.md, "Event pipeline").
    async fn claim(&self) -> Result<Vec<entity::Model>, DbErr> {
        use entity::{Column, Entity};

        let now = Utc::now();
        let until = chrono::Duration::from_std(self.config.lease)
            .ok()
            .and_then(|lease| now.checked_add_signed(lease))
            .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
        let mut pending = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::PublishedAt.is_null())
            .filter(
                sea_orm::Condition::any()
                    .add(Column::LeasedUntil.is_null())
                    .add(Column::LeasedUntil.lt(now)),
            )
            .order_by_asc(Column::Id)
            .limit(self.config.batch_size);
        if self.db.get_database_backend() == DatabaseBackend::Postgres {
            pending = pending.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let mut rows = Entity::update_many()
            .col_expr(Column::LeasedUntil, Expr::value(until))
            .filter(Column::Id.in_subquery(pending.into_query()))
            .exec_with_returning(&self.db)
            .await?;
        // `RETURNING` follows no order; events leave in the order they were recorded.
        rows.sort_unstable_by_key(|row| row.id);
        Ok(rows)
    }

    /// Runs until `shutdown` is cancelled: publishes whenever woken or every `poll_interval`, and after a
    /// failure waits with exponential backoff. Failures never end the task: rows wait in the table until the
    /// bus or database is back.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = self.config.retry_initial;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            self.sample_backlog().await;
            self.prune_when_due().await;
            match self.relay_once().await {
                Ok(published) => {
                    backoff = self.config.retry_initial;
                    if published as u64 >= self.config.batch_size {
                        // A full batch: more may be waiting.
                        continue;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.config.poll_interval) => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "outbox relay round failed");
                    let deadline = tokio::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(self.config.retry_max);
                    // Probe what failed until it answers or the backoff is over, whichever comes first.
                    let probe_every = self
                        .config
                        .probe_interval
                        .max(std::time::Duration::from_millis(10));
                    while tokio::time::Instant::now() < deadline {
                        let nap = probe_every.min(deadline - tokio::time::Instant::now());
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(nap) => {}
                        }
                        let answered = match &err {
                            RelayError::Db(_) => self.db.ping().await.is_ok(),
                            RelayError::Bus(_) | RelayError::Publish { .. } => {
                                self.bus.ping().await.is_ok()
                            }
                        };
                        if answered {
                            tracing::info!("outbox relay: what failed answers again; resuming");
                            backoff = self.config.retry_initial;
                            break;
                        }
                    }
                }
            }
        }
    }
}
