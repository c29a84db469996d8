//! `shippy router`: command-line arguments and the entry point the `shippy` binary calls.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::{Router, RouterConfig};

/// Why `shippy router` refuses to start: a credential it needs is not configured.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Subgraph requests would go unsigned, and Shippy's subgraphs refuse those.
    #[error(
        "no subgraph signing key: set SHIPPY_ROUTER__SUBGRAPH_SIGNING__KEY (32+ bytes, e.g. `openssl rand \
         -hex 32`) and give the subgraphs the same key as SHIPPY_ROUTER_SIGNING_KEY; or, when no subgraph \
         needs the router's signature, set `subgraph_signing.required: false`"
    )]
    NoSigningKey,
    /// `@authenticated` / `@requiresScopes` fields could never be served.
    #[error(
        "the supergraph has @authenticated or @requiresScopes fields but no token key is configured: \
         set SHIPPY_ROUTER__AUTH__JWT__SECRET (the subgraphs' SHIPPY_JWT_SECRET), \
         `auth.jwt.public_key_file` or `auth.jwt.jwks_url`"
    )]
    NoJwtKey,
}

/// The credentials `shippy router` cannot start without (the library leaves them optional, for
/// embedding and tests): the subgraph signing key unless `subgraph_signing.required` is off.
pub fn check_credentials(config: &RouterConfig) -> Result<(), CredentialError> {
    if config.subgraph_signing.required && config.subgraph_signing.key.is_none() {
        return Err(CredentialError::NoSigningKey);
    }
    Ok(())
}

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
    check_credentials(&config)?;
    let verifies_tokens = config.auth.jwt.enabled();
    let router = Router::from_supergraph_sdl(&sdl, config)
        .with_context(|| format!("loading the supergraph {}", args.supergraph.display()))?;
    if router.requires_identity() && !verifies_tokens {
        anyhow::bail!("{}", CredentialError::NoJwtKey);
    }
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
