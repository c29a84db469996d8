//! The skeleton every subgraph shares, written once: a subgraph says what is its own by implementing
//! [`Subgraph`] (its name, GraphQL roots, resolver state, migrator, consumers and live feed), and this
//! module does the rest: [`schema`] and [`sdl`], [`Service::start`] (database migrated, state built),
//! [`Service::app`] (the axum app, for `oneshot` tests), [`Service::serve`] (server, outbox relay,
//! consumers, live feed and the subgraph's own tasks under one supervisor until shutdown) and [`run`] (both).

use std::{marker::PhantomData, sync::Arc};

use async_graphql::{ObjectType, Schema, SchemaBuilder, SubscriptionType};
use axum::Router;
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;

use crate::{
    config::ServerConfig,
    consumer::Handler,
    events::EventBus,
    live::LiveFeed,
    server::{self, BackgroundTask, Runtime, StartError, SubgraphConfig},
    shutdown::CancellationToken,
    supervisor::SupervisorError,
};

/// One member of a consumer group that a subgraph runs beside its server (see [`Subgraph::consumers`]).
pub struct Consumes {
    /// The stream read.
    pub stream: &'static str,
    /// The subgraph's consumer group on it (one per subgraph, so each subgraph sees every event once).
    pub group: &'static str,
    /// What is done with each event.
    pub handler: Box<dyn Handler>,
}

/// What makes a subgraph itself; the rest comes from this module.
pub trait Subgraph: Send + Sync + 'static {
    /// Its name: service name in events and metrics, file name of its SDL and database.
    const NAME: &'static str;
    /// The GraphQL query root.
    type Query: ObjectType + Default + 'static;
    /// The GraphQL mutation root (`EmptyMutation` when there is none).
    type Mutation: ObjectType + Default + 'static;
    /// The GraphQL subscription root (`EmptySubscription` when there is none).
    type Subscription: SubscriptionType + Default + 'static;
    /// What resolvers and consumers need, put into the schema's data.
    type State: Clone + Send + Sync + 'static;
    /// Creates and updates its tables (and the outbox and inbox it uses).
    type Migrator: MigratorTrait;

    /// Builds the state once the database is migrated.
    fn state(runtime: &Runtime) -> Result<Self::State, StartError>;

    /// Schema data besides the state (data loaders); none by default.
    fn data(builder: SchemaBuilderOf<Self>, _state: &Self::State) -> SchemaBuilderOf<Self> {
        builder
    }

    /// The consumer groups it runs; none by default.
    fn consumers(_state: &Self::State) -> Vec<Consumes> {
        Vec::new()
    }

    /// The live feed its subscriptions read, fed from the bus while it serves; none by default.
    fn live_feed(_state: &Self::State) -> Option<&LiveFeed> {
        None
    }

    /// Its own long-lived tasks (beside the consumers and the live feed), supervised like them: each
    /// runs until `shutdown` is cancelled. None by default.
    fn tasks(
        _state: &Self::State,
        _runtime: &Runtime,
        _shutdown: CancellationToken,
    ) -> Vec<BackgroundTask> {
        Vec::new()
    }
}

/// The schema of subgraph `S`.
pub type SchemaOf<S> =
    Schema<<S as Subgraph>::Query, <S as Subgraph>::Mutation, <S as Subgraph>::Subscription>;

/// The schema builder of subgraph `S`.
pub type SchemaBuilderOf<S> =
    SchemaBuilder<<S as Subgraph>::Query, <S as Subgraph>::Mutation, <S as Subgraph>::Subscription>;

/// Builds `S`'s schema; without `state` it can only describe itself (for SDL export).
pub fn schema<S: Subgraph>(server: &ServerConfig, state: Option<S::State>) -> SchemaOf<S> {
    let builder = crate::graphql::configure(
        Schema::build(
            S::Query::default(),
            S::Mutation::default(),
            S::Subscription::default(),
        ),
        server,
    );
    match state {
        Some(state) => S::data(builder, &state).data(state).finish(),
        None => builder.finish(),
    }
}

/// `S`'s federation SDL (`schema/<name>.graphql`).
pub fn sdl<S: Subgraph>() -> String {
    crate::graphql::federation_sdl(&schema::<S>(&ServerConfig::default(), None))
}

/// Why a subgraph stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum SubgraphError {
    /// Start-up failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A task failed while running.
    #[error(transparent)]
    Run(#[from] SupervisorError),
}

/// A prepared subgraph: database migrated, state built, nothing running yet.
pub struct Service<S: Subgraph> {
    runtime: Runtime,
    state: S::State,
    subgraph: PhantomData<S>,
}

impl<S: Subgraph> Service<S> {
    /// Connects to and migrates the database, then builds the state.
    pub async fn start(
        config: SubgraphConfig,
        bus: Arc<dyn EventBus>,
    ) -> Result<Self, SubgraphError> {
        let runtime = Runtime::start::<S::Migrator>(S::NAME, config, bus).await?;
        let state = S::state(&runtime)?;
        Ok(Self {
            runtime,
            state,
            subgraph: PhantomData,
        })
    }

    /// Resolver state (tests use it to reach the database).
    pub fn state(&self) -> &S::State {
        &self.state
    }

    /// The axum app; open WebSockets close when `shutdown` is cancelled.
    pub fn app(&self, shutdown: CancellationToken) -> Router {
        let schema = schema::<S>(&self.runtime.config.server, Some(self.state.clone()));
        server::app(schema, self.runtime.http_context(shutdown))
    }

    /// Serves on `listener` and runs the outbox relay, the consumers and the live feed until `shutdown`
    /// (or until one of them fails, which cancels `shutdown`).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), SubgraphError> {
        let app = self.app(shutdown.clone());
        let mut tasks: Vec<BackgroundTask> = S::consumers(&self.state)
            .into_iter()
            .map(|c| {
                self.runtime
                    .consumer(c.stream, c.group, c.handler, shutdown.clone())
            })
            .collect();
        if let Some(feed) = S::live_feed(&self.state) {
            tasks.push(self.runtime.live_feed_task(feed, shutdown.clone()));
        }
        tasks.extend(S::tasks(&self.state, &self.runtime, shutdown.clone()));
        Ok(self
            .runtime
            .serve(S::NAME, listener, app, tasks, shutdown)
            .await?)
    }
}

/// [`Service::start`] then [`Service::serve`].
pub async fn run<S: Subgraph>(
    listener: TcpListener,
    config: SubgraphConfig,
    bus: Arc<dyn EventBus>,
    shutdown: CancellationToken,
) -> Result<(), SubgraphError> {
    Service::<S>::start(config, bus)
        .await?
        .serve(listener, shutdown)
        .await
}
