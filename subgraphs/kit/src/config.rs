//! Typed settings a subgraph process takes, shared by every subgraph.
//!
//! Each struct rejects unknown keys, fills missing ones with the defaults documented on each field, and reads
//! durations in human form (`30s`, `5m`, `1h`). The `shippy` command layers them: defaults, then an optional
//! config file, then environment variables, then flags.

use std::{fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// HTTP server limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Largest accepted request body, in bytes; larger requests get `413 Payload Too Large`. Default 1 MiB.
    pub body_limit: usize,
    /// Longest time one HTTP request may take; slower ones get `408 Request Timeout`. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// After a shutdown signal, how long in-flight requests may finish before they are dropped. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Deepest GraphQL selection accepted. Default 16.
    pub max_query_depth: usize,
    /// Largest GraphQL query complexity (roughly: number of fields selected) accepted. Default 1000.
    pub max_query_complexity: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            max_query_depth: 16,
            max_query_complexity: 1000,
        }
    }
}

/// The JWT signature algorithms we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (the default).
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256; verifiers need the public key, the issuer the private key.
    RS256,
    /// ECDSA P-256 with SHA-256; verifiers need the public key, the issuer the private key.
    ES256,
}

/// A secret string that never shows up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
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

/// How tokens are issued and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Signature algorithm. Default `HS256`.
    pub algorithm: JwtAlgorithm,
    /// HS256 shared secret (at least 32 bytes). Unset: a built-in development secret is used and a loud
    /// warning is logged; never run like that in production.
    pub secret: Option<Secret>,
    /// PEM public key file, required for RS256/ES256 verification.
    pub public_key_file: Option<PathBuf>,
    /// PEM private key file (PKCS#8), required by the user subgraph to issue RS256/ES256 tokens.
    pub private_key_file: Option<PathBuf>,
    /// The `iss` claim tokens carry and verifiers require. Default `shippy`.
    pub issuer: String,
    /// The `aud` claim tokens carry and verifiers require. Default `shippy`.
    pub audience: String,
    /// Lifetime of issued tokens (`exp - iat`). Default `1h`.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Clock skew tolerated when checking `exp`. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::HS256,
            secret: None,
            public_key_file: None,
            private_key_file: None,
            issuer: "shippy".into(),
            audience: "shippy".into(),
            token_ttl: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
        }
    }
}

/// How the outbox relay moves recorded events to the event bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Most outbox rows published per round. Default 100.
    pub batch_size: u64,
    /// How often the relay looks for pending rows when nobody woke it (rows written by another process).
    /// Default `1s`.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// First wait after a failed publish; doubles on each further failure. Default `200ms`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest wait between retries. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_human_readable_and_unknown_keys_rejected() {
        let cfg: ServerConfig =
            serde_json::from_value(serde_json::json!({"request_timeout": "2m", "body_limit": 10}))
                .unwrap();
        assert_eq!(cfg.request_timeout, Duration::from_secs(120));
        assert_eq!(cfg.body_limit, 10);
        assert_eq!(cfg.shutdown_grace, ServerConfig::default().shutdown_grace);

        let err =
            serde_json::from_value::<ServerConfig>(serde_json::json!({"request_timeot": "2m"}))
                .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = serde_json::from_value::<AuthConfig>(serde_json::json!({"token_ttl": "soon"}))
            .unwrap_err();
        assert!(
            err.to_string().contains("soon") || err.to_string().contains("time unit"),
            "{err}"
        );
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let cfg = AuthConfig {
            secret: Some(Secret::new("hunter2-hunter2")),
            ..AuthConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
