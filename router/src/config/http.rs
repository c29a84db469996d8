//! `http` and `csrf`: the client-facing HTTP server (restart-only) and CSRF prevention (live).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where and how the router serves HTTP. Restart-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on (the `--listen` flag overrides it).
    pub listen: SocketAddr,
    /// Path of the GraphQL endpoint (GET and POST).
    pub graphql_path: String,
    /// Path of the health check, which answers 200 once the router serves.
    pub health_path: String,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_size: usize,
    /// How long shutdown waits for in-flight requests before closing connections.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Identical queries in flight at the same time (same text, operation name, variables and
    /// forwarded headers, so the same identity) share one execution and one response.
    pub dedupe: bool,
    /// Header holding the client IP as set by a trusted proxy (e.g. `x-forwarded-for`, whose
    /// first address is used). Unset: the TCP peer address. Only set it behind a proxy that
    /// overwrites the header, or clients choose their own rate-limit key.
    pub client_ip_header: Option<String>,
    /// Serve the Shippy web UI at `/` (and its files under `/assets/`). Turn it off when the
    /// router fronts subgraphs other than Shippy's.
    pub ui: bool,
    /// Serve the GraphiQL playground (assets embedded, no CDN) on `GET <graphql_path>` to browsers
    /// (`Accept: text/html`); other GET requests are GraphQL queries as usual.
    pub playground: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            graphql_path: "/graphql".to_string(),
            health_path: "/health".to_string(),
            max_body_size: 2 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(10),
            dedupe: true,
            client_ip_header: None,
            ui: true,
            playground: true,
        }
    }
}

/// Rejects requests a browser could send cross-site without a CORS preflight: a GET (or a POST
/// with a "simple" content type) must carry one of `required_headers`. POSTs with
/// `Content-Type: application/json` always pass (they need a preflight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsrfConfig {
    /// Turns the CSRF check on.
    pub enabled: bool,
    /// Any one of these headers (with any value) proves a preflight.
    pub required_headers: Vec<String>,
}

impl Default for CsrfConfig {
    fn default() -> Self {
        CsrfConfig {
            enabled: true,
            required_headers: vec![
                "apollo-require-preflight".into(),
                "x-apollo-operation-name".into(),
            ],
        }
    }
}
