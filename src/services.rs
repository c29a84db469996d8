//! The services `shippy` can run: each subgraph with its port offset, and how to start, migrate and describe
//! it. Adding a subgraph is one entry in [`SUBGRAPHS`]; adding another kind of service to `shippy up` (the
//! router) is one more [`UpService`] in [`crate::up::services`].

use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use shippy_kit::{CancellationToken, db, events::EventBus, server::SubgraphConfig, subgraph};
use tokio::net::TcpListener;

/// Runs a subgraph on a bound listener until shutdown.
pub type RunFn = fn(
    TcpListener,
    SubgraphConfig,
    Arc<dyn EventBus>,
    CancellationToken,
) -> BoxFuture<'static, anyhow::Result<()>>;
/// Applies a subgraph's migrations to a database URL.
pub type MigrateFn = fn(String) -> BoxFuture<'static, anyhow::Result<()>>;

/// One subgraph as the command knows it.
pub struct Subgraph {
    /// Its name: `shippy subgraph <name>`, `schema/<name>.graphql`, `<data_dir>/<name>.db`.
    pub name: &'static str,
    /// Port relative to the port base (`shippy up`), also its default standalone port (4000 + offset).
    pub port_offset: u16,
    /// Runs it.
    pub run: RunFn,
    /// Migrates its database.
    pub migrate: MigrateFn,
    /// Its federation SDL.
    pub sdl: fn() -> String,
}

/// Every subgraph, in port order.
pub const SUBGRAPHS: &[Subgraph] = &[
    Subgraph {
        name: shippy_user::NAME,
        port_offset: 1,
        run: |listener, config, bus, shutdown| {
            Box::pin(async move {
                Ok(subgraph::run::<shippy_user::User>(listener, config, bus, shutdown).await?)
            })
        },
        migrate: |url| Box::pin(migrate::<shippy_migrations::user::Migrator>(url)),
        sdl: subgraph::sdl::<shippy_user::User>,
    },
    Subgraph {
        name: shippy_vessel::NAME,
        port_offset: 2,
        run: |listener, config, bus, shutdown| {
            Box::pin(async move {
                Ok(subgraph::run::<shippy_vessel::Vessel>(listener, config, bus, shutdown).await?)
            })
        },
        migrate: |url| Box::pin(migrate::<shippy_migrations::vessel::Migrator>(url)),
        sdl: subgraph::sdl::<shippy_vessel::Vessel>,
    },
    Subgraph {
        name: shippy_consignment::NAME,
        port_offset: 3,
        run: |listener, config, bus, shutdown| {
            Box::pin(async move {
                Ok(subgraph::run::<shippy_consignment::Consignment>(
                    listener, config, bus, shutdown,
                )
                .await?)
            })
        },
        migrate: |url| Box::pin(migrate::<shippy_migrations::consignment::Migrator>(url)),
        sdl: subgraph::sdl::<shippy_consignment::Consignment>,
    },
    Subgraph {
        name: shippy_log::NAME,
        port_offset: 4,
        run: |listener, config, bus, shutdown| {
            Box::pin(async move {
                Ok(subgraph::run::<shippy_log::Log>(listener, config, bus, shutdown).await?)
            })
        },
        migrate: |url| Box::pin(migrate::<shippy_migrations::log::Migrator>(url)),
        sdl: subgraph::sdl::<shippy_log::Log>,
    },
];

/// The subgraph called `name`.
pub fn subgraph(name: &str) -> Option<&'static Subgraph> {
    SUBGRAPHS.iter().find(|s| s.name == name)
}

/// The names, for `--help` and argument checking.
pub fn subgraph_names() -> Vec<&'static str> {
    SUBGRAPHS.iter().map(|s| s.name).collect()
}

async fn migrate<M: shippy_migrations::MigratorTrait>(url: String) -> anyhow::Result<()> {
    db::ensure_database(&url).await?;
    let conn = db::connect_and_migrate::<M>(&url)
        .await
        .with_context(|| format!("migrating {}", db::redact(&url)))?;
    conn.close().await?;
    Ok(())
}
