//! Stream names (logical: the Redis bus puts its key prefix, `shippy:` by default, before them).

/// Log events from every service, stored by the log subgraph.
pub const LOG: &str = "log";

/// Consignment domain events (creation, assignment, status changes) and the vessel subgraph's answers.
pub const CONSIGNMENT: &str = "consignment";
