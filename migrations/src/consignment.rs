//! The consignment subgraph's database: `consignments`, `outbox` and `inbox`.

use sea_orm_migration::{prelude::*, schema::*};

/// Migrations of the consignment subgraph, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(crate::outbox::CreateOutbox),
            Box::new(crate::inbox::CreateInbox),
            Box::new(CreateConsignments),
            Box::new(crate::outbox::AddOutboxTraceparent),
            Box::new(crate::outbox::AddOutboxLease),
        ]
    }
}

#[derive(DeriveIden)]
enum Consignments {
    Table,
    Id,
    OwnerId,
    Description,
    Weight,
    Containers,
    ContainerCount,
    Status,
    VesselId,
    VesselOwnerId,
    CreatedAt,
    UpdatedAt,
}

/// Creates `consignments`. `owner_id`, `vessel_id` and `vessel_owner_id` are ids from the user and vessel
/// subgraphs: no foreign keys, those tables live in other databases.
#[derive(DeriveMigrationName)]
pub struct CreateConsignments;

#[async_trait::async_trait]
impl MigrationTrait for CreateConsignments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Consignments::Table)
                    .if_not_exists()
                    .col(pk_uuid(Consignments::Id))
                    .col(uuid(Consignments::OwnerId))
                    .col(text(Consignments::Description))
                    .col(double(Consignments::Weight))
                    .col(json(Consignments::Containers))
                    .col(integer(Consignments::ContainerCount))
                    .col(string(Consignments::Status))
                    .col(uuid_null(Consignments::VesselId))
                    .col(uuid_null(Consignments::VesselOwnerId))
                    .col(timestamp_with_time_zone(Consignments::CreatedAt))
                    .col(timestamp_with_time_zone(Consignments::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // `consignments` and `User.consignments`: one owner's, in id order.
        manager
            .create_index(
                Index::create()
                    .name("consignments_owner")
                    .table(Consignments::Table)
                    .col(Consignments::OwnerId)
                    .col(Consignments::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Catching a lagging subscriber up: one owner's, changed since a time.
        manager
            .create_index(
                Index::create()
                    .name("consignments_owner_updated")
                    .table(Consignments::Table)
                    .col(Consignments::OwnerId)
                    .col(Consignments::UpdatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Consignments::Table).to_owned())
            .await
    }
}
