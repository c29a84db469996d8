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
//! Module map: `pipeline` is the request path (one module a stage), `query_planner` the only
//! door to the planner crate, `subgraph` the outbound HTTP client (with `resilience`: breaker,
//! replicas, retries), `auth` tokens and access rules, `limits` the rate limiters, `schema` the
//! API schema index, `introspection` its resolver, `value` the executor's JSON, `config` the
//! settings, `background` the tasks that run while serving, `subscriptions` WebSocket and SSE
//! subscriptions (federated: entity fetches per event).

pub mod auth;
mod background;
pub mod cli;
pub mod config;
pub mod error;
pub mod introspection;
pub mod limits;
pub mod pipeline;
pub mod query_planner;
pub mod resilience;
pub mod schema;
pub mod subgraph;
pub mod subscriptions;
pub mod telemetry;
pub mod value;
pub mod web;

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use axum::routing::{any, get};
use http::HeaderName;

pub use cli::{RouterArgs, run};
pub use config::RouterConfig;
pub use error::RouterError;
use pipeline::RouterState;
use query_planner::QueryPlanner;
use subgraph::SubgraphClient;

async fn health() -> impl axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"pass\"}",
    )
}

/// A router over one supergraph. Cheap to clone: the state is shared.
#[derive(Clone)]
pub struct Router {
    state: Arc<RouterState>,
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
    pub plan_hits: u64,
    pub plan_misses: u64,
    pub plans_cached: usize,
    pub operation_hits: u64,
    pub operation_misses: u64,
}

impl Router {
    /// Loads a supergraph (checks its `@link`s, builds the planner and the API schema) and sets
    /// up a client per subgraph. Fails with a clear error when anything cannot be used.
    pub fn from_supergraph_sdl(sdl: &str, config: RouterConfig) -> Result<Router, RouterError> {
        let revocations = auth::revocation_store(&config.auth.revocation, &config.rate_limit)
            .map_err(RouterError::Config)?;
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
        let planner = QueryPlanner::new(sdl)?;
        for name in config
            .subgraphs
            .keys()
            .chain(config.subscriptions.subgraph_urls.keys())
        {
            if !planner.subgraphs().iter().any(|s| &s.name == name) {
                return Err(RouterError::UnknownSubgraph(name.clone()));
            }
        }
        config.check().map_err(RouterError::Config)?;
        let mut clients = Vec::with_capacity(planner.subgraphs().len());
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
                    reason: "it is empty".into(),
                });
            }
            let client = SubgraphClient::new(
                &subgraph.name,
                &urls,
                &config.subgraph(&subgraph.name),
                &config.subgraph_defaults,
            )
            .map_err(|reason| RouterError::SubgraphUrl {
                subgraph: subgraph.name.clone(),
                reason,
            })?;
            clients.push(client);
        }
        let forward_headers = config
            .subgraph_defaults
            .forward_headers
            .iter()
            .map(|name| {
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    RouterError::Config(format!("`{name}` is not a valid header name"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Router {
            state: Arc::new(RouterState::new(
                config,
                planner,
                clients,
                forward_headers,
                revocations,
            )?),
        })
    }

    /// The HTTP application: the GraphQL endpoint (behind the whole-request rate limit when
    /// `rate_limit.requests` turns it on; browsers loading it get the playground), the health
    /// check (never limited, so probes keep working under a flood) and the web UI.
    pub fn app(&self) -> axum::Router {
        self.app_and_request_limiter().0
    }

    fn app_and_request_limiter(
        &self,
    ) -> (axum::Router, Option<Arc<limits::requests::RequestLimiter>>) {
        let http = &self.state.config.http;
        let state = Arc::clone(&self.state);
        let mut graphql = axum::Router::new().route(
            &http.graphql_path,
            any(move |request| pipeline::handle(Arc::clone(&state), request)),
        );
        if http.playground {
            graphql = graphql.route_layer(axum::middleware::from_fn(web::playground));
        }
        let (graphql, limiter) = limits::requests::apply(
            graphql,
            &self.state.config.rate_limit.requests,
            self.state.client_ip_header.clone(),
        );
        let metrics_state = Arc::clone(&self.state);
        let app = graphql
            .route(
                "/metrics",
                get(move || async move { telemetry::metrics_response(&metrics_state) }),
            )
            .route(&http.health_path, get(health));
        // Stateless: ready as soon as it serves (what compose and load balancers probe).
        let app = if http.health_path == "/ready" {
            app
        } else {
            app.route("/ready", get(health))
        };
        let app = app.merge(web::routes(http));
        (app, limiter)
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
        let drain_timeout = self.state.config.http.shutdown_timeout;
        let (app, request_limiter) = self.app_and_request_limiter();
        let mut tasks = background::spawn(&self.state, request_limiter);
        // Upgraded WebSocket connections are not the HTTP server's any more: they close
        // themselves ("going away") on the hub's signal, and serving ends once they have.
        let hub = Arc::clone(&self.state.subscriptions);
        let drained_hub = Arc::clone(&hub);
        let (signalled_tx, mut signalled_rx) = tokio::sync::watch::channel(false);
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            hub.shut_down();
            let _ = signalled_tx.send(true);
        });
        let drain_deadline = async move {
            // Completes `drain_timeout` after the shutdown signal; never if the sender is dropped
            // without signalling (the server then ended on its own).
            if signalled_rx.wait_for(|signalled| *signalled).await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(drain_timeout).await;
        };
        let stopped_task = async {
            match tasks.join_next().await {
                Some(ended) => ended,
                None => std::future::pending().await,
            }
        };
        let served = async move {
            let result = server.into_future().await;
            drained_hub.drained().await;
            result
        };
        tokio::select! {
            result = served => result,
            () = drain_deadline => {
                tracing::warn!(timeout = ?drain_timeout, "shutdown drain timed out; closing remaining connections");
                Ok(())
            }
            ended = stopped_task => {
                let reason = match ended {
                    Ok(name) => format!("background task `{name}` stopped"),
                    Err(error) => format!("a background task failed: {error}"),
                };
                tracing::error!(reason, "router stopping");
                Err(std::io::Error::other(reason))
            }
        }
    }

    /// Applies a new configuration while serving. The sections that are safe to change live
    /// (`limits`, `csrf`, `introspection`, `auth`, `rate_limit` except `rate_limit.requests`)
    /// take effect for the next request; prepared operations are re-prepared under them, and
    /// subscription connections are closed (WebSocket 1012) so that clients reconnect under
    /// them, when the change can affect subscriptions (`auth`, `rate_limit`, a lower `limits`;
    /// see `subscriptions::reload`). Changes anywhere else are ignored and named in the outcome
    /// (they need a restart). An invalid configuration changes nothing.
    pub fn reload(&self, config: RouterConfig) -> Result<ReloadOutcome, RouterError> {
        config.check().map_err(RouterError::Config)?;
        let current = &self.state.config;
        let mut restart_required = Vec::new();
        let mut note = |name: &'static str, differs: bool| {
            if differs {
                restart_required.push(name);
            }
        };
        note("http", config.http != current.http);
        note(
            "query_planning",
            config.query_planning != current.query_planning,
        );
        note(
            "subgraph_defaults",
            config.subgraph_defaults != current.subgraph_defaults,
        );
        note("subgraphs", config.subgraphs != current.subgraphs);
        note("reload", config.reload != current.reload);
        note(
            "subscriptions",
            config.subscriptions != current.subscriptions,
        );
        note(
            "rate_limit.requests",
            config.rate_limit.requests != current.rate_limit.requests,
        );
        note(
            "auth.revocation",
            config.auth.revocation != current.auth.revocation,
        );
        let mut live_config = config;
        live_config.http = current.http.clone();
        live_config.query_planning = current.query_planning.clone();
        live_config.subgraph_defaults = current.subgraph_defaults.clone();
        live_config.subgraphs = current.subgraphs.clone();
        live_config.reload = current.reload.clone();
        live_config.subscriptions = current.subscriptions.clone();
        live_config.rate_limit.requests = current.rate_limit.requests.clone();
        live_config.auth.revocation = current.auth.revocation.clone();
        let previous = self.state.live.load_full();
        let changed = live_config != previous.config;
        let closes_subscriptions =
            subscriptions::reload::affects_subscriptions(&previous.config, &live_config);
        if changed {
            let live = pipeline::Live::new(
                live_config,
                &self.state.rate_limit_directives,
                previous.generation + 1,
                &self.state.revocations,
            )?;
            self.state.live.store(Arc::new(live));
            // Operations prepared under the old limits must not be served again.
            self.state.operations.clear();
        }
        if closes_subscriptions {
            // Subscriptions admitted under the old rules reconnect under the new ones.
            self.state.subscriptions.reloaded();
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
    /// load is logged and the running configuration kept. Runs until dropped.
    pub async fn watch_config(self, path: std::path::PathBuf, interval: std::time::Duration) {
        let fingerprint = |path: &std::path::Path| {
            std::fs::read(path)
                .ok()
                .map(|b| xxhash_rust::xxh3::xxh3_64(&b))
        };
        let mut last = fingerprint(&path);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let now = fingerprint(&path);
            if now == last {
                continue;
            }
            last = now;
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
        self.state.planner.api_schema().to_string()
    }

    /// The plan text for an operation (Apollo style), for diagnostics and snapshot tests.
    pub async fn plan_text(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<String, Vec<error::GraphQLError>> {
        let live = self.state.live.load_full();
        match self.state.prepare(query, operation_name, &live).await {
            Ok(prepared) => Ok(prepared
                .plan
                .as_ref()
                .map(|p| p.text.clone())
                .unwrap_or_default()),
            Err(rejection) => Err(rejection.errors.clone()),
        }
    }

    /// Breaker phase and replica health of subgraph `name`.
    pub fn subgraph_status(&self, name: &str) -> Option<SubgraphStatus> {
        let client = self.state.subgraphs.iter().find(|c| c.name == name)?;
        Some(SubgraphStatus {
            breaker: client.breaker().map(|b| match b.phase() {
                resilience::breaker::Phase::Closed => "closed",
                resilience::breaker::Phase::Open { .. } => "open",
                resilience::breaker::Phase::HalfOpen { .. } => "half-open",
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
        self.state.subscriptions.connections()
    }

    /// Distinct upstream subscription streams running (identical subscriptions share one).
    pub fn subscription_streams(&self) -> usize {
        self.state.subscriptions.upstream_streams()
    }

    pub fn cache_stats(&self) -> CacheStats {
        let (plan_hits, plan_misses) = self.state.plans.counters.snapshot();
        let (operation_hits, operation_misses) = self.state.operation_counters.snapshot();
        CacheStats {
            plan_hits,
            plan_misses,
            plans_cached: self.state.plans.len(),
            operation_hits,
            operation_misses,
        }
    }
}
