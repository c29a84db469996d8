//! Router configuration: defaults, then an optional YAML or TOML file, then `SHIPPY_ROUTER__*`
//! environment variables (`SHIPPY_ROUTER__HTTP__MAX_BODY_SIZE=1000000`).
//!
//! Unknown keys are rejected so a typo never silently falls back to a default. Durations are
//! human-readable (`30s`, `1m`).

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
    /// Limits on incoming operations.
    pub limits: LimitsConfig,
    /// Query planning and its caches.
    pub query_planning: QueryPlanningConfig,
    /// Answer `__schema` / `__type` introspection from the API schema. `__typename` always works.
    pub introspection: bool,
    /// Settings applied to every subgraph unless overridden under `subgraphs`.
    pub subgraph_defaults: SubgraphDefaults,
    /// Per-subgraph overrides, keyed by the subgraph name in the supergraph's `join__Graph`.
    pub subgraphs: BTreeMap<String, SubgraphOverride>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            http: HttpConfig::default(),
            limits: LimitsConfig::default(),
            query_planning: QueryPlanningConfig::default(),
            introspection: true,
            subgraph_defaults: SubgraphDefaults::default(),
            subgraphs: BTreeMap::new(),
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
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            graphql_path: "/graphql".to_string(),
            health_path: "/health".to_string(),
            max_body_size: 2 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most lexical tokens a query may have before parsing stops (bounds parser work).
    pub max_tokens: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { max_tokens: 15_000 }
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
    /// Client request headers copied to subgraph requests (case-insensitive).
    pub forward_headers: Vec<String>,
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
        }
    }
}

/// Overrides for one subgraph; unset fields use `subgraph_defaults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubgraphOverride {
    /// Replaces the URL from the supergraph's `join__graph(url:)`.
    pub url: Option<String>,
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    pub dedupe: Option<bool>,
    pub max_connections: Option<usize>,
}

/// Settings of one subgraph after applying overrides to the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveSubgraphConfig {
    pub timeout: Duration,
    pub dedupe: bool,
    pub max_connections: usize,
}

impl RouterConfig {
    /// Loads defaults, then `file` (YAML or TOML by extension), then `SHIPPY_ROUTER__*` variables.
    pub fn load(file: Option<&Path>) -> Result<RouterConfig, Box<figment::Error>> {
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
        figment
            .merge(Env::prefixed("SHIPPY_ROUTER__").split("__"))
            .extract()
            .map_err(Box::new)
    }

    pub fn subgraph(&self, name: &str) -> EffectiveSubgraphConfig {
        let o = self.subgraphs.get(name).cloned().unwrap_or_default();
        let d = &self.subgraph_defaults;
        EffectiveSubgraphConfig {
            timeout: o.timeout.unwrap_or(d.timeout),
            dedupe: o.dedupe.unwrap_or(d.dedupe),
            max_connections: o.max_connections.unwrap_or(d.max_connections).max(1),
        }
    }
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
    fn default_round_trips_through_figment() {
        assert_eq!(RouterConfig::load(None).unwrap(), RouterConfig::default());
    }
}
