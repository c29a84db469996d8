//! `shippy router`: command-line arguments and the entry point the `shippy` binary calls.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::{Router, RouterConfig, SupergraphSource};

/// A poll interval: a human-readable duration of at least a second (a registry is not to be
/// hammered).
fn parse_interval(value: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    if interval < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(interval)
}

/// Where the supergraph comes from, and the task that follows its changes.
enum Origin {
    File(PathBuf),
    Url(Box<SupergraphSource>),
}

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
    /// Supergraph SDL file (Federation v2, `link/v1.0` with `join/v0.3`–`v0.5`). Watched: a
    /// changed file is loaded and swapped in while serving (a bad one is logged and ignored).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "supergraph_url",
        conflicts_with = "supergraph_url"
    )]
    pub supergraph: Option<PathBuf>,
    /// Fetch the supergraph from a schema registry or CDN instead of a file, and poll it for
    /// changes (with `If-None-Match`, so an unchanged one costs a 304).
    #[arg(long, env = "SHIPPY_ROUTER_SUPERGRAPH_URL", value_name = "URL")]
    pub supergraph_url: Option<String>,
    /// How often the supergraph file is checked or the URL polled (`30s`, `1m`...).
    #[arg(
        long,
        env = "SHIPPY_ROUTER_SUPERGRAPH_POLL_INTERVAL",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_interval
    )]
    pub supergraph_poll_interval: Duration,
    /// A header sent with every fetch of `--supergraph-url`, as `name: value` (e.g. a registry
    /// token; prefer the environment variable, which stays out of process listings).
    #[arg(
        long,
        env = "SHIPPY_ROUTER_SUPERGRAPH_AUTH_HEADER",
        value_name = "NAME: VALUE",
        requires = "supergraph_url",
        // Also a conflict: clap does not enforce `requires` against an arg that conflicts with
        // one present (`--supergraph`).
        conflicts_with = "supergraph",
        hide_env_values = true
    )]
    pub supergraph_auth_header: Option<String>,
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
    let (sdl, origin, location) = match (&args.supergraph, &args.supergraph_url) {
        (Some(path), _) => {
            let sdl = std::fs::read_to_string(path)
                .with_context(|| format!("reading the supergraph {}", path.display()))?;
            (sdl, Origin::File(path.clone()), path.display().to_string())
        }
        (None, Some(url)) => {
            let source = SupergraphSource::url(url, args.supergraph_auth_header.as_deref())?;
            let sdl = source
                .fetch()
                .await
                .context("no supergraph to start with")?
                .with_context(|| format!("{url} answered 304 to a first fetch"))?;
            (sdl, Origin::Url(Box::new(source)), url.clone())
        }
        (None, None) => anyhow::bail!("give --supergraph FILE or --supergraph-url URL"),
    };
    let listen = args.listen.unwrap_or(config.http.listen);
    let reload = config.reload.clone();
    check_credentials(&config)?;
    let verifies_tokens = config.auth.jwt.enabled();
    let router = Router::from_supergraph_sdl(&sdl, config)
        .with_context(|| format!("loading the supergraph {location}"))?;
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
    let interval = args.supergraph_poll_interval;
    let supergraph_watcher = match origin {
        Origin::File(path) => {
            tracing::info!(file = %path.display(), ?interval, "watching the supergraph file");
            futures::future::Either::Left(router.clone().watch_supergraph(path, interval))
        }
        Origin::Url(source) => {
            tracing::info!(
                url = source.location(),
                ?interval,
                "polling the supergraph URL"
            );
            futures::future::Either::Right(router.clone().poll_supergraph(*source, interval))
        }
    };
    tokio::select! {
        served = router.serve(listener, shutdown) => served.context("serving")?,
        () = watcher => anyhow::bail!("the config watcher stopped"),
        () = supergraph_watcher => anyhow::bail!("the supergraph watcher stopped"),
    }
    tracing::info!("router stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        router: RouterArgs,
    }

    fn parse(args: &[&str]) -> Result<RouterArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("router").chain(args.iter().copied()))
            .map(|cli| cli.router)
    }

    #[test]
    fn the_supergraph_comes_from_a_file_or_a_url() {
        let file = parse(&["--supergraph", "sg.graphql"]).unwrap();
        assert_eq!(
            file.supergraph.as_deref(),
            Some(std::path::Path::new("sg.graphql"))
        );
        assert_eq!(file.supergraph_poll_interval, Duration::from_secs(10));
        let url = parse(&[
            "--supergraph-url",
            "https://cdn.example.com/supergraph",
            "--supergraph-poll-interval",
            "1m",
            "--supergraph-auth-header",
            "x-cdn-key: k",
        ])
        .unwrap();
        assert_eq!(url.supergraph, None);
        assert_eq!(url.supergraph_poll_interval, Duration::from_secs(60));
        assert_eq!(url.supergraph_auth_header.as_deref(), Some("x-cdn-key: k"));
    }

    #[test]
    fn supergraph_flags_that_cannot_work_are_refused() {
        for args in [
            &[][..],
            &["--supergraph", "a", "--supergraph-url", "http://b"],
            &["--supergraph", "a", "--supergraph-auth-header", "x: y"],
            &["--supergraph-auth-header", "x: y"],
            &["--supergraph", "a", "--supergraph-poll-interval", "100ms"],
            &["--supergraph", "a", "--supergraph-poll-interval", "often"],
        ] {
            assert!(parse(args).is_err(), "{args:?} parsed");
        }
    }
}
