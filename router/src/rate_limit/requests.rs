//! Whole-request rate limiting per client IP with `tower_governor`, in front of everything else
//! (a flood costs no parsing). Off by default; `rate_limit.requests` turns it on.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use governor::middleware::NoOpMiddleware;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{HeaderName, Request, StatusCode};
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

use crate::config::RequestRateLimit;
use crate::error::render_errors;
use crate::error::{GraphQLError, codes};

/// Keys requests by [`super::client_ip`]; requests whose IP cannot be told share one key.
#[derive(Debug, Clone)]
pub(crate) struct ClientIpKey {
    header: Option<HeaderName>,
}

impl KeyExtractor for ClientIpKey {
    type Key = Option<IpAddr>;

    fn name(&self) -> &'static str {
        "client IP"
    }

    fn extract<T>(&self, request: &Request<T>) -> Result<Self::Key, GovernorError> {
        Ok(super::client_ip(
            request.headers(),
            request.extensions(),
            self.header.as_ref(),
        ))
    }

    fn key_name(&self, key: &Self::Key) -> Option<String> {
        key.map(|ip| ip.to_string())
    }
}

/// The limiter shared by the layer, for periodic clean-up of idle keys.
pub(crate) type RequestLimiter = governor::RateLimiter<
    Option<IpAddr>,
    governor::state::keyed::DefaultKeyedStateStore<Option<IpAddr>>,
    governor::clock::QuantaClock,
    NoOpMiddleware<governor::clock::QuantaInstant>,
>;

/// Wraps `app` in the limit, when enabled. Returns the limiter so its idle keys can be dropped.
pub(crate) fn apply(
    app: axum::Router,
    config: &RequestRateLimit,
    ip_header: Option<HeaderName>,
) -> (axum::Router, Option<Arc<RequestLimiter>>) {
    if !config.enabled {
        return (app, None);
    }
    let period = (config.per / config.limit.max(1)).max(std::time::Duration::from_nanos(1));
    let Some(governor) = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(config.limit.max(1))
        .key_extractor(ClientIpKey { header: ip_header })
        .finish()
    else {
        tracing::error!("`rate_limit.requests` is invalid; whole-request limiting is off");
        return (app, None);
    };
    let limiter = Arc::clone(governor.limiter());
    let layer = tower_governor::GovernorLayer::new(governor).error_handler(too_many_requests);
    (app.layer(layer), Some(limiter))
}

fn too_many_requests(error: GovernorError) -> Response<Body> {
    let (status, wait) = match &error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            (StatusCode::TOO_MANY_REQUESTS, (*wait_time).max(1))
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, 0),
    };
    let error = if status == StatusCode::TOO_MANY_REQUESTS {
        GraphQLError::new(
            format!("Too many requests from this client; retry in {wait}s"),
            codes::RATE_LIMITED,
        )
        .with_extension("retryAfter", wait)
    } else {
        GraphQLError::new("Internal server error", codes::INTERNAL_SERVER_ERROR)
    };
    let mut response = Response::new(Body::from(render_errors(&[error])));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(RETRY_AFTER, HeaderValue::from(wait));
    }
    response
}
