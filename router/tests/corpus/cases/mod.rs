//! The corpus cases, one module per federation feature; each has its subgraphs (SDL + data)
//! and its checks, whose expected responses are worked out from that data by hand.

use crate::harness::Subgraph;

pub mod abstract_types;
pub mod aliases;
pub mod arguments;
pub mod entities;
pub mod fed1;
pub mod inaccessible;
pub mod inaccessible_types;
pub mod interface_object;
pub mod mutations;
pub mod nulls;
pub mod overrides;
pub mod provides;
pub mod requires;
pub mod shared_root;
pub mod skip_include;

/// Builds a case's subgraphs (definitions only; nothing is started).
pub type Subgraphs = fn() -> Vec<Subgraph>;

/// Every case by name, with its subgraphs: the supergraph freshness test walks this list.
pub const ALL: &[(&str, Subgraphs)] = &[
    ("abstract_types", abstract_types::subgraphs),
    ("aliases", aliases::subgraphs),
    ("arguments", arguments::subgraphs),
    ("entities", entities::subgraphs),
    ("fed1", fed1::subgraphs),
    ("inaccessible", inaccessible::subgraphs),
    ("inaccessible_types", inaccessible_types::subgraphs),
    ("interface_object", interface_object::subgraphs),
    ("mutations", mutations::subgraphs),
    ("nulls", nulls::subgraphs),
    ("overrides", overrides::subgraphs),
    ("provides", provides::subgraphs),
    ("requires", requires::subgraphs),
    ("shared_root", shared_root::subgraphs),
    ("skip_include", skip_include::subgraphs),
];
