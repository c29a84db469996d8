//! `shippy up`: every service in one process, on consecutive ports, sharing one event bus (in-process, or
//! Redis streams when `REDIS_URL` is set) and one shutdown signal. A supervisor watches them all: when one stops or fails, the others are stopped and the
//! command exits with that error.
//!
//! Secrets: unless configured, the JWT secret (HS256) and the key the router signs subgraph requests
//! with are generated on first start (32 random bytes each) into [`JWT_SECRET_FILE`] and
//! [`ROUTER_KEY_FILE`] in the data directory, mode 0600, and read from there afterwards so tokens
//! survive restarts. A file others may read is refused, not repaired: its secret may have leaked.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use anyhow::Context;
use futures::future::BoxFuture;
use shippy_kit::{
    CancellationToken, db,
    events::{self, EventBus},
    supervisor::Supervisor,
};
use shippy_security::revocation::RevocationStore;
use tokio::net::TcpListener;

use shippy_kit::config::Secret;
use shippy_router::config::Secret as RouterSecret;

use crate::{services::SUBGRAPHS, settings::Settings};

/// The file in the data directory holding the generated JWT secret.
pub const JWT_SECRET_FILE: &str = "jwt-secret";

/// The file in the data directory holding the generated router signing key.
pub const ROUTER_KEY_FILE: &str = "router-signing-key";

/// What a service gets when `up` starts it.
pub struct UpContext {
    /// Its listener, already bound.
    pub listener: TcpListener,
    /// The layered settings.
    pub settings: Arc<Settings>,
    /// The shared event bus.
    pub bus: Arc<dyn EventBus>,
    /// The process-wide shutdown signal.
    pub shutdown: CancellationToken,
    /// Revoked token ids: the user subgraph's `logout` writes them, the router reads them.
    pub revocations: Arc<dyn RevocationStore>,
    /// Where every service of this `up` listens, by name (ports may be chosen by the OS with
    /// `--port-base 0`, so the router learns its subgraphs' addresses here, not from the supergraph).
    pub addresses: Arc<BTreeMap<&'static str, SocketAddr>>,
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

/// The composed supergraph of our subgraphs, embedded so that `shippy up` runs from any directory. The
/// schema check (`shippy schema check`) keeps it equal to what the subgraphs export.
pub const SUPERGRAPH: &str = include_str!("../schema/supergraph.graphql");

/// Every service `up` runs: the router on the port base, then the subgraphs (each on its own database).
pub fn services() -> Vec<UpService> {
    let router = UpService {
        name: "router",
        port_offset: 0,
        path: "/graphql",
        start: Box::new(|ctx: UpContext| -> BoxFuture<'static, anyhow::Result<()>> {
            Box::pin(run_router(ctx))
        }),
    };
    std::iter::once(router)
        .chain(SUBGRAPHS.iter().map(subgraph_service))
        .collect()
}

/// The router over the embedded supergraph, its subgraph URLs pointed at this `up`'s own listeners.
/// `SHIPPY_ROUTER__*` environment variables configure it as they do `shippy router`; unless they set
/// `auth.jwt` keys, the router verifies tokens exactly as the subgraphs do (same key, issuer, audience),
/// and it signs its subgraph requests with the key the subgraphs of this process accept.
async fn run_router(ctx: UpContext) -> anyhow::Result<()> {
    let mut config =
        shippy_router::RouterConfig::load(None).context("loading the router configuration")?;
    if !config.auth.jwt.enabled() {
        verify_like_the_subgraphs(&ctx.settings.auth, &mut config.auth.jwt)?;
    }
    let key = ctx
        .settings
        .access
        .router_key
        .as_ref()
        .context("the router signing key was not set up")?;
    config.subgraph_signing.key = Some(RouterSecret::new(key.expose()));
    for subgraph in SUBGRAPHS {
        let addr = ctx.addresses[subgraph.name];
        config
            .subgraphs
            .entry(subgraph.name.to_owned())
            .or_default()
            .url = Some(format!("http://{addr}/graphql"));
    }
    let router = shippy_router::Router::from_supergraph_sdl_with_revocations(
        SUPERGRAPH,
        config,
        ctx.revocations,
    )
    .context("loading the embedded supergraph")?;
    router
        .serve(ctx.listener, ctx.shutdown.cancelled_owned())
        .await
        .context("router")
}

/// Points the router's JWT verification at the key the subgraphs use.
fn verify_like_the_subgraphs(
    auth: &shippy_kit::config::AuthConfig,
    jwt: &mut shippy_router::config::JwtConfig,
) -> anyhow::Result<()> {
    use shippy_kit::config::JwtAlgorithm;
    use shippy_router::config::{PublicKeyAlgorithm, Secret};
    match auth.algorithm {
        JwtAlgorithm::HS256 => {
            let secret = shippy_kit::auth::hs256_secret(auth)?;
            let secret = String::from_utf8(secret).context("the HS256 secret is not UTF-8")?;
            jwt.secret = Some(Secret::new(secret));
        }
        JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
            jwt.public_key_file = Some(auth.public_key_file.clone().context(
                "RS256/ES256 need a public key file (SHIPPY_JWT_PUBLIC_KEY_FILE) for the router",
            )?);
            jwt.public_key_algorithm = if auth.algorithm == JwtAlgorithm::RS256 {
                PublicKeyAlgorithm::RS256
            } else {
                PublicKeyAlgorithm::ES256
            };
        }
    }
    jwt.issuers = vec![auth.issuer.clone()];
    jwt.audiences = vec![auth.audience.clone()];
    jwt.leeway = auth.leeway;
    Ok(())
}

/// Fills in the secrets the operator did not configure: the HS256 JWT secret and the router signing key
/// (from `SHIPPY_ROUTER__SUBGRAPH_SIGNING__KEY` if set there, so router and subgraphs agree), each read
/// from or generated into its file in the data directory.
pub fn ensure_secrets(settings: &mut Settings) -> anyhow::Result<()> {
    use shippy_kit::config::JwtAlgorithm;
    if settings.auth.algorithm == JwtAlgorithm::HS256 && settings.auth.secret.is_none() {
        let secret = secret_file(&settings.data_dir.join(JWT_SECRET_FILE), "JWT secret")?;
        settings.auth.secret = Some(Secret::new(secret));
    }
    if settings.access.router_key.is_none() {
        let configured = shippy_router::RouterConfig::load(None)
            .ok()
            .and_then(|config| config.subgraph_signing.key);
        let key = match configured {
            Some(key) => key.expose().to_owned(),
            None => secret_file(
                &settings.data_dir.join(ROUTER_KEY_FILE),
                "router signing key",
            )?,
        };
        settings.access.router_key = Some(Secret::new(key));
    }
    Ok(())
}

/// The secret in `path`, generated there on first use.
fn secret_file(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    let file = shippy_security::signing::load_or_create_secret_file(path)
        .with_context(|| format!("the {what} of `shippy up`"))?;
    if file.created {
        tracing::info!(file = %path.display(), "generated a new {what} (mode 0600)");
    }
    Ok(file.secret)
}

/// One subgraph, on its own database.
fn subgraph_service(subgraph: &'static crate::services::Subgraph) -> UpService {
    UpService {
        name: subgraph.name,
        port_offset: subgraph.port_offset,
        path: "/graphql",
        start: Box::new(
            move |ctx: UpContext| -> BoxFuture<'static, anyhow::Result<()>> {
                Box::pin(async move {
                    let url = ctx.settings.up_database_url(subgraph.name)?;
                    db::ensure_database(&url).await?;
                    let mut config = ctx.settings.subgraph_config(url);
                    config.revocations = Some(ctx.revocations);
                    (subgraph.run)(ctx.listener, config, ctx.bus, ctx.shutdown).await
                })
            },
        ),
    }
}

/// Binds every service's port (all before any starts, so a busy port fails fast), prints the URLs, and runs
/// them until `shutdown` or the first failure.
pub async fn run(
    mut settings: Settings,
    services: Vec<UpService>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    ensure_secrets(&mut settings)?;
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

    let addresses = Arc::new(
        bound
            .iter()
            .map(|(service, listener)| Ok((service.name, listener.local_addr()?)))
            .collect::<std::io::Result<BTreeMap<_, _>>>()?,
    );
    // Five servers, one process, one file-descriptor limit: their connections share one total on top of
    // each server's own caps, so that a flood on all of them cannot exhaust the descriptors.
    shippy_security::connections::cap_process_connections(
        settings.server.connections.max_connections,
    );
    let bus: Arc<dyn EventBus> = events::connect(settings.redis_url.as_deref(), &settings.events)?;
    let revocations = settings.up_revocations()?;
    let mut supervisor = Supervisor::new(shutdown.clone());
    for (service, listener) in bound {
        let addr = listener.local_addr()?;
        println!("{:<12} http://{addr}{}", service.name, service.path);
        let ctx = UpContext {
            listener,
            settings: settings.clone(),
            bus: bus.clone(),
            revocations: revocations.clone(),
            shutdown: shutdown.clone(),
            addresses: addresses.clone(),
        };
        supervisor.spawn(service.name, (service.start)(ctx));
    }
    // The router serves the web UI at `/` unless its configuration turns it off: that is the URL a
    // person opens.
    if let Some(router) = addresses.get("router")
        && shippy_router::RouterConfig::load(None).is_ok_and(|config| config.http.ui)
    {
        println!("{:<12} http://{router}/", "web");
    }
    println!("shippy is up; press Ctrl-C to stop");
    // Each service drains within the grace period itself; allow a little more for the services to wind down.
    let grace = settings.server.shutdown_grace + std::time::Duration::from_secs(2);
    supervisor.wait(grace).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}
