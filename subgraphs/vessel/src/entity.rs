//! The `vessels`, `reservations` and `known_users` tables (created by `shippy_migrations::vessel`).

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
    /// Heaviest total cargo weight it takes, in kilograms.
    pub max_weight: i64,
    /// Whether it takes new consignments.
    pub available: bool,
    /// The owning user (a user-subgraph id).
    pub owner_id: Uuid,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Containers booked by assigned consignments; never above `capacity`.
    pub reserved_containers: i32,
    /// Kilograms booked by assigned consignments; never above `max_weight`.
    pub reserved_weight: i64,
}

impl Model {
    /// Containers still free.
    pub fn remaining_capacity(&self) -> i32 {
        self.capacity - self.reserved_containers
    }

    /// Kilograms still free.
    pub fn remaining_weight(&self) -> i64 {
        (self.max_weight - self.reserved_weight).max(0)
    }
}

/// No relations inside this database.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// One consignment's booking on a vessel.
pub mod reservation {
    use sea_orm::entity::prelude::*;

    /// A booking: made once per consignment and assignment round, released once (when it is delivered,
    /// cancelled, or booked too late).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "reservations")]
    pub struct Model {
        /// The consignment (a consignment-subgraph id).
        #[sea_orm(primary_key, auto_increment = false)]
        pub consignment_id: Uuid,
        /// The vessel it is booked on.
        pub vessel_id: Uuid,
        /// Containers booked.
        pub containers: i32,
        /// Kilograms booked.
        pub weight: i64,
        /// When it was booked.
        pub reserved_at: DateTimeUtc,
        /// When the capacity was given back; `NULL` while booked.
        pub released_at: Option<DateTimeUtc>,
        /// The consignment's assignment round this booking answered (see
        /// `shippy_contracts::consignment::Snapshot::assignment_round`).
        pub round: i32,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The users this subgraph knows exist (a vessel's owner must be one), projected from `user.registered`.
pub mod known_user {
    use sea_orm::entity::prelude::*;

    /// One known user.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "known_users")]
    pub struct Model {
        /// The user's id (a user-subgraph id, the `sub` of their tokens).
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
