//! Router configuration: defaults, then an optional YAML or TOML file, then `SHIPPY_ROUTER__*`
//! environment variables (`SHIPPY_ROUTER__HTTP__MAX_BODY_SIZE=1000000`).
//!
//! Unknown keys are rejected so a typo never silently falls back to a default. Durations are
//! human-readable (`30s`, `1m`). [`RouterConfig::load`] also checks the values (a limit of 0, a
//! malformed rate-limit rule, a breaker percentage above 100) so mistakes fail at start-up or
//! reload, never at the first request. The sections of issue 6 live in submodules: `auth`,
//! `rate_limit` and `resilience`.

mod auth;
mod rate_limit;
mod resilience;
mod subscriptions;

pub use auth::{AuthConfig, JwtConfig, PublicKeyAlgorithm, RevocationConfig, Secret};
pub use rate_limit::{
    FailurePolicy, FieldRateLimit, LimitKey, RateLimitBackend, RateLimitConfig,
    RedisRateLimitConfig, RequestRateLimit,
};
pub use resilience::{CircuitBreakerConfig, HealthCheckConfig, LoadBalancing, RetryConfig};
pub use subscriptions::{SlowClientPolicy, SubscriptionsConfig};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml, Yaml};
use serde::{Deserialize, Serialize};

/// Everything the router can be configured with. `RouterConfig::default()` is a working setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// The client-facing HTTP server.
    pub http: HttpConfig,
    /// Cross-site request forgery prevention.
    pub csrf: CsrfConfig,
    /// Limits on incoming operations.
    pub limits: LimitsConfig,
    /// Query planning and its caches.
    pub query_planning: QueryPlanningConfig,
    /// Answer `__schema` / `__type` introspection from the API schema. `__typename` always works.
    /// When off, validation errors also stop suggesting field and argument names.
    pub introspection: bool,
    /// Token verification and `@requiresScopes`.
    pub auth: AuthConfig,
    /// Per-field and whole-request rate limits.
    pub rate_limit: RateLimitConfig,
    /// Settings applied to every subgraph unless overridden under `subgraphs`.
    pub subgraph_defaults: SubgraphDefaults,
    /// Per-subgraph overrides, keyed by the subgraph name in the supergraph's `join__Graph`.
    pub subgraphs: BTreeMap<String, SubgraphOverride>,
    /// Watching the config file for changes (`shippy router --config`).
    pub reload: ReloadConfig,
    /// Subscriptions over WebSocket and SSE.
    pub subscriptions: SubscriptionsConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            http: HttpConfig::default(),
            csrf: CsrfConfig::default(),
            limits: LimitsConfig::default(),
            query_planning: QueryPlanningConfig::default(),
            introspection: true,
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            subgraph_defaults: SubgraphDefaults::default(),
            subgraphs: BTreeMap::new(),
            reload: ReloadConfig::default(),
            subscriptions: SubscriptionsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on (the `--listen` flag overrides it).
    pub listen: SocketAddr,
    /// Path of the GraphQL endpoint (GET and POST).
    pub graphql_path: String,
    /// Path of the health check, which answers 200 once the router serves.
    pub health_path: String,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_size: usize,
    /// How long shutdown waits for in-flight requests before closing connections.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Identical queries in flight at the same time (same text, operation name, variables and
    /// forwarded headers, so the same identity) share one execution and one response.
    pub dedupe: bool,
    /// Header holding the client IP as set by a trusted proxy (e.g. `x-forwarded-for`, whose
    /// first address is used). Unset: the TCP peer address. Only set it behind a proxy that
    /// overwrites the header, or clients choose their own rate-limit key.
    pub client_ip_header: Option<String>,
    /// Serve the Shippy web UI at `/` (and its files under `/assets/`). Turn it off when the
    /// router fronts subgraphs other than Shippy's.
    pub ui: bool,
    /// Serve the GraphiQL playground (assets embedded, no CDN) on `GET <graphql_path>` to browsers
    /// (`Accept: text/html`); other GET requests are GraphQL queries as usual.
    pub playground: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            graphql_path: "/graphql".to_string(),
            health_path: "/health".to_string(),
            max_body_size: 2 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(10),
            dedupe: true,
            client_ip_header: None,
            ui: true,
            playground: true,
        }
    }
}

/// Rejects requests a browser could send cross-site without a CORS preflight: a GET (or a POST
/// with a "simple" content type) must carry one of `required_headers`. POSTs with
/// `Content-Type: application/json` always pass (they need a preflight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsrfConfig {
    pub enabled: bool,
    /// Any one of these headers (with any value) proves a preflight.
    pub required_headers: Vec<String>,
}

impl Default for CsrfConfig {
    fn default() -> Self {
        CsrfConfig {
            enabled: true,
            required_headers: vec![
                "apollo-require-preflight".into(),
                "x-apollo-operation-name".into(),
            ],
        }
    }
}

/// Limits on an operation's shape, checked right after parsing. Each violation is a 400 with
/// `extensions.code` naming the limit (`MAX_DEPTH_EXCEEDED`...) and `extensions.limit` its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most lexical tokens a query may have before parsing stops (bounds parser work).
    pub max_tokens: usize,
    /// Deepest field nesting (`{ a { b } }` is 2), through fragments.
    pub max_depth: usize,
    /// Most aliased fields in the operation, fragments included.
    pub max_aliases: usize,
    /// Most fields selected at the root of the operation, fragments included.
    pub max_root_fields: usize,
    /// Most directives on one field, fragment spread or inline fragment.
    pub max_directives_per_field: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_tokens: 15_000,
            max_depth: 64,
            max_aliases: 256,
            max_root_fields: 128,
            max_directives_per_field: 16,
        }
    }
}

/// Hot reload of the config file. Sections that can change safely while serving (`limits`,
/// `csrf`, `introspection`, `auth`, `rate_limit`) are applied at once; changes elsewhere are
/// logged as needing a restart and ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch the file given with `--config`.
    pub watch: bool,
    /// How often the file is checked for changes.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            interval: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryPlanningConfig {
    /// Plans kept, keyed by normalized operation and operation name.
    pub cache_size: usize,
    /// Prepared operations kept, keyed by query text and operation name (skips parse, validate,
    /// normalize and the plan lookup for repeated queries; rejected queries are cached too).
    pub operation_cache_size: usize,
    /// Planning gives up after this long and the request gets `QUERY_PLANNING_FAILED`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for QueryPlanningConfig {
    fn default() -> Self {
        QueryPlanningConfig {
            cache_size: 1024,
            operation_cache_size: 2048,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubgraphDefaults {
    /// Time allowed for one subgraph request (connect, send, full response).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Share one upstream call between identical in-flight queries (same URL, body and forwarded
    /// headers). Mutations are never deduplicated.
    pub dedupe: bool,
    /// Most concurrent requests (HTTP/1.1 connections) to one subgraph; more wait for a free slot
    /// within the request timeout.
    pub max_connections: usize,
    /// Idle keep-alive connections are closed after this long.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Largest subgraph response body accepted, in bytes.
    pub max_response_size: usize,
    /// Client request headers copied to subgraph requests (case-insensitive). The
    /// `authorization` header is how subgraphs verify the caller themselves.
    pub forward_headers: Vec<String>,
    /// Send the verified JWT claims to subgraphs as `extensions.claims` of each request, so they
    /// can read them without parsing the token (they still verify the forwarded token).
    pub forward_claims: bool,
    pub circuit_breaker: CircuitBreakerConfig,
    pub retry: RetryConfig,
    /// With several URLs: `round_robin` or `least_outstanding`.
    pub load_balancing: LoadBalancing,
    pub health_check: HealthCheckConfig,
}

impl Default for SubgraphDefaults {
    fn default() -> Self {
        SubgraphDefaults {
            timeout: Duration::from_secs(30),
            dedupe: true,
            max_connections: 256,
            pool_idle_timeout: Duration::from_secs(90),
            max_response_size: 64 * 1024 * 1024,
            forward_headers: vec![
                "authorization".into(),
                "traceparent".into(),
                "tracestate".into(),
            ],
            forward_claims: true,
            circuit_breaker: CircuitBreakerConfig::default(),
            retry: RetryConfig::default(),
            load_balancing: LoadBalancing::RoundRobin,
            health_check: HealthCheckConfig::default(),
        }
    }
}

/// Overrides for one subgraph; unset fields use `subgraph_defaults`. A section given here
/// (`circuit_breaker`, `retry`, `health_check`) replaces the default section as a whole; its
/// unset keys take the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubgraphOverride {
    /// Replaces the URL from the supergraph's `join__graph(url:)`.
    pub url: Option<String>,
    /// Several replicas of the subgraph, load-balanced; replaces `url` and the supergraph's URL.
    pub urls: Vec<String>,
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    pub dedupe: Option<bool>,
    pub max_connections: Option<usize>,
    pub forward_claims: Option<bool>,
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    pub retry: Option<RetryConfig>,
    pub load_balancing: Option<LoadBalancing>,
    pub health_check: Option<HealthCheckConfig>,
}

/// Settings of one subgraph after applying overrides to the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveSubgraphConfig {
    pub timeout: Duration,
    pub dedupe: bool,
    pub max_connections: usize,
    pub forward_claims: bool,
    pub circuit_breaker: CircuitBreakerConfig,
    pub retry: RetryConfig,
    pub load_balancing: LoadBalancing,
    pub health_check: HealthCheckConfig,
}

impl RouterConfig {
    /// Loads defaults, then `file` (YAML or TOML by extension), then `SHIPPY_ROUTER__*` variables.
    pub fn load(file: Option<&Path>) -> Result<RouterConfig, Box<figment::Error>> {
        RouterConfig::load_with_prefix(file, "SHIPPY_ROUTER__")
    }

    fn load_with_prefix(
        file: Option<&Path>,
        env_prefix: &str,
    ) -> Result<RouterConfig, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(RouterConfig::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "config file {} does not exist",
                    file.display()
                ))));
            }
            figment = match file.extension().and_then(|e| e.to_str()) {
                Some("toml") => figment.merge(Toml::file_exact(file)),
                _ => figment.merge(Yaml::file_exact(file)),
            };
        }
        let config: RouterConfig = figment
            .merge(Env::prefixed(env_prefix).split("__"))
            .extract()
            .map_err(Box::new)?;
        config
            .check()
            .map_err(|e| Box::new(figment::Error::from(e)))?;
        Ok(config)
    }

    /// Checks values serde cannot: every problem found, one per line.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let limits = &self.limits;
        for (name, value) in [
            ("limits.max_tokens", limits.max_tokens),
            ("limits.max_depth", limits.max_depth),
            ("limits.max_aliases", limits.max_aliases),
            ("limits.max_root_fields", limits.max_root_fields),
            (
                "limits.max_directives_per_field",
                limits.max_directives_per_field,
            ),
            ("http.max_body_size", self.http.max_body_size),
        ] {
            if value == 0 {
                problems.push(format!("`{name}` must be at least 1"));
            }
        }
        if self.csrf.enabled && self.csrf.required_headers.is_empty() {
            problems.push("`csrf.required_headers` is empty while `csrf.enabled` is true".into());
        }
        let jwt = &self.auth.jwt;
        if let Some(secret) = &jwt.secret
            && secret.expose().len() < 32
        {
            problems.push("`auth.jwt.secret` must be at least 32 bytes".into());
        }
        if let Some(url) = &jwt.jwks_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!("`auth.jwt.jwks_url` `{url}` is not an http(s) URL"));
        }
        if self.rate_limit.backend == RateLimitBackend::Redis && self.rate_limit.redis.url.is_none()
        {
            problems.push(
                "`rate_limit.backend` is `redis` but `rate_limit.redis.url` is not set".into(),
            );
        }
        for coordinate in self.rate_limit.fields.keys() {
            let valid = coordinate
                .split_once('.')
                .is_some_and(|(t, f)| is_name(t) && is_name(f));
            if !valid {
                problems.push(format!(
                    "`rate_limit.fields.{coordinate}`: a field coordinate is `Type.field`"
                ));
            }
        }
        let requests = &self.rate_limit.requests;
        if requests.enabled && (requests.limit == 0 || requests.per.is_zero()) {
            problems.push("`rate_limit.requests` needs a positive `limit` and `per`".into());
        }
        fn check_resilience(
            problems: &mut Vec<String>,
            at: &str,
            breaker: &CircuitBreakerConfig,
            retry: &RetryConfig,
            health: &HealthCheckConfig,
        ) {
            if !(1..=100).contains(&breaker.error_percent_threshold) {
                problems.push(format!(
                    "`{at}.circuit_breaker.error_percent_threshold` must be 1 to 100"
                ));
            }
            if breaker.max_concurrent_requests == 0 || breaker.window.is_zero() {
                problems.push(format!(
                    "`{at}.circuit_breaker` needs a positive `max_concurrent_requests` and `window`"
                ));
            }
            if retry.max_attempts == 0 {
                problems.push(format!("`{at}.retry.max_attempts` must be at least 1"));
            }
            if !(0.0..=10.0).contains(&retry.budget_ratio) || retry.budget_window.is_zero() {
                problems.push(format!(
                    "`{at}.retry` needs `budget_ratio` between 0 and 10 and a positive `budget_window`"
                ));
            }
            if health.interval.is_zero()
                || health.unhealthy_threshold == 0
                || health.healthy_threshold == 0
            {
                problems.push(format!(
                    "`{at}.health_check` needs a positive `interval` and thresholds"
                ));
            }
        }
        let d = &self.subgraph_defaults;
        check_resilience(
            &mut problems,
            "subgraph_defaults",
            &d.circuit_breaker,
            &d.retry,
            &d.health_check,
        );
        for (name, o) in &self.subgraphs {
            if o.url.is_some() && !o.urls.is_empty() {
                problems.push(format!("`subgraphs.{name}`: set `url` or `urls`, not both"));
            }
            let e = self.subgraph(name);
            check_resilience(
                &mut problems,
                &format!("subgraphs.{name}"),
                &e.circuit_breaker,
                &e.retry,
                &e.health_check,
            );
        }
        self.subscriptions.check(&mut problems);
        if self.reload.interval.is_zero() {
            problems.push("`reload.interval` must be longer than zero".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    pub fn subgraph(&self, name: &str) -> EffectiveSubgraphConfig {
        let o = self.subgraphs.get(name).cloned().unwrap_or_default();
        let d = &self.subgraph_defaults;
        EffectiveSubgraphConfig {
            timeout: o.timeout.unwrap_or(d.timeout),
            dedupe: o.dedupe.unwrap_or(d.dedupe),
            max_connections: o.max_connections.unwrap_or(d.max_connections).max(1),
            forward_claims: o.forward_claims.unwrap_or(d.forward_claims),
            circuit_breaker: o
                .circuit_breaker
                .unwrap_or_else(|| d.circuit_breaker.clone()),
            retry: o.retry.unwrap_or_else(|| d.retry.clone()),
            load_balancing: o.load_balancing.unwrap_or(d.load_balancing),
            health_check: o.health_check.unwrap_or_else(|| d.health_check.clone()),
        }
    }
}

/// A GraphQL name: `[_A-Za-z][_0-9A-Za-z]*`.
fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_temp(name: &str, contents: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "shippy-router-config-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn loads_yaml_with_human_durations_and_overrides() {
        let path = write_temp(
            "router.yaml",
            "subgraph_defaults:\n  timeout: 5s\nsubgraphs:\n  reviews:\n    dedupe: false\n    timeout: 250ms\n    url: http://127.0.0.1:9/graphql\n",
        );
        let config = RouterConfig::load(Some(&path)).unwrap();
        assert_eq!(config.subgraph_defaults.timeout, Duration::from_secs(5));
        let reviews = config.subgraph("reviews");
        assert_eq!(reviews.timeout, Duration::from_millis(250));
        assert!(!reviews.dedupe);
        let other = config.subgraph("accounts");
        assert_eq!(other.timeout, Duration::from_secs(5));
        assert!(other.dedupe);
    }

    #[test]
    fn loads_toml() {
        let path = write_temp(
            "router.toml",
            "introspection = false\n[http]\nmax_body_size = 1000\n",
        );
        let config = RouterConfig::load(Some(&path)).unwrap();
        assert!(!config.introspection);
        assert_eq!(config.http.max_body_size, 1000);
    }

    #[test]
    fn rejects_unknown_keys() {
        let path = write_temp("typo.yaml", "http:\n  max_body_sise: 10\n");
        let err = RouterConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("max_body_sise"), "{err}");
    }

    #[test]
    fn rejects_missing_file() {
        assert!(RouterConfig::load(Some(Path::new("/nonexistent/router.yaml"))).is_err());
    }

    #[test]
    fn reads_edge_sections_and_env_overrides() {
        let path = write_temp(
            "edge.yaml",
            "auth:\n  jwt:\n    issuers: [shippy]\n    jwks_url: https://keys.example/jwks.json\nrate_limit:\n  fields:\n    Mutation.createConsignment: 10 per 1m per user\nsubgraphs:\n  vessel:\n    urls: [http://127.0.0.1:1/graphql, http://127.0.0.1:2/graphql]\n    load_balancing: least_outstanding\n    circuit_breaker:\n      sleep_window: 1s\n",
        );
        let config = RouterConfig::load(Some(&path)).unwrap();
        assert_eq!(config.auth.jwt.issuers, vec!["shippy".to_string()]);
        assert_eq!(
            config.rate_limit.fields["Mutation.createConsignment"].limit,
            10
        );
        let vessel = config.subgraph("vessel");
        assert_eq!(vessel.load_balancing, LoadBalancing::LeastOutstanding);
        assert_eq!(vessel.circuit_breaker.sleep_window, Duration::from_secs(1));
        // The rest of a replaced section takes the built-in defaults.
        assert_eq!(vessel.circuit_breaker.request_volume_threshold, 20);
        assert_eq!(config.subgraphs["vessel"].urls.len(), 2);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's own error type, in a test
    fn environment_overrides_the_file() {
        let path = write_temp("env.yaml", "limits:\n  max_depth: 5\n  max_aliases: 3\n");
        // A prefix of its own, so tests loading `SHIPPY_ROUTER__` in parallel never see it.
        figment::Jail::expect_with(|jail| {
            jail.set_env("SHIPPY_ROUTER_ENVTEST__LIMITS__MAX_ALIASES", "7");
            jail.set_env("SHIPPY_ROUTER_ENVTEST__AUTH__JWT__ISSUERS", "[a, b]");
            let config =
                RouterConfig::load_with_prefix(Some(&path), "SHIPPY_ROUTER_ENVTEST__").unwrap();
            assert_eq!(config.limits.max_depth, 5);
            assert_eq!(config.limits.max_aliases, 7);
            assert_eq!(config.auth.jwt.issuers, vec!["a".to_string(), "b".into()]);
            Ok(())
        });
    }

    #[test]
    fn rejects_bad_values_with_their_keys() {
        let path = write_temp(
            "bad.yaml",
            "limits:\n  max_depth: 0\nauth:\n  jwt:\n    secret: short\nrate_limit:\n  backend: redis\n  fields:\n    nodot: 1 per 1s\nsubgraph_defaults:\n  circuit_breaker:\n    error_percent_threshold: 150\nsubgraphs:\n  a:\n    url: http://x/\n    urls: [http://y/]\n",
        );
        let err = RouterConfig::load(Some(&path)).unwrap_err().to_string();
        for key in [
            "limits.max_depth",
            "auth.jwt.secret",
            "rate_limit.redis.url",
            "rate_limit.fields.nodot",
            "error_percent_threshold",
            "subgraphs.a",
        ] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
        let path = write_temp(
            "badrule.yaml",
            "rate_limit:\n  fields:\n    Query.a: lots per day\n",
        );
        let err = RouterConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("lots"), "{err}");
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let mut config = RouterConfig::default();
        config.auth.jwt.secret = Some(Secret::new("hunter2-hunter2-hunter2-hunter2-xx"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn default_round_trips_through_figment() {
        assert_eq!(RouterConfig::load(None).unwrap(), RouterConfig::default());
    }
}
