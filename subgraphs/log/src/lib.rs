//! The `log` subgraph: the activity log. Every service records log events in its outbox; they travel on the
//! `log` stream, and this subgraph's consumer (group `log`, [`store`]) stores each exactly once. Users read
//! their own entries (`logs`, `User.activity`, `logAdded`); the `admin` scope reads everyone's.
//!
//! [`start`] prepares a [`LogService`] (database migrated); [`LogService::app`] is the axum app and
//! [`LogService::serve`] runs it with its consumer and live feed until shutdown.

pub mod entity;
pub mod graphql;
pub mod store;

use std::sync::Arc;

use async_graphql::EmptyMutation;
use axum::Router;
use sea_orm::DatabaseConnection;
use shippy_kit::{
    config::ServerConfig,
    events::{EventBus, streams},
    live::LiveFeed,
    server::{self, Runtime, StartError, SubgraphConfig},
    shutdown::CancellationToken,
    supervisor::SupervisorError,
};
use tokio::net::TcpListener;

pub use graphql::LogSchema;
use graphql::{Query, Subscription};

/// The subgraph's name (service name in events, file name of its SDL and database).
pub const NAME: &str = "log";

/// What resolvers need, shared through the schema's data.
#[derive(Clone)]
pub struct State {
    /// The log database.
    pub db: DatabaseConnection,
    /// The `log` stream as this process sees it, for `logAdded`.
    pub live: LiveFeed,
}

/// Builds the schema; without `state` it can only describe itself (for SDL export).
pub fn schema(server: &ServerConfig, state: Option<State>) -> LogSchema {
    let builder = shippy_kit::graphql::configure(
        async_graphql::Schema::build(Query, EmptyMutation, Subscription),
        server,
    );
    match state {
        Some(state) => builder.data(state).finish(),
        None => builder.finish(),
    }
}

/// The federation SDL (`schema/log.graphql`).
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

/// A prepared log subgraph.
pub struct LogService {
    runtime: Runtime,
    state: State,
}

/// Migrates the database.
pub async fn start(config: SubgraphConfig, bus: Arc<dyn EventBus>) -> Result<LogService, Error> {
    let runtime = Runtime::start::<shippy_migrations::log::Migrator>(NAME, config, bus).await?;
    let state = State {
        db: runtime.db.clone(),
        live: runtime.live_feed(streams::LOG),
    };
    Ok(LogService { runtime, state })
}

impl LogService {
    /// Resolver state (tests use it to reach the database).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The axum app; open WebSockets close when `shutdown` is cancelled.
    pub fn app(&self, shutdown: CancellationToken) -> Router {
        let schema = schema(&self.runtime.config.server, Some(self.state.clone()));
        server::app(schema, self.runtime.http_context(shutdown))
    }

    /// Serves on `listener` and runs the log consumer and the live feed until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let app = self.app(shutdown.clone());
        let tasks = vec![
            self.runtime.consumer(
                streams::LOG,
                store::GROUP,
                store::Recorder::new(self.state.db.clone()),
                shutdown.clone(),
            ),
            self.runtime
                .live_feed_task(&self.state.live, shutdown.clone()),
        ];
        Ok(self
            .runtime
            .serve_with(NAME, listener, app, tasks, shutdown)
            .await?)
    }
}

/// [`start`] then [`LogService::serve`].
pub async fn run(
    listener: TcpListener,
    config: SubgraphConfig,
    bus: Arc<dyn EventBus>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    start(config, bus).await?.serve(listener, shutdown).await
}
