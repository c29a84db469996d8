//! The vessel subgraph's database: `vessels`, `reservations`, `known_users`, `outbox` and `inbox`.

use sea_orm_migration::{prelude::*, schema::*};

/// Migrations of the vessel subgraph, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(crate::outbox::CreateOutbox),
            Box::new(CreateVessels),
            Box::new(crate::inbox::CreateInbox),
            Box::new(CreateReservations),
            Box::new(crate::outbox::AddOutboxTraceparent),
            Box::new(crate::outbox::AddOutboxLease),
            Box::new(AddReservationRound),
            Box::new(CreateKnownUsers),
            Box::new(WeightsInKilograms),
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
    ReservedContainers,
    ReservedWeight,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    ConsignmentId,
    VesselId,
    Containers,
    Weight,
    ReservedAt,
    ReleasedAt,
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

/// Tracks what is booked on each vessel: `vessels.reserved_containers` and `reserved_weight` (what the
/// assignment's conditional update checks against `capacity` and `max_weight`), and one `reservations` row
/// per consignment, so that a consignment is booked at most once and released at most once.
pub struct CreateReservations;

// Not `DeriveMigrationName`: it names a migration after its file, and `CreateVessels` already took `vessel`
// (a second migration of the same name would be taken as applied and skipped).
impl MigrationName for CreateReservations {
    fn name(&self) -> &str {
        "vessel_reservations"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateReservations {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite cannot add two in one ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Vessels::Table)
                    .add_column_if_not_exists(integer(Vessels::ReservedContainers).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Vessels::Table)
                    .add_column_if_not_exists(double(Vessels::ReservedWeight).default(0.0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Reservations::Table)
                    .if_not_exists()
                    .col(pk_uuid(Reservations::ConsignmentId))
                    .col(uuid(Reservations::VesselId))
                    .col(integer(Reservations::Containers))
                    .col(double(Reservations::Weight))
                    .col(timestamp_with_time_zone(Reservations::ReservedAt))
                    .col(timestamp_with_time_zone_null(Reservations::ReleasedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reservations_vessel")
                    .table(Reservations::Table)
                    .col(Reservations::VesselId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Reservations::Table).to_owned())
            .await?;
        for column in [Vessels::ReservedWeight, Vessels::ReservedContainers] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Vessels::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ReservationRound {
    #[sea_orm(iden = "reservations")]
    Table,
    Round,
}

/// `reservations.round`: the consignment's assignment round a booking answered, so that a repeated request
/// of the same round finds the booking (and books nothing more), a retry after a given-back booking books
/// again, and giving back a late booking of an older round leaves a newer one alone.
pub struct AddReservationRound;

impl MigrationName for AddReservationRound {
    fn name(&self) -> &str {
        "vessel_reservation_round"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddReservationRound {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ReservationRound::Table)
                    .add_column_if_not_exists(integer(ReservationRound::Round).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ReservationRound::Table)
                    .drop_column(ReservationRound::Round)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum KnownUsers {
    Table,
    UserId,
}

/// Creates `known_users`: the users the vessel subgraph knows exist, projected from the user subgraph's
/// `user.registered` events (a vessel's owner must be one). Seeded with the owners of the vessels already
/// there: they were users when they created them, and must not be locked out by the upgrade. Users who
/// registered before the upgrade and own no vessel yet come from the log stream, which the vessel
/// subgraph's new consumer group reads from its start.
pub struct CreateKnownUsers;

impl MigrationName for CreateKnownUsers {
    fn name(&self) -> &str {
        "vessel_known_users"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateKnownUsers {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(KnownUsers::Table)
                    .if_not_exists()
                    .col(pk_uuid(KnownUsers::UserId))
                    .to_owned(),
            )
            .await?;
        let seed = Query::insert()
            .into_table(KnownUsers::Table)
            .columns([KnownUsers::UserId])
            .select_from(
                Query::select()
                    .distinct()
                    .column(Vessels::OwnerId)
                    .from(Vessels::Table)
                    .to_owned(),
            )
            .map_err(|e| DbErr::Migration(e.to_string()))?
            .to_owned();
        manager.exec_stmt(seed).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(KnownUsers::Table).to_owned())
            .await
    }
}

/// Weights in whole kilograms (`BIGINT`) instead of floating point, so the capacity check is exact.
/// Never overbooks: a reservation's weight rounds up, a vessel's max weight rounds down, and a vessel's
/// booked weight becomes the larger of its old total rounded up and the sum of its active reservations
/// (rounded up each), so releasing every reservation later never gives back more than was booked.
pub struct WeightsInKilograms;

impl MigrationName for WeightsInKilograms {
    fn name(&self) -> &str {
        "vessel_weights_in_kilograms"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for WeightsInKilograms {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use crate::kilograms::{Round, replace_column, rounded, to_kilograms};
        to_kilograms(manager, "reservations", "weight", Round::Up).await?;
        to_kilograms(manager, "vessels", "max_weight", Round::Down).await?;
        let backend = manager.get_database_backend();
        let old_total = rounded(backend, "reserved_weight", Round::Up);
        let greatest = match backend {
            sea_orm_migration::sea_orm::DbBackend::Sqlite => "MAX",
            _ => "GREATEST",
        };
        let booked = format!(
            "{greatest}({old_total}, (SELECT COALESCE(SUM(r.weight), 0) FROM reservations r \
             WHERE r.vessel_id = vessels.id AND r.released_at IS NULL))"
        );
        replace_column(manager, "vessels", "reserved_weight", "BIGINT", &booked).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use crate::kilograms::to_floating_point;
        for (table, column) in [
            ("vessels", "reserved_weight"),
            ("vessels", "max_weight"),
            ("reservations", "weight"),
        ] {
            to_floating_point(manager, table, column).await?;
        }
        Ok(())
    }
}
