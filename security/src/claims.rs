//! One JWT verification policy (RFC 8725) for the router and the subgraphs.
//!
//! Both ends used to build their own `jsonwebtoken::Validation`, and they drifted apart: the
//! subgraphs never looked at `nbf`, the router accepted tokens without `iss` or `aud` even when it
//! was configured to check them. A [`ClaimPolicy`] is now the only place a `Validation` is made:
//! - `exp` is required, and `exp` and `nbf` are checked with the same leeway;
//! - `iss` and `aud` are required as soon as issuers or audiences are configured (a token that
//!   simply leaves them out no longer slips past the check);
//! - the algorithm is pinned to the key: [`ClaimPolicy::decode`] takes the key's own algorithm and
//!   refuses a token whose header names another, so a token never picks how it is checked
//!   (`alg: none` and HMAC-with-a-public-key confusions included).
//!
//! The caller still chooses the key (a secret, a public key, a JWKS entry); this module owns what
//! a signature-valid token must also say before anyone trusts it.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};

/// The leeway both ends use unless configured otherwise: enough for ordinary clock skew between
/// hosts, short enough that an expired token dies within half a minute.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Why a token was refused. Messages are meant for the client (401 `UNAUTHENTICATED`); none of them
/// says more than which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Not a compact JWT, or its payload does not have the expected shape.
    #[error("the token is malformed")]
    Malformed,
    /// The header names an algorithm the key is not for (or `none`).
    #[error("the token's algorithm is not accepted")]
    WrongAlgorithm,
    /// The signature does not match (tampered with, or signed with another key).
    #[error("the token signature is invalid")]
    BadSignature,
    /// `exp` is further in the past than the leeway.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is further in the future than the leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not one of the configured issuers.
    #[error("the token issuer is not accepted")]
    WrongIssuer,
    /// No `aud` value is one of the configured audiences.
    #[error("the token audience is not accepted")]
    WrongAudience,
    /// A claim the policy requires is absent (or not of its registered type).
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(String),
}

/// What every verified token must satisfy besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPolicy {
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    require_subject: bool,
}

impl Default for ClaimPolicy {
    fn default() -> Self {
        ClaimPolicy::new(DEFAULT_LEEWAY)
    }
}

impl ClaimPolicy {
    /// A policy that accepts any issuer and audience and checks `exp`/`nbf` with `leeway`.
    pub fn new(leeway: Duration) -> ClaimPolicy {
        ClaimPolicy {
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway,
            require_subject: false,
        }
    }

    /// Accept only these issuers; a non-empty list also makes `iss` required.
    pub fn with_issuers<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        issuers: I,
    ) -> ClaimPolicy {
        self.issuers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// Accept only these audiences (a token matches when one of its audiences is listed); a
    /// non-empty list also makes `aud` required.
    pub fn with_audiences<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        audiences: I,
    ) -> ClaimPolicy {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Require a `sub` claim too (the subgraphs key everything by it).
    pub fn requiring_subject(mut self) -> ClaimPolicy {
        self.require_subject = true;
        self
    }

    /// The leeway applied to `exp` and `nbf` alike.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The `jsonwebtoken` validation of this policy for a key of `algorithm`: the one place one is
    /// built, so every check above applies wherever a token is verified.
    pub fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = self.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if self.issuers.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&self.issuers);
            required.push("iss");
        }
        if self.audiences.is_empty() {
            // No audience configured: nothing to compare with. (`jsonwebtoken` would otherwise
            // refuse every token that carries one.)
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            required.push("aud");
        }
        if self.require_subject {
            required.push("sub");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// Verifies `token` with `key`, whose algorithm is `algorithm` (from configuration, never from
    /// the token), and returns its claims.
    ///
    /// The claims are checked as a JSON object first and only then read as `T`, so a token that
    /// lacks a claim `T` needs is refused for that claim, not as "malformed".
    pub fn decode<T: DeserializeOwned>(
        &self,
        token: &str,
        key: &DecodingKey,
        algorithm: Algorithm,
    ) -> Result<T, ClaimError> {
        let header = header(token)?;
        if header.alg != algorithm {
            return Err(ClaimError::WrongAlgorithm);
        }
        let claims =
            jsonwebtoken::decode::<Map<String, Json>>(token, key, &self.validation(algorithm))
                .map_err(|e| classify(e.into_kind()))?
                .claims;
        serde_json::from_value(Json::Object(claims)).map_err(|_| ClaimError::Malformed)
    }
}

/// The token's header, read before any key is chosen. Only for picking a key (`alg`, `kid`); the
/// choice is then pinned by [`ClaimPolicy::decode`].
pub fn header(token: &str) -> Result<Header, ClaimError> {
    jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => ClaimError::WrongAlgorithm,
        // `Algorithm` has no `none` variant, so serde fails on it before any signature check; say
        // what is wrong with it instead of calling the token malformed.
        ErrorKind::Json(error) if error.to_string().contains("unknown variant") => {
            ClaimError::WrongAlgorithm
        }
        _ => ClaimError::Malformed,
    })
}

/// Maps `jsonwebtoken`'s error to what the client is told.
pub fn classify(kind: ErrorKind) -> ClaimError {
    match kind {
        ErrorKind::InvalidSignature => ClaimError::BadSignature,
        ErrorKind::ExpiredSignature => ClaimError::Expired,
        ErrorKind::ImmatureSignature => ClaimError::NotYetValid,
        ErrorKind::InvalidIssuer => ClaimError::WrongIssuer,
        ErrorKind::InvalidAudience => ClaimError::WrongAudience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidKeyFormat => ClaimError::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            ClaimError::MissingClaim(claim)
        }
        _ => ClaimError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const LEEWAY: u64 = 30;

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn claims() -> Json {
        json!({"sub": "u1", "iss": "shippy", "aud": "shippy", "exp": now() + 600, "jti": "t1"})
    }

    fn sign(claims: &Json) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn policy() -> ClaimPolicy {
        ClaimPolicy::new(Duration::from_secs(LEEWAY))
            .with_issuers(["shippy"])
            .with_audiences(["shippy", "other"])
    }

    fn check(policy: &ClaimPolicy, claims: &Json) -> Result<Map<String, Json>, ClaimError> {
        policy.decode(
            &sign(claims),
            &DecodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
    }

    fn with(field: &str, value: Json) -> Json {
        let mut claims = claims();
        claims[field] = value;
        claims
    }

    fn without(field: &str) -> Json {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove(field);
        claims
    }

    #[test]
    fn a_good_token_passes_with_its_claims() {
        let claims = check(&policy(), &claims()).unwrap();
        assert_eq!(claims["sub"], "u1");
        assert_eq!(claims["jti"], "t1");
        // One of several audiences is enough.
        assert!(check(&policy(), &with("aud", json!(["nobody", "other"]))).is_ok());
    }

    #[test]
    fn exp_and_nbf_share_the_leeway() {
        let leeway = LEEWAY as i64;
        let policy = policy();
        // Within the leeway on either side: accepted.
        assert!(check(&policy, &with("exp", json!(now() - leeway + 5))).is_ok());
        assert!(check(&policy, &with("nbf", json!(now() + leeway - 5))).is_ok());
        // Beyond it: refused, each with its own reason.
        assert_eq!(
            check(&policy, &with("exp", json!(now() - leeway - 5))),
            Err(ClaimError::Expired)
        );
        assert_eq!(
            check(&policy, &with("nbf", json!(now() + leeway + 5))),
            Err(ClaimError::NotYetValid)
        );
        // The hour-ahead `nbf` the subgraphs used to accept.
        assert_eq!(
            check(&policy, &with("nbf", json!(now() + 3600))),
            Err(ClaimError::NotYetValid)
        );
        // Zero leeway is exact.
        let strict = ClaimPolicy::new(Duration::ZERO);
        assert_eq!(
            check(&strict, &with("exp", json!(now() - 2))),
            Err(ClaimError::Expired)
        );
        assert_eq!(
            check(&strict, &with("nbf", json!(now() + 5))),
            Err(ClaimError::NotYetValid)
        );
        assert_eq!(ClaimPolicy::default().leeway(), DEFAULT_LEEWAY);
    }

    #[test]
    fn exp_is_always_required_and_must_be_a_number() {
        assert_eq!(
            check(&ClaimPolicy::default(), &without("exp")),
            Err(ClaimError::MissingClaim("exp".into()))
        );
        assert_eq!(
            check(&policy(), &with("exp", json!("tomorrow"))),
            Err(ClaimError::MissingClaim("exp".into()))
        );
        assert_eq!(
            check(&policy(), &with("nbf", json!("now"))),
            Err(ClaimError::MissingClaim("nbf".into()))
        );
    }

    #[test]
    fn issuer_and_audience_are_required_once_configured() {
        let policy = policy();
        assert_eq!(
            check(&policy, &without("iss")),
            Err(ClaimError::MissingClaim("iss".into()))
        );
        assert_eq!(
            check(&policy, &without("aud")),
            Err(ClaimError::MissingClaim("aud".into()))
        );
        assert_eq!(
            check(&policy, &with("iss", json!("evil"))),
            Err(ClaimError::WrongIssuer)
        );
        assert_eq!(
            check(&policy, &with("aud", json!("elsewhere"))),
            Err(ClaimError::WrongAudience)
        );
        assert_eq!(
            check(&policy, &with("aud", json!([]))),
            Err(ClaimError::WrongAudience)
        );
        // Not configured: neither is required nor compared.
        let open = ClaimPolicy::default();
        assert!(check(&open, &without("iss")).is_ok());
        assert!(check(&open, &without("aud")).is_ok());
        assert!(check(&open, &with("aud", json!("anything"))).is_ok());
        // Issuers only: `aud` stays optional.
        let issuers_only = ClaimPolicy::default().with_issuers(["shippy"]);
        assert!(check(&issuers_only, &without("aud")).is_ok());
        assert_eq!(
            check(&issuers_only, &without("iss")),
            Err(ClaimError::MissingClaim("iss".into()))
        );
    }

    #[test]
    fn subject_required_when_asked() {
        assert!(check(&policy(), &without("sub")).is_ok());
        assert_eq!(
            check(&policy().requiring_subject(), &without("sub")),
            Err(ClaimError::MissingClaim("sub".into()))
        );
    }

    #[test]
    fn the_algorithm_is_pinned_to_the_key() {
        let policy = policy();
        let key = DecodingKey::from_secret(SECRET);
        // The header says HS384, the key is an HS256 key: refused before any signature check.
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims(),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(
            policy.decode::<Json>(&hs384, &key, Algorithm::HS256),
            Err(ClaimError::WrongAlgorithm)
        );
        // The key decides, not the header: an HS256 token for a key configured as RS256.
        assert_eq!(
            policy.decode::<Json>(&sign(&claims()), &key, Algorithm::RS256),
            Err(ClaimError::WrongAlgorithm)
        );
        // `alg: none` with an empty signature.
        let payload = sign(&claims()).split('.').nth(1).unwrap().to_owned();
        for alg in ["none", "None", "NONE"] {
            let header = json_b64(&json!({"alg": alg, "typ": "JWT"}));
            let unsigned = format!("{header}.{payload}.");
            assert_eq!(
                policy.decode::<Json>(&unsigned, &key, Algorithm::HS256),
                Err(ClaimError::WrongAlgorithm),
                "{alg}"
            );
        }
        // No `alg` at all.
        let header = json_b64(&json!({"typ": "JWT"}));
        assert!(matches!(
            policy.decode::<Json>(&format!("{header}.{payload}.x"), &key, Algorithm::HS256),
            Err(ClaimError::WrongAlgorithm | ClaimError::Malformed)
        ));
    }

    #[test]
    fn signature_and_shape_errors() {
        let policy = policy();
        let other = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"another-secret-another-secret-another"),
        )
        .unwrap();
        assert_eq!(
            policy.decode::<Json>(&other, &DecodingKey::from_secret(SECRET), Algorithm::HS256),
            Err(ClaimError::BadSignature)
        );
        assert_eq!(
            policy.decode::<Json>(
                "garbage",
                &DecodingKey::from_secret(SECRET),
                Algorithm::HS256
            ),
            Err(ClaimError::Malformed)
        );
        // A payload of the wrong shape for the caller's claims type.
        #[derive(Debug, serde::Deserialize)]
        struct Strict {
            #[allow(dead_code)]
            scopes: Vec<String>,
        }
        assert_eq!(
            policy
                .decode::<Strict>(
                    &sign(&claims()),
                    &DecodingKey::from_secret(SECRET),
                    Algorithm::HS256
                )
                .map(|_| ()),
            Err(ClaimError::Malformed)
        );
    }

    /// Base64url without padding, as JWT segments are written (a test-only encoder, so that the
    /// crate needs no base64 dependency for one test).
    fn json_b64(value: &Json) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = serde_json::to_vec(value).unwrap();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
