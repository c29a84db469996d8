//! Tokens for tests of subgraphs other than `user`, which owns the real issuing rules (its `tokens`
//! module): the same claims a login gives (subject, email, scopes, issuer, audience, lifetime and a
//! fresh `jti`), signed with the configured key through [`TokenSigner`].

use std::time::Duration;

use crate::{
    auth::{Claims, IssuedToken, KeyError, TokenSigner},
    config::AuthConfig,
};

/// Mints test tokens under an [`AuthConfig`] (usually [`super::auth_config`]).
#[derive(Debug, Clone)]
pub struct TestTokens {
    signer: TokenSigner,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl TestTokens {
    /// A minter for `cfg`'s key, issuer, audience and token lifetime.
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, KeyError> {
        Ok(Self {
            signer: TokenSigner::from_config(cfg)?,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl: cfg.token_ttl,
        })
    }

    /// A token valid from now.
    pub fn issue(
        &self,
        subject: &str,
        email: &str,
        scopes: Vec<String>,
    ) -> Result<IssuedToken, KeyError> {
        self.issue_at(subject, email, scopes, chrono::Utc::now().timestamp())
    }

    /// A token as if issued at `issued_at` (Unix seconds), e.g. an expired one.
    pub fn issue_at(
        &self,
        subject: &str,
        email: &str,
        scopes: Vec<String>,
        issued_at: i64,
    ) -> Result<IssuedToken, KeyError> {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: subject.to_owned(),
            email: email.to_owned(),
            scopes,
            iat: issued_at,
            exp: issued_at.saturating_add(ttl),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Some(uuid::Uuid::new_v4().to_string()),
        };
        Ok(IssuedToken {
            token: self.signer.sign(&claims)?,
            claims,
        })
    }
}
