//! Shared subgraph kit: server bootstrap, database, auth context, event bus and outbox. No domain types.
//!
//! Every Shippy subgraph is built from the same parts:
//! - [`config`]: the typed settings a subgraph process takes (server limits, JWT, outbox relay);
//! - [`db`]: connecting to SQLite or PostgreSQL and running the subgraph's migrator;
//! - [`access`]: refusing requests that do not come from a router (signature or shared secret);
//! - [`auth`]: verifying (and, for the user subgraph, issuing) JWTs, and the caller in the GraphQL context;
//! - [`error`]: GraphQL errors with a stable `extensions.code`;
//! - [`events`] and [`outbox`]: the event bus (in-process or Redis streams) and the transactional outbox
//!   feeding it;
//! - [`consumer`] and [`inbox`]: consumer-group readers and the table that makes their handlers idempotent;
//! - [`live`]: one reader per stream fanned out to GraphQL subscriptions;
//! - [`server`]: the axum app around a GraphQL schema, and serving it until shutdown;
//! - [`subgraph`]: the [`subgraph::Subgraph`] trait, which a subgraph implements to say what is its own,
//!   and the start, app, serve, run and SDL export every subgraph shares;
//! - [`observe`] and [`telemetry`]: request spans, `/metrics`, and the logging/tracing set-up;
//! - [`text`]: refusing invisible characters that disguise how a name displays;
//! - [`supervisor`] and [`shutdown`]: long-lived tasks that stop together and report why they stopped.

pub mod access;
pub mod auth;
pub mod config;
pub mod consumer;
pub mod db;
pub mod error;
pub mod events;
pub mod graphql;
pub mod inbox;
pub mod live;
pub mod observe;
pub mod outbox;
pub mod pagination;
pub mod server;
pub mod shutdown;
pub mod subgraph;
pub mod supervisor;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;

pub use shutdown::CancellationToken;

/// Installs the process-wide rustls crypto provider (ring).
///
/// Two backends end up linked in the binary (see STACK.md); without an explicit choice, code that relies
/// on the default provider panics at run time. Safe to call more than once.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
