//! The `outbox` table every subgraph database has (see `shippy_kit::outbox`).

use sea_orm_migration::{prelude::*, schema::*};

/// Every outbox migration, in order: for tests and tools that need the table on its own.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(CreateOutbox),
        Box::new(AddOutboxTraceparent),
        Box::new(AddOutboxLease),
    ]
}

/// Creates `outbox`.
#[derive(DeriveMigrationName)]
pub struct CreateOutbox;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    EventId,
    Stream,
    Service,
    Kind,
    UserId,
    Message,
    Payload,
    OccurredAt,
    PublishedAt,
    Attempts,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Outbox::Id))
                    .col(uuid_uniq(Outbox::EventId))
                    .col(string(Outbox::Stream))
                    .col(string(Outbox::Service))
                    .col(string(Outbox::Kind))
                    .col(string_null(Outbox::UserId))
                    .col(text(Outbox::Message))
                    .col(json(Outbox::Payload))
                    .col(timestamp_with_time_zone(Outbox::OccurredAt))
                    .col(timestamp_with_time_zone_null(Outbox::PublishedAt))
                    .col(integer(Outbox::Attempts).default(0))
                    .col(text_null(Outbox::LastError))
                    .to_owned(),
            )
            .await?;
        // The relay's query: pending rows in insertion order.
        manager
            .create_index(
                Index::create()
                    .name("outbox_pending")
                    .table(Outbox::Table)
                    .col(Outbox::PublishedAt)
                    .col(Outbox::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}

/// Adds `outbox.traceparent`: the W3C trace position of the request that recorded the event, so
/// the relay can put it on the stream entry and consumers can link their spans to that request.
pub struct AddOutboxTraceparent;

// Named by hand: the derived name is the file's (`outbox`), which `CreateOutbox` has already.
impl MigrationName for AddOutboxTraceparent {
    fn name(&self) -> &str {
        "outbox_traceparent"
    }
}

#[derive(DeriveIden)]
enum OutboxTrace {
    #[sea_orm(iden = "outbox")]
    Table,
    Traceparent,
}

#[async_trait::async_trait]
impl MigrationTrait for AddOutboxTraceparent {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OutboxTrace::Table)
                    .add_column(string_null(OutboxTrace::Traceparent))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OutboxTrace::Table)
                    .drop_column(OutboxTrace::Traceparent)
                    .to_owned(),
            )
            .await
    }
}

/// Adds `outbox.leased_until`: a relay claims a batch of rows by setting it, publishes them outside any
/// transaction, then marks them sent; other relay replicas skip rows whose lease has not run out, and take
/// over the rows of a relay that died mid-batch once it has.
pub struct AddOutboxLease;

impl MigrationName for AddOutboxLease {
    fn name(&self) -> &str {
        "outbox_lease"
    }
}

#[derive(DeriveIden)]
enum OutboxLease {
    #[sea_orm(iden = "outbox")]
    Table,
    LeasedUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for AddOutboxLease {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OutboxLease::Table)
                    .add_column(timestamp_with_time_zone_null(OutboxLease::LeasedUntil))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(OutboxLease::Table)
                    .drop_column(OutboxLease::LeasedUntil)
                    .to_owned(),
            )
            .await
    }
}
