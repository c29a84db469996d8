//! `subgraph_defaults` and `subgraphs`: settings of the subgraph clients (restart-only).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CircuitBreakerConfig, HealthCheckConfig, LoadBalancing, RetryConfig};

/// Settings for every subgraph unless `subgraphs.<name>` overrides them. Restart-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubgraphDefaults {
    /// Time allowed for one subgraph request (connect, send, full response).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Share one upstream call between identical in-flight queries (same URL, body and forwarded
    /// headers). Mutations are never deduplicated.
    pub dedupe: bool,
    /// Most concurrent requests (HTTP/1.1 connections) to one subgraph; more wait for a free slot
    /// within the request timeout.
    pub max_connections: usize,
    /// Idle keep-alive connections are closed after this long.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Largest subgraph response body accepted, in bytes.
    pub max_response_size: usize,
    /// Largest read buffer of one subgraph connection, in bytes (at least 8192); it also bounds a
    /// response's status line and headers. Each connection keeps a buffer that grows with the
    /// responses it reads, up to this: small keeps idle connections cheap, and a larger body is
    /// simply read in more pieces.
    pub max_read_buffer: usize,
    /// Client request headers copied to subgraph requests (case-insensitive). The
    /// `authorization` header is how subgraphs verify the caller themselves.
    pub forward_headers: Vec<String>,
    /// Send the verified JWT claims to subgraphs as `extensions.claims` of each request, so they
    /// can read them without parsing the token (they still verify the forwarded token).
    pub forward_claims: bool,
    /// Fail fast on a subgraph that keeps failing.
    pub circuit_breaker: CircuitBreakerConfig,
    /// Retries of failed queries (never mutations), within a budget.
    pub retry: RetryConfig,
    /// With several URLs: `round_robin` or `least_outstanding`.
    pub load_balancing: LoadBalancing,
    /// Active health checks of replicas (only with several URLs).
    pub health_check: HealthCheckConfig,
}

/// The smallest `max_read_buffer` the HTTP client can work with.
pub const MIN_READ_BUFFER: usize = 8192;

impl Default for SubgraphDefaults {
    fn default() -> Self {
        SubgraphDefaults {
            timeout: Duration::from_secs(30),
            dedupe: true,
            max_connections: 256,
            pool_idle_timeout: Duration::from_secs(90),
            max_response_size: 64 * 1024 * 1024,
            max_read_buffer: 16 * 1024,
            forward_headers: vec![
                "authorization".into(),
                "traceparent".into(),
                "tracestate".into(),
            ],
            forward_claims: true,
            circuit_breaker: CircuitBreakerConfig::default(),
            retry: RetryConfig::default(),
            load_balancing: LoadBalancing::RoundRobin,
            health_check: HealthCheckConfig::default(),
        }
    }
}

/// Overrides for one subgraph; unset fields use `subgraph_defaults`. A section given here
/// (`circuit_breaker`, `retry`, `health_check`) replaces the default section as a whole; its
/// unset keys take the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubgraphOverride {
    /// Replaces the URL from the supergraph's `join__graph(url:)`.
    pub url: Option<String>,
    /// Several replicas of the subgraph, load-balanced; replaces `url` and the supergraph's URL.
    pub urls: Vec<String>,
    /// Overrides `subgraph_defaults.timeout`.
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Overrides `subgraph_defaults.dedupe`.
    pub dedupe: Option<bool>,
    /// Overrides `subgraph_defaults.max_connections`.
    pub max_connections: Option<usize>,
    /// Overrides `subgraph_defaults.forward_claims`.
    pub forward_claims: Option<bool>,
    /// Replaces `subgraph_defaults.circuit_breaker`.
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Replaces `subgraph_defaults.retry`.
    pub retry: Option<RetryConfig>,
    /// Overrides `subgraph_defaults.load_balancing`.
    pub load_balancing: Option<LoadBalancing>,
    /// Replaces `subgraph_defaults.health_check`.
    pub health_check: Option<HealthCheckConfig>,
}

/// Settings of one subgraph after applying overrides to the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveSubgraphConfig {
    /// Time allowed for one request.
    pub timeout: Duration,
    /// Whether identical in-flight queries share one call.
    pub dedupe: bool,
    /// Most concurrent requests to the subgraph.
    pub max_connections: usize,
    /// Whether verified JWT claims go to the subgraph.
    pub forward_claims: bool,
    /// The circuit breaker.
    pub circuit_breaker: CircuitBreakerConfig,
    /// Retries.
    pub retry: RetryConfig,
    /// How replicas are picked.
    pub load_balancing: LoadBalancing,
    /// Active health checks of replicas.
    pub health_check: HealthCheckConfig,
}
