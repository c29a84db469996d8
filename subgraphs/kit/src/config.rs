//! Typed settings a subgraph process takes, shared by every subgraph.
//!
//! Each struct rejects unknown keys, fills missing ones with the defaults documented on each field, and reads
//! durations in human form (`30s`, `5m`, `1h`). The `shippy` command layers them: defaults, then an optional
//! config file, then environment variables, then flags.

use std::{fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};
pub use shippy_security::login_limits::LoginLimitConfig;
use shippy_security::{connections::ConnectionLimits, websocket::WebSocketLimits};

/// HTTP server limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Largest accepted request body, in bytes; larger requests get `413 Payload Too Large`. Default 1 MiB.
    pub body_limit: usize,
    /// Longest time one HTTP request may take; slower ones get `408 Request Timeout`. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// After a shutdown signal, how long in-flight requests may finish before they are dropped. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Deepest GraphQL selection accepted. Default 16.
    pub max_query_depth: usize,
    /// Largest GraphQL query complexity (roughly: number of fields selected) accepted. Default 1000.
    pub max_query_complexity: usize,
    /// Connection caps and header, body and idle timeouts (`[server.connections]`); the router's
    /// `http.connections` has the same keys and defaults.
    pub connections: ConnectionLimits,
    /// Limits of GraphQL WebSocket connections (`[server.websocket]`): the router's subscription
    /// limits, with the same keys and defaults.
    pub websocket: WebSocketLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            max_query_depth: 16,
            max_query_complexity: 1000,
            connections: ConnectionLimits::default(),
            websocket: WebSocketLimits::default(),
        }
    }
}

/// The JWT signature algorithms we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (the default).
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256; verifiers need the public key, the issuer the private key.
    RS256,
    /// ECDSA P-256 with SHA-256; verifiers need the public key, the issuer the private key.
    ES256,
}

/// A secret string that never shows up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// How tokens are issued and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Signature algorithm. Default `HS256`.
    pub algorithm: JwtAlgorithm,
    /// HS256 shared secret (at least 32 bytes). Required with HS256: a subgraph refuses to start without
    /// it (`shippy up` generates one in its data directory).
    pub secret: Option<Secret>,
    /// PEM public key file, required for RS256/ES256 verification.
    pub public_key_file: Option<PathBuf>,
    /// PEM private key file (PKCS#8), required by the user subgraph to issue RS256/ES256 tokens.
    pub private_key_file: Option<PathBuf>,
    /// The `iss` claim tokens carry and verifiers require. Default `shippy`.
    pub issuer: String,
    /// The `aud` claim tokens carry and verifiers require. Default `shippy`.
    pub audience: String,
    /// Lifetime of issued tokens (`exp - iat`). Default `1h`.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Clock skew tolerated when checking `exp` and `nbf` alike. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// The user subgraph's login limits per account and per client IP (`[auth.login_limits]`).
    /// Default 5 failures per account per 15 minutes, 20 attempts per IP per minute.
    pub login_limits: LoginLimitConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::HS256,
            secret: None,
            public_key_file: None,
            private_key_file: None,
            issuer: "shippy".into(),
            audience: "shippy".into(),
            token_ttl: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
            login_limits: LoginLimitConfig::default(),
        }
    }
}

/// Who may call the subgraph's GraphQL endpoint (`POST`/`GET /graphql` and its WebSocket upgrade):
/// by default only a router, proved by its signature or a shared secret (see [`crate::access`]).
/// `/health`, `/ready` and `/metrics` stay open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Serve requests without a router credential, for development (GraphiQL on the subgraph). Every
    /// protection of the router (rate limits, introspection switch, operation limits) is bypassed, so a
    /// warning is logged at start. Default `false`.
    pub open: bool,
    /// The key the router signs its requests with (`shippy-router-signature`; the router's
    /// `subgraph_signing.key`), 32+ bytes. `shippy up` generates one. Default: none.
    pub router_key: Option<Secret>,
    /// A second accepted router key, while rotating keys: the old one until every router signs with the
    /// new one. Default: none.
    pub router_key_previous: Option<Secret>,
    /// A secret accepted in the `shippy-subgraph-secret` header, 32+ bytes: the credential a third-party
    /// router sends through its header rules. Default: none.
    pub shared_secret: Option<Secret>,
    /// A second accepted shared secret, while rotating. Default: none.
    pub shared_secret_previous: Option<Secret>,
    /// How far a signature's timestamp may be from this subgraph's clock, either way: the clock skew
    /// tolerated between hosts, and how long a captured signed request could be replayed. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub max_skew: Duration,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            open: false,
            router_key: None,
            router_key_previous: None,
            shared_secret: None,
            shared_secret_previous: None,
            max_skew: shippy_security::signing::DEFAULT_MAX_SKEW,
        }
    }
}

/// How the outbox relay moves recorded events to the event bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Most outbox rows published per round. Default 100.
    pub batch_size: u64,
    /// How often the relay looks for pending rows when nobody woke it (rows written by another process).
    /// Default `1s`.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// First wait after a failed publish; doubles on each further failure. Default `200ms`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest wait between retries. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// While waiting after a failed round, how often the relay probes what failed (the bus with `PING`, the
    /// database with a ping); the first probe that succeeds ends the wait, so publishing resumes within this
    /// long of Redis or the database answering again. Default `250ms`.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// How long published rows stay in the outbox. Within this window, a Redis that comes back empty (it
    /// restarted without persistence) gets them published again, so no event is lost; older rows are
    /// deleted. Default `24h`.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How long a relay holds the rows it claimed for one round (it publishes them outside any
    /// transaction); a relay that dies mid-batch leaves them to another replica after this. Must exceed
    /// the time to publish a batch. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            probe_interval: Duration::from_millis(250),
            retention: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(60),
        }
    }
}

/// The consignment assignment saga (`[assignment]`): how long a consignment may wait for a vessel's answer
/// before its request is sent again, and before it is given up as `UNASSIGNABLE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssignmentConfig {
    /// A consignment `PENDING` this long since its request was last sent gets the request sent again
    /// (the vessel subgraph answers a repeated request without booking twice). Must be greater than zero.
    /// Default `30s`.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// A consignment still `PENDING` this long after it was created (or retried) becomes `UNASSIGNABLE`,
    /// and its owner is told that no vessel answered in time. Must exceed `retry_after`. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
}

impl Default for AssignmentConfig {
    fn default() -> Self {
        Self {
            retry_after: Duration::from_secs(30),
            deadline: Duration::from_secs(600),
        }
    }
}

/// A setting out of its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct InvalidSetting {
    /// The setting, as written in a config file (`assignment.deadline`).
    pub key: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

impl AssignmentConfig {
    /// Checks `deadline > retry_after > 0`.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.retry_after.is_zero() {
            return Err(InvalidSetting {
                key: "assignment.retry_after",
                problem: "must be greater than zero".into(),
            });
        }
        if self.deadline <= self.retry_after {
            return Err(InvalidSetting {
                key: "assignment.deadline",
                problem: format!(
                    "must be longer than assignment.retry_after ({:?})",
                    self.retry_after
                ),
            });
        }
        Ok(())
    }
}

/// The event bus: Redis stream names and bounds, and how group consumers pace themselves. Used with Redis
/// (`REDIS_URL`) and, where it applies, by the in-process bus of `shippy up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Put before every Redis key Shippy uses: stream `log` is the key `<prefix>log`, its dead letters
    /// `{<prefix>log}:dead` (the braces keep them on the stream's Redis Cluster slot). Lets several
    /// deployments (or tests) share one Redis. Default `shippy:`.
    pub stream_prefix: String,
    /// Streams are trimmed to about this many entries (`XADD ... MAXLEN ~`); it bounds Redis memory and how
    /// far a stopped consumer group may fall behind before it loses the oldest entries. Default 100000.
    pub max_len: usize,
    /// How long Redis remembers that an event was published (one small key per event), so that a publish
    /// retried after a lost reply does not add the event twice. `0s` turns it off (consumers still ignore
    /// duplicates). Default `1h`.
    #[serde(with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// Longest wait for one Redis command (blocking reads wait `consumer.block` on top). Default `5s`.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Replicas that must hold a published event before the publish counts (Redis `WAIT`), so that a
    /// primary failing over right after a publish cannot lose it: until enough replicas confirm, the
    /// outbox row stays unsent and is published again (the publish marker keeps it from being added
    /// twice). Unset: 1 on a Redis Cluster (`redis+cluster://`), 0 on a single server. Set 0 on a cluster
    /// without replicas.
    pub publish_replicas: Option<usize>,
    /// Most events a process buffers for its live subscriptions (GraphQL subscriptions) per stream; a
    /// subscriber that falls further behind is told it lagged. Also the in-process bus's bound per stream.
    /// Default 1024.
    pub live_capacity: usize,
    /// Longest a command waits for an event another subgraph recorded a moment ago to reach this one's
    /// projection: `createVessel` by a user who has just registered waits this long for the vessel
    /// subgraph to learn of the registration, then is refused with `UNKNOWN_USER`. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub projection_wait: Duration,
    /// Group consumers (vessel assignment, consignment updates, the activity log).
    pub consumer: ConsumerConfig,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            stream_prefix: "shippy:".into(),
            max_len: 100_000,
            dedupe_window: Duration::from_secs(3600),
            command_timeout: Duration::from_secs(5),
            publish_replicas: None,
            live_capacity: 1024,
            projection_wait: Duration::from_secs(5),
            consumer: ConsumerConfig::default(),
        }
    }
}

/// How a group consumer reads, retries and gives up on a stream entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// This process's name inside each consumer group; must differ between replicas. Default
    /// `<hostname>-<pid>`.
    pub name: Option<String>,
    /// Most entries read at once. Default 128. A handler that batches applies a whole read in one
    /// transaction, so a bigger read means fewer commits per event: in the event pipeline benchmark
    /// (bench/README.md) 128 assigned 1.6-1.9x the consignments per second of 32 under load. Reads
    /// only return what is there, so a quiet stream is not delayed by it; the cost is longer
    /// transactions, which between replicas booking the same vessels means more deadlocks (each read
    /// that loses one is redone one event at a time).
    pub batch_size: usize,
    /// How long one read waits for new entries before looking again (and for idle entries to take over).
    /// Default `2s`.
    #[serde(with = "humantime_serde")]
    pub block: Duration,
    /// An entry delivered to a consumer that has not acknowledged it for this long (it crashed, or its
    /// handler failed) is taken over by another consumer of the group (`XAUTOCLAIM`). Default `30s`.
    #[serde(with = "humantime_serde")]
    pub claim_idle: Duration,
    /// Deliveries after which an entry that still fails is moved to the dead-letter stream
    /// (`{<prefix><stream>}:dead`) instead of being tried again. Default 10.
    pub max_deliveries: u64,
    /// First pause after the bus or a handler failed; doubles on each further failure. Default `200ms`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest pause between retries. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// While pausing after a bus failure, how often the consumer probes the bus (`PING`); the first probe
    /// that succeeds ends the pause, so work resumes within this long of Redis answering again. Default
    /// `250ms`.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// Consumers of the group idle for longer than this and holding no pending entries (replicas that
    /// stopped or restarted under a new name) are removed from the group. `0s` keeps them. Default `1h`.
    #[serde(with = "humantime_serde")]
    pub prune_idle: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            name: None,
            batch_size: 128,
            block: Duration::from_secs(2),
            claim_idle: Duration::from_secs(30),
            max_deliveries: 10,
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            probe_interval: Duration::from_millis(250),
            prune_idle: Duration::from_secs(3600),
        }
    }
}

impl ConsumerConfig {
    /// The configured consumer name, or `<hostname>-<pid>`: unique per process on a host, and stable
    /// enough in logs to tell replicas apart.
    pub fn resolved_name(&self) -> String {
        if let Some(name) = self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            return name.to_owned();
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "shippy".into());
        format!("{host}-{}", std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_human_readable_and_unknown_keys_rejected() {
        let cfg: ServerConfig =
            serde_json::from_value(serde_json::json!({"request_timeout": "2m", "body_limit": 10}))
                .unwrap();
        assert_eq!(cfg.request_timeout, Duration::from_secs(120));
        assert_eq!(cfg.body_limit, 10);
        assert_eq!(cfg.shutdown_grace, ServerConfig::default().shutdown_grace);

        let err =
            serde_json::from_value::<ServerConfig>(serde_json::json!({"request_timeot": "2m"}))
                .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = serde_json::from_value::<AuthConfig>(serde_json::json!({"token_ttl": "soon"}))
            .unwrap_err();
        assert!(
            err.to_string().contains("soon") || err.to_string().contains("time unit"),
            "{err}"
        );
    }

    #[test]
    fn events_defaults_and_names() {
        let cfg: EventsConfig = serde_json::from_value(
            serde_json::json!({"stream_prefix": "t1:", "consumer": {"claim_idle": "250ms"}}),
        )
        .unwrap();
        assert_eq!(cfg.stream_prefix, "t1:");
        assert_eq!(cfg.consumer.claim_idle, Duration::from_millis(250));
        assert_eq!(cfg.max_len, EventsConfig::default().max_len);
        assert_eq!(cfg.projection_wait, Duration::from_secs(5));
        let cfg: EventsConfig =
            serde_json::from_value(serde_json::json!({"projection_wait": "250ms"})).unwrap();
        assert_eq!(cfg.projection_wait, Duration::from_millis(250));
        assert!(
            serde_json::from_value::<EventsConfig>(serde_json::json!({"consumer": {"blok": "1s"}}))
                .is_err()
        );
        let named = ConsumerConfig {
            name: Some(" replica-a ".into()),
            ..ConsumerConfig::default()
        };
        assert_eq!(named.resolved_name(), "replica-a");
        let default = ConsumerConfig::default().resolved_name();
        assert!(
            default.ends_with(&format!("-{}", std::process::id())),
            "{default}"
        );
    }

    #[test]
    fn recovery_settings_have_their_documented_defaults_and_can_be_set() {
        let consumer = ConsumerConfig::default();
        assert_eq!(consumer.probe_interval, Duration::from_millis(250));
        assert_eq!(consumer.prune_idle, Duration::from_secs(3600));
        let relay = RelayConfig::default();
        assert_eq!(relay.probe_interval, Duration::from_millis(250));
        assert_eq!(relay.retention, Duration::from_secs(24 * 3600));
        assert_eq!(relay.lease, Duration::from_secs(60));

        let consumer: ConsumerConfig = serde_json::from_value(
            serde_json::json!({"probe_interval": "100ms", "prune_idle": "0s"}),
        )
        .unwrap();
        assert_eq!(consumer.probe_interval, Duration::from_millis(100));
        assert!(consumer.prune_idle.is_zero());
        let relay: RelayConfig =
            serde_json::from_value(serde_json::json!({"probe_interval": "1s", "retention": "7d"}))
                .unwrap();
        assert_eq!(relay.probe_interval, Duration::from_secs(1));
        assert_eq!(relay.retention, Duration::from_secs(7 * 24 * 3600));
    }

    #[test]
    fn assignment_deadline_must_exceed_retry_after() {
        let cfg: AssignmentConfig =
            serde_json::from_value(serde_json::json!({"retry_after": "5s", "deadline": "1m"}))
                .unwrap();
        assert_eq!(cfg.retry_after, Duration::from_secs(5));
        assert_eq!(cfg.deadline, Duration::from_secs(60));
        assert!(cfg.validate().is_ok());
        assert!(AssignmentConfig::default().validate().is_ok());
        let zero = AssignmentConfig {
            retry_after: Duration::ZERO,
            ..AssignmentConfig::default()
        };
        assert_eq!(zero.validate().unwrap_err().key, "assignment.retry_after");
        let short = AssignmentConfig {
            retry_after: Duration::from_secs(60),
            deadline: Duration::from_secs(60),
        };
        let err = short.validate().unwrap_err();
        assert_eq!(err.key, "assignment.deadline");
        assert_eq!(
            err.to_string(),
            "assignment.deadline: must be longer than assignment.retry_after (60s)"
        );
        assert!(
            serde_json::from_value::<AssignmentConfig>(serde_json::json!({"retry": "5s"})).is_err()
        );
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let cfg = AuthConfig {
            secret: Some(Secret::new("hunter2-hunter2")),
            ..AuthConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let access = AccessConfig {
            router_key: Some(Secret::new("hunter2-hunter2")),
            shared_secret_previous: Some(Secret::new("hunter3-hunter3")),
            ..AccessConfig::default()
        };
        let text = format!("{access:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("hunter3"),
            "{text}"
        );
    }
}
