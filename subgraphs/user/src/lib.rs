//! The `user` subgraph: users, registration, login and JWT issuing.
//!
//! [`start`] prepares a [`UserService`] (database migrated, keys loaded); [`UserService::app`] is the axum
//! app (for `oneshot` tests) and [`UserService::serve`] runs it with its outbox relay until shutdown.

pub mod accounts;
pub mod domain;
pub mod entity;
pub mod graphql;
pub mod password;

use std::sync::Arc;

use async_graphql::{EmptySubscription, dataloader::DataLoader};
use axum::Router;
use sea_orm::DatabaseConnection;
use shippy_kit::{
    auth::TokenIssuer,
    config::ServerConfig,
    events::EventBus,
    outbox::Outbox,
    server::{self, Runtime, StartError, SubgraphConfig},
    shutdown::CancellationToken,
    supervisor::SupervisorError,
};
use shippy_security::{
    login_limits::LoginLimiter,
    revocation::{MemoryRevocations, RevocationStore},
};
use tokio::net::TcpListener;

pub use graphql::UserSchema;
use graphql::{Mutation, Query, UserLoader};

/// The subgraph's name (service name in events, file name of its SDL and database).
pub const NAME: &str = "user";

/// What resolvers need, shared through the schema's data.
#[derive(Clone)]
pub struct State {
    /// The user database.
    pub db: DatabaseConnection,
    /// Signs tokens at register and login.
    pub tokens: Arc<TokenIssuer>,
    /// Wakes the relay after a commit that recorded events.
    pub outbox: Outbox,
    /// Where `logout` records revoked token ids (the router reads them).
    pub revocations: Arc<dyn RevocationStore>,
    /// Login limits per account and per client IP.
    pub login_limits: Arc<LoginLimiter>,
}

/// Builds the schema; without `state` it can only describe itself (for SDL export).
pub fn schema(server: &ServerConfig, state: Option<State>) -> UserSchema {
    let builder = shippy_kit::graphql::configure(
        async_graphql::Schema::build(Query, Mutation, EmptySubscription),
        server,
    );
    match state {
        Some(state) => builder
            .data(DataLoader::new(UserLoader(state.db.clone()), tokio::spawn))
            .data(state)
            .finish(),
        None => builder.finish(),
    }
}

/// The federation SDL (`schema/user.graphql`).
pub fn sdl() -> String {
    shippy_kit::graphql::federation_sdl(&schema(&ServerConfig::default(), None))
}

/// Why the subgraph stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Start-up failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A task failed while running.
    #[error(transparent)]
    Run(#[from] SupervisorError),
}

/// A prepared user subgraph.
pub struct UserService {
    runtime: Runtime,
    state: State,
}

/// The store `logout` writes to: the one the process was given, else one of this subgraph's own (which
/// only a router in the same process could read, so say so).
fn revocation_store(config: &SubgraphConfig) -> Arc<dyn RevocationStore> {
    config.revocations.clone().unwrap_or_else(|| {
        tracing::warn!(
            "no revocation store configured: logouts are kept in this process only, where no router sees them"
        );
        Arc::new(MemoryRevocations::default())
    })
}

/// Migrates the database and loads keys.
pub async fn start(config: SubgraphConfig, bus: Arc<dyn EventBus>) -> Result<UserService, Error> {
    let tokens = Arc::new(TokenIssuer::from_config(&config.auth).map_err(StartError::from)?);
    let runtime = Runtime::start::<shippy_migrations::user::Migrator>(config, bus).await?;
    let state = State {
        db: runtime.db.clone(),
        tokens,
        outbox: runtime.outbox.clone(),
        revocations: revocation_store(&runtime.config),
        login_limits: Arc::new(LoginLimiter::new(&runtime.config.auth.login_limits)),
    };
    Ok(UserService { runtime, state })
}

impl UserService {
    /// Resolver state (tests use it to reach the database).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The axum app; open WebSockets close when `shutdown` is cancelled.
    pub fn app(&self, shutdown: CancellationToken) -> Router {
        let schema = schema(&self.runtime.config.server, Some(self.state.clone()));
        server::app(schema, self.runtime.http_context(shutdown))
    }

    /// Serves on `listener` and runs the outbox relay until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let app = self.app(shutdown.clone());
        Ok(self.runtime.serve(NAME, listener, app, shutdown).await?)
    }
}

/// [`start`] then [`UserService::serve`].
pub async fn run(
    listener: TcpListener,
    config: SubgraphConfig,
    bus: Arc<dyn EventBus>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    start(config, bus).await?.serve(listener, shutdown).await
}
