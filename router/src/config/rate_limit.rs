//! `rate_limit`: per-field limits (config and `@rateLimit`), their backend, and the optional
//! whole-request limit per client IP.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Rate limiting settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Where counters live: `memory` (this process, GCRA) or `redis` (shared by every router
    /// replica that uses the same Redis and `redis.key_prefix`).
    pub backend: RateLimitBackend,
    /// The Redis backend.
    pub redis: RedisRateLimitConfig,
    /// JWT claim a limit is keyed by when it says `by: user` or nothing; requests without a
    /// token (or without that claim) are keyed by client IP.
    pub key_claim: String,
    /// Limits by field coordinate (`Mutation.createConsignment`), written `"10 per 1m"`,
    /// `"10 per 1m per user"`, `"5 per 30s per ip"`, `"100 per 1h per org"` (a claim) or as
    /// `{limit, per, by}`. They override a `@rateLimit` on the same field.
    pub fields: BTreeMap<String, FieldRateLimit>,
    /// Most distinct keys the memory backend tracks per limit; when full, keys whose quota has
    /// fully recovered are dropped first, then new keys are refused (fail closed).
    pub max_keys_per_limit: usize,
    /// Whole-request limit per client IP, applied before anything else is read. Off by default.
    pub requests: RequestRateLimit,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            backend: RateLimitBackend::Memory,
            redis: RedisRateLimitConfig::default(),
            key_claim: "sub".into(),
            fields: BTreeMap::new(),
            max_keys_per_limit: 100_000,
            requests: RequestRateLimit::default(),
        }
    }
}

/// Where rate-limit counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitBackend {
    /// In this process (each router instance counts on its own).
    Memory,
    /// In Redis (shared by every router instance).
    Redis,
}

/// The Redis backend of field rate limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisRateLimitConfig {
    /// `redis://host:port[/db]`, or a Redis Cluster: `redis+cluster://host1:port,host2:port,...`;
    /// required with `backend: redis`.
    pub url: Option<String>,
    /// Prefix of every key the router writes; routers sharing a quota use the same prefix.
    pub key_prefix: String,
    /// Time allowed for one Redis round trip before the `on_error` policy applies.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// What a limited field gets when Redis cannot answer: `open` lets it through, `closed`
    /// answers it `RATE_LIMITED`. Either way the failure is logged.
    pub on_error: FailurePolicy,
}

impl Default for RedisRateLimitConfig {
    fn default() -> Self {
        RedisRateLimitConfig {
            url: None,
            key_prefix: "shippy:ratelimit:".into(),
            timeout: Duration::from_millis(200),
            on_error: FailurePolicy::Open,
        }
    }
}

/// What happens when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Let the request through (availability first).
    Open,
    /// Refuse the limited selection (protection first).
    Closed,
}

/// Whole-request limit per client IP (`tower_governor`): `limit` requests per `per`, bursts up
/// to `limit`. Excess requests get 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestRateLimit {
    /// Turns the whole-request limit on. Restart-only.
    pub enabled: bool,
    /// Requests allowed per `per` (and the burst size).
    pub limit: u32,
    /// The window of `limit`.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

impl Default for RequestRateLimit {
    fn default() -> Self {
        RequestRateLimit {
            enabled: false,
            limit: 100,
            per: Duration::from_secs(1),
        }
    }
}

/// What a limit is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// `rate_limit.key_claim` (default `sub`), else client IP.
    User,
    /// The client IP.
    Ip,
    /// A named claim, else client IP.
    Claim(String),
}

/// Why a rate-limit rule cannot be used. The messages name the offending text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// The key is not `user`, `ip` or a claim name.
    #[error("`{0}` is not `user`, `ip` or a claim name")]
    Key(String),
    /// A rule must allow at least one selection.
    #[error("the limit must be at least 1")]
    ZeroLimit,
    /// A rule's period must be longer than zero.
    #[error("the period must be longer than zero")]
    ZeroPeriod,
    /// The text is not `<limit> per <duration> [per user|ip|<claim>]`.
    #[error("`{0}`: expected `<limit> per <duration> [per user|ip|<claim>]`")]
    Shape(String),
    /// The limit is not a whole number.
    #[error(
        "`{text}`: `{limit}` is not a whole number; expected `<limit> per <duration> [per user|ip|<claim>]`"
    )]
    Limit {
        /// The whole rule.
        text: String,
        /// Its limit part.
        limit: String,
    },
    /// The period is not a duration.
    #[error("`{text}`: `{per}` is not a duration ({reason})")]
    Period {
        /// The whole rule.
        text: String,
        /// Its period part.
        per: String,
        /// What the duration parser said.
        reason: humantime::DurationError,
    },
    /// Another problem, in the rule `text`.
    #[error("`{text}`: {source}")]
    In {
        /// The whole rule.
        text: String,
        /// The problem.
        source: Box<RuleError>,
    },
}

impl LimitKey {
    /// `user`, `ip`, or a claim name.
    pub fn parse(text: &str) -> Result<LimitKey, RuleError> {
        match text.trim() {
            "" | "user" => Ok(LimitKey::User),
            "ip" => Ok(LimitKey::Ip),
            claim
                if claim
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c)) =>
            {
                Ok(LimitKey::Claim(claim.to_string()))
            }
            other => Err(RuleError::Key(other.to_string())),
        }
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitKey::User => f.write_str("user"),
            LimitKey::Ip => f.write_str("ip"),
            LimitKey::Claim(claim) => f.write_str(claim),
        }
    }
}

/// `limit` selections per `per`, keyed by `by`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRateLimit {
    /// Selections allowed per `per`.
    pub limit: u32,
    /// The window of `limit`.
    pub per: Duration,
    /// Whose quota a selection counts against.
    pub by: LimitKey,
}

impl FieldRateLimit {
    /// Checks the numbers a rule needs (a positive limit and period).
    pub fn new(limit: u32, per: Duration, by: LimitKey) -> Result<FieldRateLimit, RuleError> {
        if limit == 0 {
            return Err(RuleError::ZeroLimit);
        }
        if per.is_zero() {
            return Err(RuleError::ZeroPeriod);
        }
        Ok(FieldRateLimit { limit, per, by })
    }

    /// `"10 per 1m"`, `"10 per 1m per user"`, `"10/1m"` is not accepted: one clear form.
    pub fn parse(text: &str) -> Result<FieldRateLimit, RuleError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (limit, per, by) = match words.as_slice() {
            [limit, "per", per] => (limit, per, "user"),
            [limit, "per", per, "per", by] => (limit, per, *by),
            _ => return Err(RuleError::Shape(text.to_string())),
        };
        let limit: u32 = limit.parse().map_err(|_| RuleError::Limit {
            text: text.to_string(),
            limit: limit.to_string(),
        })?;
        let per = humantime::parse_duration(per).map_err(|reason| RuleError::Period {
            text: text.to_string(),
            per: per.to_string(),
            reason,
        })?;
        let within = |source| RuleError::In {
            text: text.to_string(),
            source: Box::new(source),
        };
        let by = LimitKey::parse(by).map_err(within)?;
        FieldRateLimit::new(limit, per, by).map_err(within)
    }
}

impl fmt::Display for FieldRateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} per {} per {}",
            self.limit,
            humantime::format_duration(self.per),
            self.by
        )
    }
}

impl Serialize for FieldRateLimit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FieldRateLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            limit: u32,
            #[serde(with = "humantime_serde")]
            per: Duration,
            #[serde(default)]
            by: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Short(String),
            Long(Long),
        }
        let parsed = match Form::deserialize(deserializer)? {
            Form::Short(text) => FieldRateLimit::parse(&text),
            Form::Long(long) => LimitKey::parse(long.by.as_deref().unwrap_or("user"))
                .and_then(|by| FieldRateLimit::new(long.limit, long.per, by)),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_short_form() {
        let rule = FieldRateLimit::parse("10 per 1m per user").unwrap();
        assert_eq!(rule.limit, 10);
        assert_eq!(rule.per, Duration::from_secs(60));
        assert_eq!(rule.by, LimitKey::User);
        assert_eq!(
            FieldRateLimit::parse("3 per 2s").unwrap().by,
            LimitKey::User
        );
        assert_eq!(
            FieldRateLimit::parse("3 per 2s per ip").unwrap().by,
            LimitKey::Ip
        );
        assert_eq!(
            FieldRateLimit::parse("3 per 2s per org_id").unwrap().by,
            LimitKey::Claim("org_id".into())
        );
        let round_trip = FieldRateLimit::parse(&rule.to_string()).unwrap();
        assert_eq!(round_trip, rule);
    }

    #[test]
    fn rejects_malformed_rules() {
        for text in [
            "10",
            "ten per 1m",
            "10 per soon",
            "0 per 1m",
            "10 per 0s",
            "10 every 1m",
            "10 per 1m per",
            "10 per 1m per a b",
            "10 per 1m per {x}",
        ] {
            assert!(FieldRateLimit::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn deserializes_both_forms() {
        let rules: BTreeMap<String, FieldRateLimit> = serde_json::from_value(serde_json::json!({
            "Mutation.a": "2 per 1s",
            "Mutation.b": {"limit": 3, "per": "1m", "by": "ip"},
        }))
        .unwrap();
        assert_eq!(rules["Mutation.a"].limit, 2);
        assert_eq!(rules["Mutation.b"].by, LimitKey::Ip);
        let err =
            serde_json::from_value::<FieldRateLimit>(serde_json::json!({"limit": 0, "per": "1m"}))
                .unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }
}
