//! The `users` table (created by `shippy_migrations::user`).

use sea_orm::entity::prelude::*;

/// One user account.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// UUIDv7, so ordering by id is ordering by creation.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Company, if given.
    pub company: Option<String>,
    /// Email as typed at registration.
    pub email: String,
    /// Lower-cased email; unique.
    #[sea_orm(unique)]
    pub email_normalized: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Space-separated scopes granted to the user (e.g. `admin`); empty for ordinary users.
    pub scopes: String,
    /// Registration time.
    pub created_at: DateTimeUtc,
}

/// No relations inside this database.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The scopes as a list.
    pub fn scope_list(&self) -> Vec<String> {
        self.scopes.split_whitespace().map(str::to_owned).collect()
    }
}
