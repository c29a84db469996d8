//! The `consignments` table (created by `shippy_migrations::consignment`). A row, as a
//! `shippy_contracts::consignment::Snapshot`, is also the payload of every `consignment.*` event:
//! subscribers and the vessel subgraph read the consignment as it was after the change.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One consignment.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "consignments")]
pub struct Model {
    /// UUIDv7, so ordering by id is ordering by creation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The user who created it (a user-subgraph id).
    pub owner_id: Uuid,
    /// What is shipped.
    pub description: String,
    /// Total weight in kilograms.
    pub weight: i64,
    /// The containers, as a JSON list of [`crate::domain::Container`].
    pub containers: Json,
    /// How many containers (what a vessel books).
    pub container_count: i32,
    /// A [`crate::domain::Status`], as text.
    pub status: String,
    /// The vessel carrying it, once assigned (a vessel-subgraph id).
    pub vessel_id: Option<Uuid>,
    /// That vessel's owner: the one user allowed to move it along (`IN_TRANSIT`, `DELIVERED`).
    pub vessel_owner_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Time of the last change; strictly increases with every change.
    pub updated_at: DateTimeUtc,
    /// Why it is `UNASSIGNABLE`, in words for its owner; `NULL` in any other status.
    pub unassignable_reason: Option<String>,
    /// Which assignment request is current: 0 at creation, one more per retry of its owner.
    pub assignment_round: i32,
    /// When it last became `PENDING` (created or retried): `assignment.deadline` counts from here.
    /// `NULL` only in rows rebuilt from an event (live updates), which never go to the database.
    pub pending_since: Option<DateTimeUtc>,
    /// When its assignment request was last sent: re-sent after `assignment.retry_after`. `NULL` as
    /// `pending_since`.
    pub requested_at: Option<DateTimeUtc>,
}

/// No relations inside this database.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for shippy_contracts::consignment::Snapshot {
    fn from(row: Model) -> Self {
        Self {
            id: row.id,
            owner_id: row.owner_id,
            description: row.description,
            weight: row.weight,
            containers: row.containers,
            container_count: row.container_count,
            status: row.status,
            vessel_id: row.vessel_id,
            vessel_owner_id: row.vessel_owner_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
            assignment_round: row.assignment_round,
            unassignable_reason: row.unassignable_reason,
        }
    }
}

impl From<shippy_contracts::consignment::Snapshot> for Model {
    fn from(snapshot: shippy_contracts::consignment::Snapshot) -> Self {
        Self {
            id: snapshot.id,
            owner_id: snapshot.owner_id,
            description: snapshot.description,
            weight: snapshot.weight,
            containers: snapshot.containers,
            container_count: snapshot.container_count,
            status: snapshot.status,
            vessel_id: snapshot.vessel_id,
            vessel_owner_id: snapshot.vessel_owner_id,
            created_at: snapshot.created_at,
            updated_at: snapshot.updated_at,
            unassignable_reason: snapshot.unassignable_reason,
            assignment_round: snapshot.assignment_round,
            pending_since: None,
            requested_at: None,
        }
    }
}
