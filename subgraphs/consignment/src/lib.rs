//! The `consignment` subgraph: consignments, their assignment to vessels, and live status updates.
//!
//! A consignment is created `PENDING` and recorded as `consignment.created` on the `consignment` stream;
//! the vessel subgraph books it on a vessel and answers on the same stream, and this subgraph's
//! consumer ([`consumers::VesselAnswers`], group `consignment`) makes it `ASSIGNED` or `UNASSIGNABLE`. The
//! vessel's owner then moves it `IN_TRANSIT` and `DELIVERED`. The [`saga`] task sends unanswered
//! requests again and gives up on them after `assignment.deadline`; the owner may retry an
//! `UNASSIGNABLE` consignment or cancel one not yet assigned. Every change reaches subscribers of
//! `consignmentUpdated` on any replica through the stream ([`consumers::watch`]). The events and their payloads
//! are in `shippy_contracts`.
//!
//! [`Consignment`] says what is this subgraph's own; `shippy_kit::subgraph` starts, serves and describes
//! it ([`ConsignmentService`]): the axum app, the outbox relay, the consumer, the live feed and the
//! saga, until shutdown.

pub mod commands;
pub mod consumers;
pub mod domain;
pub mod entity;
pub mod graphql;
pub mod saga;

use sea_orm::DatabaseConnection;
use shippy_contracts::streams;
use shippy_kit::{
    live::LiveFeed,
    outbox::Outbox,
    server::{BackgroundTask, Runtime, StartError},
    shutdown::CancellationToken,
    subgraph::{Consumes, Service, Subgraph},
};

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

/// The consignment subgraph.
pub struct Consignment;

/// A prepared consignment subgraph.
pub type ConsignmentService = Service<Consignment>;

impl Subgraph for Consignment {
    const NAME: &'static str = NAME;
    type Query = Query;
    type Mutation = Mutation;
    type Subscription = Subscription;
    type State = State;
    type Migrator = shippy_migrations::consignment::Migrator;

    fn state(runtime: &Runtime) -> Result<State, StartError> {
        runtime.config.assignment.validate()?;
        Ok(State {
            db: runtime.db.clone(),
            outbox: runtime.outbox.clone(),
            live: runtime.live_feed(streams::CONSIGNMENT),
        })
    }

    fn consumers(state: &State) -> Vec<Consumes> {
        vec![Consumes {
            stream: streams::CONSIGNMENT,
            group: consumers::GROUP,
            handler: Box::new(consumers::VesselAnswers::new(state.clone())),
        }]
    }

    fn live_feed(state: &State) -> Option<&LiveFeed> {
        Some(&state.live)
    }

    fn tasks(state: &State, runtime: &Runtime, shutdown: CancellationToken) -> Vec<BackgroundTask> {
        let saga = saga::Saga::new(state.clone(), runtime.config.assignment.clone());
        vec![BackgroundTask {
            name: "assignment saga".into(),
            run: Box::pin(async move {
                let Ok(()) = saga.run(shutdown).await;
                Ok(())
            }),
        }]
    }
}
