//! SeaORM migrations, one migrator per subgraph database.
//!
//! Each subgraph owns its database and never reads another's tables, so each has its own [`MigratorTrait`]
//! list. The `outbox` table (events to publish) and the `inbox` table (events already handled) are the same
//! everywhere and come from shared migrations.

pub use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub mod consignment;
pub mod inbox;
mod kilograms;
pub mod log;
pub mod outbox;
pub mod user;
pub mod vessel;
