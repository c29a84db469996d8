//! The four benchmark subgraphs (accounts, inventory, products, reviews) plus the monolith baseline,
//! all served by one HTTP server under `/<name>`, as the published supergraph expects.
//!
//! They are not what the benchmark measures, so they must cost the routers as little CPU as possible
//! on a shared machine: each endpoint memoizes its responses (see [`memo`]). With the static data set
//! a subgraph's answer is a pure function of the request body, so replaying it is exact.

pub mod accounts;
pub mod data;
pub mod inventory;
pub mod memo;
pub mod monolith;
pub mod products;
pub mod reviews;
pub mod stats;

use std::{future::Future, sync::Arc};

use async_graphql::Executor;
use async_graphql_axum::GraphQLSubscription;
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tokio::net::TcpListener;

use memo::Memo;
use stats::{Counters, StatsSnapshot};

/// How the subgraph server behaves.
#[derive(Debug, Clone, Copy)]
pub struct SubgraphOptions {
    /// Replay responses to byte-identical requests instead of executing them again.
    pub memoize: bool,
    /// Most distinct requests memoized per endpoint; later ones are executed every time.
    pub memo_capacity: usize,
}

impl Default for SubgraphOptions {
    fn default() -> Self {
        SubgraphOptions {
            memoize: true,
            memo_capacity: 1024,
        }
    }
}

/// The HTTP app: `POST /accounts|inventory|products|reviews|monolith`, subscriptions over WebSocket
/// at `/reviews/ws`, traffic counters at `GET /stats` and `GET /health`.
pub fn app(options: SubgraphOptions) -> Router {
    let mut counters = Vec::new();
    let mut app = Router::new()
        .merge(endpoint(
            "accounts",
            accounts::schema(),
            options,
            &mut counters,
        ))
        .merge(endpoint(
            "inventory",
            inventory::schema(),
            options,
            &mut counters,
        ))
        .merge(endpoint(
            "products",
            products::schema(),
            options,
            &mut counters,
        ))
        .merge(endpoint(
            "reviews",
            reviews::schema(),
            options,
            &mut counters,
        ))
        .merge(endpoint(
            "monolith",
            monolith::schema(),
            options,
            &mut counters,
        ));
    let counters = Arc::new(counters);
    app = app.route(
        "/stats",
        get(move || async move {
            let snapshot: StatsSnapshot = counters
                .iter()
                .map(|(name, c)| (name.to_string(), c.snapshot()))
                .collect();
            axum::Json(snapshot)
        }),
    );
    app.route_service("/reviews/ws", GraphQLSubscription::new(reviews::schema()))
        .route("/health", get(|| async { "ok" }))
}

/// Serves [`app`] on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    options: SubgraphOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(options))
        .with_graceful_shutdown(shutdown)
        .await
}

struct Endpoint<E> {
    executor: E,
    /// `None` when memoizing is off.
    memo: Option<Memo>,
    counters: Arc<Counters>,
}

/// The POST route of one endpoint at `/<name>`; its counters join `counters` for `/stats`.
fn endpoint<E: Executor>(
    name: &'static str,
    executor: E,
    options: SubgraphOptions,
    counters: &mut Vec<(&'static str, Arc<Counters>)>,
) -> Router {
    let memo = options.memoize.then(|| Memo::new(options.memo_capacity));
    let endpoint_counters = Arc::new(Counters::default());
    counters.push((name, Arc::clone(&endpoint_counters)));
    let state = Arc::new(Endpoint {
        executor,
        memo,
        counters: endpoint_counters,
    });
    Router::new()
        .route(&format!("/{name}"), post(graphql::<E>))
        .with_state(state)
}

async fn graphql<E: Executor>(State(endpoint): State<Arc<Endpoint<E>>>, body: Bytes) -> Response {
    let (status, response) = answer(&endpoint, body.clone()).await;
    endpoint.counters.record(body.len(), response.len());
    json(status, response)
}

async fn answer<E: Executor>(endpoint: &Endpoint<E>, body: Bytes) -> (StatusCode, Bytes) {
    if let Some(hit) = endpoint.memo.as_ref().and_then(|m| m.get(&body)) {
        return (StatusCode::OK, hit);
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let message = format!("the body is not a GraphQL request: {e}");
            return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message);
        }
    };
    let response = endpoint.executor.execute(request).await;
    let succeeded = response.is_ok();
    let bytes = match serde_json::to_vec(&response) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            let message = format!("the response cannot be serialized: {e}");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                &message,
            );
        }
    };
    // Only clean answers are replayed: an error may come from something other than the body.
    if succeeded && let Some(memo) = &endpoint.memo {
        memo.insert(body, bytes.clone());
    }
    (StatusCode::OK, bytes)
}

fn json(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> (StatusCode, Bytes) {
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, Bytes::from(body.to_string()))
}
