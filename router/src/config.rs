//! Router configuration: defaults, then an optional YAML or TOML file, then `SHIPPY_ROUTER__*`
//! environment variables (`SHIPPY_ROUTER__HTTP__MAX_BODY_SIZE=1000000`).
//!
//! Unknown keys are rejected so a typo never silently falls back to a default. Durations are
//! human-readable (`30s`, `1m`). [`RouterConfig::load`] also checks the values (a limit of 0, a
//! malformed rate-limit rule, a breaker percentage above 100) so mistakes fail at start-up or
//! reload, never at the first request. `RouterConfig` and its checks live here, each section in
//! its own file; `RouterConfig::keep_restart_only` says which sections are live (applied by a
//! reload) and which need a restart.

mod auth;
mod headers;
mod http;
mod limits;
mod override_labels;
mod persisted_documents;
mod query_planning;
mod rate_limit;
mod reload;
mod resilience;
mod signing;
mod subgraphs;
mod subscriptions;

pub use auth::{AuthConfig, JwtConfig, PublicKeyAlgorithm, RevocationConfig, Secret};
pub use headers::{
    HeaderRules, HeadersConfig, MergeAlgorithm, RequestHeaderRule, ResponseHeaderRule,
};
pub use http::{CsrfConfig, HttpConfig};
pub use limits::LimitsConfig;
pub use override_labels::OverrideLabelsConfig;
pub use persisted_documents::PersistedDocumentsConfig;
pub use query_planning::QueryPlanningConfig;
pub use rate_limit::{
    FailurePolicy, FieldRateLimit, LimitKey, RateLimitBackend, RateLimitConfig,
    RedisRateLimitConfig, RequestRateLimit, RuleError,
};
pub use reload::ReloadConfig;
pub use resilience::{CircuitBreakerConfig, HealthCheckConfig, LoadBalancing, RetryConfig};
pub use signing::SubgraphSigningConfig;
pub use subgraphs::{EffectiveSubgraphConfig, MIN_READ_BUFFER, SubgraphDefaults, SubgraphOverride};
pub use subscriptions::{SlowClientPolicy, SubscriptionsConfig};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml, Yaml};
use serde::{Deserialize, Serialize};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Values serde cannot check: every problem found, one per line.
    #[error("{}", .problems.join("\n"))]
    Invalid {
        /// One message per problem, naming the setting.
        problems: Vec<String>,
    },
    /// A setting names an HTTP header that is not a valid header name.
    #[error("`{setting}`: `{name}` is not a valid header name")]
    HeaderName {
        /// The setting, e.g. `csrf.required_headers`.
        setting: &'static str,
        /// The name given.
        name: String,
    },
}

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
    /// The signature on every subgraph request.
    pub subgraph_signing: SubgraphSigningConfig,
    /// Per-subgraph overrides, keyed by the subgraph name in the supergraph's `join__Graph`.
    pub subgraphs: BTreeMap<String, SubgraphOverride>,
    /// Watching the config file for changes (`shippy router --config`).
    pub reload: ReloadConfig,
    /// Subscriptions over WebSocket and SSE.
    pub subscriptions: SubscriptionsConfig,
    /// Automatic persisted queries and trusted documents (a safelist with `only`).
    pub persisted_documents: PersistedDocumentsConfig,
    /// Rules for the headers of subgraph requests.
    pub headers: HeadersConfig,
    /// Progressive `@override` labels: how a request picks each label's side.
    pub override_labels: OverrideLabelsConfig,
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
            subgraph_signing: SubgraphSigningConfig::default(),
            subgraphs: BTreeMap::new(),
            reload: ReloadConfig::default(),
            subscriptions: SubscriptionsConfig::default(),
            persisted_documents: PersistedDocumentsConfig::default(),
            headers: HeadersConfig::default(),
            override_labels: OverrideLabelsConfig::default(),
        }
    }
}

/// Keeps `running`'s value of a restart-only setting, noting `name` when `new` differs.
fn keep_running<T: PartialEq + Clone>(
    restart_required: &mut Vec<&'static str>,
    name: &'static str,
    new: T,
    running: &T,
) -> T {
    if new != *running {
        restart_required.push(name);
    }
    running.clone()
}

/// Parses the header name a setting gives (case-insensitive, stored lower-case).
pub(crate) fn header_name(
    setting: &'static str,
    name: &str,
) -> Result<::http::HeaderName, ConfigError> {
    ::http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
        ConfigError::HeaderName {
            setting,
            name: name.to_string(),
        }
    })
}

impl RouterConfig {
    /// Splits a new configuration into what a reload applies while serving and what needs a
    /// restart: returns `self` with every restart-only setting replaced by `running`'s, and the
    /// names of those that differed. Every field is named here (no `..`), so a new setting does
    /// not compile until it is classified as live or restart-only.
    pub(crate) fn keep_restart_only(
        self,
        running: &RouterConfig,
    ) -> (RouterConfig, Vec<&'static str>) {
        let RouterConfig {
            http,
            csrf,
            limits,
            query_planning,
            introspection,
            auth,
            rate_limit,
            subgraph_defaults,
            subgraph_signing,
            subgraphs,
            reload,
            subscriptions,
            persisted_documents,
            headers,
            override_labels,
        } = self;
        let RateLimitConfig {
            backend,
            redis,
            key_claim,
            fields,
            max_keys_per_limit,
            requests,
        } = rate_limit;
        let AuthConfig {
            jwt,
            scopes_claim,
            revocation,
        } = auth;
        let mut restart = Vec::new();
        let http = keep_running(&mut restart, "http", http, &running.http);
        // The store is made once at start-up (and may be shared with a user subgraph).
        let revocation = keep_running(
            &mut restart,
            "auth.revocation",
            revocation,
            &running.auth.revocation,
        );
        let query_planning = keep_running(
            &mut restart,
            "query_planning",
            query_planning,
            &running.query_planning,
        );
        let subgraph_defaults = keep_running(
            &mut restart,
            "subgraph_defaults",
            subgraph_defaults,
            &running.subgraph_defaults,
        );
        let subgraph_signing = keep_running(
            &mut restart,
            "subgraph_signing",
            subgraph_signing,
            &running.subgraph_signing,
        );
        let subgraphs = keep_running(&mut restart, "subgraphs", subgraphs, &running.subgraphs);
        let reload = keep_running(&mut restart, "reload", reload, &running.reload);
        let subscriptions = keep_running(
            &mut restart,
            "subscriptions",
            subscriptions,
            &running.subscriptions,
        );
        // The manifest source and the APQ store are set up once; the manifest's content is
        // refreshed on its own schedule.
        let persisted_documents = keep_running(
            &mut restart,
            "persisted_documents",
            persisted_documents,
            &running.persisted_documents,
        );
        // The planners per label combination are built with the supergraph.
        let override_labels = keep_running(
            &mut restart,
            "override_labels",
            override_labels,
            &running.override_labels,
        );
        let requests = keep_running(
            &mut restart,
            "rate_limit.requests",
            requests,
            &running.rate_limit.requests,
        );
        let live = RouterConfig {
            http,
            // Live: applied to the next request.
            csrf,
            limits,
            query_planning,
            introspection,
            auth: AuthConfig {
                jwt,
                scopes_claim,
                revocation,
            },
            rate_limit: RateLimitConfig {
                backend,
                redis,
                key_claim,
                fields,
                max_keys_per_limit,
                requests,
            },
            subgraph_defaults,
            subgraph_signing,
            subgraphs,
            reload,
            subscriptions,
            persisted_documents,
            // Live: the next request's subgraph calls use them.
            headers,
            override_labels,
        };
        (live, restart)
    }

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
            .map_err(|e| Box::new(figment::Error::from(e.to_string())))?;
        Ok(config)
    }

    /// Checks values serde cannot: every problem found.
    pub fn check(&self) -> Result<(), ConfigError> {
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
        if self.subgraph_defaults.max_read_buffer < subgraphs::MIN_READ_BUFFER {
            problems.push(format!(
                "`subgraph_defaults.max_read_buffer` must be at least {}",
                subgraphs::MIN_READ_BUFFER
            ));
        }
        problems.extend(self.persisted_documents.check());
        problems.extend(
            self.http
                .connections
                .check()
                .into_iter()
                .map(|problem| format!("http.connections: {problem}")),
        );
        if self.csrf.enabled && self.csrf.required_headers.is_empty() {
            problems.push("`csrf.required_headers` is empty while `csrf.enabled` is true".into());
        }
        let jwt = &self.auth.jwt;
        if let Some(secret) = &jwt.secret
            && secret.expose().len() < 32
        {
            problems.push("`auth.jwt.secret` must be at least 32 bytes".into());
        }
        if let Some(key) = &self.subgraph_signing.key
            && key.expose().len() < shippy_security::signing::MIN_SECRET_LEN
        {
            problems.push("`subgraph_signing.key` must be at least 32 bytes".into());
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
            // The window bounds are those of tower's `TpsBudget`, which keeps the budget.
            if !(0.0..=10.0).contains(&retry.budget_ratio)
                || !(Duration::from_secs(1)..=Duration::from_secs(60))
                    .contains(&retry.budget_window)
            {
                problems.push(format!(
                    "`{at}.retry` needs `budget_ratio` between 0 and 10 and a `budget_window` between 1s and 60s"
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
            Err(ConfigError::Invalid { problems })
        }
    }

    /// The settings of subgraph `name`: its overrides applied to `subgraph_defaults`.
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

    #[test]
    fn the_retry_budget_window_stays_within_what_the_budget_supports() {
        let mut config = RouterConfig::default();
        config.subgraph_defaults.retry.budget_window = Duration::from_secs(120);
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("between 1s and 60s"), "{error}");
        config.subgraph_defaults.retry.budget_window = Duration::from_secs(60);
        config.check().unwrap();
    }

    #[test]
    fn an_invalid_jwt_header_name_is_an_error_not_a_fallback() {
        let mut config = RouterConfig::default();
        config.auth.jwt.header_name = "bad header".into();
        assert_eq!(
            config.auth.jwt.header().unwrap_err().to_string(),
            "`auth.jwt.header_name`: `bad header` is not a valid header name"
        );
        config.auth.jwt.header_name = "X-Token".into();
        assert_eq!(config.auth.jwt.header().unwrap(), "x-token");
    }

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
    fn header_rules_and_persisted_documents_read_as_documented() {
        let path = write_temp(
            "headers.yaml",
            "headers:\n  all:\n    request:\n      - propagate: { matching: \"^x-feature-\" }\n      - propagate: { named: x-tenant, rename: x-org, default: public }\n  subgraphs:\n    log:\n      request:\n        - remove: { named: authorization }\n        - insert: { name: x-source, value: router }\npersisted_documents:\n  manifest: manifest.json\n  only: true\n  manifest_refresh_interval: 1m\n",
        );
        let config =
            RouterConfig::load_with_prefix(Some(&path), "SHIPPY_ROUTER_HEADERSTEST__").unwrap();
        assert_eq!(config.headers.all.request.len(), 2);
        assert_eq!(
            config.headers.subgraphs["log"].request[1],
            RequestHeaderRule::Insert {
                name: "x-source".into(),
                value: "router".into()
            }
        );
        assert!(config.persisted_documents.only);
        assert!(!config.persisted_documents.apq_enabled());
        assert_eq!(
            config.persisted_documents.manifest_refresh_interval,
            Duration::from_secs(60)
        );
        let only_without_manifest = write_temp(
            "only.yaml",
            "persisted_documents:\n  only: true\n  first_party: false\n",
        );
        let error = RouterConfig::load_with_prefix(
            Some(&only_without_manifest),
            "SHIPPY_ROUTER_HEADERSTEST__",
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("persisted_documents.only"),
            "{error}"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's own error type, in a test
    fn connection_limits_read_from_file_and_environment_and_are_checked() {
        let path = write_temp(
            "connections.yaml",
            "http:\n  connections:\n    max_connections_per_ip: 64\n    idle_timeout: 30s\n",
        );
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "SHIPPY_ROUTER_CONNTEST__HTTP__CONNECTIONS__MAX_CONNECTIONS",
                "500",
            );
            let config =
                RouterConfig::load_with_prefix(Some(&path), "SHIPPY_ROUTER_CONNTEST__").unwrap();
            let connections = &config.http.connections;
            assert_eq!(connections.max_connections, 500);
            assert_eq!(connections.max_connections_per_ip, 64);
            assert_eq!(connections.idle_timeout, Duration::from_secs(30));
            assert_eq!(connections.header_read_timeout, Duration::from_secs(10));
            Ok(())
        });
        let path = write_temp(
            "badconnections.yaml",
            "http:\n  connections:\n    max_connections: 10\n    max_connections_per_ip: 20\n    header_read_timeout: 0s\n",
        );
        let err = RouterConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("http.connections: `header_read_timeout` must be longer than zero"),
            "{err}"
        );
        assert!(
            err.contains("`max_connections_per_ip` (20) must not exceed `max_connections` (10)"),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_values_with_their_keys() {
        let path = write_temp(
            "bad.yaml",
            "limits:\n  max_depth: 0\nauth:\n  jwt:\n    secret: short\nsubgraph_signing:\n  key: short\nrate_limit:\n  backend: redis\n  fields:\n    nodot: 1 per 1s\nsubgraph_defaults:\n  max_read_buffer: 4096\n  circuit_breaker:\n    error_percent_threshold: 150\nsubgraphs:\n  a:\n    url: http://x/\n    urls: [http://y/]\n",
        );
        let err = RouterConfig::load(Some(&path)).unwrap_err().to_string();
        for key in [
            "limits.max_depth",
            "auth.jwt.secret",
            "subgraph_signing.key",
            "rate_limit.redis.url",
            "rate_limit.fields.nodot",
            "error_percent_threshold",
            "subgraph_defaults.max_read_buffer",
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
        config.subgraph_signing.key = Some(Secret::new("hunter3-hunter3-hunter3-hunter3-xx"));
        let text = format!("{config:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("hunter3"),
            "{text}"
        );
    }

    #[test]
    fn default_round_trips_through_figment() {
        assert_eq!(RouterConfig::load(None).unwrap(), RouterConfig::default());
    }
}
