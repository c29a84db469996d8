//! The `log_entries` table (created by `shippy_migrations::log`).

use sea_orm::entity::prelude::*;

/// One stored log event.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "log_entries")]
pub struct Model {
    /// The event's id (UUIDv7: ordering by it is ordering by when the event happened). The primary key,
    /// so an event is stored at most once however often it is delivered.
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: Uuid,
    /// The service that recorded it.
    pub service: String,
    /// What happened, e.g. `user.registered`.
    pub kind: String,
    /// The user it concerns, if any.
    pub user_id: Option<String>,
    /// Human-readable description.
    pub message: String,
    /// Details.
    pub payload: Json,
    /// When it happened.
    pub created_at: DateTimeUtc,
    /// When this subgraph stored it.
    pub stored_at: DateTimeUtc,
}

/// No relations inside this database.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
