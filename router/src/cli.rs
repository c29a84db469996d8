//! `shippy router`: command-line arguments and the entry point the `shippy` binary calls.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::{Router, RouterConfig};

/// Arguments of `shippy router`.
#[derive(Debug, Clone, clap::Args)]
pub struct RouterArgs {
    /// Supergraph SDL file (Federation v2, `link/v1.0` with `join/v0.3`–`v0.5`).
    #[arg(long, value_name = "PATH")]
    pub supergraph: PathBuf,
    /// Address to listen on [default: `http.listen` from the config, 127.0.0.1:4000].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Configuration file (YAML or TOML); `SHIPPY_ROUTER__*` variables override it. It is
    /// watched and reloaded while serving (`reload.watch`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Loads configuration and supergraph, binds, and serves until `shutdown` completes.
pub async fn run(
    args: RouterArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config =
        RouterConfig::load(args.config.as_deref()).context("loading the router configuration")?;
    let sdl = std::fs::read_to_string(&args.supergraph)
        .with_context(|| format!("reading the supergraph {}", args.supergraph.display()))?;
    let listen = args.listen.unwrap_or(config.http.listen);
    let reload = config.reload.clone();
    let router = Router::from_supergraph_sdl(&sdl, config)
        .with_context(|| format!("loading the supergraph {}", args.supergraph.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    // The same line `shippy up` and `shippy subgraph` print: what scripts and tests read.
    println!("{:<12} http://{}/graphql", "router", listener.local_addr()?);
    // The watcher never ends on its own; it stops with the server.
    let watcher = match (&args.config, reload.watch) {
        (Some(path), true) => {
            tracing::info!(file = %path.display(), interval = ?reload.interval, "watching the config file");
            futures::future::Either::Left(
                router.clone().watch_config(path.clone(), reload.interval),
            )
        }
        _ => futures::future::Either::Right(std::future::pending()),
    };
    tokio::select! {
        served = router.serve(listener, shutdown) => served.context("serving")?,
        () = watcher => anyhow::bail!("the config watcher stopped"),
    }
    tracing::info!("router stopped");
    Ok(())
}
