//! The router benchmark: in-memory benchmark subgraphs, a load generator and the report that compares
//! routers, driven end to end by `bench/run.sh`.
//!
//! The workload is the public federation gateway benchmark (graphql-hive/router `bench/`, MIT): four
//! subgraphs, one nested query with an 87 KB response. `workload` holds it, `subgraphs` serves it,
//! `load` measures a router under it and `report` turns many measurements into one markdown table.
//! `varied` is the second workload: several operation shapes with changing variables.
//! `fanout` is the subscription benchmark: WebSocket subscribers through a router, events fanned out.
//! `pipeline` is the event pipeline benchmark: `createConsignment` through the real services, as
//! separate processes on PostgreSQL and Redis, until consignments are assigned and logged.

pub mod client;
pub mod fanout;
pub mod json;
pub mod load;
pub mod pipeline;
pub mod procfs;
pub mod report;
pub mod subgraphs;
pub mod units;
pub mod varied;
pub mod workload;
