//! Rate limiting engines: per-field limits (from config and `@rateLimit`) checked by the
//! `rate_limit` stage, and the whole-request limit per client IP (`requests`).
//!
//! Field limits are GCRA ("generic cell rate algorithm": `limit` selections per `per`, bursts up
//! to `limit`), counted either in this process (`memory`, with `governor`) or in Redis
//! (`redis`, one atomic Lua script per check) so that router replicas share one quota.

pub(crate) mod directives;
pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod requests;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ahash::AHashMap;
use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap, HeaderName};

use crate::auth::Identity;
use crate::config::{FieldRateLimit, LimitKey, RateLimitBackend, RateLimitConfig};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allowed,
    /// Over the limit; one more selection is allowed after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

/// Where a limit was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleSource {
    Config,
    Directive,
}

/// A limit on one field coordinate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub(crate) coordinate: String,
    pub(crate) limit: FieldRateLimit,
    pub(crate) source: RuleSource,
}

/// Why the rate limiter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("`rate_limit.redis.url`: not set")]
    RedisUrlMissing,
    #[error("`rate_limit.redis.url`: `{url}`: {source}")]
    RedisUrl {
        url: String,
        source: ::redis::RedisError,
    },
}

enum Backend {
    Memory(memory::MemoryLimiter),
    Redis(Box<redis::RedisLimiter>),
}

/// Every field limit of one configuration and supergraph, and where they are counted.
pub(crate) struct RateLimits {
    rules: Vec<Rule>,
    by_coordinate: AHashMap<String, usize>,
    key_claim: String,
    backend: Backend,
}

impl RateLimits {
    /// Rules from `@rateLimit` (`directive_rules`), overridden by `config.fields`.
    pub(crate) fn new(
        config: &RateLimitConfig,
        directive_rules: Vec<(String, FieldRateLimit)>,
    ) -> Result<RateLimits, LimitError> {
        let mut rules: Vec<Rule> = Vec::new();
        for (coordinate, limit) in directive_rules {
            if !config.fields.contains_key(&coordinate) {
                rules.push(Rule {
                    coordinate,
                    limit,
                    source: RuleSource::Directive,
                });
            }
        }
        for (coordinate, limit) in &config.fields {
            rules.push(Rule {
                coordinate: coordinate.clone(),
                limit: limit.clone(),
                source: RuleSource::Config,
            });
        }
        let by_coordinate = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.coordinate.clone(), i))
            .collect();
        let backend = match config.backend {
            RateLimitBackend::Memory => Backend::Memory(memory::MemoryLimiter::new(
                rules.iter().map(|r| &r.limit),
                config.max_keys_per_limit,
            )),
            RateLimitBackend::Redis => {
                Backend::Redis(Box::new(redis::RedisLimiter::new(&config.redis)?))
            }
        };
        Ok(RateLimits {
            rules,
            by_coordinate,
            key_claim: config.key_claim.clone(),
            backend,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule on `Type.field`, if any.
    pub(crate) fn rule_for(&self, parent_type: &str, field: &str) -> Option<usize> {
        if self.rules.is_empty() {
            return None;
        }
        self.by_coordinate
            .get(format!("{parent_type}.{field}").as_str())
            .copied()
    }

    #[cfg(test)]
    pub(crate) fn rule(&self, index: usize) -> &Rule {
        &self.rules[index]
    }

    /// The key a selection is counted under: the rule's claim of the caller, else the client IP.
    pub(crate) fn key(
        &self,
        rule: usize,
        identity: Option<&Identity>,
        client_ip: Option<IpAddr>,
    ) -> String {
        let claim = match &self.rules[rule].limit.by {
            LimitKey::User => Some(self.key_claim.as_str()),
            LimitKey::Claim(claim) => Some(claim.as_str()),
            LimitKey::Ip => None,
        };
        if let Some(claim) = claim
            && let Some(value) = identity.and_then(|i| i.claim_text(claim))
        {
            return format!("{claim}={value}");
        }
        match client_ip {
            Some(ip) => format!("ip={ip}"),
            None => "ip=unknown".to_string(),
        }
    }

    /// Counts one selection of `rule`'s field for `key`.
    pub(crate) async fn check(&self, rule: usize, key: &str) -> Decision {
        match &self.backend {
            Backend::Memory(memory) => memory.check(rule, key),
            Backend::Redis(redis) => {
                let rule = &self.rules[rule];
                redis.check(&rule.coordinate, &rule.limit, key).await
            }
        }
    }

    /// Drops in-memory state of keys whose quota has fully recovered (called periodically).
    pub(crate) fn housekeeping(&self) {
        if let Backend::Memory(memory) = &self.backend {
            memory.retain_recent();
        }
    }
}

/// The client's IP: from `header` (first address of a comma-separated list) when configured
/// and present, else the TCP peer.
pub(crate) fn client_ip(
    headers: &HeaderMap,
    extensions: &Extensions,
    header: Option<&HeaderName>,
) -> Option<IpAddr> {
    if let Some(header) = header
        && let Some(ip) = headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return Some(ip);
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(fields: &[(&str, &str)], directives: &[(&str, &str)]) -> RateLimits {
        let mut config = RateLimitConfig::default();
        for (coordinate, rule) in fields {
            config
                .fields
                .insert(coordinate.to_string(), FieldRateLimit::parse(rule).unwrap());
        }
        let directives = directives
            .iter()
            .map(|(c, r)| (c.to_string(), FieldRateLimit::parse(r).unwrap()))
            .collect();
        RateLimits::new(&config, directives).unwrap()
    }

    #[test]
    fn config_overrides_the_directive() {
        let limits = limits(
            &[("Mutation.a", "5 per 1m")],
            &[("Mutation.a", "1 per 1m"), ("Query.b", "2 per 1s")],
        );
        let a = limits.rule_for("Mutation", "a").unwrap();
        assert_eq!(limits.rule(a).limit.limit, 5);
        assert_eq!(limits.rule(a).source, RuleSource::Config);
        let b = limits.rule_for("Query", "b").unwrap();
        assert_eq!(limits.rule(b).source, RuleSource::Directive);
        assert_eq!(limits.rule_for("Query", "c"), None);
    }

    #[test]
    fn keys_use_the_claim_then_the_ip() {
        let limits = limits(
            &[
                ("Q.user", "1 per 1s"),
                ("Q.ip", "1 per 1s per ip"),
                ("Q.org", "1 per 1s per org"),
            ],
            &[],
        );
        let identity = Identity::new(
            serde_json::json!({"sub": "u1", "org": 42})
                .as_object()
                .unwrap()
                .clone(),
        );
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let user = limits.rule_for("Q", "user").unwrap();
        assert_eq!(limits.key(user, Some(&identity), Some(ip)), "sub=u1");
        assert_eq!(limits.key(user, None, Some(ip)), "ip=10.0.0.1");
        let by_ip = limits.rule_for("Q", "ip").unwrap();
        assert_eq!(limits.key(by_ip, Some(&identity), Some(ip)), "ip=10.0.0.1");
        let org = limits.rule_for("Q", "org").unwrap();
        assert_eq!(limits.key(org, Some(&identity), None), "org=42");
    }

    #[test]
    fn client_ip_prefers_the_trusted_header() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
        let header = HeaderName::from_static("x-forwarded-for");
        assert_eq!(
            client_ip(&headers, &extensions, Some(&header)),
            Some("203.0.113.7".parse().unwrap())
        );
        // Not configured: the header is ignored (clients could choose their own key).
        assert_eq!(
            client_ip(&headers, &extensions, None),
            Some("127.0.0.1".parse().unwrap())
        );
    }
}
