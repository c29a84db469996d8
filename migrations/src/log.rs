//! The log subgraph's database: `log_entries` (keyed by event id, so it needs no inbox) and `outbox`
//! (every subgraph runs a relay; the log subgraph records nothing yet, so it stays empty).

use sea_orm_migration::{prelude::*, schema::*};

/// Migrations of the log subgraph, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(crate::outbox::CreateOutbox),
            Box::new(CreateLogEntries),
            Box::new(crate::outbox::AddOutboxTraceparent),
            Box::new(crate::outbox::AddOutboxLease),
        ]
    }
}

#[derive(DeriveIden)]
enum LogEntries {
    Table,
    EventId,
    Service,
    Kind,
    UserId,
    Message,
    Payload,
    CreatedAt,
    StoredAt,
}

/// Creates `log_entries`, keyed by the event id: storing an event twice is impossible, which is what
/// makes the log consumer idempotent.
#[derive(DeriveMigrationName)]
pub struct CreateLogEntries;

#[async_trait::async_trait]
impl MigrationTrait for CreateLogEntries {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LogEntries::Table)
                    .if_not_exists()
                    .col(pk_uuid(LogEntries::EventId))
                    .col(string(LogEntries::Service))
                    .col(string(LogEntries::Kind))
                    .col(string_null(LogEntries::UserId))
                    .col(text(LogEntries::Message))
                    .col(json(LogEntries::Payload))
                    .col(timestamp_with_time_zone(LogEntries::CreatedAt))
                    .col(timestamp_with_time_zone(LogEntries::StoredAt))
                    .to_owned(),
            )
            .await?;
        // A user's own entries (`logs`, `User.activity`), in id order.
        manager
            .create_index(
                Index::create()
                    .name("log_entries_user")
                    .table(LogEntries::Table)
                    .col(LogEntries::UserId)
                    .col(LogEntries::EventId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("log_entries_created")
                    .table(LogEntries::Table)
                    .col(LogEntries::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LogEntries::Table).to_owned())
            .await
    }
}
