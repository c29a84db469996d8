//! The HTTP face of a subgraph and the runtime that serves it.
//!
//! [`app`] wraps any async-graphql executor in the routes every subgraph has: `POST /graphql`, `GET /graphql`
//! (GraphiQL for people, graphql-transport-ws for WebSocket clients), `GET /health` and `GET /ready`, behind a
//! request body limit and a request timeout. [`Runtime`] does the start-up every subgraph shares (database,
//! migrations, JWT verifier, outbox) and [`Runtime::serve`] runs the server and the outbox relay under one
//! supervisor until shutdown.
//!
//! WebSocket clients may send their token in the upgrade request's `Authorization` header or in the
//! `connection_init` payload (`{"Authorization": "Bearer ..."}`); a refused token closes the connection with
//! code 1002 and the reason (async-graphql's choice; graphql-transport-ws suggests 4403). WebSocket
//! connections run under the router's limits (see the `websocket` module): `connection_init` in time,
//! subscriptions per connection, message size, and the token's expiry.
//!
//! [`serve`] runs the app under `server.connections`: caps on open connections (total and per client IP)
//! and header, body and idle timeouts (`shippy_security::connections`).

use std::{convert::Infallible, sync::Arc, time::Duration};

use async_graphql::{
    Executor, ParseRequestError,
    http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource, WebSocketProtocols},
};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{
    Json, Router,
    extract::{FromRequestParts, Request, State, WebSocketUpgrade},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer, trace::TraceLayer};

use shippy_security::connections::{self, ConnectionLimits};

use crate::{
    access::{self, AccessError, Gate},
    auth::{Caller, ClientIp, JwtVerifier, KeyError, TokenError},
    config::{
        AccessConfig, AssignmentConfig, AuthConfig, EventsConfig, InvalidSetting, RelayConfig,
        ServerConfig,
    },
    consumer::{Consumer, Handler},
    db::{self, DbError},
    events::EventBus,
    live::LiveFeed,
    outbox::Outbox,
    shutdown::CancellationToken,
    supervisor::{Supervisor, SupervisorError, TaskError},
};

/// Something `/ready` checks before it says yes.
#[async_trait::async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    /// The name shown in the `/ready` body.
    fn name(&self) -> &str;
    /// `Err` with a short reason when the dependency is unavailable.
    async fn check(&self) -> Result<(), String>;
}

/// The subgraph's database answers.
pub struct DatabaseCheck(pub DatabaseConnection);

#[async_trait::async_trait]
impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        db::ping(&self.0).await.map_err(|e| e.to_string())
    }
}

/// The event bus answers.
pub struct BusCheck(pub Arc<dyn EventBus>);

#[async_trait::async_trait]
impl ReadinessCheck for BusCheck {
    fn name(&self) -> &str {
        "events"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// What the HTTP layer needs besides the executor.
#[derive(Clone)]
pub struct HttpContext {
    /// Verifies bearer tokens on every request and WebSocket.
    pub verifier: Arc<JwtVerifier>,
    /// Who may call the GraphQL routes: only a router, unless open.
    pub gate: Gate,
    /// Checked by `/ready`.
    pub checks: Vec<Arc<dyn ReadinessCheck>>,
    /// Limits.
    pub server: ServerConfig,
    /// Cancelled at shutdown; open WebSockets close when it is.
    pub shutdown: CancellationToken,
    /// The verifier's clock leeway (`auth.leeway`): a WebSocket authenticated with a token closes when
    /// `exp` plus this passes.
    pub token_leeway: Duration,
}

struct Shared<E> {
    executor: E,
    ctx: HttpContext,
}

/// The subgraph's axum app around `executor` (an async-graphql `Schema`).
pub fn app<E: Executor>(executor: E, ctx: HttpContext) -> Router {
    let body_limit = ctx.server.body_limit;
    let timeout = ctx.server.request_timeout;
    let gate = ctx.gate.clone();
    let shared = Arc::new(Shared { executor, ctx });
    Router::new()
        .route("/graphql", get(graphql_get::<E>).post(graphql_post::<E>))
        // Only the GraphQL routes (those added so far) answer routers only; probes stay open.
        .route_layer(axum::middleware::from_fn_with_state(
            gate,
            access::require_router,
        ))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready::<E>))
        .with_state(shared)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
        // Outermost, so an oversized body is refused before anything reads it.
        .layer(RequestBodyLimitLayer::new(body_limit))
}

/// A GraphQL-shaped error body: `{"errors": [{"message", "extensions": {"code"}}]}`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}

/// The response to a request whose token was refused: 401 with a GraphQL error saying why.
fn token_rejected(err: &TokenError) -> Response {
    let mut resp = error_response(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        &err.to_string(),
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    resp
}

/// Rejection for a body that is not a GraphQL request: a GraphQL error instead of async-graphql's debug text.
pub struct BadRequest(ParseRequestError);

impl From<ParseRequestError> for BadRequest {
    fn from(err: ParseRequestError) -> Self {
        Self(err)
    }
}

/// Whether reading the body failed because it passed the body limit (the limit layer cuts off a body that
/// came without `Content-Length`; the extractor then sees an I/O error carrying `LengthLimitError`).
fn is_length_limit(err: &ParseRequestError) -> bool {
    let ParseRequestError::Io(io) = err else {
        return false;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(io);
    while let Some(err) = source {
        // Layers in between may re-wrap the error so that its type is lost; its message is stable.
        if err.is::<http_body_util::LengthLimitError>()
            || err.to_string() == "length limit exceeded"
        {
            return true;
        }
        source = err.source();
    }
    false
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        match self.0 {
            ParseRequestError::Io(io) if connections::is_body_timeout(&io) => error_response(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                "the request body did not arrive in time",
            ),
            err if matches!(err, ParseRequestError::PayloadTooLarge) || is_length_limit(&err) => {
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "request body too large",
                )
            }
            err => error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("invalid GraphQL request: {err}"),
            ),
        }
    }
}

async fn graphql_post<E: Executor>(
    State(shared): State<Arc<Shared<E>>>,
    headers: HeaderMap,
    label: Option<axum::Extension<crate::observe::ServiceLabel>>,
    // Present when the listener was served with connect info; the router header wins anyway.
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    request: GraphQLRequest<BadRequest>,
) -> Response {
    let caller = match shared.ctx.verifier.authenticate(&headers) {
        Ok(caller) => caller,
        Err(err) => return token_rejected(&err),
    };
    // Only a subgraph that answers routers alone can believe the router's client-IP header.
    let trust_header = matches!(shared.ctx.gate, Gate::RouterOnly(_));
    let client_ip = ClientIp::from_request(&headers, peer.map(|p| p.0.0.ip()), trust_header);
    let mut request = request.into_inner().data(caller).data(client_ip);
    if let Some(axum::Extension(label)) = label {
        request = request.data(label);
    }
    let mut response = shared.executor.execute(request).await;
    label_request_errors(&mut response.errors);
    GraphQLResponse::from(response).into_response()
}

/// Gives request-level errors (a query that does not parse or validate, or exceeds the depth or complexity
/// limit: no `path`, no code from us) the code `GRAPHQL_VALIDATION_FAILED`, so every error a client sees has
/// an `extensions.code`.
fn label_request_errors(errors: &mut [async_graphql::ServerError]) {
    for error in errors.iter_mut().filter(|e| e.path.is_empty()) {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "GRAPHQL_VALIDATION_FAILED");
        }
    }
}

async fn graphql_get<E: Executor>(
    State(shared): State<Arc<Shared<E>>>,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let wants_websocket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants_websocket {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .finish(),
        )
        .into_response();
    }

    // The first subprotocol asked for that async-graphql speaks (as its `GraphQLProtocol` extractor picks it).
    let protocol = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|asked| {
            asked
                .split(',')
                .find_map(|name| name.trim().parse::<WebSocketProtocols>().ok())
        });
    let Some(protocol) = protocol else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "unsupported WebSocket subprotocol: use graphql-transport-ws",
        );
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // A token in the upgrade request's headers counts; one in `connection_init` overrides it.
    let header_caller = match shared.ctx.verifier.authenticate(&parts.headers) {
        Ok(caller) => caller,
        Err(err) => return token_rejected(&err),
    };
    let limits = shared.ctx.server.websocket.clone();
    let shared = shared.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // Bounds what one message can make us buffer; past it the connection closes with 1009.
        .max_message_size(limits.max_message_size)
        .max_frame_size(limits.max_message_size)
        .on_upgrade(move |socket| async move {
            let verifier = shared.ctx.verifier.clone();
            let settings = crate::websocket::Settings {
                limits,
                token_leeway: shared.ctx.token_leeway,
                shutdown: shared.ctx.shutdown.clone(),
            };
            crate::websocket::serve(
                socket,
                shared.executor.clone(),
                protocol,
                settings,
                move |payload| connection_caller(&verifier, header_caller, payload),
            )
            .await;
        })
        .into_response()
}

/// The caller of a WebSocket connection: from `connection_init`'s `Authorization` (or `authorization`)
/// entry if present, else from the upgrade request's header. A bad token refuses the connection.
fn connection_caller(
    verifier: &JwtVerifier,
    header_caller: Caller,
    payload: &serde_json::Value,
) -> async_graphql::Result<Caller> {
    let presented = payload
        .get("Authorization")
        .or_else(|| payload.get("authorization"))
        .and_then(|v| v.as_str());
    match presented {
        Some(value) => verifier
            .authenticate_value(value)
            .map_err(|err| async_graphql::Error::new(err.to_string())),
        None => Ok(header_caller),
    }
}

async fn ready<E: Executor>(State(shared): State<Arc<Shared<E>>>) -> Response {
    let mut report = serde_json::Map::new();
    let mut ok = true;
    for check in &shared.ctx.checks {
        let status = match check.check().await {
            Ok(()) => "ok".to_owned(),
            Err(reason) => {
                ok = false;
                tracing::warn!(check = check.name(), %reason, "readiness check failed");
                // Only the fact is exposed; the reason (hosts, errors) stays in the log.
                "unavailable".to_owned()
            }
        };
        report.insert(check.name().to_owned(), status.into());
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::Value::Object(report))).into_response()
}

/// Serves `app` on `listener` under `limits` (connection caps, header/body/idle timeouts) until `shutdown` is
/// cancelled, then stops accepting and lets in-flight requests finish (the caller bounds how long). `name`
/// labels the connection metrics and log lines.
pub async fn serve(
    name: impl Into<String>,
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    connections::serve(name, listener, app, limits, shutdown.cancelled_owned()).await
}

/// Everything a subgraph process is configured with, besides its own domain settings.
#[derive(Debug, Clone)]
pub struct SubgraphConfig {
    /// `sqlite://...` or `postgres://...`; the subgraph's own database.
    pub database_url: String,
    /// Token verification (and issuing, for the user subgraph).
    pub auth: AuthConfig,
    /// Who may call it: routers only (their credentials), or anyone in development.
    pub access: AccessConfig,
    /// HTTP limits.
    pub server: ServerConfig,
    /// Outbox relay pacing.
    pub relay: RelayConfig,
    /// Stream bounds, live feeds and group consumers.
    pub events: EventsConfig,
    /// The consignment assignment saga's timing (used by the consignment subgraph).
    pub assignment: AssignmentConfig,
    /// Where revoked token ids go (the user subgraph's `logout`): Redis shared with the routers, or
    /// the memory `shippy up` shares with its router. `None`: the subgraph's own memory.
    pub revocations: Option<Arc<dyn shippy_security::revocation::RevocationStore>>,
}

/// Why a subgraph could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Database connection or migration.
    #[error(transparent)]
    Db(#[from] DbError),
    /// JWT keys.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// Router credentials.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A setting out of range.
    #[error("invalid configuration: {0}")]
    Config(#[from] InvalidSetting),
}

/// The shared parts of a running subgraph.
#[derive(Clone)]
pub struct Runtime {
    /// The subgraph's database, migrated.
    pub db: DatabaseConnection,
    /// Token verifier.
    pub verifier: Arc<JwtVerifier>,
    /// Who may call the GraphQL routes.
    pub gate: Gate,
    /// Where domain changes record events.
    pub outbox: Outbox,
    /// Where the relay publishes them.
    pub bus: Arc<dyn EventBus>,
    /// Readiness checks: database and bus (which is Redis when `REDIS_URL` is set).
    pub checks: Vec<Arc<dyn ReadinessCheck>>,
    /// The configuration it was started with.
    pub config: SubgraphConfig,
}

impl Runtime {
    /// Connects to the database, applies the migrations of `M`, and sets up the verifier, the access
    /// check of subgraph `name` (the audience of router signatures) and the outbox.
    pub async fn start<M: MigratorTrait>(
        name: &str,
        config: SubgraphConfig,
        bus: Arc<dyn EventBus>,
    ) -> Result<Self, StartError> {
        let verifier = Arc::new(JwtVerifier::from_config(&config.auth)?);
        let gate = Gate::from_config(name, &config.access)?;
        let db = db::connect_and_migrate::<M>(&config.database_url).await?;
        // The bus check is the Redis check when the bus is Redis: one `PING`, not two.
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(DatabaseCheck(db.clone())),
            Arc::new(BusCheck(bus.clone())),
        ];
        Ok(Self {
            db,
            verifier,
            gate,
            outbox: Outbox::new(),
            bus,
            checks,
            config,
        })
    }

    /// The HTTP context for [`app`].
    pub fn http_context(&self, shutdown: CancellationToken) -> HttpContext {
        HttpContext {
            verifier: self.verifier.clone(),
            gate: self.gate.clone(),
            checks: self.checks.clone(),
            server: self.config.server.clone(),
            shutdown,
            token_leeway: self.config.auth.leeway,
        }
    }

    /// A member of consumer group `group` on `stream` running `handler`, as a task for
    /// [`serve`](Self::serve).
    pub fn consumer<H: Handler>(
        &self,
        stream: &str,
        group: &str,
        handler: H,
        shutdown: CancellationToken,
    ) -> BackgroundTask {
        let consumer = Consumer::new(
            self.bus.clone(),
            stream,
            group,
            handler,
            self.config.events.consumer.clone(),
        );
        BackgroundTask {
            name: format!("`{group}` consumer of `{stream}`"),
            run: Box::pin(async move {
                consumer.run(shutdown).await;
                Ok(())
            }),
        }
    }

    /// A live feed of `stream` for GraphQL subscriptions. It receives nothing until
    /// [`live_feed_task`](Self::live_feed_task) runs.
    pub fn live_feed(&self, stream: &str) -> LiveFeed {
        LiveFeed::new(stream, self.config.events.live_capacity)
    }

    /// The task that feeds `feed` from the bus, for [`serve`](Self::serve).
    pub fn live_feed_task(&self, feed: &LiveFeed, shutdown: CancellationToken) -> BackgroundTask {
        BackgroundTask {
            name: format!("live feed of `{}`", feed.stream()),
            run: Box::pin(feed.clone().run(self.bus.clone(), shutdown)),
        }
    }

    /// Serves `app` on `listener` and runs the outbox relay and `tasks` (event consumers, live feeds) under
    /// one supervisor, until `shutdown` is cancelled or one of them fails (which cancels `shutdown` for
    /// everyone sharing it). Each task must run until `shutdown` is cancelled; one that ends early stops
    /// the subgraph.
    pub async fn serve(
        self,
        name: &str,
        listener: TcpListener,
        app: Router,
        tasks: Vec<BackgroundTask>,
        shutdown: CancellationToken,
    ) -> Result<(), SupervisorError> {
        let grace = self.config.server.shutdown_grace;
        let relay_db = match db::connect_aside(&self.config.database_url, RELAY_CONNECTIONS).await {
            Ok(Some(own)) => own,
            Ok(None) => self.db.clone(),
            Err(err) => {
                tracing::warn!(error = %err, "the outbox relay shares the request pool: cannot open its own");
                self.db.clone()
            }
        };
        let relay = self
            .outbox
            .relay(relay_db, self.bus.clone(), self.config.relay.clone())
            .for_service(name);
        let app = crate::observe::instrument(app, name);
        let mut supervisor = Supervisor::new(shutdown.clone());
        supervisor.spawn(
            format!("{name} http server"),
            serve(
                name.to_owned(),
                listener,
                app,
                self.config.server.connections.clone(),
                shutdown.clone(),
            ),
        );
        let token = shutdown.clone();
        supervisor.spawn(format!("{name} outbox relay"), async move {
            relay.run(token).await;
            Ok::<_, Infallible>(())
        });
        for task in tasks {
            supervisor.spawn(format!("{name} {}", task.name), task.run);
        }
        supervisor.wait(grace).await
    }
}

/// Connections of the outbox relay's own pool ([`db::connect_aside`]): it works one statement at a time.
const RELAY_CONNECTIONS: u32 = 2;

/// A named long-lived task to run beside a subgraph's server (see [`Runtime::serve`]).
pub struct BackgroundTask {
    /// Shown in logs and errors, after the subgraph's name.
    pub name: String,
    /// The task; it should watch the shutdown token it was built with.
    pub run: futures::future::BoxFuture<'static, Result<(), TaskError>>,
}
