//! Admission, the per-caller stages after `prepare`, shared by every transport: the variables
//! are coerced, fields the caller may not see are removed (`authorize`), then fields over their
//! rate limit, and the plan of what is left is made.
//!
//! Per-field rate limits apply on the normalized operation, after `authorize` (a refused field
//! never spends quota).
//!
//! Each active selection of a limited field counts once, so aliases count separately
//! (`a: f b: f` costs two) while a field spread twice into the same place is one selection.
//! A limited selection is removed before planning and answered null with a `RATE_LIMITED`
//! error carrying `extensions.retryAfter` (seconds); the rest of the operation runs. When every
//! root field of the operation is limited, the request gets HTTP 429 with `Retry-After` instead.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value as Json};
use shippy_security::login_limits::CLIENT_IP_HEADER;

use super::authorize::{self, Guards, Removal, Verdicts, active};
use super::{Live, PipelineError, PreparedOperation, RouterState, variables};
use crate::auth::Identity;
use crate::error::GraphQLError;
use crate::query_planner::{OperationKind, QueryPlan};
use crate::rate_limit::{Decision, RateLimits};
use crate::subgraph::headers::SubgraphHeaders;

/// Who sent a request: what `authorize`, `rate_limit` and `execute` need to know about them.
#[derive(Clone, Copy)]
pub(crate) struct Caller<'r> {
    pub(crate) headers: &'r HeaderMap,
    pub(crate) identity: Option<&'r Identity>,
    pub(crate) ip: Option<IpAddr>,
}

/// A prepared operation admitted for this caller: what `execute` needs.
pub(crate) struct Admitted {
    pub(crate) prepared: Arc<PreparedOperation>,
    pub(crate) variables: serde_json::Map<String, serde_json::Value>,
    /// Guarded selections removed for this caller (sorted node ids).
    pub(crate) removed: Vec<u32>,
    /// The plan of what is left.
    pub(crate) plan: Option<Arc<QueryPlan>>,
    /// Why fields were removed; first in the response.
    pub(crate) errors: Vec<GraphQLError>,
    /// The headers of the subgraph requests (forward list and `headers` rules).
    pub(crate) headers: SubgraphHeaders,
}

/// The per-caller stages after `prepare`, shared by every transport: variables coerced, fields
/// the caller may not see or is rate limited on removed (or the whole operation refused), and
/// the plan of what is left.
pub(crate) async fn admit(
    state: &RouterState,
    live: &Live,
    prepared: Arc<PreparedOperation>,
    raw_variables: &serde_json::Map<String, serde_json::Value>,
    caller: Caller<'_>,
) -> Result<Admitted, PipelineError> {
    let variables =
        variables::coerce(&state.schema, &prepared.variables, raw_variables).map_err(|errors| {
            PipelineError::Rejected {
                status: StatusCode::BAD_REQUEST,
                errors,
            }
        })?;
    let guards = &prepared.guards;
    let mut verdicts = Verdicts::new(guards, &variables);
    if !guards.is_empty() {
        authorize::authorize(
            guards,
            &mut verdicts,
            caller.identity,
            &live.config.auth.scopes_claim,
        );
        check_rate_limits(
            guards,
            &mut verdicts,
            &live.rate_limits,
            caller.identity,
            caller.ip,
        )
        .await;
        if let Some(wait) =
            whole_operation_limited(guards, &verdicts, &variables, prepared.has_introspection)
        {
            return Err(PipelineError::RateLimited {
                errors: verdicts.errors(guards),
                retry_after: wait,
            });
        }
    }
    let removed = verdicts.removed_nodes(guards);
    let plan = state.plan_without(&prepared, &removed).await?;
    let errors = verdicts.errors(guards);
    let mut headers = live.headers.outgoing(caller.headers);
    // The client's address, for the user subgraph's login limits: set by the router alone (a
    // client's own value is never passed on), and only on mutations, so that identical queries
    // of different clients still share one subgraph fetch.
    let client_ip = HeaderName::from_static(CLIENT_IP_HEADER);
    headers.set_everywhere(&client_ip, None);
    if prepared.kind == OperationKind::Mutation
        && let Some(ip) = caller.ip
        && let Ok(value) = HeaderValue::from_str(&ip.to_string())
    {
        headers.set_everywhere(&client_ip, Some(value));
    }
    Ok(Admitted {
        prepared,
        variables,
        removed,
        plan,
        errors,
        headers,
    })
}

/// Counts the limited selections that are still in the operation.
pub(crate) async fn check_rate_limits(
    guards: &Guards,
    verdicts: &mut Verdicts,
    limits: &RateLimits,
    identity: Option<&Identity>,
    client_ip: Option<IpAddr>,
) {
    for index in 0..guards.list.len() {
        let Some(rule) = guards.list[index].rate_limit else {
            continue;
        };
        if !verdicts.pending(guards, index) {
            continue;
        }
        let key = limits.key(rule, identity, client_ip);
        if let Decision::Limited { retry_after } = limits.check(rule, &key).await {
            tracing::debug!(
                field = %guards.list[index].coordinate,
                key,
                ?retry_after,
                "rate limited"
            );
            crate::telemetry::record_rate_limited(&guards.list[index].coordinate);
            verdicts.removals[index] = Some(Removal::RateLimited { retry_after });
        }
    }
}

/// When every active root field is rate-limited: how long until one may run again (the
/// shortest wait, rounded up to whole seconds for `Retry-After`).
pub(crate) fn whole_operation_limited(
    guards: &Guards,
    verdicts: &Verdicts,
    variables: &Map<String, Json>,
    has_introspection: bool,
) -> Option<Duration> {
    if has_introspection {
        return None;
    }
    let active_roots = guards
        .root_fields
        .iter()
        .filter(|conditions| active(conditions, variables))
        .count();
    let mut limited = 0;
    let mut wait: Option<Duration> = None;
    for (guard, removal) in guards.list.iter().zip(&verdicts.removals) {
        if let (true, Some(Removal::RateLimited { retry_after })) = (guard.root, removal) {
            limited += 1;
            wait = Some(wait.map_or(*retry_after, |w| w.min(*retry_after)));
        }
    }
    (active_roots > 0 && limited == active_roots).then(|| wait.unwrap_or_default())
}
