//! The `inbox` table of every subgraph that consumes events (see `shippy_kit::inbox`).

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `inbox`: one row per (consumer group, event) handled.
#[derive(DeriveMigrationName)]
pub struct CreateInbox;

#[derive(DeriveIden)]
enum Inbox {
    Table,
    Consumer,
    EventId,
    HandledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for CreateInbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Inbox::Table)
                    .if_not_exists()
                    .col(string(Inbox::Consumer))
                    .col(uuid(Inbox::EventId))
                    .col(timestamp_with_time_zone(Inbox::HandledAt))
                    // The key is what makes a redelivered event a no-op.
                    .primary_key(Index::create().col(Inbox::Consumer).col(Inbox::EventId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Inbox::Table).to_owned())
            .await
    }
}
