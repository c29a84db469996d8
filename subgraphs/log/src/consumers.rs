//! The log subgraph's consumer (group [`GROUP`]) of the `log` stream: storing the log.
//!
//! Each event becomes one row keyed by its event id; a redelivered event hits the key and changes
//! nothing, so the log holds every event exactly once even though delivery is at least once. The events
//! of one read are stored with one multi-row `INSERT` ([`store_all`]): one statement per entry made the
//! log's consumer a serial chain of round trips that fell behind the stream under load.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, TryInsertResult};
use shippy_kit::{
    consumer::{HandleError, Handler},
    events::Event,
};

use crate::entity;

/// The log subgraph's consumer group on the `log` stream.
pub const GROUP: &str = "log";

/// The row of `event`, stored at `now`.
fn row(event: &Event, now: DateTime<Utc>) -> entity::ActiveModel {
    entity::ActiveModel {
        event_id: Set(event.event_id),
        service: Set(event.service.clone()),
        kind: Set(event.kind.clone()),
        user_id: Set(event.user_id.clone()),
        message: Set(event.message.clone()),
        payload: Set(event.payload.clone()),
        created_at: Set(event.occurred_at),
        stored_at: Set(now),
    }
}

/// Stores `event`; `false` if it was stored before.
pub async fn store(db: &DatabaseConnection, event: &Event) -> Result<bool, DbErr> {
    Ok(store_all(db, &[event]).await? > 0)
}

/// Stores `events` in one statement, skipping those stored before (also within `events`: a copy
/// published twice); returns how many were new. A statement of at most a consumer batch (32 events
/// by default, 8 values each) stays far below SQLite's and PostgreSQL's limits on bound values.
pub async fn store_all(db: &DatabaseConnection, events: &[&Event]) -> Result<u64, DbErr> {
    if events.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let inserted = entity::Entity::insert_many(events.iter().map(|event| row(event, now)))
        .on_conflict_do_nothing()
        .exec_without_returning(db)
        .await?;
    Ok(match inserted {
        TryInsertResult::Inserted(n) => n,
        TryInsertResult::Empty | TryInsertResult::Conflicted => 0,
    })
}

/// The consumer's handler.
pub struct Recorder {
    db: DatabaseConnection,
}

impl Recorder {
    /// A handler storing into `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn handle(&self, event: &Event) -> Result<(), HandleError> {
        if !store(&self.db, event).await? {
            tracing::debug!(event_id = %event.event_id, "log event delivered again; already stored");
        }
        Ok(())
    }

    async fn handle_batch(&self, events: &[&Event]) -> Option<Result<(), HandleError>> {
        Some(
            store_all(&self.db, events)
                .await
                .map(drop)
                .map_err(HandleError::from),
        )
    }
}
