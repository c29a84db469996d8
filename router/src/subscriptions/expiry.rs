//! Token expiry for live subscriptions: a connection or stream authenticated with a JWT ends when
//! the token's `exp` passes, as an HTTP request with that token would be refused from then on.

use std::time::Duration;

use shippy_security::claims::ClaimError;
use tokio::time::Instant;

use crate::auth::{Identity, TokenError};
use crate::error::{GraphQLError, codes};

/// When a subscription authenticated as `identity` must end: the token's `exp` plus the
/// verifier's `leeway` (the verifier accepts the token until then). `None` for anonymous callers,
/// and for an `exp` so far ahead that no timer can hold it (it never passes while we run).
pub(crate) fn deadline(identity: Option<&Identity>, leeway: Duration) -> Option<Instant> {
    // The verifier requires a numeric `exp`; an identity without one was not made from a token.
    let exp = identity?.claims().get("exp")?.as_f64()?;
    // The rule the subgraphs' WebSockets apply too.
    shippy_security::websocket::token_deadline(exp, leeway)
}

/// Completes at `deadline`; never without one.
pub(crate) async fn passed(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the client is told: the error an HTTP request with the expired token gets (401
/// `UNAUTHENTICATED`).
pub(crate) fn expired_error() -> GraphQLError {
    GraphQLError::new(
        format!(
            "Invalid token: {}",
            TokenError::Invalid(ClaimError::Expired)
        ),
        codes::UNAUTHENTICATED,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn identity(exp: serde_json::Value) -> Identity {
        let serde_json::Value::Object(claims) = json!({"sub": "alice", "exp": exp}) else {
            unreachable!()
        };
        Identity::new(claims)
    }

    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn the_deadline_is_exp_plus_leeway() {
        let leeway = Duration::from_secs(30);
        assert_eq!(deadline(None, leeway), None, "anonymous: no deadline");
        let at = deadline(Some(&identity(json!(unix_now() + 100))), leeway).unwrap();
        let left = at - Instant::now();
        // 130s from now, give or take the second `exp` is rounded to and a slow machine.
        assert!(
            left > Duration::from_secs(120) && left <= Duration::from_secs(131),
            "{left:?}"
        );
        // Expired, but within the leeway: still accepted for the rest of it.
        let at = deadline(Some(&identity(json!(unix_now() - 10))), leeway).unwrap();
        assert!(at - Instant::now() > Duration::from_secs(10));
        // Past exp and leeway: due now.
        let at = deadline(Some(&identity(json!(unix_now() - 100))), leeway).unwrap();
        assert!(at <= Instant::now());
    }

    #[test]
    fn claims_without_a_usable_exp_set_no_deadline() {
        let leeway = Duration::ZERO;
        assert_eq!(deadline(Some(&identity(json!("soon"))), leeway), None);
        assert_eq!(deadline(Some(&identity(json!(1e300))), leeway), None);
        let serde_json::Value::Object(claims) = json!({"sub": "alice"}) else {
            unreachable!()
        };
        assert_eq!(deadline(Some(&Identity::new(claims)), leeway), None);
    }

    #[tokio::test]
    async fn passed_completes_at_the_deadline_and_never_without_one() {
        passed(Some(Instant::now())).await;
        let never = tokio::time::timeout(Duration::from_millis(20), passed(None)).await;
        assert!(never.is_err());
    }

    #[test]
    fn the_error_is_the_one_http_gives_an_expired_token() {
        let error = expired_error();
        assert_eq!(error.extensions["code"], codes::UNAUTHENTICATED);
        assert_eq!(error.message, "Invalid token: the token has expired");
    }
}
