//! Database connections: SQLite (the embedded default) or PostgreSQL, chosen by the URL, with the subgraph's
//! migrator run at start-up.

use std::{path::Path, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

/// Why a database could not be opened or prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither `sqlite:` nor `postgres://`.
    #[error("unsupported database URL `{0}`: expected sqlite:PATH or postgres://...")]
    UnsupportedUrl(String),
    /// Connecting failed (server down, wrong credentials, unwritable file).
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] DbErr),
    /// A migration failed; the database is left at the last migration that succeeded.
    #[error("migration failed: {0}")]
    Migrate(#[source] DbErr),
    /// Creating the database itself failed.
    #[error("cannot create database `{name}`: {source}")]
    Create {
        /// The database name.
        name: String,
        /// What the server said.
        #[source]
        source: DbErr,
    },
}

/// The URL of a SQLite file, created on first connect.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// Which backend a URL points at.
pub fn backend_of(url: &str) -> Result<DatabaseBackend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(DatabaseBackend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DatabaseBackend::Postgres)
    } else {
        Err(DbError::UnsupportedUrl(redact(url)))
    }
}

/// Opens a connection pool.
///
/// SQLite gets a single connection: every write then runs in order, so no transaction ever fails with
/// `database is locked` when a read inside it would have to be upgraded to a write. The embedded mode is for
/// one person's machine; PostgreSQL is what production and load use. The rule that follows: inside a
/// transaction, use only the transaction, never the pool (on SQLite that would wait for the connection the
/// transaction holds, until the acquire timeout).
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbError> {
    open(url, 16).await
}

/// Opens a small pool of at most `connections` beside the main one, for a background task that must
/// not wait behind request traffic for a connection (the outbox relay: when requests hold all of the
/// main pool's connections, each of its round trips queued behind them, and it paced the whole event
/// pipeline). `None` on SQLite, whose one connection is shared on purpose (see [`connect`]).
pub async fn connect_aside(
    url: &str,
    connections: u32,
) -> Result<Option<DatabaseConnection>, DbError> {
    if backend_of(url)? == DatabaseBackend::Sqlite {
        return Ok(None);
    }
    open(url, connections.max(1)).await.map(Some)
}

/// Opens a pool of at most `connections` (PostgreSQL) or one (SQLite).
async fn open(url: &str, connections: u32) -> Result<DatabaseConnection, DbError> {
    let backend = backend_of(url)?;
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.acquire_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    match backend {
        DatabaseBackend::Sqlite => {
            opts.max_connections(1).min_connections(1);
        }
        _ => {
            opts.max_connections(connections);
        }
    }
    let db = Database::connect(opts).await.map_err(DbError::Connect)?;
    if backend == DatabaseBackend::Sqlite {
        // WAL keeps readers in other processes (`shippy migrate`, sqlite3) from blocking us. It is stored in
        // the file, so setting it once holds for every later connection; sqlx already turns foreign keys on
        // and sets a busy timeout per connection.
        db.execute_unprepared("PRAGMA journal_mode = WAL")
            .await
            .map_err(DbError::Connect)?;
    }
    Ok(db)
}

/// The PostgreSQL advisory lock migrations hold (any fixed number; advisory locks are per database).
const MIGRATION_LOCK: i64 = 0x5348_4950_5059; // "SHIPPY"

/// Opens a pool and applies every pending migration of `M`.
///
/// On PostgreSQL the migrations run in one transaction that first takes an advisory lock: replicas of a
/// subgraph that start together on one database migrate one after the other (the later ones find nothing
/// left to do) instead of racing on the same `CREATE TABLE`, and a failed migration leaves nothing half
/// done. SQLite has one writer per file and is not shared between processes that start together.
pub async fn connect_and_migrate<M: MigratorTrait>(
    url: &str,
) -> Result<DatabaseConnection, DbError> {
    let db = connect(url).await?;
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let txn = db.begin().await.map_err(DbError::Migrate)?;
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await
            .map_err(DbError::Migrate)?;
        M::up(&txn, None).await.map_err(DbError::Migrate)?;
        txn.commit().await.map_err(DbError::Migrate)?;
    } else {
        M::up(&db, None).await.map_err(DbError::Migrate)?;
    }
    Ok(db)
}

/// Checks that the database answers (for `/ready`).
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.ping().await
}

/// Creates the PostgreSQL database named by the last path segment of `url` when it does not exist, by
/// connecting to the server's `postgres` database. SQLite files are created on connect, so this does nothing
/// for them.
pub async fn ensure_database(url: &str) -> Result<(), DbError> {
    if backend_of(url)? != DatabaseBackend::Postgres {
        return Ok(());
    }
    let (server, name) = split_postgres_url(url)?;
    let admin = Database::connect(format!("{server}/postgres"))
        .await
        .map_err(DbError::Connect)?;
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.clone().into()],
        ))
        .await
        .map_err(DbError::Connect)?
        .is_some();
    if !exists {
        admin
            .execute_unprepared(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await
            .map_err(|source| DbError::Create {
                name: name.clone(),
                source,
            })?;
    }
    admin.close().await.map_err(DbError::Connect)?;
    Ok(())
}

/// Splits `postgres://user@host:port/name?opts` into (`postgres://user@host:port`, `name`). Query options are
/// dropped from the server part: they belong to the original database.
pub fn split_postgres_url(url: &str) -> Result<(String, String), DbError> {
    let without_query = url.split('?').next().unwrap_or(url);
    let scheme_end = without_query
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| DbError::UnsupportedUrl(redact(url)))?;
    match without_query[scheme_end..].find('/') {
        Some(slash) => {
            let at = scheme_end + slash;
            let name = &without_query[at + 1..];
            if name.is_empty() {
                return Err(DbError::UnsupportedUrl(redact(url)));
            }
            Ok((without_query[..at].to_owned(), name.to_owned()))
        }
        None => Err(DbError::UnsupportedUrl(redact(url))),
    }
}

/// Replaces `postgres://users/name/other` with the same server and another database name.
pub fn with_database_name(url: &str, name: &str) -> Result<String, DbError> {
    let (server, _) = split_postgres_url(url)?;
    let query = url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Ok(format!("{server}/{name}{query}"))
}

/// Quotes a PostgreSQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A URL safe to print: the password, if any, is masked.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let host_start = rest.find('/').unwrap_or(rest.len());
    match rest[..host_start].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:****")
            } else {
                user.to_owned()
            };
            format!("{}{masked}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_helpers() {
        assert!(matches!(
            backend_of("mysql://x/y"),
            Err(DbError::UnsupportedUrl(_))
        ));
        assert_eq!(
            backend_of("sqlite://a.db?mode=rwc").unwrap(),
            DatabaseBackend::Sqlite
        );
        let (server, name) =
            split_postgres_url("postgres://u:p@h:5432/test?sslmode=disable").unwrap();
        assert_eq!(
            (server.as_str(), name.as_str()),
            ("postgres://u:p@h:5432", "test")
        );
        assert!(split_postgres_url("postgres://h:5432").is_err());
        assert_eq!(
            with_database_name("postgres://h/test?sslmode=disable", "other").unwrap(),
            "postgres://h/other?sslmode=disable"
        );
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:****@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
