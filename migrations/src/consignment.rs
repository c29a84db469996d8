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
            Box::new(AddAssignmentSaga),
            Box::new(WeightInKilograms),
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

#[derive(DeriveIden)]
enum Saga {
    #[sea_orm(iden = "consignments")]
    Table,
    CreatedAt,
    Status,
    UnassignableReason,
    AssignmentRound,
    PendingSince,
    RequestedAt,
}

/// What the assignment saga needs on `consignments`: why one is `UNASSIGNABLE` (shown to its owner), the
/// round of its assignment request (0, then one more per retry), when it became `PENDING` (the deadline
/// counts from there) and when its request was last sent (re-driven after `assignment.retry_after`).
/// Existing rows count as pending since their creation, requested then.
pub struct AddAssignmentSaga;

// Named by hand: `DeriveMigrationName` would call it `consignment`, the name `CreateConsignments` has.
impl MigrationName for AddAssignmentSaga {
    fn name(&self) -> &str {
        "consignment_assignment_saga"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddAssignmentSaga {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite cannot add two in one ALTER TABLE.
        let columns = [
            text_null(Saga::UnassignableReason),
            integer(Saga::AssignmentRound).default(0).to_owned(),
            timestamp_with_time_zone_null(Saga::PendingSince),
            timestamp_with_time_zone_null(Saga::RequestedAt),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Saga::Table)
                        .add_column_if_not_exists(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .exec_stmt(
                Query::update()
                    .table(Saga::Table)
                    .value(Saga::PendingSince, Expr::col(Saga::CreatedAt))
                    .value(Saga::RequestedAt, Expr::col(Saga::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // The saga's scan: pending ones by when they were last requested.
        manager
            .create_index(
                Index::create()
                    .name("consignments_status_requested")
                    .table(Saga::Table)
                    .col(Saga::Status)
                    .col(Saga::RequestedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("consignments_status_requested")
                    .table(Saga::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Saga::UnassignableReason,
            Saga::AssignmentRound,
            Saga::PendingSince,
            Saga::RequestedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Saga::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// A consignment's weight in whole kilograms (`BIGINT`) instead of floating point, rounded up: a
/// consignment still waiting for a vessel never books less than it weighs.
pub struct WeightInKilograms;

impl MigrationName for WeightInKilograms {
    fn name(&self) -> &str {
        "consignment_weight_in_kilograms"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for WeightInKilograms {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use crate::kilograms::{Round, to_kilograms};
        to_kilograms(manager, "consignments", "weight", Round::Up).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::kilograms::to_floating_point(manager, "consignments", "weight").await
    }
}
