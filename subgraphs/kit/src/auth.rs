//! Tokens and the caller: our one wrapper around `jsonwebtoken`.
//!
//! The user subgraph issues tokens (its `tokens` module, signing with [`TokenSigner`]); every subgraph verifies the `Authorization: Bearer`
//! header with [`JwtVerifier`] and puts a [`Caller`] into the GraphQL context, which resolvers read through
//! [`caller`], [`require`] and [`require_scope`]. The router (a later issue) forwards the same header, so
//! identity reaches every subgraph in the same shape: the [`Claims`] below.

use std::path::{Path, PathBuf};

use async_graphql::Context;
use axum::http::{HeaderMap, header::AUTHORIZATION};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use shippy_security::claims::{ClaimError, ClaimPolicy};

use crate::{
    config::{AuthConfig, JwtAlgorithm},
    error,
};

/// The scope that opens administrative fields (listing every user, every log entry).
pub const SCOPE_ADMIN: &str = "admin";

/// What a Shippy token says about its bearer. Serialized as the JWT payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id (a UUID, as text).
    pub sub: String,
    /// The user's email when the token was issued.
    pub email: String,
    /// Extra rights, e.g. [`SCOPE_ADMIN`]. Ordinary users have none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Issued at (seconds since the Unix epoch).
    pub iat: i64,
    /// Expires at (seconds since the Unix epoch).
    pub exp: i64,
    /// Issuer; verifiers accept only the configured one.
    pub iss: String,
    /// Audience; verifiers accept only the configured one.
    pub aud: String,
    /// The token's id (a UUID), the handle `logout` revokes it by. Tokens issued before ids were
    /// introduced have none and cannot be revoked; they expire as usual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl Claims {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Who is calling: put into every GraphQL request's context by the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Caller {
    /// No `Authorization` header.
    #[default]
    Anonymous,
    /// A verified token.
    User(Claims),
}

/// Why a presented token was refused. The message is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The header is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    NotBearer,
    /// The token failed the claim policy the router applies too: signature, algorithm, `exp`/`nbf`,
    /// issuer, audience or a required claim.
    #[error(transparent)]
    Invalid(#[from] ClaimError),
}

/// Why the JWT keys could not be set up (a start-up error for the operator).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// RS256/ES256 verification needs `public_key_file`.
    #[error("{0:?} needs a public key file (SHIPPY_JWT_PUBLIC_KEY_FILE)")]
    MissingPublicKey(JwtAlgorithm),
    /// Issuing RS256/ES256 tokens needs `private_key_file`.
    #[error("{0:?} needs a private key file to issue tokens (SHIPPY_JWT_PRIVATE_KEY_FILE)")]
    MissingPrivateKey(JwtAlgorithm),
    /// The key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not a PEM key of the right kind.
    #[error("key file {path} is not a valid {algorithm:?} PEM key: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The configured algorithm.
        algorithm: JwtAlgorithm,
        /// What the parser said.
        reason: String,
    },
    /// HS256 needs a secret, and there is no built-in one (anyone could read it and forge tokens).
    #[error(
        "HS256 tokens need a secret: set SHIPPY_JWT_SECRET (32+ bytes, e.g. `openssl rand -hex 32`), the same \
         for every subgraph and the router (`shippy up` generates one in its data directory)"
    )]
    MissingSecret,
    /// HS256 secrets shorter than 32 bytes can be brute-forced.
    #[error("the HS256 secret must be at least 32 bytes long")]
    WeakSecret,
    /// Signing failed (should not happen with a valid key).
    #[error("cannot sign token: {0}")]
    Sign(String),
}

fn algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
    }
}

/// The configured HS256 secret; there is no default.
fn resolve_secret(cfg: &AuthConfig) -> Result<Vec<u8>, KeyError> {
    match &cfg.secret {
        Some(secret) if secret.expose().len() < 32 => Err(KeyError::WeakSecret),
        Some(secret) => Ok(secret.expose().as_bytes().to_vec()),
        None => Err(KeyError::MissingSecret),
    }
}

/// The HS256 secret tokens are signed and verified with under `cfg`, so that other verifiers (the router
/// under `shippy up`) accept exactly the tokens the subgraphs accept.
pub fn hs256_secret(cfg: &AuthConfig) -> Result<Vec<u8>, KeyError> {
    resolve_secret(cfg)
}

fn read_key(path: &Option<PathBuf>, missing: KeyError) -> Result<(PathBuf, Vec<u8>), KeyError> {
    let path = path.as_ref().ok_or(missing)?;
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.clone(),
        source,
    })?;
    Ok((path.clone(), bytes))
}

fn invalid(path: &Path, algorithm: JwtAlgorithm, err: jsonwebtoken::errors::Error) -> KeyError {
    KeyError::Invalid {
        path: path.to_owned(),
        algorithm,
        reason: err.to_string(),
    }
}

/// Verifies bearer tokens against the configured key, issuer and audience, under the claim policy
/// the router applies too (`shippy_security::claims`).
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    /// The configured algorithm; a token whose header names another is refused.
    algorithm: Algorithm,
    policy: ClaimPolicy,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Builds a verifier; reads the public key file for RS256/ES256.
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, KeyError> {
        let key = match cfg.algorithm {
            JwtAlgorithm::HS256 => DecodingKey::from_secret(&resolve_secret(cfg)?),
            alg @ JwtAlgorithm::RS256 => {
                let (path, pem) = read_key(&cfg.public_key_file, KeyError::MissingPublicKey(alg))?;
                DecodingKey::from_rsa_pem(&pem).map_err(|e| invalid(&path, alg, e))?
            }
            alg @ JwtAlgorithm::ES256 => {
                let (path, pem) = read_key(&cfg.public_key_file, KeyError::MissingPublicKey(alg))?;
                DecodingKey::from_ec_pem(&pem).map_err(|e| invalid(&path, alg, e))?
            }
        };
        let policy = ClaimPolicy::new(cfg.leeway)
            .with_issuers([cfg.issuer.clone()])
            .with_audiences([cfg.audience.clone()])
            .requiring_subject();
        Ok(Self {
            key,
            algorithm: algorithm(cfg.algorithm),
            policy,
        })
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(self
            .policy
            .decode::<Claims>(token, &self.key, self.algorithm)?)
    }

    /// Reads the `Authorization` header: no header is [`Caller::Anonymous`]; a header that is not a valid
    /// bearer token is an error (never silently anonymous, so a client learns its token is bad).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, TokenError> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Ok(Caller::Anonymous);
        };
        let value = value.to_str().map_err(|_| TokenError::NotBearer)?;
        self.authenticate_value(value)
    }

    /// Like [`authenticate`](Self::authenticate) for a header value that came some other way (the
    /// `connection_init` payload of a WebSocket).
    pub fn authenticate_value(&self, value: &str) -> Result<Caller, TokenError> {
        let (scheme, token) = value.trim().split_once(' ').ok_or(TokenError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(TokenError::NotBearer);
        }
        self.verify(token.trim()).map(Caller::User)
    }
}

/// A freshly issued token and what it says.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

/// Signs claims into compact JWTs with the configured key: the JWT engine's signing half, kept behind
/// this module like verification. What a token says (subject, lifetime, id) is the issuer's business:
/// the user subgraph's `tokens` module.
#[derive(Clone)]
pub struct TokenSigner {
    key: EncodingKey,
    header: Header,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("alg", &self.header.alg)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// Builds a signer; reads the private key file for RS256/ES256.
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, KeyError> {
        let key = match cfg.algorithm {
            JwtAlgorithm::HS256 => EncodingKey::from_secret(&resolve_secret(cfg)?),
            alg @ JwtAlgorithm::RS256 => {
                let (path, pem) =
                    read_key(&cfg.private_key_file, KeyError::MissingPrivateKey(alg))?;
                EncodingKey::from_rsa_pem(&pem).map_err(|e| invalid(&path, alg, e))?
            }
            alg @ JwtAlgorithm::ES256 => {
                let (path, pem) =
                    read_key(&cfg.private_key_file, KeyError::MissingPrivateKey(alg))?;
                EncodingKey::from_ec_pem(&pem).map_err(|e| invalid(&path, alg, e))?
            }
        };
        Ok(Self {
            key,
            header: Header::new(algorithm(cfg.algorithm)),
        })
    }

    /// The compact JWT of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        jsonwebtoken::encode(&self.header, claims, &self.key)
            .map_err(|e| KeyError::Sign(e.to_string()))
    }
}

/// The client's IP address, put into every HTTP request's context by the server: the
/// `shippy-client-ip` header a router sets ([`shippy_security::login_limits::CLIENT_IP_HEADER`])
/// when the subgraph answers routers only, else the TCP peer when the server knows it. Used for
/// per-client limits (login), never for access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl ClientIp {
    /// Reads the router's header (first address of a list) when `trust_header`, falling back to
    /// `peer`. An open subgraph must not trust it: anyone could name any address there.
    pub fn from_request(
        headers: &HeaderMap,
        peer: Option<std::net::IpAddr>,
        trust_header: bool,
    ) -> Self {
        let forwarded = headers
            .get(shippy_security::login_limits::CLIENT_IP_HEADER)
            .filter(|_| trust_header)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        Self(forwarded.or(peer))
    }
}

/// The client's IP address, if the request said or the server knew it.
pub fn client_ip(ctx: &Context<'_>) -> Option<std::net::IpAddr> {
    ctx.data_opt::<ClientIp>().and_then(|ip| ip.0)
}

/// The caller's claims, if a valid token came with the request.
pub fn caller<'a>(ctx: &'a Context<'_>) -> Option<&'a Claims> {
    match ctx.data_opt::<Caller>() {
        Some(Caller::User(claims)) => Some(claims),
        _ => None,
    }
}

/// The caller's claims, or `UNAUTHENTICATED`.
pub fn require<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Claims> {
    caller(ctx).ok_or_else(|| {
        error::unauthenticated("authentication required: send `Authorization: Bearer <token>`")
    })
}

/// The caller's claims if they hold `scope`; `UNAUTHENTICATED` without a token, `FORBIDDEN` without the scope.
pub fn require_scope<'a>(ctx: &'a Context<'_>, scope: &str) -> async_graphql::Result<&'a Claims> {
    let claims = require(ctx)?;
    if claims.has_scope(scope) {
        Ok(claims)
    } else {
        Err(error::forbidden(format!("the `{scope}` scope is required")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn cfg() -> AuthConfig {
        AuthConfig {
            secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
            leeway: std::time::Duration::ZERO,
            ..AuthConfig::default()
        }
    }

    /// Literal claims for `sub` under `cfg`'s issuer and audience, issued at `iat`, valid an hour.
    fn claims_at(cfg: &AuthConfig, sub: &str, scopes: Vec<String>, iat: i64) -> Claims {
        Claims {
            sub: sub.into(),
            email: "a@b.co".into(),
            scopes,
            iat,
            exp: iat + 3600,
            iss: cfg.issuer.clone(),
            aud: cfg.audience.clone(),
            jti: Some("t1".into()),
        }
    }

    /// A token for `sub`, issued now, signed with `cfg`'s key.
    fn token(cfg: &AuthConfig, sub: &str) -> String {
        let claims = claims_at(cfg, sub, vec![], chrono::Utc::now().timestamp());
        TokenSigner::from_config(cfg)
            .unwrap()
            .sign(&claims)
            .unwrap()
    }

    #[test]
    fn round_trip_and_refusals() {
        let signer = TokenSigner::from_config(&cfg()).unwrap();
        let verifier = JwtVerifier::from_config(&cfg()).unwrap();
        let now = chrono::Utc::now().timestamp();
        let claims = claims_at(&cfg(), "u1", vec!["admin".into()], now);
        let token = signer.sign(&claims).unwrap();
        let verified = verifier.verify(&token).unwrap();
        assert_eq!(verified, claims);
        assert!(verified.has_scope(SCOPE_ADMIN));

        let old = signer
            .sign(&claims_at(&cfg(), "u1", vec![], now - 7200))
            .unwrap();
        assert_eq!(
            verifier.verify(&old),
            Err(TokenError::Invalid(ClaimError::Expired))
        );

        // Change the signature's first character: every base64url character there decodes, whereas the
        // last one carries padding bits and a change there can make the token malformed instead.
        let signature_start = token.rfind('.').unwrap() + 1;
        let first = token.as_bytes()[signature_start];
        let mut tampered = token.clone();
        tampered.replace_range(
            signature_start..=signature_start,
            if first == b'A' { "B" } else { "A" },
        );
        assert_eq!(
            verifier.verify(&tampered),
            Err(TokenError::Invalid(ClaimError::BadSignature))
        );
        assert_eq!(
            verifier.verify("not-a-jwt"),
            Err(TokenError::Invalid(ClaimError::Malformed))
        );

        let token = super::tests::token(
            &AuthConfig {
                issuer: "evil".into(),
                ..cfg()
            },
            "u1",
        );
        assert_eq!(
            verifier.verify(&token),
            Err(TokenError::Invalid(ClaimError::WrongIssuer))
        );
        let token = super::tests::token(
            &AuthConfig {
                audience: "elsewhere".into(),
                ..cfg()
            },
            "u1",
        );
        assert_eq!(
            verifier.verify(&token),
            Err(TokenError::Invalid(ClaimError::WrongAudience))
        );
        let token = super::tests::token(
            &AuthConfig {
                secret: Some(Secret::new("another-secret-another-secret-another")),
                ..cfg()
            },
            "u1",
        );
        assert_eq!(
            verifier.verify(&token),
            Err(TokenError::Invalid(ClaimError::BadSignature))
        );
    }

    /// The claim matrix of issue 14 on the subgraph side: the same policy as the router's.
    #[test]
    fn claim_matrix() {
        let cfg = AuthConfig {
            leeway: std::time::Duration::from_secs(30),
            ..cfg()
        };
        let verifier = JwtVerifier::from_config(&cfg).unwrap();
        let now = chrono::Utc::now().timestamp();
        let sign = |claims: serde_json::Value, alg: Algorithm| {
            jsonwebtoken::encode(
                &Header::new(alg),
                &claims,
                &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
            )
            .unwrap()
        };
        let claims = |edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
            let mut claims = serde_json::json!({
                "sub": "u1", "email": "a@b.co", "iat": now, "exp": now + 600,
                "iss": "shippy", "aud": "shippy", "jti": "t1"
            });
            edit(claims.as_object_mut().unwrap());
            sign(claims, Algorithm::HS256)
        };
        let set = |key: &'static str, value: i64| {
            move |c: &mut serde_json::Map<String, serde_json::Value>| {
                c.insert(key.into(), value.into());
            }
        };
        let remove = |key: &'static str| {
            move |c: &mut serde_json::Map<String, serde_json::Value>| {
                c.remove(key);
            }
        };
        let ok = verifier.verify(&claims(&|_| {})).unwrap();
        assert_eq!(ok.jti.as_deref(), Some("t1"));
        // `nbf` and `exp` within the leeway pass, beyond it fail, an hour ahead fails.
        assert!(verifier.verify(&claims(&set("nbf", now + 20))).is_ok());
        assert_eq!(
            verifier.verify(&claims(&set("nbf", now + 60))),
            Err(TokenError::Invalid(ClaimError::NotYetValid))
        );
        assert_eq!(
            verifier.verify(&claims(&set("nbf", now + 3600))),
            Err(TokenError::Invalid(ClaimError::NotYetValid))
        );
        assert!(verifier.verify(&claims(&set("exp", now - 20))).is_ok());
        assert_eq!(
            verifier.verify(&claims(&set("exp", now - 60))),
            Err(TokenError::Invalid(ClaimError::Expired))
        );
        // `iss`, `aud`, `exp` and `sub` are required.
        for claim in ["iss", "aud", "exp", "sub"] {
            assert_eq!(
                verifier.verify(&claims(&remove(claim))),
                Err(TokenError::Invalid(ClaimError::MissingClaim(claim.into()))),
                "{claim}"
            );
        }
        // Another HMAC algorithm with the same secret, and `alg: none`.
        let hs512 = sign(
            serde_json::json!({"sub": "u1", "email": "a@b.co", "iat": now, "exp": now + 600,
                "iss": "shippy", "aud": "shippy"}),
            Algorithm::HS512,
        );
        assert_eq!(
            verifier.verify(&hs512),
            Err(TokenError::Invalid(ClaimError::WrongAlgorithm))
        );
        let good = claims(&|_| {});
        let payload = good.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert_eq!(
            verifier.verify(&none),
            Err(TokenError::Invalid(ClaimError::WrongAlgorithm))
        );
    }

    #[test]
    fn client_ip_prefers_the_router_header_then_the_peer() {
        let peer: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(ClientIp::from_request(&headers, None, true), ClientIp(None));
        assert_eq!(
            ClientIp::from_request(&headers, Some(peer), true),
            ClientIp(Some(peer))
        );
        headers.insert("shippy-client-ip", "203.0.113.7, 10.0.0.2".parse().unwrap());
        assert_eq!(
            ClientIp::from_request(&headers, Some(peer), true),
            ClientIp(Some("203.0.113.7".parse().unwrap()))
        );
        // An open subgraph ignores it.
        assert_eq!(
            ClientIp::from_request(&headers, Some(peer), false),
            ClientIp(Some(peer))
        );
        headers.insert("shippy-client-ip", "not an address".parse().unwrap());
        assert_eq!(
            ClientIp::from_request(&headers, Some(peer), true),
            ClientIp(Some(peer))
        );
    }

    #[test]
    fn header_parsing() {
        let verifier = JwtVerifier::from_config(&cfg()).unwrap();
        let token = token(&cfg(), "u1");
        let mut headers = HeaderMap::new();
        assert_eq!(verifier.authenticate(&headers), Ok(Caller::Anonymous));
        headers.insert(AUTHORIZATION, format!("bearer {token}").parse().unwrap());
        assert!(matches!(verifier.authenticate(&headers), Ok(Caller::User(c)) if c.sub == "u1"));
        headers.insert(AUTHORIZATION, format!("Basic {token}").parse().unwrap());
        assert_eq!(verifier.authenticate(&headers), Err(TokenError::NotBearer));
        headers.insert(AUTHORIZATION, "Bearer".parse().unwrap());
        assert_eq!(verifier.authenticate(&headers), Err(TokenError::NotBearer));
    }

    #[test]
    fn key_setup_errors() {
        // No built-in secret: without one, neither verifying nor issuing starts, and the error says how
        // to set one.
        let none = AuthConfig {
            secret: None,
            ..cfg()
        };
        assert!(matches!(
            JwtVerifier::from_config(&none),
            Err(KeyError::MissingSecret)
        ));
        assert!(matches!(
            TokenSigner::from_config(&none),
            Err(KeyError::MissingSecret)
        ));
        assert!(
            KeyError::MissingSecret
                .to_string()
                .contains("SHIPPY_JWT_SECRET")
        );
        let weak = AuthConfig {
            secret: Some(Secret::new("short")),
            ..cfg()
        };
        assert!(matches!(
            JwtVerifier::from_config(&weak),
            Err(KeyError::WeakSecret)
        ));
        let rs = AuthConfig {
            algorithm: JwtAlgorithm::RS256,
            ..cfg()
        };
        assert!(matches!(
            JwtVerifier::from_config(&rs),
            Err(KeyError::MissingPublicKey(_))
        ));
        assert!(matches!(
            TokenSigner::from_config(&rs),
            Err(KeyError::MissingPrivateKey(_))
        ));
        let missing = AuthConfig {
            public_key_file: Some("/nonexistent/key.pem".into()),
            ..rs
        };
        assert!(matches!(
            JwtVerifier::from_config(&missing),
            Err(KeyError::Read { .. })
        ));
    }

    #[test]
    fn rs256_and_es256_with_key_files() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let es = AuthConfig {
            algorithm: JwtAlgorithm::ES256,
            public_key_file: Some(format!("{dir}/tests/fixtures/es256-public.pem").into()),
            private_key_file: Some(format!("{dir}/tests/fixtures/es256-private.pem").into()),
            ..cfg()
        };
        let token = token(&es, "u1");
        assert_eq!(
            JwtVerifier::from_config(&es)
                .unwrap()
                .verify(&token)
                .unwrap()
                .sub,
            "u1"
        );
        // An HS256 token is refused by an ES256 verifier (no algorithm confusion).
        let hs = super::tests::token(&cfg(), "u1");
        assert_eq!(
            JwtVerifier::from_config(&es).unwrap().verify(&hs),
            Err(TokenError::Invalid(ClaimError::WrongAlgorithm))
        );
        // RS256 the same way.
        let rs = AuthConfig {
            algorithm: JwtAlgorithm::RS256,
            public_key_file: Some(format!("{dir}/tests/fixtures/rs256-public.pem").into()),
            private_key_file: Some(format!("{dir}/tests/fixtures/rs256-private.pem").into()),
            ..cfg()
        };
        let token = super::tests::token(&rs, "u2");
        assert_eq!(
            JwtVerifier::from_config(&rs)
                .unwrap()
                .verify(&token)
                .unwrap()
                .sub,
            "u2"
        );
        assert_eq!(
            JwtVerifier::from_config(&es).unwrap().verify(&token),
            Err(TokenError::Invalid(ClaimError::WrongAlgorithm))
        );
        // A public key is not a private key.

        let wrong = AuthConfig {
            private_key_file: es.public_key_file.clone(),
            ..es.clone()
        };
        assert!(matches!(
            TokenSigner::from_config(&wrong),
            Err(KeyError::Invalid { .. })
        ));
    }
}
