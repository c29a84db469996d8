//! The GraphQL endpoint over plain HTTP (GraphQL over HTTP): the HTTP request becomes a
//! [`GraphQLRequest`] (`request`), the caller is authenticated, then the operation runs through
//! `operation` (prepare, admit, execute) and its body goes back in the negotiated media type.
//! WebSocket upgrades and event-stream requests reaching the endpoint go to `ws` and `sse`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::FutureExt;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use tracing::Instrument;

use super::request::{self, MediaType};
use super::{AppState, sse, ws};
use crate::error::{GraphQLError, codes, render_errors};
use crate::operation::validate::{operation_at, operation_parts};
use crate::operation::{
    Admitted, Caller, GraphQLRequest, Live, PipelineError, RouterState, admit, dedupe_key,
};
use crate::query_planner::OperationKind;
use crate::rate_limit::client_ip;
use crate::telemetry::{self, Observed, Outcome};

/// The GraphQL endpoint: any method reaches it so that the wrong ones get a GraphQL error.
/// Each request runs in its own `router.request` span and is counted in the request series.
pub(crate) async fn handle(state: Arc<AppState>, request: http::Request<Body>) -> Response {
    // A WebSocket lives for its connection: it has its own gauges, not a request span.
    if ws::is_upgrade(request.headers()) {
        return ws::handle(state, request).await;
    }
    let span = telemetry::request_span(request.headers());
    let started = std::time::Instant::now();
    let observed = Observed::default();
    let response = handle_request(state, request, &observed)
        .instrument(span.clone())
        .await;
    // Responses that did not reach execution carry no outcome: they were rejected.
    let outcome = response
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or(Outcome::Rejected);
    telemetry::record_request(&span, &observed, &response, outcome, started.elapsed());
    response
}

async fn handle_request(
    state: Arc<AppState>,
    request: http::Request<Body>,
    observed: &Observed,
) -> Response {
    // The supergraph this request runs on, start to end, whatever swaps happen meanwhile.
    let core = state.core();
    let live = core.live.load_full();
    let (parts, body) = request.into_parts();
    // GraphQL over SSE: errors before the stream starts are plain JSON.
    let event_stream = sse::accepts(&parts.headers);
    let media = match request::negotiate(&parts.headers) {
        Ok(media) => media,
        Err(_) if event_stream => MediaType::Json,
        Err(error) => return error_response(MediaType::Json, &error),
    };
    if let Err(error) = request::check_method(&parts.method) {
        let mut response = error_response(media, &error);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, POST"));
        return response;
    }
    if live.config.csrf.enabled
        && let Err(error) = request::check_csrf(&parts.headers, &live.csrf_headers)
    {
        return error_response(media, &error);
    }
    let identity =
        match super::authenticate::authenticate(live.verifier.as_deref(), &parts.headers, media)
            .await
        {
            Ok(identity) => identity,
            Err(response) => return response,
        };
    let graphql = if parts.method == Method::GET {
        request::from_get(parts.uri.query())
    } else {
        match request::check_content_type(&parts.headers) {
            Ok(()) => match read_body(body, core.config.http.max_body_size).await {
                Ok(bytes) => request::from_post(&bytes),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        }
    };
    let graphql = match graphql {
        Ok(graphql) => graphql,
        Err(error) => return error_response(media, &error),
    };
    let caller = Caller {
        headers: &parts.headers,
        identity: identity.as_deref(),
        ip: client_ip(
            &parts.headers,
            &parts.extensions,
            core.client_ip_header.as_ref(),
        ),
    };
    if event_stream {
        let mut response = sse::respond(&state, &core, graphql, caller, identity.clone()).await;
        // The stream started; what it carries later is the subscription's, not this request's.
        if response.status() == StatusCode::OK {
            response.extensions_mut().insert(Outcome::Ok);
        }
        return response;
    }
    // A bug (here or in the planner) must cost one request, not a connection or the process.
    match AssertUnwindSafe(run(&core, &live, graphql, media, caller, observed))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("request handling panicked");
            let error = GraphQLError::new("Internal server error", codes::INTERNAL_SERVER_ERROR);
            let mut response = http_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                media,
                render_errors(&[error]),
            );
            response.extensions_mut().insert(Outcome::Error);
            response
        }
    }
}

async fn run(
    state: &RouterState,
    live: &Live,
    request: GraphQLRequest,
    media: MediaType,
    caller: Caller<'_>,
    observed: &Observed,
) -> Response {
    let prepared = match state.prepare_request(&request, live, &caller).await {
        Ok(prepared) => prepared,
        Err(rejection) => return error_response(media, &rejection),
    };
    let _ = observed.kind.set(prepared.kind);
    let span = tracing::Span::current();
    span.record("graphql.operation.type", prepared.kind.as_str());
    let (_, _, _, name) =
        operation_parts(operation_at(&prepared.document, prepared.operation_index));
    if let Some(name) = name {
        span.record("graphql.operation.name", name);
    }
    match prepared.kind {
        OperationKind::Mutation if request.is_get => {
            let error = GraphQLError::new(
                "Mutations cannot be sent with GET; use POST",
                codes::OPERATION_NOT_ALLOWED,
            );
            let mut response = http_response(
                StatusCode::METHOD_NOT_ALLOWED,
                media,
                render_errors(&[error]),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        OperationKind::Subscription => {
            let error = GraphQLError::new(
                "Subscriptions are not served over plain HTTP requests",
                codes::UNSUPPORTED_OPERATION,
            );
            return error_response(
                media,
                &PipelineError::rejected(StatusCode::BAD_REQUEST, error),
            );
        }
        _ => {}
    }
    let admitted = match admit(state, live, prepared, &request.variables, caller).await {
        Ok(admitted) => admitted,
        Err(error) => return error_response(media, &error),
    };
    let Admitted {
        prepared,
        variables,
        removed,
        plan,
        errors,
        headers,
    } = admitted;
    let execute = || async {
        let body = Bytes::from(
            state
                .execute(
                    &prepared,
                    plan.as_deref(),
                    &variables,
                    &headers,
                    caller.identity,
                    errors.clone(),
                )
                .instrument(tracing::info_span!(target: shippy_telemetry::SPANS, "execute"))
                .await,
        );
        // What the subgraph responses pass on (`headers` response rules, `Cache-Control`);
        // only a query answered without errors may be cached.
        let cacheable =
            prepared.kind == OperationKind::Query && Outcome::of_executed(&body) == Outcome::Ok;
        let passed_on = headers.response_headers(cacheable);
        (body, passed_on)
    };
    let (body, passed_on) = if prepared.kind == OperationKind::Query && state.config.http.dedupe {
        let key = dedupe_key(
            &prepared,
            &removed,
            &variables,
            &headers,
            caller.identity,
            &errors,
        );
        let flight = state.inbound.run(key, execute).await;
        if flight.shared {
            metrics::counter!("shippy_router_inbound_deduplicated_total").increment(1);
        }
        flight.value
    } else {
        execute().await
    };
    let outcome = Outcome::of_executed(&body);
    let mut response = http_response(StatusCode::OK, media, body);
    for (name, value) in &passed_on {
        response.headers_mut().append(name, value.clone());
    }
    response.extensions_mut().insert(outcome);
    response
}

async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, PipelineError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(PipelineError::Request {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                error: GraphQLError::new(
                    format!("The request body exceeds {limit} bytes"),
                    codes::MAX_BODY_SIZE_EXCEEDED,
                )
                .with_extension("limit", limit),
            })
        }
        Err(error) if shippy_security::connections::is_body_timeout(&*error) => {
            Err(PipelineError::Request {
                status: StatusCode::REQUEST_TIMEOUT,
                error: GraphQLError::new(
                    "The request body did not arrive in time",
                    codes::REQUEST_TIMEOUT,
                ),
            })
        }
        Err(_) => Err(PipelineError::Request {
            status: StatusCode::BAD_REQUEST,
            error: GraphQLError::new("The request body could not be read", codes::BAD_REQUEST),
        }),
    }
}

/// The response for a request that was not executed. A GraphQL-level rejection gets the
/// spec's status under the GraphQL media type and 200 under legacy JSON; a malformed HTTP
/// request gets its status under both; an operation whose every root field is over its rate
/// limit gets 429 with `Retry-After`.
fn error_response(media: MediaType, error: &PipelineError) -> Response {
    tracing::debug!(code = error.code(), status = %error.status(), "request not executed");
    let status = match (error, media) {
        (PipelineError::Rejected { .. }, MediaType::Json) => StatusCode::OK,
        _ => error.status(),
    };
    let mut response = http_response(status, media, render_errors(error.errors()));
    if let PipelineError::RateLimited { retry_after, .. } = error {
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The HTTP response for a body in the negotiated media type.
pub(crate) fn http_response(
    status: StatusCode,
    media: MediaType,
    body: impl Into<Body>,
) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media.content_type()));
    response
}
