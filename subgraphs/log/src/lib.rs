//! The `log` subgraph: the activity log. Every service records log events in its outbox; they travel on the
//! `log` stream, and this subgraph's consumer (group `log`, [`store`]) stores each exactly once. Users read
//! their own entries (`logs`, `User.activity`, `logAdded`); the `admin` scope reads everyone's.
//!
//! [`Log`] says what is this subgraph's own; `shippy_kit::subgraph` starts, serves and describes it
//! ([`LogService`]): the axum app, the consumer and the live feed, until shutdown.

pub mod consumers;
pub mod entity;
pub mod graphql;

use async_graphql::EmptyMutation;
use sea_orm::DatabaseConnection;
use shippy_contracts::streams;
use shippy_kit::{
    live::LiveFeed,
    server::{Runtime, StartError},
    subgraph::{Consumes, Service, Subgraph},
};

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

/// The log subgraph.
pub struct Log;

/// A prepared log subgraph.
pub type LogService = Service<Log>;

impl Subgraph for Log {
    const NAME: &'static str = NAME;
    type Query = Query;
    type Mutation = EmptyMutation;
    type Subscription = Subscription;
    type State = State;
    type Migrator = shippy_migrations::log::Migrator;

    fn state(runtime: &Runtime) -> Result<State, StartError> {
        Ok(State {
            db: runtime.db.clone(),
            live: runtime.live_feed(streams::LOG),
        })
    }

    fn consumers(state: &State) -> Vec<Consumes> {
        vec![Consumes {
            stream: streams::LOG,
            group: consumers::GROUP,
            handler: Box::new(consumers::Recorder::new(state.db.clone())),
        }]
    }

    fn live_feed(state: &State) -> Option<&LiveFeed> {
        Some(&state.live)
    }
}
