//! `shippy up`: every service in one process, on consecutive ports, sharing one in-process event bus and one
//! shutdown signal. A supervisor watches them all: when one stops or fails, the others are stopped and the
//! command exits with that error.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use futures::future::BoxFuture;
use shippy_kit::{
    CancellationToken, db,
    events::{EventBus, InProcessBus},
    supervisor::Supervisor,
};
use tokio::net::TcpListener;

use crate::{services::SUBGRAPHS, settings::Settings};

/// What a service gets when `up` starts it.
pub struct UpContext {
    /// Its listener, already bound.
    pub listener: TcpListener,
    /// The layered settings.
    pub settings: Arc<Settings>,
    /// The shared in-process bus.
    pub bus: Arc<dyn EventBus>,
    /// The process-wide shutdown signal.
    pub shutdown: CancellationToken,
}

type StartFn = Box<dyn FnOnce(UpContext) -> BoxFuture<'static, anyhow::Result<()>> + Send>;

/// One service of `shippy up`.
pub struct UpService {
    /// Name, printed and used in errors.
    pub name: &'static str,
    /// Port relative to `--port-base`.
    pub port_offset: u16,
    /// URL path printed after the address.
    pub path: &'static str,
    /// Starts it; runs until `shutdown`.
    pub start: StartFn,
}

/// Every service `up` runs: the subgraphs (each on its own database).
pub fn services() -> Vec<UpService> {
    SUBGRAPHS
        .iter()
        .map(|subgraph| UpService {
            name: subgraph.name,
            port_offset: subgraph.port_offset,
            path: "/graphql",
            start: Box::new(
                move |ctx: UpContext| -> BoxFuture<'static, anyhow::Result<()>> {
                    Box::pin(async move {
                        let url = ctx.settings.up_database_url(subgraph.name)?;
                        db::ensure_database(&url).await?;
                        let config = ctx.settings.subgraph_config(url);
                        (subgraph.run)(ctx.listener, config, ctx.bus, ctx.shutdown).await
                    })
                },
            ),
        })
        .collect()
}

/// Binds every service's port (all before any starts, so a busy port fails fast), prints the URLs, and runs
/// them until `shutdown` or the first failure.
pub async fn run(
    settings: Settings,
    services: Vec<UpService>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                settings.data_dir.display()
            )
        })?;
    }
    let host: std::net::IpAddr = settings
        .host
        .parse()
        .with_context(|| format!("--host {} is not an IP address", settings.host))?;

    let mut bound = Vec::with_capacity(services.len());
    for service in services {
        let port = if settings.port_base == 0 {
            0
        } else {
            settings
                .port_base
                .checked_add(service.port_offset)
                .with_context(|| {
                    format!(
                        "port base {} + {} is past 65535",
                        settings.port_base, service.port_offset
                    )
                })?
        };
        let listener = TcpListener::bind(SocketAddr::new(host, port))
            .await
            .with_context(|| format!("{}: cannot listen on {host}:{port}", service.name))?;
        bound.push((service, listener));
    }

    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::default());
    let mut supervisor = Supervisor::new(shutdown.clone());
    for (service, listener) in bound {
        let addr = listener.local_addr()?;
        println!("{:<12} http://{addr}{}", service.name, service.path);
        let ctx = UpContext {
            listener,
            settings: settings.clone(),
            bus: bus.clone(),
            shutdown: shutdown.clone(),
        };
        supervisor.spawn(service.name, (service.start)(ctx));
    }
    println!("shippy is up; press Ctrl-C to stop");
    // Each service drains within the grace period itself; allow a little more for the services to wind down.
    let grace = settings.server.shutdown_grace + std::time::Duration::from_secs(2);
    supervisor.wait(grace).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}
