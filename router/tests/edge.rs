//! The router's edge over real (in-process) subgraphs, through HTTP: token verification and
//! identity propagation, `@authenticated` / `@requiresScopes`, per-field and whole-request rate
//! limits (in memory and in Redis), operation limits, CSRF, suggestions, subgraph resilience
//! (breaker, retries, replicas), inbound deduplication and hot reload. Each test fails without
//! the rule it is named after.

#[allow(dead_code)]
#[path = "http_api/harness.rs"]
mod harness;
#[path = "common/mock.rs"]
mod mock;
#[allow(dead_code)]
#[path = "http_api/subgraphs.rs"]
mod subgraphs;
#[path = "edge/support.rs"]
mod support;

#[path = "edge/auth.rs"]
mod auth;
#[path = "edge/hardening.rs"]
mod hardening;
#[path = "edge/rate_limits.rs"]
mod rate_limits;
#[path = "edge/reload.rs"]
mod reload;
#[path = "edge/resilience.rs"]
mod resilience;
