//! The vessel subgraph's database: `vessels` and `outbox`.

use sea_orm_migration::{prelude::*, schema::*};

/// Migrations of the vessel subgraph, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(crate::outbox::CreateOutbox),
            Box::new(CreateVessels),
        ]
    }
}

#[derive(DeriveIden)]
enum Vessels {
    Table,
    Id,
    Name,
    Capacity,
    MaxWeight,
    Available,
    OwnerId,
    CreatedAt,
}

/// Creates `vessels`. `owner_id` is a user id from the user subgraph: no foreign key, that table lives in
/// another database.
#[derive(DeriveMigrationName)]
pub struct CreateVessels;

#[async_trait::async_trait]
impl MigrationTrait for CreateVessels {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Vessels::Table)
                    .if_not_exists()
                    .col(pk_uuid(Vessels::Id))
                    .col(string(Vessels::Name))
                    .col(integer(Vessels::Capacity))
                    .col(double(Vessels::MaxWeight))
                    .col(boolean(Vessels::Available).default(true))
                    .col(uuid(Vessels::OwnerId))
                    .col(timestamp_with_time_zone(Vessels::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // findAvailableVessel filters on availability and size.
        manager
            .create_index(
                Index::create()
                    .name("vessels_available_capacity")
                    .table(Vessels::Table)
                    .col(Vessels::Available)
                    .col(Vessels::Capacity)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("vessels_owner")
                    .table(Vessels::Table)
                    .col(Vessels::OwnerId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Vessels::Table).to_owned())
            .await
    }
}
