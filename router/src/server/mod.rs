//! The top of the router: the HTTP application (routes), serving and draining, the background
//! tasks that run while serving, and the client transports over the operation path: `http`
//! (GraphQL over HTTP, with `request` and `authenticate`), `ws` (graphql-transport-ws and
//! graphql-ws), `sse` (GraphQL over SSE) and `web` (the web UI and the playground).
//!
//! The transports share an [`AppState`]: the operation path's state plus the subscription hub.

pub(crate) mod authenticate;
pub(crate) mod background;
pub(crate) mod http;
pub(crate) mod request;
pub(crate) mod sse;
pub(crate) mod web;
pub(crate) mod ws;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use axum::routing::{any, get};

use crate::operation::RouterState;
use crate::rate_limit::requests::RequestLimiter;
use crate::subscriptions::Hub;
use crate::telemetry;

/// What the transports share: the operation path's state and the subscription hub.
pub(crate) struct AppState {
    /// Everything operations share (caches, live configuration, subgraph clients), for the
    /// current supergraph. A request or subscription loads it once ([`AppState::core`]) and uses
    /// only that snapshot, so a supergraph swap never changes the plan of work in flight.
    core: ArcSwap<RouterState>,
    /// Subscription connections and the upstream streams they share.
    pub(crate) hub: Arc<Hub>,
    /// Held while `core` or the live configuration changes (a supergraph swap, a config reload),
    /// so that two changes never build on the same previous state. Never held across `.await`.
    changes: Mutex<()>,
    /// Held for a whole supergraph update (loading and warming the new one), so that updates
    /// from several sources apply one after the other.
    pub(crate) updates: tokio::sync::Mutex<()>,
}

impl AppState {
    pub(crate) fn new(core: Arc<RouterState>, hub: Arc<Hub>) -> AppState {
        AppState {
            core: ArcSwap::new(core),
            hub,
            changes: Mutex::new(()),
            updates: tokio::sync::Mutex::new(()),
        }
    }

    /// The current supergraph's state.
    pub(crate) fn core(&self) -> Arc<RouterState> {
        self.core.load_full()
    }

    pub(crate) fn lock_changes(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `core` the current supergraph's state (under [`lock_changes`](Self::lock_changes))
    /// and tells open subscriptions.
    pub(crate) fn swap_core(&self, core: Arc<RouterState>) {
        self.core.store(Arc::clone(&core));
        self.hub.supergraph_changed(core);
    }
}

async fn health() -> impl axum::response::IntoResponse {
    (
        [(::http::header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"pass\"}",
    )
}

/// `/ready`: serving, and on which supergraph (its SHA-256 and when it was loaded), so that a
/// rollout of a new supergraph can be followed replica by replica.
fn ready(state: &AppState) -> axum::response::Response {
    use axum::response::IntoResponse;
    let core = state.core();
    let loaded_at = core
        .supergraph
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let body = serde_json::json!({
        "status": "pass",
        "supergraph": {
            "hash": core.supergraph.hash,
            "loaded_at": humantime::format_rfc3339_seconds(core.supergraph.loaded_at).to_string(),
            "loaded_at_unix": loaded_at.as_secs(),
        }
    });
    (
        [(::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The HTTP application and the whole-request rate limiter behind it (when
/// `rate_limit.requests` turns one on), whose state the background tasks clean up.
pub(crate) fn app(state: &Arc<AppState>) -> (axum::Router, Option<Arc<RequestLimiter>>) {
    let core = state.core();
    let http = &core.config.http;
    let handler_state = Arc::clone(state);
    let mut graphql = axum::Router::new().route(
        &http.graphql_path,
        any(move |request| self::http::handle(Arc::clone(&handler_state), request)),
    );
    if http.playground {
        graphql = graphql.route_layer(axum::middleware::from_fn(web::playground));
    }
    let (graphql, limiter) = crate::rate_limit::requests::apply(
        graphql,
        &core.config.rate_limit.requests,
        core.client_ip_header.clone(),
    );
    let metrics_state = Arc::clone(state);
    let app = graphql.route(
        "/metrics",
        get(move || async move {
            let core = metrics_state.core();
            telemetry::metrics_response(core.subgraphs.iter().filter_map(|client| {
                client
                    .breaker()
                    .map(|breaker| (client.name.as_str(), breaker.phase()))
            }))
        }),
    );
    // Ready as soon as it serves (what compose and load balancers probe); the body says which
    // supergraph it serves.
    let ready_state = Arc::clone(state);
    let app = app.route("/ready", get(move || async move { ready(&ready_state) }));
    let app = if http.health_path == "/ready" {
        app
    } else {
        app.route(&http.health_path, get(health))
    };
    let app = app.merge(web::routes(http));
    (app, limiter)
}

/// Serves on `listener` until `shutdown` completes, then drains in-flight requests for at most
/// `http.shutdown_timeout` before dropping the remaining connections. The background tasks
/// (JWKS refresh, subgraph health checks, rate-limiter clean-up) run while it serves; if one
/// stops, serving stops with an error naming it.
pub(crate) async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Start-up settings only: the same in every supergraph's state. Not kept, so that the first
    // supergraph's state is freed once it is swapped out and its last request finishes.
    let (drain_timeout, connections) = {
        let core = state.core();
        (
            core.config.http.shutdown_timeout,
            core.config.http.connections.clone(),
        )
    };
    let (app, request_limiter) = app(&state);
    let mut tasks = background::spawn(&state, request_limiter);
    // Upgraded WebSocket connections are not the HTTP server's any more: they close
    // themselves ("going away") on the hub's signal, and serving ends once they have.
    let hub = Arc::clone(&state.hub);
    let drained_hub = Arc::clone(&hub);
    let (signalled_tx, mut signalled_rx) = tokio::sync::watch::channel(false);
    // Our accept loop (connection caps, header/body/idle timeouts) gives every request its
    // `ConnectInfo<SocketAddr>`, as `into_make_service_with_connect_info` did.
    let server =
        shippy_security::connections::serve("router", listener, app, connections, async move {
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
        let result = server.await;
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
