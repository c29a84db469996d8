//! The `user` subgraph: users, registration, login and JWT issuing.
//!
//! [`User`] says what is this subgraph's own; `shippy_kit::subgraph` starts (database migrated, keys
//! loaded), serves and describes it ([`UserService`]): the axum app and the outbox relay, until shutdown.

pub mod commands;
pub mod domain;
pub mod entity;
pub mod graphql;
pub mod tokens;

use std::sync::Arc;

use async_graphql::{EmptySubscription, dataloader::DataLoader};
use sea_orm::DatabaseConnection;
use shippy_kit::{
    outbox::Outbox,
    server::{Runtime, StartError},
    subgraph::{SchemaBuilderOf, Service, Subgraph},
};
use shippy_security::{
    login_limits::LoginLimiter,
    revocation::{MemoryRevocations, RevocationStore},
};
use tokens::TokenIssuer;

pub use graphql::UserSchema;
use graphql::{Mutation, Query};

/// The subgraph's name (service name in events, file name of its SDL and database).
pub const NAME: &str = shippy_contracts::user::PUBLISHER;

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

/// The user subgraph.
pub struct User;

/// The store `logout` writes to: the one the process was given, else one of this subgraph's own (which
/// only a router in the same process could read, so say so).
fn revocation_store(runtime: &Runtime) -> Arc<dyn RevocationStore> {
    runtime.config.revocations.clone().unwrap_or_else(|| {
        tracing::warn!(
            "no revocation store configured: logouts are kept in this process only, where no router sees them"
        );
        Arc::new(MemoryRevocations::default())
    })
}

/// A prepared user subgraph.
pub type UserService = Service<User>;

impl Subgraph for User {
    const NAME: &'static str = NAME;
    type Query = Query;
    type Mutation = Mutation;
    type Subscription = EmptySubscription;
    type State = State;
    type Migrator = shippy_migrations::user::Migrator;

    fn state(runtime: &Runtime) -> Result<State, StartError> {
        Ok(State {
            db: runtime.db.clone(),
            tokens: Arc::new(TokenIssuer::from_config(&runtime.config.auth)?),
            outbox: runtime.outbox.clone(),
            revocations: revocation_store(runtime),
            login_limits: Arc::new(LoginLimiter::new(&runtime.config.auth.login_limits)),
        })
    }

    fn data(builder: SchemaBuilderOf<Self>, state: &State) -> SchemaBuilderOf<Self> {
        builder.data(DataLoader::new(
            graphql::user_loader(state.db.clone()),
            tokio::spawn,
        ))
    }
}
