//! JSON Web Key Sets: keys fetched from a URL, refreshed on a schedule and when a token names a
//! key id we do not know (key rotation), never more often than a minimum interval.
//!
//! Lookups read an immutable snapshot (`ArcSwap`), so verifying a token never waits for a fetch
//! unless its `kid` is unknown. Fetches are single-flight: concurrent tokens with an unknown `kid`
//! share one request.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value as Json;
use tokio::time::Instant;

use crate::fetch::{FetchError, Fetched, RemoteDocument, SourceError};

/// Key sets are small; anything bigger is not a key set.
const MAX_JWKS_SIZE: usize = 1024 * 1024;

/// One usable key of a set.
#[derive(Clone)]
pub(crate) struct JwksKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// Why a key set could not be fetched (logged; the token it was fetched for gets 401).
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwksError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{url} is not a JSON Web Key Set: {reason}")]
    Invalid { url: String, reason: KeySetError },
}

/// Why a body is not a JSON Web Key Set.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeySetError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("no `keys` array")]
    NoKeys,
}

/// A key set behind a URL.
pub(crate) struct JwksSource {
    document: RemoteDocument,
    min_refresh_interval: Duration,
    refresh_interval: Duration,
    keys: ArcSwap<Vec<JwksKey>>,
    /// When the last fetch was attempted (successful or not); `None` before the first.
    last_fetch: std::sync::Mutex<Option<Instant>>,
    /// Held for the whole of a fetch so concurrent misses share it.
    fetching: tokio::sync::Mutex<()>,
}

impl JwksSource {
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        refresh_interval: Duration,
        min_refresh_interval: Duration,
    ) -> Result<JwksSource, SourceError> {
        Ok(JwksSource {
            document: RemoteDocument::new(url, timeout, MAX_JWKS_SIZE)?,
            min_refresh_interval,
            refresh_interval,
            keys: ArcSwap::from_pointee(Vec::new()),
            last_fetch: std::sync::Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn url(&self) -> &str {
        self.document.url()
    }

    pub(crate) fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// Keys usable for a token with this `kid` (if any) and algorithm. When none matches, waits
    /// for a fetch in flight (it may bring the key), then fetches the set itself if the last
    /// fetch is old enough (or there was none).
    pub(crate) async fn keys_for(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Vec<JwksKey>, JwksError> {
        let found = matching(&self.keys.load(), kid);
        if !found.is_empty() {
            return Ok(filter_algorithm(found, algorithm));
        }
        let _guard = self.fetching.lock().await;
        let found = matching(&self.keys.load(), kid);
        if !found.is_empty() || !self.may_refetch() {
            return Ok(filter_algorithm(found, algorithm));
        }
        self.fetch_locked().await?;
        Ok(filter_algorithm(
            matching(&self.keys.load(), kid),
            algorithm,
        ))
    }

    fn may_refetch(&self) -> bool {
        let last = *self.last_fetch.lock().unwrap_or_else(|p| p.into_inner());
        last.is_none_or(|at| at.elapsed() >= self.min_refresh_interval)
    }

    /// Fetches the set now (the scheduled refresh); returns how many keys it holds.
    pub(crate) async fn refresh(&self) -> Result<usize, JwksError> {
        let _guard = self.fetching.lock().await;
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<usize, JwksError> {
        *self.last_fetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let body = match self.document.fetch().await? {
            Fetched::Changed(body) => body,
            // The server says the set has not changed since the keys we hold.
            Fetched::NotModified => return Ok(self.keys.load().len()),
        };
        let keys = parse_key_set(&body).map_err(|reason| JwksError::Invalid {
            url: self.document.url().to_string(),
            reason,
        })?;
        let count = keys.len();
        tracing::debug!(url = %self.document.url(), keys = count, "JWKS fetched");
        self.keys.store(Arc::new(keys));
        Ok(count)
    }
}

fn matching(keys: &[JwksKey], kid: Option<&str>) -> Vec<JwksKey> {
    keys.iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .cloned()
        .collect()
}

/// Keys of another algorithm are never tried: that is how algorithm confusion attacks work.
fn filter_algorithm(keys: Vec<JwksKey>, algorithm: Algorithm) -> Vec<JwksKey> {
    keys.into_iter()
        .filter(|k| k.algorithm == algorithm)
        .collect()
}

/// Parses `{"keys": [...]}`, skipping (and logging) keys we cannot use: encryption keys,
/// symmetric keys, unknown types or algorithms.
pub(crate) fn parse_key_set(body: &[u8]) -> Result<Vec<JwksKey>, KeySetError> {
    let json: Json = serde_json::from_slice(body)?;
    let Some(items) = json.get("keys").and_then(Json::as_array) else {
        return Err(KeySetError::NoKeys);
    };
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        let jwk: Jwk = match serde_json::from_value(item.clone()) {
            Ok(jwk) => jwk,
            Err(e) => {
                tracing::warn!(error = %e, "skipping a JWK that cannot be read");
                continue;
            }
        };
        match usable(&jwk) {
            Ok(key) => keys.push(key),
            Err(reason) => tracing::warn!(kid = ?jwk.common.key_id, reason, "skipping a JWK"),
        }
    }
    Ok(keys)
}

fn usable(jwk: &Jwk) -> Result<JwksKey, &'static str> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("it is an encryption key");
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::OctetKey(_), _) => {
            return Err("symmetric keys are not accepted from a key set");
        }
        (_, Some(alg)) => signing_algorithm(alg).ok_or("its `alg` is not a signing algorithm")?,
        (AlgorithmParameters::RSA(_), None) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("its curve is not supported"),
        },
        (AlgorithmParameters::OctetKeyPair(_), None) => Algorithm::EdDSA,
        _ => return Err("its key type is not supported"),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "its parameters are invalid")?;
    Ok(JwksKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

fn signing_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_keys_it_cannot_use() {
        let body = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB", "kid": "enc"},
            {"kty": "nope"},
            {"kty": "EC", "crv": "P-256", "kid": "ec",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]});
        let keys = parse_key_set(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("ec"));
        assert_eq!(keys[0].algorithm, Algorithm::ES256);
        assert!(parse_key_set(b"{}").is_err());
        assert!(parse_key_set(b"not json").is_err());
    }
}
