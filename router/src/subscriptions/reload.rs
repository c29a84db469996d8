//! Which live configuration changes end open subscriptions (WebSocket close 1012, SSE streams
//! end): only those that could refuse or change what an admitted subscription was let in with.
//!
//! A subscription is admitted once, by `prepare` (the operation `limits`) and `admit` (token
//! verification and `@authenticated` / `@requiresScopes` under `auth`, per-field `rate_limit`).
//! Closing makes clients reconnect and be admitted again under the new rules, so we close only
//! when those rules may now say something else:
//! - `auth`: any change (keys, issuers, audiences, leeway, header, scopes claim) can refuse a token
//!   or a field that was allowed.
//! - `rate_limit` (its live part): any change can refuse a field that was allowed, and rebuilds the
//!   limiters.
//! - `limits`: only a lower limit; a raised one refuses nothing that was admitted.
//! - `csrf`: checked once on the request that opened an SSE stream (never on WebSocket upgrades);
//!   it says how a request may be sent, nothing about a stream already running.
//! - `introspection`: `__schema` / `__type` exist only on the query root, never in a subscription.
//!
//! Every other section is restart-only and never differs between live configurations.

use crate::config::{LimitsConfig, RouterConfig};

/// Whether going from the live configuration `old` to `new` must end open subscriptions.
pub(crate) fn affects_subscriptions(old: &RouterConfig, new: &RouterConfig) -> bool {
    // Destructured in full so that a new section cannot be added without deciding here.
    let RouterConfig {
        http: _,
        csrf: _,
        limits,
        query_planning: _,
        introspection: _,
        auth,
        rate_limit,
        subgraph_defaults: _,
        subgraph_signing: _,
        subgraphs: _,
        reload: _,
        subscriptions: _,
        persisted_documents: _,
        // Upstream subscriptions keep the headers they were opened with.
        headers: _,
        override_labels: _,
    } = new;
    *auth != old.auth || *rate_limit != old.rate_limit || lowered(&old.limits, limits)
}

/// Whether any limit in `new` is lower than in `old`.
fn lowered(old: &LimitsConfig, new: &LimitsConfig) -> bool {
    let LimitsConfig {
        max_tokens,
        max_depth,
        max_aliases,
        max_root_fields,
        max_directives_per_field,
    } = *new;
    max_tokens < old.max_tokens
        || max_depth < old.max_depth
        || max_aliases < old.max_aliases
        || max_root_fields < old.max_root_fields
        || max_directives_per_field < old.max_directives_per_field
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FieldRateLimit, Secret};

    fn changed(edit: impl FnOnce(&mut RouterConfig)) -> bool {
        let old = RouterConfig::default();
        let mut new = old.clone();
        edit(&mut new);
        affects_subscriptions(&old, &new)
    }

    #[test]
    fn access_and_rate_limit_changes_end_subscriptions() {
        assert!(changed(
            |c| c.auth.jwt.secret = Some(Secret::new("another-dev-secret"))
        ));
        assert!(changed(|c| c.auth.scopes_claim = "scope".into()));
        assert!(changed(|c| c.auth.jwt.leeway = std::time::Duration::ZERO));
        assert!(changed(|c| {
            c.rate_limit.fields.insert(
                "Subscription.ticks".into(),
                FieldRateLimit::parse("1 per 1m").unwrap(),
            );
        }));
        assert!(changed(|c| c.rate_limit.key_claim = "org".into()));
    }

    #[test]
    fn only_lower_limits_end_subscriptions() {
        assert!(changed(|c| c.limits.max_depth -= 1));
        assert!(changed(|c| c.limits.max_tokens -= 1));
        assert!(changed(|c| c.limits.max_aliases -= 1));
        assert!(changed(|c| c.limits.max_root_fields -= 1));
        assert!(changed(|c| c.limits.max_directives_per_field -= 1));
        assert!(!changed(|c| {
            c.limits.max_depth += 1;
            c.limits.max_tokens += 100;
        }));
    }

    #[test]
    fn csrf_introspection_and_no_change_leave_subscriptions_open() {
        assert!(!changed(|_| {}));
        assert!(!changed(|c| c.introspection = !c.introspection));
        assert!(!changed(|c| c.csrf.enabled = !c.csrf.enabled));
        assert!(!changed(
            |c| c.csrf.required_headers = vec!["x-custom".into()]
        ));
    }
}
