//! The `consignments` table (created by `shippy_migrations::consignment`). A row, serialized, is also the
//! payload of every `consignment.*` event: subscribers and the vessel subgraph read the consignment as it
//! was after the change.

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
    /// Total weight.
    pub weight: f64,
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
}

/// No relations inside this database.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
