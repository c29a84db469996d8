//! The Shippy federation router: an Apollo Federation v2 supergraph in, plans executed against
//! subgraphs, GraphQL over HTTP out.
//!
//! ```no_run
//! # async fn demo(sdl: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let router = shippy_router::Router::from_supergraph_sdl(sdl, shippy_router::RouterConfig::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! router.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! Module map, top down (a module uses only modules below it; `router/README.md` has the table):
//!
//! - `server`: routes, serving and draining, background tasks, and the transports (`http`,
//!   `ws`, `sse`, the web UI) over an app state of operation state + subscription hub.
//! - `supergraph`: supergraph updates while serving (load, check, warm, swap the operation
//!   state whole; the file watcher and the URL poller).
//! - `subscriptions`: the hub, shared upstream streams (`upstream`), expiry and reload rules.
//! - `operation`: an operation's path without HTTP: prepare (parse, document limits, validate,
//!   normalize, plan), admit (variables, authorize, rate limits), execute, render; one
//!   `PipelineError` for every refusal.
//! - engines: `query_planner` (the only door to the planner crate), `auth` (tokens, JWKS, access
//!   rules), `rate_limit` (rate limiters and `@rateLimit`), `subgraph` (the outbound client with
//!   `resilience` and `single_flight`), `graphql` (API schema index, introspection, the
//!   executor's JSON value, AST helpers).
//! - leaves: `config` (settings), `telemetry` (spans and metrics from plain data), `tls` (the
//!   one rustls client setup), `error` (client-facing GraphQL errors and codes).

#![warn(missing_docs)]

mod auth;
pub mod cli;
pub mod config;
pub mod error;
mod fetch;
mod graphql;
mod operation;
mod query_planner;
mod rate_limit;
mod server;
mod subgraph;
mod subscriptions;
mod supergraph;
mod telemetry;
mod tls;

use std::future::Future;
use std::sync::Arc;

use shippy_security::signing::RequestSigner;

pub use cli::{RouterArgs, run};
pub use config::RouterConfig;
use operation::RouterState;
pub use query_planner::PlannerError;
use query_planner::QueryPlanner;
use query_planner::override_labels::Planners;
use server::AppState;
use subgraph::SubgraphClient;
use subscriptions::Hub;
pub use supergraph::{SupergraphSource, SupergraphUpdate};

/// Why a router could not be built from a supergraph and configuration.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The supergraph could not be loaded.
    #[error(transparent)]
    Supergraph(#[from] PlannerError),
    #[error(
        "subgraph `{subgraph}` has no usable URL ({reason}); set it in the supergraph or under `subgraphs.{subgraph}.url`"
    )]
    /// A subgraph has no usable URL.
    SubgraphUrl {
        /// The subgraph's name.
        subgraph: String,
        /// What is wrong with its URL.
        reason: subgraph::UrlError,
    },
    /// The configuration names a subgraph the supergraph does not declare.
    #[error("the configuration names subgraph `{0}`, which the supergraph does not declare")]
    UnknownSubgraph(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
    /// `subgraph_signing.key` cannot be used.
    #[error("`subgraph_signing.key`: {0}")]
    SigningKey(#[from] shippy_security::signing::KeyError),
    /// The configuration cannot be applied (keys, rate limits, `@rateLimit` directives).
    #[error("invalid configuration: {0}")]
    Setup(#[from] operation::SetupError),
    /// A new supergraph cannot plan an operation the running one serves, though it still
    /// validates there (see [`Router::update_supergraph`]).
    #[error(
        "the new supergraph cannot plan operation `{operation}`, which the current one serves: {reason}"
    )]
    Unplannable {
        /// The operation's name.
        operation: String,
        /// What planning said.
        reason: String,
    },
}

/// A router over one supergraph. Cheap to clone: the state is shared.
#[derive(Clone)]
pub struct Router {
    state: Arc<AppState>,
}

/// The state of one subgraph's resilience machinery, for diagnostics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphStatus {
    /// `closed`, `open` or `half-open`; `None` when the breaker is disabled.
    pub breaker: Option<&'static str>,
    /// Each replica's URL and whether it is in rotation.
    pub replicas: Vec<(String, bool)>,
}

/// What [`Router::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Whether the live configuration changed.
    pub applied: bool,
    /// Sections that changed but need a restart (left as they were).
    pub restart_required: Vec<&'static str>,
}

/// Cache statistics, for tests and diagnostics (also exported as metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests whose operation had a cached plan.
    pub plan_hits: u64,
    /// Requests whose operation was planned.
    pub plan_misses: u64,
    /// Plans in the cache.
    pub plans_cached: usize,
    /// Requests whose query text was already prepared.
    pub operation_hits: u64,
    /// Requests whose query text was prepared anew.
    pub operation_misses: u64,
}

impl Router {
    /// Loads a supergraph (checks its `@link`s, builds the planner and the API schema) and sets
    /// up a client per subgraph. Fails with a clear error when anything cannot be used.
    pub fn from_supergraph_sdl(sdl: &str, config: RouterConfig) -> Result<Router, RouterError> {
        let revocations = auth::revocation_store(&config.auth.revocation, &config.rate_limit)
            .map_err(|e| RouterError::Setup(operation::SetupError::Revocation(e)))?;
        Router::from_supergraph_sdl_with_revocations(sdl, config, revocations)
    }

    /// Like [`from_supergraph_sdl`](Self::from_supergraph_sdl), with revoked token ids read from
    /// `revocations` instead of the store `auth.revocation` describes: `shippy up` shares one with
    /// its user subgraph, so that a `logout` there is seen here.
    pub fn from_supergraph_sdl_with_revocations(
        sdl: &str,
        config: RouterConfig,
        revocations: Arc<dyn shippy_security::revocation::RevocationStore>,
    ) -> Result<Router, RouterError> {
        // The metrics registry first, so nothing recorded from here on is lost.
        telemetry::register_gauges();
        let planners = Planners::new(sdl, config.override_labels.max_labels)?;
        let planner = Arc::clone(planners.base());
        check_subgraph_names(&planner, &config)?;
        config.check()?;
        let clients = subgraph_clients(&planner, &config, &[])?;
        let hub = Arc::new(Hub::new(config.subscriptions.clone()));
        let info = operation::SupergraphInfo::of(sdl);
        let core = Arc::new(RouterState::new(
            config,
            planners,
            clients,
            revocations,
            info,
        )?);
        supergraph::record_loaded(None, &core.supergraph);
        Ok(Router {
            state: Arc::new(AppState::new(core, hub)),
        })
    }

    /// Whether the supergraph has `@authenticated` or `@requiresScopes` fields, which only a
    /// verified token can open.
    pub fn requires_identity(&self) -> bool {
        !self.state.core().access.is_empty()
    }

    /// The HTTP application: the GraphQL endpoint (behind the whole-request rate limit when
    /// `rate_limit.requests` turns it on; browsers loading it get the playground), the health
    /// check (never limited, so probes keep working under a flood) and the web UI.
    pub fn app(&self) -> axum::Router {
        server::app(&self.state).0
    }

    /// Serves on `listener` until `shutdown` completes, then drains in-flight requests for at most
    /// `http.shutdown_timeout` before dropping the remaining connections. The background tasks
    /// (JWKS refresh, subgraph health checks, rate-limiter clean-up) run while it serves; if one
    /// stops, serving stops with an error naming it.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        server::serve(self.state, listener, shutdown).await
    }

    /// Applies a new configuration while serving. The sections that are safe to change live
    /// (`limits`, `csrf`, `introspection`, `auth`, `rate_limit` except `rate_limit.requests`)
    /// take effect for the next request; prepared operations are re-prepared under them, and
    /// subscription connections are closed (WebSocket 1012) so that clients reconnect under
    /// them, when the change can affect subscriptions (`auth`, `rate_limit`, a lower `limits`;
    /// see `subscriptions::reload`). Changes anywhere else are ignored and named in the outcome
    /// (they need a restart). An invalid configuration changes nothing.
    pub fn reload(&self, config: RouterConfig) -> Result<ReloadOutcome, RouterError> {
        config.check()?;
        // One change at a time: a supergraph swap rebuilds the live rate limits too.
        let _changing = self.state.lock_changes();
        let core = self.state.core();
        if let Some(name) = config
            .headers
            .subgraphs
            .keys()
            .find(|name| !core.planner.subgraphs().iter().any(|s| &s.name == *name))
        {
            return Err(RouterError::UnknownSubgraph(name.clone()));
        }
        let (live_config, restart_required) = config.keep_restart_only(&core.config);
        let previous = core.live.load_full();
        let changed = live_config != previous.config;
        let closes_subscriptions =
            subscriptions::reload::affects_subscriptions(&previous.config, &live_config);
        if changed {
            let live = operation::Live::new(
                live_config,
                &core.rate_limit_directives,
                previous.generation + 1,
                &core.revocations,
            )?;
            core.live.store(Arc::new(live));
            // Operations prepared under the old limits must not be served again.
            core.operations.clear();
        }
        if closes_subscriptions {
            // Subscriptions admitted under the old rules reconnect under the new ones.
            self.state.hub.reloaded();
        }
        if !restart_required.is_empty() {
            tracing::warn!(
                sections = ?restart_required,
                "configuration changes that need a restart were ignored"
            );
        }
        Ok(ReloadOutcome {
            applied: changed,
            restart_required,
        })
    }

    /// Reloads `path` whenever its contents change (checked every `interval`), with the same
    /// layering as at start-up (environment variables still override it). A file that does not
    /// load is logged and the running configuration kept. The file is read when this is called,
    /// so a change made after the call is always seen, however late the future first runs. Runs
    /// until dropped.
    pub fn watch_config(
        self,
        path: std::path::PathBuf,
        interval: std::time::Duration,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mut last = fingerprint(&path);
        async move { self.watch_config_from(path, interval, &mut last).await }
    }

    async fn watch_config_from(
        self,
        path: std::path::PathBuf,
        interval: std::time::Duration,
        last: &mut Option<u64>,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let now = fingerprint(&path);
            if now == *last {
                continue;
            }
            *last = now;
            match RouterConfig::load(Some(&path)) {
                Err(error) => {
                    tracing::error!(file = %path.display(), %error, "config file not reloaded: it does not load")
                }
                Ok(config) => match self.reload(config) {
                    Ok(outcome) => tracing::info!(
                        file = %path.display(),
                        applied = outcome.applied,
                        restart_required = ?outcome.restart_required,
                        "config file reloaded"
                    ),
                    Err(error) => {
                        tracing::error!(file = %path.display(), %error, "config file not reloaded")
                    }
                },
            }
        }
    }

    /// The API schema clients see, as SDL.
    pub fn api_schema_sdl(&self) -> String {
        self.state.core().planner.api_schema().to_string()
    }

    /// The plan text for an operation (Apollo style), for diagnostics and snapshot tests.
    pub async fn plan_text(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<String, Vec<error::GraphQLError>> {
        let core = self.state.core();
        let live = core.live.load_full();
        match core.prepare(query, operation_name, &live, 0).await {
            Ok(prepared) => Ok(prepared
                .plan
                .as_ref()
                .map(|p| p.text.clone())
                .unwrap_or_default()),
            Err(rejection) => Err(rejection.errors().to_vec()),
        }
    }

    /// Breaker phase and replica health of subgraph `name`.
    pub fn subgraph_status(&self, name: &str) -> Option<SubgraphStatus> {
        let core = self.state.core();
        let client = core.subgraphs.iter().find(|c| c.name == name)?;
        Some(SubgraphStatus {
            breaker: client.breaker().map(|b| match b.phase() {
                subgraph::resilience::breaker::Phase::Closed => "closed",
                subgraph::resilience::breaker::Phase::Open { .. } => "open",
                subgraph::resilience::breaker::Phase::HalfOpen { .. } => "half-open",
            }),
            replicas: client
                .replicas()
                .replicas()
                .iter()
                .map(|r| (r.uri.to_string(), r.is_healthy()))
                .collect(),
        })
    }

    /// Open subscription connections (WebSocket and SSE).
    pub fn subscription_connections(&self) -> usize {
        self.state.hub.connections()
    }

    /// Client subscriptions attached to an upstream stream; a subscriber counts once it receives
    /// every event the stream sends from then on.
    pub fn subscriptions(&self) -> usize {
        self.state.hub.subscribers()
    }

    /// Distinct upstream subscription streams running (identical subscriptions share one).
    pub fn subscription_streams(&self) -> usize {
        self.state.hub.upstream_streams()
    }

    /// Hits and misses of the plan and prepared-operation caches.
    pub fn cache_stats(&self) -> CacheStats {
        let core = self.state.core();
        let (plan_hits, plan_misses) = core.plans.counters.snapshot();
        let (operation_hits, operation_misses) = core.operation_counters.snapshot();
        CacheStats {
            plan_hits,
            plan_misses,
            plans_cached: core.plans.len(),
            operation_hits,
            operation_misses,
        }
    }
}

/// Refuses a configuration that names subgraphs the supergraph does not declare.
fn check_subgraph_names(planner: &QueryPlanner, config: &RouterConfig) -> Result<(), RouterError> {
    for name in config
        .subgraphs
        .keys()
        .chain(config.subscriptions.subgraph_urls.keys())
        .chain(config.headers.subgraphs.keys())
    {
        if !planner.subgraphs().iter().any(|s| &s.name == name) {
            return Err(RouterError::UnknownSubgraph(name.clone()));
        }
    }
    Ok(())
}

/// A client per subgraph of `planner`, at the URLs the configuration gives (else the
/// supergraph's). A client of `keep` with the same name and URLs is reused, so that its breaker
/// state, replica health and connection pool survive a supergraph swap.
fn subgraph_clients(
    planner: &QueryPlanner,
    config: &RouterConfig,
    keep: &[Arc<SubgraphClient>],
) -> Result<Vec<Arc<SubgraphClient>>, RouterError> {
    let signer = match &config.subgraph_signing.key {
        Some(key) => Some(Arc::new(RequestSigner::new(key.expose().as_bytes())?)),
        None => None,
    };
    let mut clients = Vec::with_capacity(planner.subgraphs().len());
    let mut pools = subgraph::ConnectionPools::of(keep);
    for subgraph in planner.subgraphs() {
        let overrides = config.subgraphs.get(&subgraph.name);
        let urls = match overrides {
            Some(o) if !o.urls.is_empty() => o.urls.clone(),
            Some(o) if o.url.is_some() => o.url.iter().cloned().collect(),
            _ => vec![subgraph.url.clone()],
        };
        if urls.iter().any(|url| url.trim().is_empty()) {
            return Err(RouterError::SubgraphUrl {
                subgraph: subgraph.name.clone(),
                reason: subgraph::UrlError::Empty,
            });
        }
        if let Some(kept) = keep
            .iter()
            .find(|c| c.name == subgraph.name && c.urls == urls)
        {
            clients.push(Arc::clone(kept));
            continue;
        }
        let client = SubgraphClient::new(
            &subgraph.name,
            &urls,
            &config.subgraph(&subgraph.name),
            &config.subgraph_defaults,
            signer.clone(),
            &mut pools,
        )
        .map_err(|reason| RouterError::SubgraphUrl {
            subgraph: subgraph.name.clone(),
            reason,
        })?;
        clients.push(Arc::new(client));
    }
    Ok(clients)
}

/// A hash of the file's contents, `None` when it cannot be read.
fn fingerprint(path: &std::path::Path) -> Option<u64> {
    std::fs::read(path)
        .ok()
        .map(|bytes| xxhash_rust::xxh3::xxh3_64(&bytes))
}
