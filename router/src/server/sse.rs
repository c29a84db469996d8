//! GraphQL over SSE, the graphql-sse protocol's "distinct connections" mode: a GET or POST on
//! the GraphQL path with `Accept: text/event-stream` gets one event stream for its operation:
//! `next` events with the results, then `complete`. The client ends a subscription by closing
//! the connection.
//!
//! The request goes through the same HTTP stages as any other (method, CSRF, token: an invalid
//! token is still a 401); once accepted, refusals (validation, authorization, rate limits) are
//! `next` events carrying the errors, as the protocol asks. A subgraph that goes away ends the
//! stream with a `next` carrying `SUBSCRIPTION_UPSTREAM_CLOSED`, then `complete`; so does the
//! caller's token expiring (`exp` plus `auth.jwt.leeway`), with `UNAUTHENTICATED` as an HTTP
//! request with that token gets. Router shutdown, or a reload that changes the rules
//! subscriptions are admitted under (see `subscriptions::reload`), ends it without `complete` (the client
//! reconnects, and is admitted under the new rules). Comments (`:`) every `keep_alive` keep
//! proxies from closing an idle stream.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::AppState;
use super::http::http_response;
use super::request::MediaType;
use crate::auth::Identity;
use crate::config::SlowClientPolicy;
use crate::error::render_errors;
use crate::error::{GraphQLError, codes};
use crate::operation::{Caller, GraphQLRequest, RouterState};
use crate::subscriptions::{
    ConnectionSlot, Event, Received, Started, Subscriber, Subscribing, expiry, start,
};

/// Whether the client asks for an event stream.
pub(crate) fn accepts(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',').any(|range| {
                range
                    .split(';')
                    .next()
                    .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/event-stream"))
            })
        })
    })
}

/// The event stream for `request`.
pub(crate) async fn respond(
    state: &Arc<AppState>,
    core: &Arc<RouterState>,
    request: GraphQLRequest,
    caller: Caller<'_>,
    identity: Option<Arc<Identity>>,
) -> Response {
    if !state.hub.config().enabled {
        return http_response(
            StatusCode::BAD_REQUEST,
            MediaType::Json,
            render_errors(&[GraphQLError::new(
                "Subscriptions are disabled on this router",
                codes::UNSUPPORTED_OPERATION,
            )]),
        );
    }
    let Some(slot) = state.hub.connect() else {
        return http_response(
            StatusCode::SERVICE_UNAVAILABLE,
            MediaType::Json,
            render_errors(&[GraphQLError::new(
                "Too many subscription connections",
                codes::SUBSCRIPTION_LIMIT_EXCEEDED,
            )]),
        );
    };
    let live = core.live.load_full();
    let header_name = live.auth_header.clone();
    let expires = expiry::deadline(identity.as_deref(), live.config.auth.jwt.leeway);
    let who = Subscribing {
        caller,
        identity,
        authorization: caller.headers.get(&header_name).cloned(),
    };
    let body = match start(core, &state.hub, &request, who).await {
        Err(refused) => {
            let errors = render_errors(refused.errors());
            Body::from(finished(&errors))
        }
        Ok(Started::Single(result)) => Body::from(finished(&result)),
        Ok(Started::Stream(subscriber)) => stream_body(state, subscriber, slot, expires),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}

fn next_event(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 20);
    out.put_slice(b"event: next\ndata: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
    out.freeze()
}

const COMPLETE: &[u8] = b"event: complete\ndata:\n\n";

/// One `next` with `data`, then `complete`.
fn finished(data: &[u8]) -> Bytes {
    let mut out = BytesMut::from(&next_event(data)[..]);
    out.put_slice(COMPLETE);
    out.freeze()
}

struct Streaming {
    subscriber: Subscriber,
    keep_alive: tokio::time::Interval,
    shutdown: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    reload: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The caller's token expiring.
    expired: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    policy: SlowClientPolicy,
    done: bool,
    _slot: ConnectionSlot,
}

/// The events of `subscriber` as an SSE body. Hyper polls it only as fast as the client reads,
/// so a slow client makes its subscriber fall behind, where the slow-client policy applies.
fn stream_body(
    state: &Arc<AppState>,
    subscriber: Subscriber,
    slot: ConnectionSlot,
    expires: Option<tokio::time::Instant>,
) -> Body {
    let hub = &state.hub;
    let mut keep_alive = tokio::time::interval(hub.config().keep_alive);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keep_alive.reset();
    let streaming = Streaming {
        subscriber,
        keep_alive,
        shutdown: Box::pin(hub.shutting_down()),
        reload: Box::pin(hub.next_reload()),
        expired: Box::pin(expiry::passed(expires)),
        policy: hub.config().slow_client,
        done: false,
        _slot: slot,
    };
    let events = futures::stream::unfold(streaming, |mut s| async move {
        if s.done {
            return None;
        }
        let chunk = tokio::select! {
            () = &mut s.shutdown => return None,
            () = &mut s.reload => return None,
            () = &mut s.expired => {
                tracing::info!("ending a subscription stream: its token expired");
                s.done = true;
                finished(&render_errors(&[expiry::expired_error()]))
            }
            _ = s.keep_alive.tick() => Bytes::from_static(b":\n\n"),
            received = s.subscriber.recv() => match received {
                Some(Received::Event(Event::Next(body))) => next_event(&body),
                Some(Received::Event(Event::Complete)) => {
                    s.done = true;
                    Bytes::from_static(COMPLETE)
                }
                Some(Received::Event(Event::Error(errors))) => {
                    s.done = true;
                    finished(&render_errors(&errors))
                }
                Some(Received::Lagged(missed)) => {
                    let error = crate::subscriptions::dropped_error(missed);
                    if s.policy == SlowClientPolicy::Close {
                        s.done = true;
                        finished(&render_errors(&[error]))
                    } else {
                        next_event(&render_errors(&[error]))
                    }
                }
                None => return None,
            },
        };
        Some((Ok::<_, std::convert::Infallible>(chunk), s))
    });
    Body::from_stream(events.boxed())
}
