//! Stage 0b, authenticate: the request's bearer token becomes an [`Identity`], before any other
//! work. No token means an anonymous request; an invalid one (bad signature, wrong algorithm,
//! expired, wrong issuer or audience) is refused with 401 `UNAUTHENTICATED`, so a client learns
//! its token is bad instead of silently losing fields.

use std::sync::Arc;

use axum::response::Response;
use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode};

use super::http::http_response;
use super::request::MediaType;
use crate::auth::{Identity, JwtVerifier};
use crate::error::{GraphQLError, codes};

/// The caller, or the 401 response for an invalid token.
pub(crate) async fn authenticate(
    verifier: Option<&JwtVerifier>,
    headers: &HeaderMap,
    media: MediaType,
) -> Result<Option<Arc<Identity>>, Response> {
    let Some(verifier) = verifier else {
        return Ok(None);
    };
    match verifier.authenticate(headers).await {
        Ok(identity) => Ok(identity.map(Arc::new)),
        Err(error) => {
            tracing::debug!(error = %error, "token refused");
            let body = crate::error::render_errors(&[GraphQLError::new(
                format!("Invalid token: {error}"),
                codes::UNAUTHENTICATED,
            )]);
            let mut response = http_response(StatusCode::UNAUTHORIZED, media, body);
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            Err(response)
        }
    }
}
