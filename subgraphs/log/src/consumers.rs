//! The log subgraph's consumer (group [`GROUP`]) of the `log` stream: storing the log.
//!
//! Each event becomes one row keyed by its event id; a redelivered event hits the key and changes
//! nothing, so the log holds every event exactly once even though delivery is at least once.

use chrono::Utc;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, TryInsertResult};
use shippy_kit::{
    consumer::{HandleError, Handler},
    events::Event,
};

use crate::entity;

/// The log subgraph's consumer group on the `log` stream.
pub const GROUP: &str = "log";

/// Stores `event`; `false` if it was stored before.
pub async fn store(db: &DatabaseConnection, event: &Event) -> Result<bool, DbErr> {
    let row = entity::ActiveModel {
        event_id: Set(event.event_id),
        service: Set(event.service.clone()),
        kind: Set(event.kind.clone()),
        user_id: Set(event.user_id.clone()),
        message: Set(event.message.clone()),
        payload: Set(event.payload.clone()),
        created_at: Set(event.occurred_at),
        stored_at: Set(Utc::now()),
    };
    let inserted = entity::Entity::insert(row)
        .on_conflict_do_nothing()
        .exec_without_returning(db)
        .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(n) if n > 0))
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
}
