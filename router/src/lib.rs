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
//! door to the planner crate, `subgraph` the outbound HTTP client, `schema` the API schema index,
//! `introspection` its resolver, `value` the executor's JSON.

pub mod cli;
pub mod config;
pub mod error;
pub mod introspection;
pub mod pipeline;
pub mod query_planner;
pub mod schema;
pub mod subgraph;
pub mod value;

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

/// A router over one supergraph. Cheap to clone: the state is shared.
#[derive(Clone)]
pub struct Router {
    state: Arc<RouterState>,
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
        let planner = QueryPlanner::new(sdl)?;
        for name in config.subgraphs.keys() {
            if !planner.subgraphs().iter().any(|s| &s.name == name) {
                return Err(RouterError::UnknownSubgraph(name.clone()));
            }
        }
        let mut clients = Vec::with_capacity(planner.subgraphs().len());
        for subgraph in planner.subgraphs() {
            let url = config
                .subgraphs
                .get(&subgraph.name)
                .and_then(|o| o.url.clone())
                .unwrap_or_else(|| subgraph.url.clone());
            if url.trim().is_empty() {
                return Err(RouterError::SubgraphUrl {
                    subgraph: subgraph.name.clone(),
                    reason: "it is empty".into(),
                });
            }
            let client = SubgraphClient::new(
                &subgraph.name,
                &url,
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
            state: Arc::new(RouterState::new(config, planner, clients, forward_headers)),
        })
    }

    /// The HTTP application: the GraphQL endpoint and the health check.
    pub fn app(&self) -> axum::Router {
        let http = &self.state.config.http;
        let state = Arc::clone(&self.state);
        axum::Router::new()
            .route(
                &http.graphql_path,
                any(move |request| pipeline::handle(Arc::clone(&state), request)),
            )
            .route(
                &http.health_path,
                get(|| async {
                    (
                        [(http::header::CONTENT_TYPE, "application/json")],
                        "{\"status\":\"pass\"}",
                    )
                }),
            )
    }

    /// Serves on `listener` until `shutdown` completes, then drains in-flight requests for at most
    /// `http.shutdown_timeout` before dropping the remaining connections.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let drain_timeout = self.state.config.http.shutdown_timeout;
        let (signalled_tx, mut signalled_rx) = tokio::sync::watch::channel(false);
        let server = axum::serve(listener, self.app()).with_graceful_shutdown(async move {
            shutdown.await;
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
        tokio::select! {
            result = server.into_future() => result,
            () = drain_deadline => {
                tracing::warn!(timeout = ?drain_timeout, "shutdown drain timed out; closing remaining connections");
                Ok(())
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
        match self.state.prepare(query, operation_name).await {
            Ok(prepared) => Ok(prepared
                .plan
                .as_ref()
                .map(|p| p.text.clone())
                .unwrap_or_default()),
            Err(rejection) => Err(rejection.errors.clone()),
        }
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
