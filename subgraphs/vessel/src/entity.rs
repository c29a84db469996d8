//! The `vessels` table (created by `shippy_migrations::vessel`).

use sea_orm::entity::prelude::*;

/// One vessel.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "vessels")]
pub struct Model {
    /// UUIDv7, so ordering by id is ordering by creation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Capacity in containers.
    pub capacity: i32,
    /// Heaviest total cargo weight it takes.
    pub max_weight: f64,
    /// Whether it takes new consignments.
    pub available: bool,
    /// The owning user (a user-subgraph id).
    pub owner_id: Uuid,
    /// Creation time.
    pub created_at: DateTimeUtc,
}

/// No relations inside this database.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
