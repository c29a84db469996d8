//! Router-only subgraphs: a subgraph's GraphQL endpoint answers a router, not whoever can reach it.
//!
//! Called directly, a subgraph would skip every protection the router adds (per-field rate limits, the
//! introspection switch, depth and cost limits). So every request to `/graphql` (POST, GET and the
//! WebSocket upgrade) must carry a router credential, checked by `shippy_security::signing`: the
//! router's signature (`shippy-router-signature`, made for this subgraph's name, over method, path,
//! body and time) or a shared secret (`shippy-subgraph-secret`, what a third-party router can send).
//! Anything else gets `401` with a GraphQL error `UNAUTHENTICATED`. `/health`, `/ready` and `/metrics`
//! stay open for probes and scrapes.
//!
//! [`AccessConfig::open`] turns the check off for development (GraphiQL on the subgraph itself), with a
//! warning at start. A subgraph that is neither open nor given a credential refuses to start
//! ([`AccessError::NoCredential`] says how to configure one).

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::Response,
};
use shippy_security::signing::{KeyError, RequestVerifier};
/// The credential headers, so tests and tools name them without depending on the security crate.
pub use shippy_security::signing::{SHARED_SECRET_HEADER, SIGNATURE_HEADER};

use crate::{config::AccessConfig, server::error_response};

/// Why a subgraph's access check could not be set up (a start-up error for the operator).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Not open, and no credential would ever be accepted.
    #[error(
        "the {subgraph} subgraph only answers a router, but no router credential is configured: set \
         SHIPPY_ROUTER_SIGNING_KEY to the router's signing key (its `subgraph_signing.key`, 32+ bytes, e.g. \
         `openssl rand -hex 32`), or SHIPPY_SUBGRAPH_SECRET to the secret a third-party router sends in \
         `shippy-subgraph-secret`; for local development only, SHIPPY_SUBGRAPH_OPEN=true serves anyone"
    )]
    NoCredential {
        /// The subgraph.
        subgraph: String,
    },
    /// A configured key or secret cannot be used.
    #[error("the {subgraph} subgraph's router credentials: {source}")]
    Key {
        /// The subgraph.
        subgraph: String,
        /// What is wrong with them.
        #[source]
        source: KeyError,
    },
}

/// Who a subgraph serves.
#[derive(Debug, Clone)]
pub enum Gate {
    /// Anyone ([`AccessConfig::open`]).
    Open,
    /// Only requests with a valid router credential.
    RouterOnly(Arc<RequestVerifier>),
}

impl Gate {
    /// The gate of subgraph `subgraph` (its name is the audience router signatures are made for).
    pub fn from_config(subgraph: &str, config: &AccessConfig) -> Result<Self, AccessError> {
        if config.open {
            tracing::warn!(
                subgraph,
                "SHIPPY_SUBGRAPH_OPEN is set: this subgraph answers anyone, not only the router; \
                 rate limits, the introspection switch and operation limits of the router are bypassed. \
                 Use it for local development only"
            );
            return Ok(Self::Open);
        }
        let keys: Vec<&str> = [&config.router_key, &config.router_key_previous]
            .into_iter()
            .flatten()
            .map(|secret| secret.expose())
            .collect();
        let secrets: Vec<&str> = [&config.shared_secret, &config.shared_secret_previous]
            .into_iter()
            .flatten()
            .map(|secret| secret.expose())
            .collect();
        match RequestVerifier::new(subgraph, &keys, &secrets, config.max_skew) {
            Ok(verifier) => Ok(Self::RouterOnly(Arc::new(verifier))),
            Err(KeyError::NoCredential) => Err(AccessError::NoCredential {
                subgraph: subgraph.to_owned(),
            }),
            Err(source) => Err(AccessError::Key {
                subgraph: subgraph.to_owned(),
                source,
            }),
        }
    }
}

/// Middleware on the GraphQL routes: passes requests with a valid router credential (or every request
/// through an open gate), answers the rest with `401 UNAUTHENTICATED`. The body is read here, because
/// the signature covers it, and handed on unchanged; the body limit layer outside bounds it.
pub async fn require_router(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let Gate::RouterOnly(verifier) = gate else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(err) if is_length_limit(&err) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "request body too large",
            );
        }
        Err(err) => {
            tracing::debug!(error = %err, "could not read a request body");
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "the request body could not be read",
            );
        }
    };
    match verifier.verify(&parts.method, &parts.uri, &parts.headers, &body) {
        Ok(_) => next.run(Request::from_parts(parts, Body::from(body))).await,
        Err(err) => {
            tracing::debug!(error = %err, path = %parts.uri.path(), "refused a request without a valid router credential");
            metrics::counter!("shippy_subgraph_unauthenticated_requests_total", "subgraph" => verifier.audience().to_owned())
                .increment(1);
            error_response(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                &err.to_string(),
            )
        }
    }
}

/// Whether reading the body stopped at the body limit (the limit layer's error, possibly wrapped).
fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}
