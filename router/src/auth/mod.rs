//! Who is calling and what they may see: the JWT verifier (our one wrapper around
//! `jsonwebtoken`, in `jwt`), JSON Web Key Sets fetched over HTTP (`jwks`), and the access rules
//! the supergraph declares with `@authenticated` and `@requiresScopes` (`rules`).
//!
//! The pipeline's `authenticate` stage turns the request's token into an [`Identity`]; its
//! `authorize` stage checks the operation's fields against the [`rules::AccessRules`].

pub(crate) mod jwks;
pub(crate) mod jwt;
pub(crate) mod rules;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value as Json};
use shippy_security::revocation::{
    MemoryRevocations, RedisRevocations, RevocationStore, StoreError,
};

pub(crate) use jwt::{JwtVerifier, KeyError, TokenError};

use crate::config::{RateLimitConfig, RevocationConfig};

/// The revocation store `revocation` describes: Redis at its `redis_url`, else at the rate-limit
/// Redis, else this process's memory (which only a user subgraph in the same process writes to).
pub(crate) fn revocation_store(
    revocation: &RevocationConfig,
    rate_limit: &RateLimitConfig,
) -> Result<Arc<dyn RevocationStore>, StoreError> {
    match revocation
        .redis_url
        .as_deref()
        .or(rate_limit.redis.url.as_deref())
    {
        Some(url) => Ok(Arc::new(RedisRevocations::new(
            url,
            &revocation.key_prefix,
            revocation.timeout,
        )?)),
        None => Ok(Arc::new(MemoryRevocations::default())),
    }
}

/// A caller whose token was verified: its claims, as the issuer wrote them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Identity {
    claims: Map<String, Json>,
    /// The claims as JSON, written once for every subgraph request that carries them.
    claims_json: Bytes,
}

impl Identity {
    pub(crate) fn new(claims: Map<String, Json>) -> Identity {
        let claims_json = Bytes::from(serde_json::to_vec(&claims).unwrap_or_default());
        Identity {
            claims,
            claims_json,
        }
    }

    pub(crate) fn claims(&self) -> &Map<String, Json> {
        &self.claims
    }

    pub(crate) fn claims_json(&self) -> &Bytes {
        &self.claims_json
    }

    /// A claim as text, for rate-limit keys: strings as they are, numbers and booleans printed.
    pub(crate) fn claim_text(&self, name: &str) -> Option<String> {
        match self.claims.get(name)? {
            Json::String(s) if !s.is_empty() => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The scopes in `claim`: a JSON array of strings or one space-separated string.
    pub(crate) fn scopes(&self, claim: &str) -> Vec<&str> {
        match self.claims.get(claim) {
            Some(Json::String(text)) => text.split_whitespace().collect(),
            Some(Json::Array(items)) => items.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scopes_in_both_forms_and_claims_as_text() {
        let identity = Identity::new(
            serde_json::json!({"sub": "u1", "n": 7, "scope": "a b", "scopes": ["c", 1, "d"]})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(identity.scopes("scope"), vec!["a", "b"]);
        assert_eq!(identity.scopes("scopes"), vec!["c", "d"]);
        assert!(identity.scopes("nope").is_empty());
        assert_eq!(identity.claim_text("sub").as_deref(), Some("u1"));
        assert_eq!(identity.claim_text("n").as_deref(), Some("7"));
        assert_eq!(identity.claim_text("scopes"), None);
        assert_eq!(
            serde_json::from_slice::<Json>(identity.claims_json()).unwrap()["sub"],
            "u1"
        );
    }
}
