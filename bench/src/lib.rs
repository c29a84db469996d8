//! In-memory benchmark subgraphs and the load generator for the router benchmark.
