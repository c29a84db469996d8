//! Bearer token verification: our one wrapper around `jsonwebtoken`.
//!
//! The key is chosen by the token header's `alg` (and `kid` for a key set), and a key is only
//! ever used with its own algorithm: an HS256 token is never checked against an RSA public key
//! read as an HMAC secret, `alg: none` is never accepted. What a token must say besides its
//! signature (`exp`, `nbf`, `iss`, `aud`) is `shippy_security::claims`' one policy, the subgraphs'
//! too. A token with a `jti` is then looked up in the revocation store, when there is one.

use std::path::Path;
use std::sync::Arc;

use http::HeaderMap;
use http::header::HeaderName;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value as Json};
use shippy_security::claims::{self, ClaimError, ClaimPolicy};
use shippy_security::revocation::RevocationStore;

use super::Identity;
use super::jwks::JwksSource;
use crate::config::{JwtConfig, PublicKeyAlgorithm};

/// Why a presented token was refused. The message is for the client (401 `UNAUTHENTICATED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("the {header} header must be `{prefix} <token>`")]
    NotBearer { header: String, prefix: String },
    #[error("no key is known for the token")]
    UnknownKey,
    /// The token failed the claim policy the subgraphs apply too: signature, algorithm,
    /// `exp`/`nbf`, issuer, audience or a required claim.
    #[error(transparent)]
    Invalid(#[from] ClaimError),
    #[error("the token cannot be verified right now")]
    KeysUnavailable,
    /// Its `jti` was revoked (`logout`) and the token has not expired yet.
    #[error("the token has been revoked")]
    Revoked,
    /// The revocation store did not answer, so the token cannot be trusted.
    #[error("the token cannot be checked for revocation right now")]
    RevocationUnavailable,
}

/// Why the verifier could not be set up (an operator error at start-up or reload).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path} is not a valid {algorithm:?} PEM public key: {reason}")]
    Invalid {
        path: String,
        algorithm: PublicKeyAlgorithm,
        reason: String,
    },
    #[error(transparent)]
    HeaderName(#[from] crate::config::ConfigError),
    #[error("`auth.jwt.jwks_url`: {0}")]
    Jwks(#[from] crate::fetch::SourceError),
}

/// Verifies tokens against the configured keys, issuers and audiences.
pub(crate) struct JwtVerifier {
    secret: Option<DecodingKey>,
    public_key: Option<(Algorithm, DecodingKey)>,
    jwks: Option<Arc<JwksSource>>,
    policy: ClaimPolicy,
    /// Where `logout` records revoked token ids; `None` checks nothing.
    revocations: Option<Arc<dyn RevocationStore>>,
    header_name: HeaderName,
    header_prefix: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.secret.is_some())
            .field("public_key", &self.public_key.as_ref().map(|(a, _)| a))
            .field("jwks", &self.jwks.as_ref().map(|j| j.url()))
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// The verifier `config` describes, or `None` when it configures no key at all.
    pub(crate) fn from_config(config: &JwtConfig) -> Result<Option<JwtVerifier>, KeyError> {
        if !config.enabled() {
            return Ok(None);
        }
        let public_key = match &config.public_key_file {
            None => None,
            Some(path) => Some(read_public_key(path, config.public_key_algorithm)?),
        };
        let jwks = match &config.jwks_url {
            None => None,
            Some(url) => Some(Arc::new(
                JwksSource::new(
                    url,
                    config.jwks_timeout,
                    config.jwks_refresh_interval,
                    config.jwks_min_refresh_interval,
                )
                .map_err(KeyError::Jwks)?,
            )),
        };
        let header_name = config.header()?;
        Ok(Some(JwtVerifier {
            secret: config
                .secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose().as_bytes())),
            public_key,
            jwks,
            policy: ClaimPolicy::new(config.leeway)
                .with_issuers(config.issuers.iter().cloned())
                .with_audiences(config.audiences.iter().cloned()),
            revocations: None,
            header_name,
            header_prefix: config.header_prefix.clone(),
        }))
    }

    /// Checks every token that has a `jti` against `store` from now on.
    pub(crate) fn with_revocations(mut self, store: Arc<dyn RevocationStore>) -> JwtVerifier {
        self.revocations = Some(store);
        self
    }

    pub(crate) fn jwks(&self) -> Option<&Arc<JwksSource>> {
        self.jwks.as_ref()
    }

    /// Reads the token header: none is anonymous (`Ok(None)`); one that is not a valid token is
    /// an error, never silently anonymous.
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Identity>, TokenError> {
        let Some(value) = headers.get(&self.header_name) else {
            return Ok(None);
        };
        let not_bearer = || TokenError::NotBearer {
            header: self.header_name.to_string(),
            prefix: self.header_prefix.clone(),
        };
        let value = value.to_str().map_err(|_| not_bearer())?.trim();
        let token = if self.header_prefix.is_empty() {
            value
        } else {
            let (scheme, token) = value.split_once(' ').ok_or_else(not_bearer)?;
            if !scheme.eq_ignore_ascii_case(&self.header_prefix) {
                return Err(not_bearer());
            }
            token.trim()
        };
        if token.is_empty() {
            return Err(not_bearer());
        }
        self.verify(token).await.map(Some)
    }

    /// Verifies one compact JWT.
    pub(crate) async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let identity = self.verify_signed(token).await?;
        self.check_revoked(&identity).await?;
        Ok(identity)
    }

    /// Signature and claims, without the revocation check.
    async fn verify_signed(&self, token: &str) -> Result<Identity, TokenError> {
        let header = claims::header(token)?;
        let algorithm = header.alg;
        let keys: Vec<DecodingKey> = match algorithm {
            Algorithm::HS256 => self.secret.iter().cloned().collect(),
            Algorithm::HS384 | Algorithm::HS512 => Vec::new(),
            asymmetric => {
                let mut keys: Vec<DecodingKey> = self
                    .public_key
                    .iter()
                    .filter(|(a, _)| *a == asymmetric)
                    .map(|(_, k)| k.clone())
                    .collect();
                if let Some(jwks) = &self.jwks {
                    match jwks.keys_for(header.kid.as_deref(), asymmetric).await {
                        Ok(found) => keys.extend(found.into_iter().map(|k| k.key)),
                        Err(error) => {
                            tracing::warn!(error = %error, "JWKS unavailable");
                            if keys.is_empty() {
                                return Err(TokenError::KeysUnavailable);
                            }
                        }
                    }
                }
                keys
            }
        };
        if keys.is_empty() {
            return Err(if self.accepts(algorithm) {
                TokenError::UnknownKey
            } else {
                TokenError::Invalid(ClaimError::WrongAlgorithm)
            });
        }
        let mut last = TokenError::Invalid(ClaimError::BadSignature);
        for key in &keys {
            // Every key here is one configured for `algorithm`, so pinning to it is pinning to
            // the key.
            match self
                .policy
                .decode::<Map<String, Json>>(token, key, algorithm)
            {
                Ok(claims) => return Ok(Identity::new(claims)),
                Err(error) => {
                    last = error.into();
                    // Only a signature mismatch means another key of the set may fit.
                    if last != TokenError::Invalid(ClaimError::BadSignature) {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    /// Whether some configured key source takes tokens of this algorithm.
    fn accepts(&self, algorithm: Algorithm) -> bool {
        match algorithm {
            Algorithm::HS256 => self.secret.is_some(),
            Algorithm::HS384 | Algorithm::HS512 => false,
            other => {
                self.jwks.is_some() || self.public_key.as_ref().is_some_and(|(a, _)| *a == other)
            }
        }
    }

    /// Refuses a token whose `jti` was revoked; a store that cannot answer refuses too, since a
    /// revoked token must never pass for want of an answer.
    async fn check_revoked(&self, identity: &Identity) -> Result<(), TokenError> {
        let (Some(store), Some(jti)) = (&self.revocations, identity.claim_text("jti")) else {
            return Ok(());
        };
        match store.is_revoked(&jti).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(TokenError::Revoked),
            Err(error) => {
                tracing::warn!(%error, "revocation store unavailable; refusing the token");
                metrics::counter!("shippy_router_revocation_store_errors_total").increment(1);
                Err(TokenError::RevocationUnavailable)
            }
        }
    }
}

fn read_public_key(
    path: &Path,
    algorithm: PublicKeyAlgorithm,
) -> Result<(Algorithm, DecodingKey), KeyError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| KeyError::Read {
        path: shown.clone(),
        source,
    })?;
    let invalid = |e: jsonwebtoken::errors::Error| KeyError::Invalid {
        path: shown.clone(),
        algorithm,
        reason: e.to_string(),
    };
    match algorithm {
        PublicKeyAlgorithm::RS256 => Ok((
            Algorithm::RS256,
            DecodingKey::from_rsa_pem(&pem).map_err(invalid)?,
        )),
        PublicKeyAlgorithm::ES256 => Ok((
            Algorithm::ES256,
            DecodingKey::from_ec_pem(&pem).map_err(invalid)?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::config::Secret;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn key_file(name: &str) -> std::path::PathBuf {
        format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR")).into()
    }

    fn pem(name: &str) -> Vec<u8> {
        std::fs::read(key_file(name)).unwrap()
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn claims() -> Json {
        json!({"sub": "u1", "iss": "shippy", "aud": "shippy", "exp": now() + 600, "scopes": ["admin"]})
    }

    fn hs256(claims: &Json) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn config() -> JwtConfig {
        JwtConfig {
            secret: Some(Secret::new(SECRET)),
            public_key_file: Some(key_file("rs256-public.pem")),
            issuers: vec!["shippy".into()],
            audiences: vec!["shippy".into(), "other".into()],
            leeway: std::time::Duration::ZERO,
            ..JwtConfig::default()
        }
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::from_config(&config()).unwrap().unwrap()
    }

    #[tokio::test]
    async fn accepts_hs256_and_rs256_and_returns_the_claims() {
        let verifier = verifier();
        let identity = verifier.verify(&hs256(&claims())).await.unwrap();
        assert_eq!(identity.claim_text("sub").as_deref(), Some("u1"));
        let rs = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims(),
            &EncodingKey::from_rsa_pem(&pem("rs256-private.pem")).unwrap(),
        )
        .unwrap();
        assert!(verifier.verify(&rs).await.is_ok());
        // Any one of the configured audiences is enough.
        let mut other_audience = claims();
        other_audience["aud"] = json!(["nobody", "other"]);
        assert!(verifier.verify(&hs256(&other_audience)).await.is_ok());
    }

    #[tokio::test]
    async fn es256_public_keys_work_too() {
        let config = JwtConfig {
            secret: None,
            public_key_file: Some(key_file("es256-public.pem")),
            public_key_algorithm: PublicKeyAlgorithm::ES256,
            ..config()
        };
        let verifier = JwtVerifier::from_config(&config).unwrap().unwrap();
        let es = jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &claims(),
            &EncodingKey::from_ec_pem(&pem("es256-private.pem")).unwrap(),
        )
        .unwrap();
        assert!(verifier.verify(&es).await.is_ok());
        // The ES256 verifier has no HS256 secret: an HS256 token is another algorithm.
        assert_eq!(
            verifier.verify(&hs256(&claims())).await,
            Err(TokenError::Invalid(ClaimError::WrongAlgorithm))
        );
    }

    #[tokio::test]
    async fn refuses_every_classic_attack() {
        let verifier = verifier();
        // alg: none, unsigned.
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        let body = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let payload = body.split('.').nth(1).unwrap();
        let unsigned = format!("{none_header}.{payload}.");
        assert!(matches!(
            verifier.verify(&unsigned).await,
            Err(TokenError::Invalid(ClaimError::WrongAlgorithm)
                | TokenError::Invalid(ClaimError::Malformed))
        ));
        // HS256 signed with the RSA public key as the secret (algorithm confusion) against an
        // RS256-only verifier.
        let rs_only = JwtVerifier::from_config(&JwtConfig {
            secret: None,
            ..config()
        })
        .unwrap()
        .unwrap();
        let confused = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(&pem("rs256-public.pem")),
        )
        .unwrap();
        assert_eq!(
            rs_only.verify(&confused).await,
            Err(TokenError::Invalid(ClaimError::WrongAlgorithm))
        );
        // HS384 is not accepted at all.
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&hs384).await,
            Err(TokenError::Invalid(ClaimError::WrongAlgorithm))
        );
        // Wrong key.
        let wrong = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"another-secret-another-secret-another-secret"),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&wrong).await,
            Err(TokenError::Invalid(ClaimError::BadSignature))
        );
        let wrong_rsa = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims(),
            &EncodingKey::from_rsa_pem(&pem("rs256-other-private.pem")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&wrong_rsa).await,
            Err(TokenError::Invalid(ClaimError::BadSignature))
        );
        // Tampered payload.
        let good = hs256(&claims());
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_payload =
            hs256(&json!({"sub": "admin", "iss": "shippy", "aud": "shippy", "exp": now() + 600}));
        parts[1] = forged_payload.split('.').nth(1).unwrap();
        assert_eq!(
            verifier.verify(&parts.join(".")).await,
            Err(TokenError::Invalid(ClaimError::BadSignature))
        );
        assert_eq!(
            verifier.verify("garbage").await,
            Err(TokenError::Invalid(ClaimError::Malformed))
        );
    }

    #[tokio::test]
    async fn checks_time_issuer_audience_and_required_claims() {
        let verifier = verifier();
        let mut expired = claims();
        expired["exp"] = json!(now() - 10);
        assert_eq!(
            verifier.verify(&hs256(&expired)).await,
            Err(TokenError::Invalid(ClaimError::Expired))
        );
        let mut early = claims();
        early["nbf"] = json!(now() + 600);
        assert_eq!(
            verifier.verify(&hs256(&early)).await,
            Err(TokenError::Invalid(ClaimError::NotYetValid))
        );
        let mut issuer = claims();
        issuer["iss"] = json!("evil");
        assert_eq!(
            verifier.verify(&hs256(&issuer)).await,
            Err(TokenError::Invalid(ClaimError::WrongIssuer))
        );
        let mut audience = claims();
        audience["aud"] = json!("elsewhere");
        assert_eq!(
            verifier.verify(&hs256(&audience)).await,
            Err(TokenError::Invalid(ClaimError::WrongAudience))
        );
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            verifier.verify(&hs256(&no_exp)).await,
            Err(TokenError::Invalid(ClaimError::MissingClaim("exp".into())))
        );
    }

    /// The claim matrix of issue 14 on the router side: the subgraphs' policy too.
    #[tokio::test]
    async fn claim_matrix() {
        let verifier = JwtVerifier::from_config(&JwtConfig {
            leeway: std::time::Duration::from_secs(30),
            ..config()
        })
        .unwrap()
        .unwrap();
        let with = |field: &str, value: Json| {
            let mut claims = claims();
            claims[field] = value;
            hs256(&claims)
        };
        let without = |field: &str| {
            let mut claims = claims();
            claims.as_object_mut().unwrap().remove(field);
            hs256(&claims)
        };
        // `nbf` and `exp` share the leeway.
        assert!(
            verifier
                .verify(&with("nbf", json!(now() + 20)))
                .await
                .is_ok()
        );
        assert_eq!(
            verifier.verify(&with("nbf", json!(now() + 60))).await,
            Err(TokenError::Invalid(ClaimError::NotYetValid))
        );
        assert!(
            verifier
                .verify(&with("exp", json!(now() - 20)))
                .await
                .is_ok()
        );
        assert_eq!(
            verifier.verify(&with("exp", json!(now() - 60))).await,
            Err(TokenError::Invalid(ClaimError::Expired))
        );
        // Issuers and audiences are configured: a token without them is refused.
        for claim in ["iss", "aud"] {
            assert_eq!(
                verifier.verify(&without(claim)).await,
                Err(TokenError::Invalid(ClaimError::MissingClaim(claim.into())))
            );
        }
        // Not configured: not required.
        let open = JwtVerifier::from_config(&JwtConfig {
            issuers: Vec::new(),
            audiences: Vec::new(),
            ..config()
        })
        .unwrap()
        .unwrap();
        assert!(open.verify(&without("iss")).await.is_ok());
        assert!(open.verify(&without("aud")).await.is_ok());
        // `alg: none` is a wrong algorithm, whatever its case.
        let payload = hs256(&claims()).split('.').nth(1).unwrap().to_owned();
        // {"alg":"none","typ":"JWT"}
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert_eq!(
            verifier.verify(&none).await,
            Err(TokenError::Invalid(ClaimError::WrongAlgorithm))
        );
    }

    #[tokio::test]
    async fn revoked_tokens_are_refused_until_they_expire() {
        use shippy_security::revocation::MemoryRevocations;
        let store = Arc::new(MemoryRevocations::default());
        let verifier = verifier().with_revocations(store.clone());
        let mut revoked = claims();
        revoked["jti"] = json!("token-1");
        let mut other = claims();
        other["jti"] = json!("token-2");
        assert!(verifier.verify(&hs256(&revoked)).await.is_ok());
        store.revoke("token-1", now() + 600).await.unwrap();
        assert_eq!(
            verifier.verify(&hs256(&revoked)).await,
            Err(TokenError::Revoked)
        );
        assert!(verifier.verify(&hs256(&other)).await.is_ok());
        // Tokens without an id cannot be revoked; they pass as before.
        assert!(verifier.verify(&hs256(&claims())).await.is_ok());
        // A store that cannot answer refuses the token rather than letting it through.
        let down = shippy_security::revocation::RedisRevocations::new(
            "redis://127.0.0.1:1",
            "x:",
            std::time::Duration::from_millis(200),
        )
        .unwrap();
        let verifier = JwtVerifier::from_config(&config())
            .unwrap()
            .unwrap()
            .with_revocations(Arc::new(down));
        assert_eq!(
            verifier.verify(&hs256(&other)).await,
            Err(TokenError::RevocationUnavailable)
        );
    }

    #[tokio::test]
    async fn leeway_tolerates_small_clock_skew() {
        let verifier = JwtVerifier::from_config(&JwtConfig {
            leeway: std::time::Duration::from_secs(60),
            ..config()
        })
        .unwrap()
        .unwrap();
        let mut just_expired = claims();
        just_expired["exp"] = json!(now() - 10);
        assert!(verifier.verify(&hs256(&just_expired)).await.is_ok());
    }

    #[tokio::test]
    async fn reads_the_header() {
        let verifier = verifier();
        let mut headers = HeaderMap::new();
        assert_eq!(verifier.authenticate(&headers).await, Ok(None));
        let token = hs256(&claims());
        headers.insert("authorization", format!("bearer {token}").parse().unwrap());
        assert!(verifier.authenticate(&headers).await.unwrap().is_some());
        for bad in [
            format!("Basic {token}"),
            "Bearer".to_string(),
            "Bearer   ".to_string(),
        ] {
            headers.insert("authorization", bad.parse().unwrap());
            assert!(matches!(
                verifier.authenticate(&headers).await,
                Err(TokenError::NotBearer { .. })
            ));
        }
    }

    #[test]
    fn set_up_errors_are_clear() {
        assert!(
            JwtVerifier::from_config(&JwtConfig::default())
                .unwrap()
                .is_none()
        );
        let missing = JwtConfig {
            public_key_file: Some("/nonexistent/key.pem".into()),
            ..JwtConfig::default()
        };
        assert!(matches!(
            JwtVerifier::from_config(&missing),
            Err(KeyError::Read { .. })
        ));
        let wrong_kind = JwtConfig {
            public_key_file: Some(key_file("es256-public.pem")),
            public_key_algorithm: PublicKeyAlgorithm::RS256,
            ..JwtConfig::default()
        };
        assert!(matches!(
            JwtVerifier::from_config(&wrong_kind),
            Err(KeyError::Invalid { .. })
        ));
    }
}
