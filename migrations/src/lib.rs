//! SeaORM migrations, one migrator per subgraph database.
//!
//! Each subgraph owns its database and never reads another's tables, so each has its own [`MigratorTrait`]
//! list. The `outbox` table is the same everywhere and comes from one shared migration.

pub use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub mod outbox;
pub mod user;
pub mod vessel;
