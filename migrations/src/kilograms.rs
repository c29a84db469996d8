//! Turning a floating-point weight column into whole kilograms (`BIGINT`), on PostgreSQL and SQLite alike:
//! add the new column, fill it from the old one, drop the old one, give the new one its name. SQLite
//! cannot change a column's type in place, and one way for both keeps the two paths the same.
//!
//! Rounding is chosen per column so that the conversion never overbooks a vessel: what is carried or
//! booked rounds up ([`Round::Up`]), what a vessel takes rounds down ([`Round::Down`]).

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DbBackend},
};

/// Which way a fraction goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Round {
    /// To the next whole kilogram (weights carried or booked).
    Up,
    /// To the whole kilogram below (a vessel's max weight).
    Down,
}

/// SQL for `column` (a floating-point value) rounded to a whole number the `round` way, as an integer.
/// SQLite has no `CEIL`/`FLOOR` without its math extension: its `CAST(x AS INTEGER)` truncates toward
/// zero, corrected by one where that went the wrong way (a comparison is 0 or 1 there).
pub(crate) fn rounded(backend: DbBackend, column: &str, round: Round) -> String {
    match (backend, round) {
        (DbBackend::Sqlite, Round::Up) => {
            format!("(CAST({column} AS INTEGER) + ({column} > CAST({column} AS INTEGER)))")
        }
        (DbBackend::Sqlite, Round::Down) => {
            format!("(CAST({column} AS INTEGER) - ({column} < CAST({column} AS INTEGER)))")
        }
        (_, Round::Up) => format!("CAST(CEIL({column}) AS BIGINT)"),
        (_, Round::Down) => format!("CAST(FLOOR({column}) AS BIGINT)"),
    }
}

/// Replaces `table.column` by a `new_type` column (`NOT NULL DEFAULT 0`) of the same name holding
/// `value` (SQL over the old row, e.g. [`rounded`]).
pub(crate) async fn replace_column(
    manager: &SchemaManager<'_>,
    table: &str,
    column: &str,
    new_type: &str,
    value: &str,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let temporary = format!("{column}_converted");
    for sql in [
        format!("ALTER TABLE {table} ADD COLUMN {temporary} {new_type} NOT NULL DEFAULT 0"),
        format!("UPDATE {table} SET {temporary} = {value}"),
        format!("ALTER TABLE {table} DROP COLUMN {column}"),
        format!("ALTER TABLE {table} RENAME COLUMN {temporary} TO {column}"),
    ] {
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// `table.column` in whole kilograms, rounded the `round` way.
pub(crate) async fn to_kilograms(
    manager: &SchemaManager<'_>,
    table: &str,
    column: &str,
    round: Round,
) -> Result<(), DbErr> {
    let value = rounded(manager.get_database_backend(), column, round);
    replace_column(manager, table, column, "BIGINT", &value).await
}

/// `table.column` back to floating point (the `down` of [`to_kilograms`]; whole kilograms convert
/// exactly).
pub(crate) async fn to_floating_point(
    manager: &SchemaManager<'_>,
    table: &str,
    column: &str,
) -> Result<(), DbErr> {
    let double = match manager.get_database_backend() {
        DbBackend::Sqlite => "REAL",
        _ => "DOUBLE PRECISION",
    };
    let value = format!("CAST({column} AS {double})");
    replace_column(manager, table, column, double, &value).await
}
