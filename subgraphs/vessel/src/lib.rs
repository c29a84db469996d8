//! The `vessel` subgraph: vessels, finding one that fits, and booking consignments on them.
//!
//! [`start`] prepares a [`VesselService`] (database migrated); [`VesselService::app`] is the axum app (for
//! `oneshot` tests) and [`VesselService::serve`] runs it with its outbox relay and the
//! [`assignment`] consumer until shutdown.

pub mod assignment;
pub mod domain;
pub mod entity;
pub mod fleet;
pub mod graphql;

use std::sync::Arc;

use async_graphql::{EmptySubscription, dataloader::DataLoader};
use axum::Router;
use sea_orm::DatabaseConnection;
use shippy_kit::{
    config::ServerConfig,
    events::{EventBus, streams},
    outbox::Outbox,
    server::{self, Runtime, StartError, SubgraphConfig},
    shutdown::CancellationToken,
    supervisor::SupervisorError,
};
use tokio::net::TcpListener;

pub use graphql::VesselSchema;
use graphql::{Mutation, Query, VesselLoader};

/// The subgraph's name (service name in events, file name of its SDL and database).
pub const NAME: &str = "vessel";

/// What resolvers need, shared through the schema's data.
#[derive(Clone)]
pub struct State {
    /// The vessel database.
    pub db: DatabaseConnection,
    /// Wakes the relay after a commit that recorded events.
    pub outbox: Outbox,
}

/// Builds the schema; without `state` it can only describe itself (for SDL export).
pub fn schema(server: &ServerConfig, state: Option<State>) -> VesselSchema {
    let builder = shippy_kit::graphql::configure(
        async_graphql::Schema::build(Query, Mutation, EmptySubscription),
        server,
    );
    match state {
        Some(state) => builder
            .data(DataLoader::new(
                VesselLoader(state.db.clone()),
                tokio::spawn,
            ))
            .data(state)
            .finish(),
        None => builder.finish(),
    }
}

/// The federation SDL (`schema/vessel.graphql`).
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

/// A prepared vessel subgraph.
pub struct VesselService {
    runtime: Runtime,
    state: State,
}

/// Migrates the database.
pub async fn start(config: SubgraphConfig, bus: Arc<dyn EventBus>) -> Result<VesselService, Error> {
    let runtime = Runtime::start::<shippy_migrations::vessel::Migrator>(NAME, config, bus).await?;
    let state = State {
        db: runtime.db.clone(),
        outbox: runtime.outbox.clone(),
    };
    Ok(VesselService { runtime, state })
}

impl VesselService {
    /// Resolver state (tests use it to reach the database).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The axum app; open WebSockets close when `shutdown` is cancelled.
    pub fn app(&self, shutdown: CancellationToken) -> Router {
        let schema = schema(&self.runtime.config.server, Some(self.state.clone()));
        server::app(schema, self.runtime.http_context(shutdown))
    }

    /// Serves on `listener` and runs the outbox relay and the assignment consumer until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let app = self.app(shutdown.clone());
        let assigner = self.runtime.consumer(
            streams::CONSIGNMENT,
            assignment::GROUP,
            assignment::Assigner::new(self.state.clone()),
            shutdown.clone(),
        );
        Ok(self
            .runtime
            .serve_with(NAME, listener, app, vec![assigner], shutdown)
            .await?)
    }
}

/// [`start`] then [`VesselService::serve`].
pub async fn run(
    listener: TcpListener,
    config: SubgraphConfig,
    bus: Arc<dyn EventBus>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    start(config, bus).await?.serve(listener, shutdown).await
}
