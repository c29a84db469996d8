//! The `vessel` subgraph: vessels, finding one that fits, and booking consignments on them.
//!
//! [`Vessel`] says what is this subgraph's own; `shippy_kit::subgraph` starts, serves and describes it
//! ([`VesselService`]): the axum app, the outbox relay and the [`consumers`] (booking on `consignment` events,
//! learning of new users from `user.registered` on the `log` stream), until shutdown.

pub mod commands;
pub mod consumers;
pub mod domain;
pub mod entity;
pub mod graphql;

use std::{sync::Arc, time::Duration};

use async_graphql::{EmptySubscription, dataloader::DataLoader};
use sea_orm::DatabaseConnection;
use shippy_contracts::streams;
use shippy_kit::{
    outbox::Outbox,
    server::{Runtime, StartError},
    subgraph::{Consumes, SchemaBuilderOf, Service, Subgraph},
};

pub use graphql::VesselSchema;
use graphql::{Mutation, Query};

/// The subgraph's name (service name in events, file name of its SDL and database).
pub const NAME: &str = "vessel";

/// What resolvers need, shared through the schema's data.
#[derive(Clone)]
pub struct State {
    /// The vessel database.
    pub db: DatabaseConnection,
    /// Wakes the relay after a commit that recorded events.
    pub outbox: Outbox,
    /// Woken (`notify_waiters`) each time this process's consumer records a newly known user, so a
    /// `createVessel` waiting for its owner looks again at once instead of at its next poll.
    pub users_learned: Arc<tokio::sync::Notify>,
    /// How long `createVessel` waits for an owner it does not know yet (`events.projection_wait`).
    pub owner_wait: Duration,
}

/// The vessel subgraph.
pub struct Vessel;

/// A prepared vessel subgraph.
pub type VesselService = Service<Vessel>;

impl Subgraph for Vessel {
    const NAME: &'static str = NAME;
    type Query = Query;
    type Mutation = Mutation;
    type Subscription = EmptySubscription;
    type State = State;
    type Migrator = shippy_migrations::vessel::Migrator;

    fn state(runtime: &Runtime) -> Result<State, StartError> {
        Ok(State {
            db: runtime.db.clone(),
            outbox: runtime.outbox.clone(),
            users_learned: Arc::default(),
            owner_wait: runtime.config.events.projection_wait,
        })
    }

    fn data(builder: SchemaBuilderOf<Self>, state: &State) -> SchemaBuilderOf<Self> {
        builder.data(DataLoader::new(
            graphql::vessel_loader(state.db.clone()),
            tokio::spawn,
        ))
    }

    fn consumers(state: &State) -> Vec<Consumes> {
        vec![
            Consumes {
                stream: streams::CONSIGNMENT,
                group: consumers::GROUP,
                handler: Box::new(consumers::Assigner::new(state.clone())),
            },
            Consumes {
                stream: streams::LOG,
                group: consumers::GROUP,
                handler: Box::new(consumers::Registrations::new(state.clone())),
            },
        ]
    }
}
