//! The inbox: which events a consumer has already handled, so a redelivered event changes nothing.
//!
//! A handler calls [`first_time`] inside the transaction that applies the event. The row is keyed by
//! (consumer group, event id): the first delivery inserts it and goes on; a redelivery finds it and stops,
//! and when two consumers handle the same event at once (one took it over from the other), the unique key
//! makes the second wait for the first to commit and then see the row. Rolled-back work takes its row
//! with it, so a failed attempt is retried in full.
//!
//! A handler that applies a whole read in one transaction ([`crate::consumer::Handler::handle_batch`])
//! hands its work to [`apply_together`], which records the read's rows with [`first_times`].

use std::collections::HashSet;

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    TransactionTrait, TryInsertResult,
};
use uuid::Uuid;

use crate::{consumer::HandleError, events::Event, outbox, outbox::Outbox};

/// The `inbox` table, created by the migrators of subgraphs that consume events (`shippy-migrations`).
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One handled event.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "inbox")]
    pub struct Model {
        /// The consumer group that handled it.
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        /// The event.
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: Uuid,
        /// When it was handled.
        pub handled_at: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Records that `consumer` handles `event_id`, through `conn` (the handler's transaction). `true` the
/// first time; `false` when it was handled before, and the handler should do nothing.
pub async fn first_time<C: ConnectionTrait>(
    conn: &C,
    consumer: &str,
    event_id: Uuid,
) -> Result<bool, DbErr> {
    let row = entity::ActiveModel {
        consumer: Set(consumer.to_owned()),
        event_id: Set(event_id),
        handled_at: Set(Utc::now()),
    };
    let inserted = entity::Entity::insert(row)
        .on_conflict_do_nothing()
        .exec_without_returning(conn)
        .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(n) if n > 0))
}

/// Most rows in one `INSERT` of [`first_times`].
const ROWS_PER_INSERT: usize = 1000;

/// [`first_time`] for several events at once, in one statement per [`ROWS_PER_INSERT`] (for a handler
/// applying a read of events in one transaction): the ids of `event_ids` that `consumer` handles for
/// the first time. An id listed twice (an event published twice, in one read) is in the set once: the
/// caller takes it out as it handles it ([`HashSet::remove`]), so its second copy is skipped.
pub async fn first_times<C: ConnectionTrait>(
    conn: &C,
    consumer: &str,
    event_ids: &[Uuid],
) -> Result<HashSet<Uuid>, DbErr> {
    let mut first = HashSet::with_capacity(event_ids.len());
    let at = Utc::now();
    for chunk in event_ids.chunks(ROWS_PER_INSERT) {
        let rows = chunk.iter().map(|id| entity::ActiveModel {
            consumer: Set(consumer.to_owned()),
            event_id: Set(*id),
            handled_at: Set(at),
        });
        // `RETURNING` gives back only the rows inserted: those that conflicted were handled before.
        if let TryInsertResult::Inserted(keys) = entity::Entity::insert_many(rows)
            .on_conflict_do_nothing()
            .exec_with_returning_keys(conn)
            .await?
        {
            first.extend(keys.into_iter().map(|(_, id)| id));
        }
    }
    Ok(first)
}

/// What one event asks of a consumer, done inside a transaction its caller owns ([`apply_together`]).
#[async_trait::async_trait]
pub trait InTransaction: Send + Sync {
    /// Does the work inside `txn`; the events it publishes are added to `events`, which the caller
    /// records in the outbox before it commits.
    async fn run_in(
        &self,
        txn: &DatabaseTransaction,
        events: &mut Vec<Event>,
    ) -> Result<(), HandleError>;
}

/// Applies a read's `work` (each with the id of the event that asked for it) in stream order, in one
/// transaction of `db`, all or nothing: the inbox rows of the whole read in one statement
/// ([`first_times`]), each first-seen event's work (a redelivered one, or the second copy of an event
/// published twice, is skipped and the rest goes on), every event the work publishes in one outbox
/// insert, one commit; then the outbox relay is woken. An error rolls everything back, so the consumer
/// can hand the read over one event at a time.
pub async fn apply_together<W: InTransaction>(
    db: &DatabaseConnection,
    outbox: &Outbox,
    consumer: &str,
    work: &[(Uuid, W)],
) -> Result<(), HandleError> {
    if work.is_empty() {
        return Ok(());
    }
    let txn = db.begin().await?;
    let ids: Vec<Uuid> = work.iter().map(|(id, _)| *id).collect();
    let mut first = first_times(&txn, consumer, &ids).await?;
    let mut events = Vec::new();
    for (event_id, todo) in work {
        if first.remove(event_id) {
            todo.run_in(&txn, &mut events).await?;
        }
    }
    outbox::record_all(&txn, &events).await?;
    txn.commit().await?;
    outbox.wake();
    Ok(())
}
