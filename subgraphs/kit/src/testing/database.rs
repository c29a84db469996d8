//! A fresh database per test: a SQLite file in a temporary directory, or `shippy_t_<uuid>` on the
//! PostgreSQL server of `TEST_DATABASE_URL`, dropped when the [`TestDb`] is dropped (even after a panic).

use std::path::PathBuf;

use crate::db;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh PostgreSQL database on `TEST_DATABASE_URL`'s server.
    Postgres,
}

/// `TEST_DATABASE_URL`, or the local default.
pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database that exists for one test.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    /// Keeps the SQLite directory alive; removed on drop.
    _dir: Option<tempfile::TempDir>,
    /// For PostgreSQL: (server URL to connect for the drop, database name).
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// Creates an empty database (no migrations: the subgraph applies its own at start).
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("test.db");
                Self {
                    url: db::sqlite_url(&path),
                    backend,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            Backend::Postgres => {
                let base = test_database_url();
                let name = format!("shippy_t_{}", uuid::Uuid::new_v4().simple());
                let url = db::with_database_name(&base, &name)
                    .expect("TEST_DATABASE_URL must name a database");
                db::ensure_database(&url).await.unwrap_or_else(|err| {
                    panic!(
                        "cannot create test database on {}: {err}",
                        db::redact(&base)
                    )
                });
                let (server, _) = db::split_postgres_url(&url).expect("postgres url");
                Self {
                    url,
                    backend,
                    _dir: None,
                    postgres: Some((server, name)),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        drop_postgres_database_blocking(&format!("{server}/{name}"));
    }
}

/// Drops a PostgreSQL database (closing its connections), from sync code such as `Drop`, even inside a
/// runtime: the work runs on a thread with its own runtime. Failures are printed, not raised.
pub fn drop_postgres_database_blocking(url: &str) {
    let url = url.to_owned();
    let dropper = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            use sea_orm::ConnectionTrait;
            let (server, name) =
                db::split_postgres_url(&url).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
            let admin = sea_orm::Database::connect(format!("{server}/postgres")).await?;
            let sql = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                db::quote_ident(&name)
            );
            admin.execute_unprepared(&sql).await?;
            admin.close().await
        })
    });
    match dropper.join() {
        Ok(Ok(())) => {}
        Ok(Err(err)) => eprintln!("warning: could not drop test database: {err}"),
        Err(_) => eprintln!("warning: test database drop panicked"),
    }
}
