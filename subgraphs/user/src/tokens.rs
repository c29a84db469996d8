//! The tokens this subgraph issues at registration and login: who they are for (subject, email,
//! scopes), who issued them for whom (`iss`, `aud`), how long they live, and a fresh `jti` so that
//! `logout` can revoke exactly one. Signing is kit's (`TokenSigner`, the one JWT wrapper).

use std::time::Duration;

use shippy_kit::{
    auth::{Claims, IssuedToken, KeyError, TokenSigner},
    config::AuthConfig,
};

/// Issues the user subgraph's tokens.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    signer: TokenSigner,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl TokenIssuer {
    /// Builds an issuer; reads the private key file for RS256/ES256.
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, KeyError> {
        Ok(Self {
            signer: TokenSigner::from_config(cfg)?,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl: cfg.token_ttl,
        })
    }

    /// Issues a token valid from now for the configured lifetime.
    pub fn issue(
        &self,
        subject: &str,
        email: &str,
        scopes: Vec<String>,
    ) -> Result<IssuedToken, KeyError> {
        self.issue_at(subject, email, scopes, chrono::Utc::now().timestamp())
    }

    /// Issues a token as if it were `issued_at` (Unix seconds); tests use it to make expired tokens.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_carry_a_unique_id_and_the_configured_audience() {
        let issuer = TokenIssuer::from_config(&shippy_kit::testing::auth_config()).unwrap();
        let a = issuer.issue("u1", "a@b.co", vec![]).unwrap().claims;
        let b = issuer.issue("u1", "a@b.co", vec![]).unwrap().claims;
        assert!(a.jti.is_some() && b.jti.is_some());
        assert_ne!(a.jti, b.jti);
        assert_eq!((a.iss.as_str(), a.aud.as_str()), ("shippy", "shippy"));
        assert_eq!(a.exp - a.iat, 3600);
    }
}
