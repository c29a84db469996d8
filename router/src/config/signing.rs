//! `subgraph_signing`: how the router proves to subgraphs that a request comes from it.

use serde::{Deserialize, Serialize};

use super::Secret;

/// Every subgraph request (HTTP fetches, health checks and the WebSocket upgrade of subscriptions)
/// carries `shippy-router-signature`: an HMAC-SHA256 with `key` over the subgraph's name, the method,
/// path and body, and the time. Shippy's subgraphs refuse requests without a valid one (or their
/// shared secret), so nobody can bypass the router by calling them directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubgraphSigningConfig {
    /// The signing key, 32+ bytes (`openssl rand -hex 32`); the subgraphs accept it as
    /// `SHIPPY_ROUTER_SIGNING_KEY`. Prefer the environment: `SHIPPY_ROUTER__SUBGRAPH_SIGNING__KEY`.
    /// Unset: requests are not signed. Default: none.
    pub key: Option<Secret>,
    /// `shippy router` refuses to start without `key`. Turn it off only when no subgraph needs the
    /// signature (subgraphs other than Shippy's). Default `true`.
    pub required: bool,
}

impl Default for SubgraphSigningConfig {
    fn default() -> Self {
        SubgraphSigningConfig {
            key: None,
            required: true,
        }
    }
}
