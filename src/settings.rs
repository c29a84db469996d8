//! The `shippy` command's settings, in layers: built-in defaults, then an optional config file (TOML or YAML,
//! `--config` / `SHIPPY_CONFIG`), then environment variables, then flags. Unknown keys in the file are an
//! error; durations are human-readable (`30s`, `5m`).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, bail};
use clap::Args;
use figment::{
    Figment,
    providers::{Format, Serialized, Toml, Yaml},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use shippy_kit::{
    config::{AccessConfig, AssignmentConfig, AuthConfig, EventsConfig, RelayConfig, ServerConfig},
    db,
    server::SubgraphConfig,
    telemetry::{OtlpConfig, OtlpProtocol, TelemetryConfig},
};
use shippy_security::revocation::{self, MemoryRevocations, RedisRevocations, RevocationStore};

/// Everything `shippy` can be configured with. The config file has the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where `shippy up` (and subgraphs without a `database_url`) keep their SQLite files. Default `./data`.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL. `shippy subgraph`/`migrate` use it as is; `shippy up` gives each subgraph its own
    /// database next to it, named `<database>_<subgraph>` and created if missing. Unset: SQLite.
    pub database_url: Option<String>,
    /// A Redis URL (`redis://host:port`, or a Redis Cluster: `redis+cluster://host1:port,host2:port,...`).
    /// When set, events travel over Redis streams (shared by every process) instead of the in-process bus,
    /// and `/ready` also checks Redis.
    pub redis_url: Option<String>,
    /// The address `shippy up` listens on. Default `127.0.0.1`.
    pub host: String,
    /// `shippy up`'s first port: router on it, then user +1, vessel +2, consignment +3, log +4. `0` picks free
    /// ports (printed at start). Default 4000.
    pub port_base: u16,
    /// Log lines as `text` or `json`. Default `text`.
    pub log_format: LogFormat,
    /// HTTP limits of every subgraph.
    pub server: ServerConfig,
    /// Token issuing and verification.
    pub auth: AuthConfig,
    /// Who may call the subgraphs: routers only, by their signing key or a shared secret (`[access]`).
    pub access: AccessConfig,
    /// Outbox relay pacing.
    pub relay: RelayConfig,
    /// Event streams and consumers (`[events]`, `[events.consumer]`).
    pub events: EventsConfig,
    /// The consignment assignment saga: re-drive and deadline (`[assignment]`).
    pub assignment: AssignmentConfig,
    /// Trace export (`[telemetry]`).
    pub telemetry: TelemetrySettings,
}

/// Where traces go. Export is off unless an endpoint is set (here, by `SHIPPY_OTLP_ENDPOINT`, or by
/// the standard `OTEL_EXPORTER_OTLP_ENDPOINT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// The OTLP collector's base URL, e.g. `http://jaeger:4317` (gRPC) or `http://jaeger:4318`
    /// (HTTP/protobuf). Unset: no trace export.
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf`. Default `grpc`.
    pub otlp_protocol: OtlpProtocol,
    /// Share of new traces recorded, 0 to 1 (requests that arrive with a `traceparent` follow their
    /// caller's decision). Default 1.
    pub sampling_ratio: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Grpc,
            sampling_ratio: 1.0,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: None,
            redis_url: None,
            host: "127.0.0.1".into(),
            port_base: 4000,
            log_format: LogFormat::Text,
            server: ServerConfig::default(),
            auth: AuthConfig::default(),
            access: AccessConfig::default(),
            relay: RelayConfig::default(),
            events: EventsConfig::default(),
            assignment: AssignmentConfig::default(),
            telemetry: TelemetrySettings::default(),
        }
    }
}

impl Settings {
    /// The database URL of one subgraph run on its own (`shippy subgraph`, `shippy migrate`): `DATABASE_URL`
    /// as given, else `<data_dir>/<name>.db`.
    pub fn standalone_database_url(&self, name: &str) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => db::sqlite_url(&self.data_dir.join(format!("{name}.db"))),
        }
    }

    /// The database URL of one subgraph under `shippy up`: each gets its own database.
    pub fn up_database_url(&self, name: &str) -> anyhow::Result<String> {
        match &self.database_url {
            None => Ok(db::sqlite_url(&self.data_dir.join(format!("{name}.db")))),
            Some(url) if url.starts_with("sqlite:") => {
                bail!(
                    "with `shippy up`, DATABASE_URL must be a PostgreSQL URL (SQLite files go in --data-dir)"
                )
            }
            Some(url) => {
                let (_, base) = db::split_postgres_url(url)?;
                Ok(db::with_database_name(url, &format!("{base}_{name}"))?)
            }
        }
    }

    /// The telemetry of a process called `service_name`. Without an endpoint in the settings, the
    /// standard `OTEL_EXPORTER_OTLP_ENDPOINT` (and `OTEL_EXPORTER_OTLP_PROTOCOL`) still turn export on.
    pub fn telemetry_config(&self, service_name: &str) -> anyhow::Result<TelemetryConfig> {
        let standard = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let endpoint = self
            .telemetry
            .otlp_endpoint
            .clone()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| standard("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let protocol = match (
            &self.telemetry.otlp_endpoint,
            standard("OTEL_EXPORTER_OTLP_PROTOCOL"),
        ) {
            (None, Some(protocol)) => protocol
                .parse()
                .map_err(|e: String| anyhow::anyhow!("OTEL_EXPORTER_OTLP_PROTOCOL: {e}"))?,
            _ => self.telemetry.otlp_protocol,
        };
        Ok(TelemetryConfig {
            service_name: standard("OTEL_SERVICE_NAME").unwrap_or_else(|| service_name.to_owned()),
            json_logs: self.log_format == LogFormat::Json,
            otlp: endpoint.map(|endpoint| OtlpConfig {
                endpoint,
                protocol,
                sampling_ratio: self.telemetry.sampling_ratio,
            }),
        })
    }

    /// Where revoked token ids go: Redis at `redis_url` (keys `<stream_prefix>revoked:<jti>`, what the
    /// router's `auth.revocation.key_prefix` reads by default), else `None`.
    pub fn redis_revocations(&self) -> anyhow::Result<Option<Arc<dyn RevocationStore>>> {
        let Some(url) = &self.redis_url else {
            return Ok(None);
        };
        let prefix = format!("{}revoked:", self.events.stream_prefix);
        let store = RedisRevocations::new(url, &prefix, revocation::DEFAULT_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("REDIS_URL {e}"))?;
        Ok(Some(Arc::new(store)))
    }

    /// The revocation store `shippy up` shares between its router and its user subgraph: Redis when
    /// configured (so that other processes see logouts too), else this process's memory.
    pub fn up_revocations(&self) -> anyhow::Result<Arc<dyn RevocationStore>> {
        Ok(self
            .redis_revocations()?
            .unwrap_or_else(|| Arc::new(MemoryRevocations::default())))
    }

    /// The kit configuration of one subgraph.
    pub fn subgraph_config(&self, database_url: String) -> SubgraphConfig {
        SubgraphConfig {
            database_url,
            auth: self.auth.clone(),
            access: self.access.clone(),
            server: self.server.clone(),
            relay: self.relay.clone(),
            events: self.events.clone(),
            assignment: self.assignment.clone(),
            revocations: None,
        }
    }
}

/// Settings flags, accepted by every subcommand. Each also reads the environment variable shown.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// Config file (TOML or YAML, by extension); flags and environment variables override it.
    #[arg(long, env = "SHIPPY_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address `shippy up` listens on [default: 127.0.0.1].
    #[arg(long, env = "SHIPPY_HOST", global = true, value_name = "IP")]
    pub host: Option<String>,
    /// `shippy up`'s first port: router P, user P+1, vessel P+2, consignment P+3, log P+4; 0 picks free
    /// ports [default: 4000].
    #[arg(long, env = "SHIPPY_PORT_BASE", global = true, value_name = "P")]
    pub port_base: Option<u16>,
    /// Directory for the embedded SQLite databases [default: ./data].
    #[arg(long, env = "SHIPPY_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:pass@host:port/db); unset means SQLite in the data directory.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// Redis URL (redis://host:port, or a cluster: redis+cluster://host1:port,host2:port,...); when set,
    /// events go over Redis streams shared by every process (else an in-process bus) and /ready checks it.
    #[arg(
        long,
        env = "REDIS_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    pub redis_url: Option<String>,
    /// HS256 secret, 32+ bytes, the same for every process. Prefer the environment variable: flags show
    /// in process lists. Required by `shippy subgraph`; `shippy up` generates one in the data directory.
    #[arg(
        long,
        env = "SHIPPY_JWT_SECRET",
        global = true,
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub jwt_secret: Option<String>,
    /// The key the router signs subgraph requests with (its `subgraph_signing.key`), 32+ bytes: a
    /// subgraph answers requests signed with it. `shippy up` generates one in the data directory.
    #[arg(
        long,
        env = "SHIPPY_ROUTER_SIGNING_KEY",
        global = true,
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub router_signing_key: Option<String>,
    /// A second router key a subgraph accepts, while keys are rotated.
    #[arg(
        long,
        env = "SHIPPY_ROUTER_SIGNING_KEY_PREVIOUS",
        global = true,
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub router_signing_key_previous: Option<String>,
    /// A secret a subgraph accepts in the `shippy-subgraph-secret` header (what a third-party router
    /// sends), 32+ bytes.
    #[arg(
        long,
        env = "SHIPPY_SUBGRAPH_SECRET",
        global = true,
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub subgraph_secret: Option<String>,
    /// A second shared secret a subgraph accepts, while secrets are rotated.
    #[arg(
        long,
        env = "SHIPPY_SUBGRAPH_SECRET_PREVIOUS",
        global = true,
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub subgraph_secret_previous: Option<String>,
    /// Let a subgraph answer requests without a router credential (development only: GraphiQL on the
    /// subgraph; the router's protections are bypassed) [default: false].
    #[arg(long, env = "SHIPPY_SUBGRAPH_OPEN", global = true, value_name = "BOOL")]
    pub subgraph_open: Option<bool>,
    /// JWT algorithm [default: HS256].
    #[arg(long, env = "SHIPPY_JWT_ALGORITHM", global = true, value_parser = ["HS256", "RS256", "ES256"])]
    pub jwt_algorithm: Option<String>,
    /// PEM public key for RS256/ES256 verification.
    #[arg(
        long,
        env = "SHIPPY_JWT_PUBLIC_KEY_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub jwt_public_key_file: Option<PathBuf>,
    /// PEM (PKCS#8) private key the user subgraph signs RS256/ES256 tokens with.
    #[arg(
        long,
        env = "SHIPPY_JWT_PRIVATE_KEY_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub jwt_private_key_file: Option<PathBuf>,
    /// Token issuer (`iss`) [default: shippy].
    #[arg(long, env = "SHIPPY_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// Token audience (`aud`) [default: shippy].
    #[arg(long, env = "SHIPPY_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Lifetime of issued tokens, e.g. 15m [default: 1h].
    #[arg(long, env = "SHIPPY_TOKEN_TTL", global = true, value_name = "DURATION")]
    pub token_ttl: Option<String>,
    /// Longest time one request may take, e.g. 30s [default: 30s].
    #[arg(
        long,
        env = "SHIPPY_REQUEST_TIMEOUT",
        global = true,
        value_name = "DURATION"
    )]
    pub request_timeout: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "SHIPPY_BODY_LIMIT", global = true, value_name = "BYTES")]
    pub body_limit: Option<usize>,
    /// How long in-flight work may finish after SIGINT/SIGTERM [default: 10s].
    #[arg(
        long,
        env = "SHIPPY_SHUTDOWN_GRACE",
        global = true,
        value_name = "DURATION"
    )]
    pub shutdown_grace: Option<String>,
    /// Prefix of every Redis key (streams `<prefix>log`, `<prefix>consignment`) [default: shippy:].
    #[arg(
        long,
        env = "SHIPPY_STREAM_PREFIX",
        global = true,
        value_name = "PREFIX"
    )]
    pub stream_prefix: Option<String>,
    /// This process's name in consumer groups; must differ between replicas [default: <hostname>-<pid>].
    #[arg(long, env = "SHIPPY_CONSUMER_NAME", global = true, value_name = "NAME")]
    pub consumer_name: Option<String>,
    /// How long an unacknowledged event waits before another consumer takes it over, e.g. 30s
    /// [default: 30s].
    #[arg(
        long,
        env = "SHIPPY_CLAIM_IDLE",
        global = true,
        value_name = "DURATION"
    )]
    pub claim_idle: Option<String>,
    /// How long a consignment waits for a vessel's answer before its request is sent again, e.g. 30s
    /// [default: 30s].
    #[arg(
        long,
        env = "SHIPPY_ASSIGNMENT_RETRY_AFTER",
        global = true,
        value_name = "DURATION"
    )]
    pub assignment_retry_after: Option<String>,
    /// How long a consignment may stay PENDING before it becomes UNASSIGNABLE, e.g. 10m; must exceed
    /// the retry interval [default: 10m].
    #[arg(
        long,
        env = "SHIPPY_ASSIGNMENT_DEADLINE",
        global = true,
        value_name = "DURATION"
    )]
    pub assignment_deadline: Option<String>,
    /// Log format [default: text]. Filter with RUST_LOG.
    #[arg(long, env = "SHIPPY_LOG_FORMAT", global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// OTLP collector to export traces to, e.g. http://jaeger:4317; unset (and no
    /// OTEL_EXPORTER_OTLP_ENDPOINT): no trace export.
    #[arg(long, env = "SHIPPY_OTLP_ENDPOINT", global = true, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol [default: grpc].
    #[arg(long, env = "SHIPPY_OTLP_PROTOCOL", global = true, value_parser = ["grpc", "http/protobuf"])]
    pub otlp_protocol: Option<String>,
    /// Share of new traces recorded, 0 to 1 [default: 1].
    #[arg(
        long,
        env = "SHIPPY_TRACE_SAMPLING",
        global = true,
        value_name = "RATIO"
    )]
    pub trace_sampling: Option<f64>,
}

fn put(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut node = map;
    for key in parents {
        node = node
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("settings path nodes are objects");
    }
    node.insert(last.to_string(), value);
}

impl SettingsArgs {
    /// The values given by flag or environment, shaped like [`Settings`].
    fn overrides(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let entries: [(&[&str], Option<Value>); 29] = [
            (
                &["access", "router_key"],
                self.router_signing_key.as_ref().map(|v| json!(v)),
            ),
            (
                &["access", "router_key_previous"],
                self.router_signing_key_previous.as_ref().map(|v| json!(v)),
            ),
            (
                &["access", "shared_secret"],
                self.subgraph_secret.as_ref().map(|v| json!(v)),
            ),
            (
                &["access", "shared_secret_previous"],
                self.subgraph_secret_previous.as_ref().map(|v| json!(v)),
            ),
            (&["access", "open"], self.subgraph_open.map(|v| json!(v))),
            (
                &["telemetry", "otlp_endpoint"],
                self.otlp_endpoint.as_ref().map(|v| json!(v)),
            ),
            (
                &["telemetry", "otlp_protocol"],
                self.otlp_protocol.as_ref().map(|v| json!(v)),
            ),
            (
                &["telemetry", "sampling_ratio"],
                self.trace_sampling.map(|v| json!(v)),
            ),
            (&["host"], self.host.as_ref().map(|v| json!(v))),
            (&["port_base"], self.port_base.map(|v| json!(v))),
            (&["data_dir"], self.data_dir.as_ref().map(|v| json!(v))),
            (
                &["database_url"],
                self.database_url.as_ref().map(|v| json!(v)),
            ),
            (&["redis_url"], self.redis_url.as_ref().map(|v| json!(v))),
            (&["log_format"], self.log_format.as_ref().map(|v| json!(v))),
            (
                &["auth", "secret"],
                self.jwt_secret.as_ref().map(|v| json!(v)),
            ),
            (
                &["auth", "algorithm"],
                self.jwt_algorithm.as_ref().map(|v| json!(v)),
            ),
            (
                &["auth", "public_key_file"],
                self.jwt_public_key_file.as_ref().map(|v| json!(v)),
            ),
            (
                &["auth", "private_key_file"],
                self.jwt_private_key_file.as_ref().map(|v| json!(v)),
            ),
            (
                &["auth", "issuer"],
                self.jwt_issuer.as_ref().map(|v| json!(v)),
            ),
            (
                &["auth", "audience"],
                self.jwt_audience.as_ref().map(|v| json!(v)),
            ),
            (
                &["auth", "token_ttl"],
                self.token_ttl.as_ref().map(|v| json!(v)),
            ),
            (
                &["server", "request_timeout"],
                self.request_timeout.as_ref().map(|v| json!(v)),
            ),
            (&["server", "body_limit"], self.body_limit.map(|v| json!(v))),
            (
                &["server", "shutdown_grace"],
                self.shutdown_grace.as_ref().map(|v| json!(v)),
            ),
            (
                &["events", "stream_prefix"],
                self.stream_prefix.as_ref().map(|v| json!(v)),
            ),
            (
                &["events", "consumer", "name"],
                self.consumer_name.as_ref().map(|v| json!(v)),
            ),
            (
                &["events", "consumer", "claim_idle"],
                self.claim_idle.as_ref().map(|v| json!(v)),
            ),
            (
                &["assignment", "retry_after"],
                self.assignment_retry_after.as_ref().map(|v| json!(v)),
            ),
            (
                &["assignment", "deadline"],
                self.assignment_deadline.as_ref().map(|v| json!(v)),
            ),
        ];
        for (path, value) in entries {
            if let Some(value) = value {
                put(&mut map, path, value);
            }
        }
        map
    }

    /// Loads the layered settings.
    pub fn load(&self) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = &self.config {
            figment = merge_file(figment, path)?;
        }
        figment = figment.merge(Serialized::defaults(Value::Object(self.overrides())));
        let settings: Settings = figment.extract().context("invalid configuration")?;
        settings
            .assignment
            .validate()
            .context("invalid configuration")?;
        Ok(settings)
    }
}

fn merge_file(figment: Figment, path: &Path) -> anyhow::Result<Figment> {
    if !path.is_file() {
        bail!("config file {} does not exist", path.display());
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Ok(figment.merge(Toml::file_exact(path))),
        Some("yaml" | "yml") => Ok(figment.merge(Yaml::file_exact(path))),
        _ => bail!(
            "config file {} must end in .toml, .yaml or .yml",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "shippy.toml",
            "data_dir = \"/from/file\"\nport_base = 5000\n[server]\nrequest_timeout = \"5s\"\n[auth]\nissuer = \"file\"\n",
        );
        let args = SettingsArgs {
            config: Some(file),
            jwt_issuer: Some("flag".into()),
            token_ttl: Some("15m".into()),
            port_base: Some(6000),
            stream_prefix: Some("staging:".into()),
            claim_idle: Some("5s".into()),
            ..SettingsArgs::default()
        };
        let settings = args.load().unwrap();
        assert_eq!(settings.data_dir, PathBuf::from("/from/file"));
        assert_eq!(settings.server.request_timeout, Duration::from_secs(5));
        assert_eq!(settings.auth.issuer, "flag");
        assert_eq!(settings.auth.token_ttl, Duration::from_secs(900));
        assert_eq!(settings.port_base, 6000);
        assert_eq!(settings.events.stream_prefix, "staging:");
        assert_eq!(settings.events.consumer.claim_idle, Duration::from_secs(5));
        assert_eq!(
            settings.server.body_limit,
            ServerConfig::default().body_limit
        );
        assert_eq!(settings.telemetry, TelemetrySettings::default());
    }

    #[test]
    fn trace_export_is_configured_by_flags_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "shippy.yaml",
            "telemetry:\n  otlp_endpoint: http://collector:4318\n  otlp_protocol: http/protobuf\n",
        );
        let settings = SettingsArgs {
            config: Some(file),
            trace_sampling: Some(0.25),
            ..SettingsArgs::default()
        }
        .load()
        .unwrap();
        let config = settings.telemetry_config("shippy-user").unwrap();
        let otlp = config.otlp.expect("an endpoint turns export on");
        assert_eq!(otlp.endpoint, "http://collector:4318");
        assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(otlp.sampling_ratio, 0.25);

        let bad = SettingsArgs {
            otlp_protocol: Some("carrier-pigeon".into()),
            ..SettingsArgs::default()
        };
        assert!(bad.load().is_err());
    }

    #[test]
    fn bad_files_and_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let unknown = write(dir.path(), "a.yaml", "server:\n  request_timeuot: 5s\n");
        let err = SettingsArgs {
            config: Some(unknown),
            ..SettingsArgs::default()
        }
        .load()
        .unwrap_err();
        assert!(format!("{err:#}").contains("request_timeuot"), "{err:#}");

        let missing = SettingsArgs {
            config: Some(dir.path().join("nope.toml")),
            ..SettingsArgs::default()
        };
        assert!(missing.load().is_err());
        let json = write(dir.path(), "a.json", "{}");
        assert!(
            SettingsArgs {
                config: Some(json),
                ..SettingsArgs::default()
            }
            .load()
            .is_err()
        );

        let bad = SettingsArgs {
            request_timeout: Some("soon".into()),
            ..SettingsArgs::default()
        };
        let err = bad.load().unwrap_err();
        assert!(format!("{err:#}").contains("request_timeout"), "{err:#}");
    }

    #[test]
    fn assignment_timing_comes_from_the_file_or_flags_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "shippy.yaml",
            "assignment:\n  retry_after: 10s\n  deadline: 2m\n",
        );
        let settings = SettingsArgs {
            config: Some(file.clone()),
            ..SettingsArgs::default()
        }
        .load()
        .unwrap();
        assert_eq!(settings.assignment.retry_after, Duration::from_secs(10));
        assert_eq!(
            settings
                .subgraph_config("sqlite::memory:".into())
                .assignment,
            settings.assignment
        );
        let flagged = SettingsArgs {
            config: Some(file.clone()),
            assignment_deadline: Some("5m".into()),
            ..SettingsArgs::default()
        }
        .load()
        .unwrap();
        assert_eq!(flagged.assignment.deadline, Duration::from_secs(300));
        assert_eq!(flagged.assignment.retry_after, Duration::from_secs(10));
        let err = SettingsArgs {
            config: Some(file),
            assignment_deadline: Some("5s".into()),
            ..SettingsArgs::default()
        }
        .load()
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("assignment.deadline: must be longer"),
            "{err:#}"
        );
    }

    #[test]
    fn router_credentials_come_from_flags_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "shippy.toml",
            "[access]\nshared_secret = \"from-the-file-0123456789abcdef-0123\"\nmax_skew = \"30s\"\n",
        );
        let settings = SettingsArgs {
            config: Some(file),
            router_signing_key: Some("the-router-key-0123456789abcdef-0123".into()),
            router_signing_key_previous: Some("the-old-router-key-0123456789abcdef".into()),
            subgraph_secret_previous: Some("the-old-shared-secret-0123456789abc".into()),
            subgraph_open: Some(true),
            ..SettingsArgs::default()
        }
        .load()
        .unwrap();
        let access = &settings.access;
        let expose =
            |s: &Option<shippy_kit::config::Secret>| s.as_ref().map(|s| s.expose().to_owned());
        assert_eq!(
            expose(&access.router_key).unwrap(),
            "the-router-key-0123456789abcdef-0123"
        );
        assert_eq!(
            expose(&access.router_key_previous).unwrap(),
            "the-old-router-key-0123456789abcdef"
        );
        assert_eq!(
            expose(&access.shared_secret).unwrap(),
            "from-the-file-0123456789abcdef-0123"
        );
        assert_eq!(
            expose(&access.shared_secret_previous).unwrap(),
            "the-old-shared-secret-0123456789abc"
        );
        assert!(access.open);
        assert_eq!(access.max_skew, Duration::from_secs(30));
        // Handed to every subgraph, and never printed.
        assert_eq!(
            settings.subgraph_config("sqlite::memory:".into()).access,
            *access
        );
        assert!(!format!("{settings:?}").contains("the-router-key"));
        // Closed and without credentials unless configured.
        let default = SettingsArgs::default().load().unwrap().access;
        assert!(!default.open && default.router_key.is_none() && default.shared_secret.is_none());
    }

    #[test]
    fn database_urls() {
        let mut settings = Settings {
            data_dir: "/d".into(),
            ..Settings::default()
        };
        assert_eq!(
            settings.up_database_url("user").unwrap(),
            "sqlite:///d/user.db?mode=rwc"
        );
        assert_eq!(
            settings.standalone_database_url("user"),
            "sqlite:///d/user.db?mode=rwc"
        );
        settings.database_url = Some("postgres://p@h/shippy".into());
        assert_eq!(
            settings.up_database_url("vessel").unwrap(),
            "postgres://p@h/shippy_vessel"
        );
        assert_eq!(
            settings.standalone_database_url("vessel"),
            "postgres://p@h/shippy"
        );
        settings.database_url = Some("sqlite://x.db".into());
        assert!(settings.up_database_url("user").is_err());
    }
}
