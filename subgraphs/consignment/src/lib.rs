//! The `consignment` subgraph: consignments, their assignment to vessels, and live status updates.
//!
//! A consignment is created `PENDING` and recorded as `consignment.created` on the `consignment` stream;
//! the vessel subgraph books it on a vessel and answers on the same stream, and this subgraph's
//! consumer ([`shipping::VesselAnswers`], group `consignment`) makes it `ASSIGNED` or `UNASSIGNABLE`. The
//! vessel's owner then moves it `IN_TRANSIT` and `DELIVERED`. Every change reaches subscribers of
//! `consignmentUpdated` on any replica through the stream ([`updates`]).
//!
//! [`start`] prepares a [`ConsignmentService`] (database migrated); [`ConsignmentService::app`] is the axum
//! app and [`ConsignmentService::serve`] runs it with its outbox relay, consumer and live feed until
//! shutdown.

pub mod domain;
pub mod entity;
pub mod graphql;
pub mod shipping;
pub mod updates;

use std::sync::Arc;

use axum::Router;
use sea_orm::DatabaseConnection;
use shippy_kit::{
    config::ServerConfig,
    events::{EventBus, streams},
    live::LiveFeed,
    outbox::Outbox,
    server::{self, Runtime, StartError, SubgraphConfig},
    shutdown::CancellationToken,
    supervisor::SupervisorError,
};
use tokio::net::TcpListener;

pub use graphql::ConsignmentSchema;
use graphql::{Mutation, Query, Subscription};

/// The subgraph's name (service name in events, file name of its SDL and database).
pub const NAME: &str = "consignment";

/// What resolvers need, shared through the schema's data.
#[derive(Clone)]
pub struct State {
    /// The consignment database.
    pub db: DatabaseConnection,
    /// Wakes the relay after a commit that recorded events.
    pub outbox: Outbox,
    /// The `consignment` stream as this process sees it, for subscriptions.
    pub live: LiveFeed,
}

/// Builds the schema; without `state` it can only describe itself (for SDL export).
pub fn schema(server: &ServerConfig, state: Option<State>) -> ConsignmentSchema {
    let builder = shippy_kit::graphql::configure(
        async_graphql::Schema::build(Query, Mutation, Subscription),
        server,
    );
    match state {
        Some(state) => builder.data(state).finish(),
        None => builder.finish(),
    }
}

/// The federation SDL (`schema/consignment.graphql`).
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

/// A prepared consignment subgraph.
pub struct ConsignmentService {
    runtime: Runtime,
    state: State,
}

/// Migrates the database.
pub async fn start(
    config: SubgraphConfig,
    bus: Arc<dyn EventBus>,
) -> Result<ConsignmentService, Error> {
    let runtime =
        Runtime::start::<shippy_migrations::consignment::Migrator>(NAME, config, bus).await?;
    let state = State {
        db: runtime.db.clone(),
        outbox: runtime.outbox.clone(),
        live: runtime.live_feed(streams::CONSIGNMENT),
    };
    Ok(ConsignmentService { runtime, state })
}

impl ConsignmentService {
    /// Resolver state (tests use it to reach the database).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The axum app; open WebSockets close when `shutdown` is cancelled.
    pub fn app(&self, shutdown: CancellationToken) -> Router {
        let schema = schema(&self.runtime.config.server, Some(self.state.clone()));
        server::app(schema, self.runtime.http_context(shutdown))
    }

    /// Serves on `listener` and runs the outbox relay, the consumer of vessel answers and the live feed
    /// until `shutdown`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let app = self.app(shutdown.clone());
        let tasks = vec![
            self.runtime.consumer(
                streams::CONSIGNMENT,
                shipping::GROUP,
                shipping::VesselAnswers::new(self.state.clone()),
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

/// [`start`] then [`ConsignmentService::serve`].
pub async fn run(
    listener: TcpListener,
    config: SubgraphConfig,
    bus: Arc<dyn EventBus>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    start(config, bus).await?.serve(listener, shutdown).await
}
