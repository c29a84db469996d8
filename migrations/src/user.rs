//! The user subgraph's database: `users` and `outbox`.

use sea_orm_migration::{prelude::*, schema::*};

/// Migrations of the user subgraph, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(crate::outbox::CreateOutbox),
            Box::new(CreateUsers),
            Box::new(crate::outbox::AddOutboxTraceparent),
            Box::new(crate::outbox::AddOutboxLease),
        ]
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Company,
    Email,
    EmailNormalized,
    PasswordHash,
    Scopes,
    CreatedAt,
}

/// Creates `users`. `email_normalized` (lower-cased) carries the unique index, so emails are unique
/// case-insensitively on both SQLite and PostgreSQL while `email` keeps what the user typed.
#[derive(DeriveMigrationName)]
pub struct CreateUsers;

#[async_trait::async_trait]
impl MigrationTrait for CreateUsers {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(pk_uuid(Users::Id))
                    .col(string(Users::Name))
                    .col(string_null(Users::Company))
                    .col(string(Users::Email))
                    .col(string_uniq(Users::EmailNormalized))
                    .col(string(Users::PasswordHash))
                    .col(string(Users::Scopes).default(""))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
