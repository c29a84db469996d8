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

use std::future::{Future, IntoFuture};
use std::ops::Deref;
use std::sync::Arc;

use axum::routing::{any, get};

use crate::operation::RouterState;
use crate::rate_limit::requests::RequestLimiter;
use crate::subscriptions::Hub;
use crate::telemetry;

/// What the transports share: the operation path's state and the subscription hub.
pub(crate) struct AppState {
    /// Everything operations share (caches, live configuration, subgraph clients).
    pub(crate) core: Arc<RouterState>,
    /// Subscription connections and the upstream streams they share.
    pub(crate) hub: Arc<Hub>,
}

impl Deref for AppState {
    type Target = RouterState;

    fn deref(&self) -> &RouterState {
        &self.core
    }
}

async fn health() -> impl axum::response::IntoResponse {
    (
        [(::http::header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"pass\"}",
    )
}

/// The HTTP application and the whole-request rate limiter behind it (when
/// `rate_limit.requests` turns one on), whose state the background tasks clean up.
pub(crate) fn app(state: &Arc<AppState>) -> (axum::Router, Option<Arc<RequestLimiter>>) {
    let http = &state.config.http;
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
        &state.config.rate_limit.requests,
        state.client_ip_header.clone(),
    );
    let metrics_state = Arc::clone(state);
    let app = graphql
        .route(
            "/metrics",
            get(move || async move {
                telemetry::metrics_response(metrics_state.subgraphs.iter().filter_map(|client| {
                    client
                        .breaker()
                        .map(|breaker| (client.name.as_str(), breaker.phase()))
                }))
            }),
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
pub(crate) async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let drain_timeout = state.config.http.shutdown_timeout;
    let (app, request_limiter) = app(&state);
    let mut tasks = background::spawn(&state.core, request_limiter);
    // Upgraded WebSocket connections are not the HTTP server's any more: they close
    // themselves ("going away") on the hub's signal, and serving ends once they have.
    let hub = Arc::clone(&state.hub);
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
