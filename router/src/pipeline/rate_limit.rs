//! Stage 5, rate_limit: per-field limits on the normalized operation, after `authorize` (a
//! refused field never spends quota).
//!
//! Each active selection of a limited field counts once, so aliases count separately
//! (`a: f b: f` costs two) while a field spread twice into the same place is one selection.
//! A limited selection is removed before planning and answered null with a `RATE_LIMITED`
//! error carrying `extensions.retryAfter` (seconds); the rest of the operation runs. When every
//! root field of the operation is limited, the request gets HTTP 429 with `Retry-After` instead.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use super::authorize::{Guards, Removal, Verdicts, active};
use crate::auth::Identity;
use crate::limits::{Decision, RateLimits};

/// Counts the limited selections that are still in the operation.
pub async fn check(
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
pub fn whole_operation_limited(
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
