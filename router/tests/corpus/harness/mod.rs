//! The corpus harness: JSON-backed async-graphql subgraphs, the router under test and the
//! case runner that compares responses (see `case.rs` for the builder).

pub mod case;
pub mod json;
pub mod router;
pub mod schema;
pub mod subgraph;
pub mod supergraph;

pub use case::Case;
pub use subgraph::Subgraph;
