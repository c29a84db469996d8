//! Resilience towards subgraphs: a circuit breaker per subgraph (`breaker`), several replicas
//! with load balancing and health (`balancer`), retries within a budget (`retry`), and the
//! rolling counters they share (`window`). The subgraph client (`crate::subgraph`) drives them.
//!
//! All time comes from tokio (`tokio::time::Instant`), so tests pause and advance it.

pub(crate) mod balancer;
pub(crate) mod breaker;
pub(crate) mod retry;
pub(crate) mod window;
