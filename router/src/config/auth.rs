//! `auth`: how the router verifies `Authorization: Bearer` tokens and reads scopes from them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Token verification and authorization settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// JWT verification. With no key source configured (`secret`, `public_key_file`, `jwks_url`)
    /// the router does not verify tokens: every request is anonymous, tokens are only forwarded,
    /// and `@authenticated` / `@requiresScopes` fields are refused to everyone.
    pub jwt: JwtConfig,
    /// Claim holding the caller's scopes, for `@requiresScopes`: a JSON array of strings or one
    /// space-separated string (the OAuth 2 `scope` form).
    pub scopes_claim: String,
    /// Revoked token ids (the user subgraph's `logout`), checked for every token with a `jti`.
    pub revocation: RevocationConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt: JwtConfig::default(),
            scopes_claim: "scopes".into(),
            revocation: RevocationConfig::default(),
        }
    }
}

/// Where the router looks up revoked token ids. Read at start-up (a change needs a restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RevocationConfig {
    /// `redis://host:port[/db]` (or `redis+cluster://host1:port,...`) holding revoked ids, written by the user subgraph's `logout` and
    /// shared by every router replica. Unset: `rate_limit.redis.url`; both unset: an in-process
    /// store, which only sees logouts of a user subgraph in the same process (`shippy up`).
    pub redis_url: Option<String>,
    /// Prefix of the keys (`{prefix}{jti}`); the user subgraph writes `shippy:revoked:` unless
    /// its `SHIPPY_STREAM_PREFIX` changes `shippy:`.
    pub key_prefix: String,
    /// Time allowed for one Redis lookup. A lookup that fails or times out refuses the token
    /// (401 `UNAUTHENTICATED`): a revoked token must not pass because Redis is slow.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            redis_url: None,
            key_prefix: shippy_security::revocation::DEFAULT_KEY_PREFIX.into(),
            timeout: shippy_security::revocation::DEFAULT_TIMEOUT,
        }
    }
}

/// Where verification keys come from and what a token must say. Several sources may be set
/// together; a token is checked against the key its header names (`alg`, and `kid` for JWKS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// HS256 shared secret, at least 32 bytes. Prefer the environment:
    /// `SHIPPY_ROUTER__AUTH__JWT__SECRET`.
    pub secret: Option<Secret>,
    /// PEM public key for RS256 or ES256 tokens (see `public_key_algorithm`).
    pub public_key_file: Option<PathBuf>,
    /// Algorithm of `public_key_file`: `RS256` or `ES256`.
    pub public_key_algorithm: PublicKeyAlgorithm,
    /// JSON Web Key Set URL (`http://` or `https://`). Keys are fetched at the first token,
    /// refreshed every `jwks_refresh_interval`, and re-fetched when a token names an unknown
    /// `kid` (at most once per `jwks_min_refresh_interval`).
    pub jwks_url: Option<String>,
    /// How often the JWKS is re-fetched in the background.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_interval: Duration,
    /// Shortest time between two fetches triggered by unknown `kid`s, so forged `kid`s cannot
    /// make the router hammer the key server.
    #[serde(with = "humantime_serde")]
    pub jwks_min_refresh_interval: Duration,
    /// Time allowed for one JWKS fetch.
    #[serde(with = "humantime_serde")]
    pub jwks_timeout: Duration,
    /// Accepted `iss` values; empty accepts any issuer.
    pub issuers: Vec<String>,
    /// Accepted `aud` values (a token matches when one of its audiences is listed); empty
    /// accepts any audience.
    pub audiences: Vec<String>,
    /// Clock skew tolerated when checking `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Request header carrying the token.
    pub header_name: String,
    /// Scheme before the token in that header (compared case-insensitively).
    pub header_prefix: String,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            secret: None,
            public_key_file: None,
            public_key_algorithm: PublicKeyAlgorithm::RS256,
            jwks_url: None,
            jwks_refresh_interval: Duration::from_secs(600),
            jwks_min_refresh_interval: Duration::from_secs(30),
            jwks_timeout: Duration::from_secs(5),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            header_name: "authorization".into(),
            header_prefix: "Bearer".into(),
        }
    }
}

impl JwtConfig {
    /// Whether any key source is configured, i.e. whether tokens are verified at all.
    pub fn enabled(&self) -> bool {
        self.secret.is_some() || self.public_key_file.is_some() || self.jwks_url.is_some()
    }
}

/// Algorithms of a PEM public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublicKeyAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

/// A secret string that never shows up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl JwtConfig {
    /// `header_name`, parsed: where tokens are read from and what subscriptions forward.
    pub(crate) fn header(&self) -> Result<http::HeaderName, super::ConfigError> {
        super::header_name("auth.jwt.header_name", &self.header_name)
    }
}

impl Secret {
    /// Wraps a secret value (never printed by `Debug`).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}
