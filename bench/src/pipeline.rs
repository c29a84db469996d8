//! The event pipeline benchmark: `createConsignment` through the router, with every service a
//! separate `shippy` process on fresh PostgreSQL databases and a private Redis key prefix, measuring
//! how many consignments end up `ASSIGNED` and how many log entries are stored per second, and where
//! the rest wait.
//!
//! Order of a run ([`run`]): create four databases `shippy_bench_<id>_<subgraph>`; start
//! `shippy subgraph` for user, vessel, consignment and log (events on Redis under
//! `shippy:bench:<id>:`) and `shippy router` over the committed supergraph (field rate limits lifted:
//! the benchmark is one client IP and a few users); register the users and give each a vessel big
//! enough for the whole run; then `connections` keep-alive connections send `createConsignment` back
//! to back. After the warm-up the measured window opens: counts, queues and CPU times are read at
//! both ends. Then the load stops and the pipeline drains: every consignment the router confirmed
//! must become `ASSIGNED` with its three log entries stored within the drain timeout, else the run
//! fails. Processes are killed, databases dropped and the Redis keys deleted at the end, also on
//! failure.
//!
//! Where consignments wait is read from the queues between the stages, in the order a consignment
//! passes them: the consignment subgraph's outbox (not yet on Redis), the `vessel` group on the
//! `consignment` stream (booking requests not yet handled), the vessel subgraph's outbox, the
//! `consignment` group (answers not yet applied); the log's own queue is the `log` group on the
//! `log` stream. The first queue of the chain that grows over the window names the stage that
//! cannot keep up ([`Bottleneck`]).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::StatusCode;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use serde::Serialize;
use shippy_contracts::{consignment, streams};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::Mutex,
    time::Instant,
};

use crate::{
    client::{self, Connection, Target},
    load::{self, Latency},
    procfs,
};

/// The supergraph `shippy up` serves, which `shippy router` is given as a file.
const SUPERGRAPH: &str = include_str!("../../schema/supergraph.graphql");

/// The subgraphs in the order they are started, each `shippy subgraph <name>` on its own database.
pub const SUBGRAPHS: [&str; 4] = ["user", "vessel", "consignment", "log"];

/// Log entries each assigned consignment leaves: `consignment.created`, `vessel.reserved`,
/// `consignment.assigned`.
pub const LOG_KINDS: [&str; 3] = [
    consignment::CREATED,
    "vessel.reserved",
    consignment::ASSIGNED,
];

/// Every consignment carries one container of this many kilograms, so one vessel of
/// [`VESSEL_CAPACITY`] containers takes a million of them.
const CONSIGNMENT_WEIGHT: i64 = 10;
/// The largest vessel the API accepts (containers).
const VESSEL_CAPACITY: i64 = 1_000_000;
/// The heaviest vessel the API accepts (kilograms).
const VESSEL_MAX_WEIGHT: i64 = 1_000_000_000;

/// What to run and how hard.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The `shippy` binary every service runs as.
    pub shippy: PathBuf,
    /// A PostgreSQL database of a user allowed to create databases; the benchmark's own are
    /// created beside it on the same server.
    pub database_url: String,
    /// The Redis every service shares; only keys under the run's own prefix are touched.
    pub redis_url: String,
    /// Users the consignments are spread over (each also owns one vessel).
    pub users: usize,
    /// Concurrent keep-alive connections to the router, each one `createConsignment` at a time.
    pub connections: usize,
    /// Load before the measured window (plan caches, pools and queues settle).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// After the load stops, how long every confirmed consignment has to be assigned and logged.
    pub drain_timeout: Duration,
    /// A `createConsignment` without an answer after this long is a failure.
    pub request_timeout: Duration,
    /// How often the counts are sampled for the timeline.
    pub sample_every: Duration,
    /// The unit of `/proc` CPU times.
    pub clk_tck: u64,
    /// `RUST_LOG` of the services.
    pub log_filter: String,
    /// A `shippy` settings file every subgraph process starts with (`--config`), to measure other
    /// consumer or relay settings than the defaults; `None`: the defaults.
    pub subgraph_config: Option<PathBuf>,
}

impl PipelineOptions {
    /// Defaults for a measured run of `shippy` against the given servers.
    pub fn new(shippy: PathBuf, database_url: String, redis_url: String) -> Self {
        Self {
            shippy,
            database_url,
            redis_url,
            users: 20,
            connections: 64,
            warmup: Duration::from_secs(5),
            duration: Duration::from_secs(20),
            drain_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            sample_every: Duration::from_secs(1),
            clk_tck: procfs::DEFAULT_CLK_TCK,
            log_filter: "warn".to_owned(),
            subgraph_config: None,
        }
    }
}

/// Why a run could not measure anything (a run that measured but lost consignments is a report
/// whose [`PipelineReport::complete`] is false).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("at least one user and one connection are needed")]
    NothingToRun,
    #[error("PostgreSQL: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{service}` did not start: {reason}")]
    Start { service: String, reason: String },
    #[error("setting up the run failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Client(#[from] client::ClientError),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PipelineError {
    let what = what.into();
    move |source| PipelineError::Io { what, source }
}

/// One queue between two stages, at both ends of the measured window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Queue {
    /// What waits there, for the reader.
    pub name: String,
    pub at_start: u64,
    pub at_end: u64,
    /// `(at_end - at_start) / window`: positive when the stage after it falls behind.
    pub growth_per_second: f64,
}

/// A process's (or a group of processes') CPU use during the measured window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessCpu {
    pub label: String,
    pub pids: Vec<u32>,
    /// CPU time over wall time; 100 is one core busy (the machine has 2).
    pub cpu_percent: f64,
    /// CPU time per consignment assigned in the window.
    pub cpu_ms_per_assigned: f64,
}

/// Counts read at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Sample {
    /// Seconds since the load started.
    pub at_seconds: f64,
    pub consignments: u64,
    pub assigned: u64,
    pub pending: u64,
    pub log_entries: u64,
}

/// Percentiles of a lag, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Lag {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The stage that limits throughput, as far as the queues and CPU times tell.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bottleneck {
    /// The first queue of the assignment chain that grew, if any.
    pub growing_queue: Option<String>,
    /// The busiest process of ours (not PostgreSQL or Redis).
    pub busiest_process: String,
    pub busiest_cpu_percent: f64,
    /// Whether the `log` group kept up (its queue did not grow).
    pub log_consumer_keeps_up: bool,
    /// One sentence for the reader.
    pub verdict: String,
}

/// What one run measured; printed as JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PipelineReport {
    /// The run's id: its databases were `shippy_bench_<id>_*`, its Redis keys `shippy:bench:<id>:*`.
    pub run_id: String,
    /// The settings file the subgraphs ran with, if not the defaults.
    pub subgraph_config: Option<PathBuf>,
    pub users: usize,
    pub connections: usize,
    pub warmup_seconds: f64,
    pub measured_seconds: f64,
    /// `createConsignment`s the router confirmed in the window.
    pub created: u64,
    pub created_per_second: f64,
    /// Consignments that became `ASSIGNED` in the window (database counts).
    pub assigned: u64,
    pub assigned_per_second: f64,
    /// Log entries stored in the window (database counts).
    pub log_entries: u64,
    pub log_entries_per_second: f64,
    /// Latency of `createConsignment` through the router, in the window.
    pub create_latency_ms: Latency,
    /// From `created_at` to the answer applied (`updated_at` of the `ASSIGNED` row), for the
    /// consignments created in the window.
    pub assignment_lag_ms: Lag,
    /// From the event's `created_at` to `stored_at` in the log, for entries made in the window.
    pub log_lag_ms: Lag,
    pub queues: Vec<Queue>,
    pub processes: Vec<ProcessCpu>,
    /// The whole machine's busy CPU over the window (200 = both cores), ours and everyone else's.
    pub machine_cpu_percent: f64,
    /// What the processes above do not account for: other agents' builds and tests.
    pub other_cpu_percent: f64,
    pub bottleneck: Bottleneck,
    /// Failed `createConsignment`s over the whole load (warm-up included), and the first one's text.
    pub create_failures: u64,
    pub first_failure: Option<String>,
    /// The router confirmed them all, over the whole load.
    pub confirmed_total: u64,
    pub drain_seconds: f64,
    /// After the drain: rows in the consignment database, by outcome.
    pub final_consignments: u64,
    pub final_assigned: u64,
    /// Confirmed consignments missing from the database.
    pub lost: u64,
    /// Consignments not `ASSIGNED` when the drain ended.
    pub not_assigned: u64,
    /// Log entries of [`LOG_KINDS`] missing when the drain ended.
    pub missing_log_entries: u64,
    pub timeline: Vec<Sample>,
}

impl PipelineReport {
    /// Every confirmed consignment was stored, assigned and logged.
    pub fn complete(&self) -> bool {
        self.lost == 0 && self.not_assigned == 0 && self.missing_log_entries == 0
    }
}

/// Runs the benchmark (see the module docs). Everything it created is removed before it returns.
pub async fn run(options: &PipelineOptions) -> Result<PipelineReport, PipelineError> {
    if options.users == 0 || options.connections == 0 {
        return Err(PipelineError::NothingToRun);
    }
    let namespace = Namespace::new();
    let admin = connect(&options.database_url, 2).await?;
    let result = match namespace.create_databases(&admin, options).await {
        Ok(()) => {
            let mut services = Services::default();
            let result = measure(options, &namespace, &mut services).await;
            services.kill().await;
            result
        }
        Err(err) => Err(err),
    };
    let cleaned = namespace.clean_up(&admin, &options.redis_url).await;
    let report = result?;
    cleaned?;
    Ok(report)
}

/// Names that keep this run apart from everything else on the shared servers.
struct Namespace {
    id: String,
    dir: PathBuf,
}

impl Namespace {
    fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let dir = std::env::temp_dir().join(format!("shippy-pipeline-{id}"));
        Self { id, dir }
    }

    fn database(&self, subgraph: &str) -> String {
        format!("shippy_bench_{}_{subgraph}", self.id)
    }

    fn prefix(&self) -> String {
        format!("shippy:bench:{}:", self.id)
    }

    async fn create_databases(
        &self,
        admin: &DatabaseConnection,
        options: &PipelineOptions,
    ) -> Result<(), PipelineError> {
        std::fs::create_dir_all(&self.dir).map_err(io_error("creating the run's directory"))?;
        for subgraph in SUBGRAPHS {
            admin
                .execute_unprepared(&format!("CREATE DATABASE {}", self.database(subgraph)))
                .await?;
        }
        // Fail here rather than in four services at once when the URL is unusable.
        database_url(&options.database_url, &self.database("user"))?;
        Ok(())
    }

    /// Drops the databases, deletes the Redis keys and the directory; reports the first failure
    /// but tries everything.
    async fn clean_up(
        &self,
        admin: &DatabaseConnection,
        redis_url: &str,
    ) -> Result<(), PipelineError> {
        let mut first = None;
        for subgraph in SUBGRAPHS {
            // FORCE: a service killed a moment ago may still hold a connection the server has not
            // seen close.
            let dropped = admin
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.database(subgraph)
                ))
                .await;
            if let Err(err) = dropped {
                first.get_or_insert(PipelineError::Db(err));
            }
        }
        if let Err(err) = delete_keys(redis_url, &self.prefix()).await {
            first.get_or_insert(PipelineError::Redis(err));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        first.map_or(Ok(()), Err)
    }
}

/// Deletes every key of the run: the prefix, and the hash-tagged keys that start `{<prefix>`.
/// Never anything else: other users share this Redis.
async fn delete_keys(redis_url: &str, prefix: &str) -> Result<u64, redis::RedisError> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut deleted = 0;
    for pattern in [format!("{prefix}*"), format!("{{{prefix}*")] {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                deleted += redis::cmd("DEL")
                    .arg(&keys)
                    .query_async::<u64>(&mut conn)
                    .await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}

/// The URL of database `name` on the server of `url` (same user, host and parameters).
pub fn database_url(url: &str, name: &str) -> Result<String, PipelineError> {
    let bad = || PipelineError::Setup(format!("`{url}` is not a postgres://HOST/DATABASE URL"));
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").ok_or_else(bad)? + 3;
    let slash = base[scheme_end..].find('/').ok_or_else(bad)? + scheme_end;
    let mut out = format!("{}/{name}", &base[..slash]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

async fn connect(url: &str, max: u32) -> Result<DatabaseConnection, PipelineError> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Ok(Database::connect(opts).await?)
}

/// The running processes, killed (and waited for) at the end.
#[derive(Default)]
struct Services {
    children: Vec<(String, Child)>,
    urls: HashMap<String, String>,
}

impl Services {
    fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| c.id())
    }

    /// Starts `cmd` as `name` and waits for the line where it prints its URL (`<name> http://...`);
    /// its output goes on to our stderr, prefixed.
    async fn start(&mut self, name: &str, mut cmd: Command) -> Result<(), PipelineError> {
        let failed = |reason: String| PipelineError::Start {
            service: name.to_owned(),
            reason,
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        self.children.push((name.to_owned(), child));
        forward(name, stderr);
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.ok().flatten() {
                if let Some((label, url)) = line.split_once(" http://")
                    && label.trim() == name
                {
                    return Some(format!("http://{}", url.trim()));
                }
                eprintln!("[{name}] {line}");
            }
            None
        })
        .await
        .map_err(|_| failed("no URL printed within 60 s".into()))?
        .ok_or_else(|| failed("exited before printing its URL (its output is above)".into()))?;
        forward(name, lines.into_inner());
        self.urls.insert(name.to_owned(), url);
        Ok(())
    }

    async fn kill(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill().await;
        }
    }
}

/// Copies a child's output to our stderr, line by line, so its pipe never fills.
fn forward<R: tokio::io::AsyncRead + Unpin + Send + 'static>(name: &str, reader: R) {
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[{name}] {line}");
        }
    });
}

/// A fresh secret of 64 hex characters.
fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// `shippy` with none of the caller's environment but `PATH`.
fn shippy(options: &PipelineOptions) -> Command {
    let mut cmd = Command::new(&options.shippy);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", &options.log_filter);
    cmd
}

/// The router's configuration: the schema's field rate limits (10 consignments a minute per user,
/// 5 registrations an hour per IP) would cap the benchmark, which is one IP and a few users.
const ROUTER_CONFIG: &str = r#"rate_limit:
  fields:
    Mutation.createConsignment: "1000000 per 1s per user"
    Mutation.register: "1000000 per 1s per ip"
    Mutation.login: "1000000 per 1s per ip"
"#;

async fn start_services(
    options: &PipelineOptions,
    namespace: &Namespace,
    services: &mut Services,
) -> Result<(), PipelineError> {
    let jwt = secret();
    let signing = secret();
    for subgraph in SUBGRAPHS {
        let mut cmd = shippy(options);
        cmd.args(["subgraph", subgraph, "--listen", "127.0.0.1:0"])
            .env(
                "DATABASE_URL",
                database_url(&options.database_url, &namespace.database(subgraph))?,
            )
            .env("REDIS_URL", &options.redis_url)
            .env("SHIPPY_STREAM_PREFIX", namespace.prefix())
            .env("SHIPPY_JWT_SECRET", &jwt)
            .env("SHIPPY_ROUTER_SIGNING_KEY", &signing);
        if let Some(config) = &options.subgraph_config {
            cmd.arg("--config").arg(config);
        }
        services.start(subgraph, cmd).await?;
    }
    for subgraph in SUBGRAPHS {
        let ready = services.urls[subgraph].replace("/graphql", "/ready");
        if !client::wait_ready(&ready, Duration::from_secs(60)).await? {
            return Err(PipelineError::Start {
                service: subgraph.to_owned(),
                reason: format!("{ready} did not answer 200 within 60 s"),
            });
        }
    }
    let supergraph = namespace.dir.join("supergraph.graphql");
    std::fs::write(&supergraph, SUPERGRAPH).map_err(io_error("writing the supergraph"))?;
    let config = namespace.dir.join("router.yaml");
    std::fs::write(&config, ROUTER_CONFIG).map_err(io_error("writing the router config"))?;
    let mut cmd = shippy(options);
    cmd.args(["router", "--listen", "127.0.0.1:0", "--supergraph"])
        .arg(&supergraph)
        .arg("--config")
        .arg(&config)
        .env("SHIPPY_ROUTER__AUTH__JWT__SECRET", &jwt)
        .env("SHIPPY_ROUTER__SUBGRAPH_SIGNING__KEY", &signing);
    for subgraph in SUBGRAPHS {
        cmd.env(
            format!("SHIPPY_ROUTER__SUBGRAPHS__{}__URL", subgraph.to_uppercase()),
            &services.urls[subgraph],
        );
    }
    services.start("router", cmd).await?;
    let health = services.urls["router"].replace("/graphql", "/health");
    if !client::wait_ready(&health, Duration::from_secs(60)).await? {
        return Err(PipelineError::Start {
            service: "router".into(),
            reason: format!("{health} did not answer 200 within 60 s"),
        });
    }
    Ok(())
}

/// One GraphQL request through `connection`; the data, or the response text as the error.
async fn graphql(
    connection: &mut Connection,
    target: &Target,
    body: serde_json::Value,
    token: Option<&str>,
) -> Result<serde_json::Value, String> {
    let authorization = token.map(|t| format!("Bearer {t}"));
    let (status, bytes) = connection
        .post_json_as(
            &target.path_and_query,
            Bytes::from(body.to_string()),
            authorization.as_deref(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&bytes);
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| format!("{status}: {text}"))?;
    if status != StatusCode::OK || value.get("errors").is_some() {
        return Err(format!("{status}: {text}"));
    }
    Ok(value["data"].clone())
}

/// Registers the users through the router and gives each a vessel; returns their tokens.
async fn set_up_users(
    options: &PipelineOptions,
    namespace: &Namespace,
    router: &str,
) -> Result<Vec<String>, PipelineError> {
    let target = Target::parse(router)?;
    let mut connection = Connection::open(&target).await?;
    let mut tokens = Vec::with_capacity(options.users);
    for n in 0..options.users {
        let register = serde_json::json!({
            "query": "mutation($input: RegisterInput!) { register(input: $input) { token } }",
            "variables": {"input": {
                "name": format!("Bench {n}"),
                "company": "Shippy bench",
                "email": format!("bench-{}-{n}@example.com", namespace.id),
                "password": "bench password",
            }},
        });
        let data = graphql(&mut connection, &target, register, None)
            .await
            .map_err(|e| PipelineError::Setup(format!("register: {e}")))?;
        let token = data["register"]["token"]
            .as_str()
            .ok_or_else(|| PipelineError::Setup(format!("register answered {data}")))?
            .to_owned();
        let vessel = serde_json::json!({
            "query": "mutation($input: CreateVesselInput!) { createVessel(input: $input) { id } }",
            "variables": {"input": {
                "name": format!("Bench {n}"),
                "capacity": VESSEL_CAPACITY,
                "maxWeight": VESSEL_MAX_WEIGHT,
            }},
        });
        graphql(&mut connection, &target, vessel, Some(&token))
            .await
            .map_err(|e| PipelineError::Setup(format!("createVessel: {e}")))?;
        tokens.push(token);
    }
    Ok(tokens)
}

/// Phases of the load, shared with the workers.
const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

/// What the load workers share.
struct Load {
    target: Target,
    body: Bytes,
    phase: AtomicU8,
    request_timeout: Duration,
    /// Confirmed over the whole load, and in the window only.
    confirmed: AtomicU64,
    confirmed_in_window: AtomicU64,
    failures: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

/// One connection sending `createConsignment` as `authorization` until the load stops; returns the
/// latencies (µs) of the requests answered in the window.
async fn load_worker(load: Arc<Load>, authorization: String) -> Vec<u64> {
    let mut latencies = Vec::new();
    let mut connection: Option<Connection> = None;
    while load.phase.load(Ordering::Relaxed) != STOPPING {
        let conn = match connection.as_mut() {
            Some(conn) if !conn.is_closed() => conn,
            _ => match Connection::open(&load.target).await {
                Ok(conn) => connection.insert(conn),
                Err(err) => {
                    load.fail(err.to_string()).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let answer = tokio::time::timeout(
            load.request_timeout,
            conn.post_json_as(
                &load.target.path_and_query,
                load.body.clone(),
                Some(&authorization),
            ),
        )
        .await;
        let in_window = load.phase.load(Ordering::Relaxed) == MEASURING;
        match answer {
            Ok(Ok((StatusCode::OK, body))) if created_id(&body) => {
                load.confirmed.fetch_add(1, Ordering::Relaxed);
                if in_window {
                    load.confirmed_in_window.fetch_add(1, Ordering::Relaxed);
                    latencies.push(started.elapsed().as_micros().try_into().unwrap_or(u64::MAX));
                }
            }
            Ok(Ok((status, body))) => {
                load.fail(format!("{status}: {}", String::from_utf8_lossy(&body)))
                    .await
            }
            Ok(Err(err)) => {
                load.fail(err.to_string()).await;
                connection = None;
            }
            Err(_) => {
                load.fail(format!("no answer within {:?}", load.request_timeout))
                    .await;
                connection = None;
            }
        }
    }
    latencies
}

impl Load {
    async fn fail(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.first_failure.lock().await.get_or_insert(what);
    }
}

/// Whether a response confirms a new consignment (an id, no errors).
pub fn created_id(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| {
        v.get("errors").is_none() && v["data"]["createConsignment"]["id"].is_string()
    })
}

/// Connections to what is measured: each service's database, Redis, and the admin database.
struct Probe {
    dbs: HashMap<&'static str, DatabaseConnection>,
    admin: DatabaseConnection,
    redis: redis::aio::MultiplexedConnection,
    prefix: String,
    database_names: Vec<String>,
}

/// The queues of the chain, in the order a consignment passes them, then the log's.
const OUTBOX_CONSIGNMENT: &str = "consignment outbox (events not yet on Redis)";
const GROUP_VESSEL: &str = "consignment stream, group vessel (booking requests not yet handled)";
const OUTBOX_VESSEL: &str = "vessel outbox (answers not yet on Redis)";
const GROUP_CONSIGNMENT: &str = "consignment stream, group consignment (answers not yet applied)";
const GROUP_LOG: &str = "log stream, group log (log events not yet stored)";
const CHAIN: [&str; 4] = [
    OUTBOX_CONSIGNMENT,
    GROUP_VESSEL,
    OUTBOX_VESSEL,
    GROUP_CONSIGNMENT,
];

impl Probe {
    async fn open(
        options: &PipelineOptions,
        namespace: &Namespace,
    ) -> Result<Probe, PipelineError> {
        let mut dbs = HashMap::new();
        for subgraph in SUBGRAPHS {
            let url = database_url(&options.database_url, &namespace.database(subgraph))?;
            dbs.insert(subgraph, connect(&url, 2).await?);
        }
        let client = redis::Client::open(options.redis_url.as_str())?;
        Ok(Probe {
            dbs,
            admin: connect(&options.database_url, 1).await?,
            redis: client.get_multiplexed_async_connection().await?,
            prefix: namespace.prefix(),
            database_names: SUBGRAPHS.iter().map(|s| namespace.database(s)).collect(),
        })
    }

    async fn count(&self, subgraph: &str, sql: &str) -> Result<u64, PipelineError> {
        let row = self.dbs[subgraph]
            .query_one_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                sql.to_owned(),
            ))
            .await?
            .ok_or_else(|| PipelineError::Setup(format!("no row from `{sql}`")))?;
        let n: i64 = row.try_get_by_index(0)?;
        Ok(n.max(0) as u64)
    }

    async fn sample(&self, since: Instant) -> Result<Sample, PipelineError> {
        let row = self.dbs["consignment"]
            .query_one_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                format!(
                    "SELECT count(*), count(*) FILTER (WHERE status = '{}'), \
                     count(*) FILTER (WHERE status = '{}') FROM consignments",
                    consignment::status::ASSIGNED,
                    consignment::status::PENDING
                ),
            ))
            .await?
            .ok_or_else(|| PipelineError::Setup("no count of consignments".into()))?;
        let get = |i| row.try_get_by_index::<i64>(i).map(|n| n.max(0) as u64);
        Ok(Sample {
            at_seconds: since.elapsed().as_secs_f64(),
            consignments: get(0)?,
            assigned: get(1)?,
            pending: get(2)?,
            log_entries: self
                .count("log", "SELECT count(*) FROM log_entries")
                .await?,
        })
    }

    /// Unpublished outbox rows of `subgraph`.
    async fn outbox(&self, subgraph: &str) -> Result<u64, PipelineError> {
        self.count(
            subgraph,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        )
        .await
    }

    /// Entries of `stream` that `group` has not read (lag) or not acknowledged (pending).
    async fn group_backlog(&self, stream: &str, group: &str) -> Result<u64, PipelineError> {
        let mut conn = self.redis.clone();
        let groups: redis::Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(format!("{}{stream}", self.prefix))
            .query_async(&mut conn)
            .await?;
        Ok(group_backlog(&groups, group).unwrap_or(0))
    }

    async fn queues(&self) -> Result<HashMap<&'static str, u64>, PipelineError> {
        Ok(HashMap::from([
            (OUTBOX_CONSIGNMENT, self.outbox("consignment").await?),
            (
                GROUP_VESSEL,
                self.group_backlog(streams::CONSIGNMENT, "vessel").await?,
            ),
            (OUTBOX_VESSEL, self.outbox("vessel").await?),
            (
                GROUP_CONSIGNMENT,
                self.group_backlog(streams::CONSIGNMENT, "consignment")
                    .await?,
            ),
            (GROUP_LOG, self.group_backlog(streams::LOG, "log").await?),
        ]))
    }

    /// PostgreSQL's processes that work for this run: the backends of our databases and the
    /// server's background processes (WAL writer, checkpointer, autovacuum...), which also serve
    /// everyone else's databases.
    async fn postgres_pids(&self) -> Result<Vec<u32>, PipelineError> {
        let names = self
            .database_names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(",");
        let rows = self
            .admin
            .query_all_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                format!(
                    "SELECT pid FROM pg_stat_activity \
                     WHERE datname IN ({names}) OR backend_type <> 'client backend'"
                ),
            ))
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get_by_index::<i32>(0)?.max(0) as u32))
            .collect()
    }

    async fn redis_pid(&self) -> Option<u32> {
        let mut conn = self.redis.clone();
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
    }

    /// Percentiles of `expr` (an interval) over `table` rows matching `filter`, in milliseconds.
    async fn lag(
        &self,
        subgraph: &str,
        table: &str,
        expr: &str,
        filter: &str,
    ) -> Result<Lag, PipelineError> {
        let ms = format!("extract(epoch from ({expr})) * 1000");
        let row = self.dbs[subgraph]
            .query_one_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                format!(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {ms})::float8, \
                     percentile_cont(0.99) WITHIN GROUP (ORDER BY {ms})::float8, \
                     max({ms})::float8 FROM {table} WHERE {filter}"
                ),
            ))
            .await?
            .ok_or_else(|| PipelineError::Setup(format!("no lag from {table}")))?;
        let get = |i| {
            row.try_get_by_index::<Option<f64>>(i)
                .map(Option::unwrap_or_default)
        };
        Ok(Lag {
            p50: get(0)?,
            p99: get(1)?,
            max: get(2)?,
        })
    }
}

/// `lag + pending` of `group` in an `XINFO GROUPS` reply (RESP2 pairs or RESP3 maps).
pub fn group_backlog(reply: &redis::Value, group: &str) -> Option<u64> {
    use redis::Value;
    let groups = match reply {
        Value::Array(groups) => groups,
        _ => return None,
    };
    let field = |entry: &Value, name: &str| -> Option<Value> {
        match entry {
            Value::Array(pairs) => pairs.chunks(2).find_map(|pair| match pair {
                [Value::BulkString(k), v] if k == name.as_bytes() => Some(v.clone()),
                [Value::SimpleString(k), v] if k == name => Some(v.clone()),
                _ => None,
            }),
            Value::Map(pairs) => pairs.iter().find_map(|(k, v)| match k {
                Value::BulkString(k) if k == name.as_bytes() => Some(v.clone()),
                Value::SimpleString(k) if k == name => Some(v.clone()),
                _ => None,
            }),
            _ => None,
        }
    };
    let number = |v: Option<Value>| match v {
        Some(Value::Int(n)) => n.max(0) as u64,
        _ => 0,
    };
    let entry = groups.iter().find(|entry| match field(entry, "name") {
        Some(Value::BulkString(n)) => n == group.as_bytes(),
        Some(Value::SimpleString(n)) => n == group,
        _ => false,
    })?;
    Some(number(field(entry, "lag")) + number(field(entry, "pending")))
}

/// CPU ticks of each watched process (or group of processes) right now.
fn cpu_sample(watched: &[(String, Vec<u32>)]) -> HashMap<u32, u64> {
    watched
        .iter()
        .flat_map(|(_, pids)| pids.iter())
        // A backend that ended since has no time to read; the window then misses its share.
        .filter_map(|&pid| Some((pid, procfs::cpu_ticks(pid).ok()?)))
        .collect()
}

async fn measure(
    options: &PipelineOptions,
    namespace: &Namespace,
    services: &mut Services,
) -> Result<PipelineReport, PipelineError> {
    start_services(options, namespace, services).await?;
    let router = services.urls["router"].clone();
    let tokens = set_up_users(options, namespace, &router).await?;
    let probe = Probe::open(options, namespace).await?;

    let body = serde_json::json!({
        "query": format!("mutation {{ createConsignment(input: {{description: \"bench\", weight: {CONSIGNMENT_WEIGHT}, containers: [{{customerId: \"c1\", origin: \"Rotterdam\"}}]}}) {{ id }} }}"),
    });
    let load = Arc::new(Load {
        target: Target::parse(&router)?,
        body: Bytes::from(body.to_string()),
        phase: AtomicU8::new(WARMING),
        request_timeout: options.request_timeout,
        confirmed: AtomicU64::new(0),
        confirmed_in_window: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        first_failure: Mutex::new(None),
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..options.connections)
        .map(|i| {
            let authorization = format!("Bearer {}", tokens[i % tokens.len()]);
            tokio::spawn(load_worker(Arc::clone(&load), authorization))
        })
        .collect();
    let mut timeline = Vec::new();
    let sample_every = options.sample_every.max(Duration::from_millis(100));
    let until = started + options.warmup;
    while Instant::now() < until {
        tokio::time::sleep(sample_every.min(until - Instant::now())).await;
        timeline.push(probe.sample(started).await?);
    }

    // The window opens: everything is read at both ends.
    let mut watched: Vec<(String, Vec<u32>)> = SUBGRAPHS
        .iter()
        .chain(["router"].iter())
        .filter_map(|name| Some((name.to_string(), vec![services.pid(name)?])))
        .collect();
    watched.push(("loadgen (this process)".into(), vec![std::process::id()]));
    if let Some(pid) = probe.redis_pid().await {
        watched.push(("redis".into(), vec![pid]));
    }
    let pg_before = probe.postgres_pids().await?;
    let window_opened_at: DateTime<Utc> = Utc::now();
    let queues_before = probe.queues().await?;
    let first = probe.sample(started).await?;
    let cpu_before = cpu_sample(&watched);
    let pg_cpu_before = cpu_sample(&[("postgres".into(), pg_before.clone())]);
    let machine_before = procfs::machine_ticks().map_err(io_error("reading /proc/stat"))?;
    let window_start = Instant::now();
    load.phase.store(MEASURING, Ordering::Relaxed);
    timeline.push(first);

    let until = window_start + options.duration;
    while Instant::now() < until {
        tokio::time::sleep(sample_every.min(until - Instant::now())).await;
        timeline.push(probe.sample(started).await?);
    }
    load.phase.store(STOPPING, Ordering::Relaxed);
    let window = window_start.elapsed().as_secs_f64();
    let cpu_after = cpu_sample(&watched);
    let machine_after = procfs::machine_ticks().map_err(io_error("reading /proc/stat"))?;
    let pg_after = probe.postgres_pids().await?;
    let pg_cpu_after = cpu_sample(&[("postgres".into(), pg_after.clone())]);
    let last = probe.sample(started).await?;
    let queues_after = probe.queues().await?;
    let window_closed_at: DateTime<Utc> = Utc::now();
    timeline.push(last);

    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap_or_default());
    }

    // Drain: every consignment confirmed must be assigned and logged.
    let confirmed_total = load.confirmed.load(Ordering::Relaxed);
    let drain_start = Instant::now();
    let (final_sample, missing_log_entries) = loop {
        let sample = probe.sample(started).await?;
        let mut missing = 0;
        for kind in LOG_KINDS {
            let stored = probe
                .count(
                    "log",
                    &format!("SELECT count(*) FROM log_entries WHERE kind = '{kind}'"),
                )
                .await?;
            missing += sample.consignments.saturating_sub(stored);
        }
        let done = sample.consignments >= confirmed_total
            && sample.assigned == sample.consignments
            && missing == 0;
        if done || drain_start.elapsed() >= options.drain_timeout {
            timeline.push(sample);
            break (sample, missing);
        }
        tokio::time::sleep(sample_every).await;
        timeline.push(sample);
    };
    let drain_seconds = drain_start.elapsed().as_secs_f64();

    let window_filter = |column: &str| {
        format!(
            "{column} >= '{}' AND {column} < '{}'",
            window_opened_at.to_rfc3339(),
            window_closed_at.to_rfc3339()
        )
    };
    let assignment_lag_ms = probe
        .lag(
            "consignment",
            "consignments",
            "updated_at - created_at",
            &format!(
                "status = '{}' AND {}",
                consignment::status::ASSIGNED,
                window_filter("created_at")
            ),
        )
        .await?;
    let log_lag_ms = probe
        .lag(
            "log",
            "log_entries",
            "stored_at - created_at",
            &window_filter("created_at"),
        )
        .await?;

    let created = load.confirmed_in_window.load(Ordering::Relaxed);
    let assigned = last.assigned.saturating_sub(first.assigned);
    let log_entries = last.log_entries.saturating_sub(first.log_entries);
    let per_second = |n: u64| ratio(n as f64, window);
    let ticks_to_seconds = |t: u64| t as f64 / options.clk_tck as f64;

    let mut processes: Vec<ProcessCpu> = Vec::new();
    let cpu_of = |pids: &[u32], before: &HashMap<u32, u64>, after: &HashMap<u32, u64>| {
        pids.iter()
            .filter_map(|pid| {
                Some(
                    after
                        .get(pid)?
                        .saturating_sub(*before.get(pid).unwrap_or(&0)),
                )
            })
            .sum::<u64>()
    };
    let mut ours = 0.0;
    for (label, pids) in &watched {
        let seconds = ticks_to_seconds(cpu_of(pids, &cpu_before, &cpu_after));
        ours += seconds;
        processes.push(ProcessCpu {
            label: label.clone(),
            pids: pids.clone(),
            cpu_percent: ratio(seconds * 100.0, window),
            cpu_ms_per_assigned: ratio(seconds * 1000.0, assigned as f64),
        });
    }
    let pg_seconds = ticks_to_seconds(cpu_of(&pg_after, &pg_cpu_before, &pg_cpu_after));
    ours += pg_seconds;
    processes.push(ProcessCpu {
        label: "postgres (our backends + background)".into(),
        pids: pg_after,
        cpu_percent: ratio(pg_seconds * 100.0, window),
        cpu_ms_per_assigned: ratio(pg_seconds * 1000.0, assigned as f64),
    });
    let machine_busy = machine_after.0.saturating_sub(machine_before.0);
    let machine_total = machine_after.1.saturating_sub(machine_before.1);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // Busy share of all CPUs, scaled so that 100 is one core (like the per-process figures).
    let machine_cpu_percent = ratio(machine_busy as f64 * 100.0 * cpus, machine_total as f64);
    let other_cpu_percent = (machine_cpu_percent - ratio(ours * 100.0, window)).max(0.0);

    let queues: Vec<Queue> = CHAIN
        .iter()
        .chain([GROUP_LOG].iter())
        .map(|name| {
            let at_start = queues_before[name];
            let at_end = queues_after[name];
            Queue {
                name: (*name).to_owned(),
                at_start,
                at_end,
                growth_per_second: (at_end as f64 - at_start as f64) / window.max(f64::EPSILON),
            }
        })
        .collect();
    let bottleneck = bottleneck(&queues, &processes, created, last.pending, window);

    Ok(PipelineReport {
        run_id: namespace.id.clone(),
        subgraph_config: options.subgraph_config.clone(),
        users: options.users,
        connections: options.connections,
        warmup_seconds: options.warmup.as_secs_f64(),
        measured_seconds: window,
        created,
        created_per_second: per_second(created),
        assigned,
        assigned_per_second: per_second(assigned),
        log_entries,
        log_entries_per_second: per_second(log_entries),
        create_latency_ms: load::latency(&mut latencies),
        assignment_lag_ms,
        log_lag_ms,
        queues,
        processes,
        machine_cpu_percent,
        other_cpu_percent,
        bottleneck,
        create_failures: load.failures.load(Ordering::Relaxed),
        first_failure: load.first_failure.lock().await.clone(),
        confirmed_total,
        drain_seconds,
        final_consignments: final_sample.consignments,
        final_assigned: final_sample.assigned,
        lost: confirmed_total.saturating_sub(final_sample.consignments),
        not_assigned: final_sample
            .consignments
            .saturating_sub(final_sample.assigned),
        missing_log_entries,
        timeline,
    })
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

/// A queue grows when it gained more than 2% of the window's consignments (and at least 20
/// entries): small wobbles are batches in flight, not a stage falling behind.
fn grows(queue: &Queue, created: u64) -> bool {
    let gained = queue.at_end.saturating_sub(queue.at_start);
    gained > 20 && gained as f64 > 0.02 * created as f64
}

/// Names the bottleneck from the queues (see the module docs) and the busiest of our processes.
pub fn bottleneck(
    queues: &[Queue],
    processes: &[ProcessCpu],
    created: u64,
    pending_at_end: u64,
    window: f64,
) -> Bottleneck {
    let growing = CHAIN
        .iter()
        .filter_map(|name| queues.iter().find(|q| q.name == *name))
        .find(|q| grows(q, created));
    let log_keeps_up = queues
        .iter()
        .find(|q| q.name == GROUP_LOG)
        .is_none_or(|q| !grows(q, created));
    let busiest = processes
        .iter()
        .filter(|p| !p.label.starts_with("postgres") && p.label != "redis")
        .max_by(|a, b| a.cpu_percent.total_cmp(&b.cpu_percent));
    let (busiest_process, busiest_cpu_percent) =
        busiest.map_or((String::new(), 0.0), |p| (p.label.clone(), p.cpu_percent));
    let verdict = match growing {
        Some(q) => format!(
            "consignments pile up in the {} (+{:.0}/s); the stage after it cannot keep up. \
             {} PENDING at the end of the window. Busiest process: {busiest_process} at \
             {busiest_cpu_percent:.0}% CPU",
            q.name, q.growth_per_second, pending_at_end
        ),
        None => format!(
            "assignment keeps up with creation ({:.0} created/s, {pending_at_end} PENDING at the \
             end): the create path (client, router, consignment subgraph) sets the pace. Busiest \
             process: {busiest_process} at {busiest_cpu_percent:.0}% CPU",
            ratio(created as f64, window)
        ),
    };
    Bottleneck {
        growing_queue: growing.map(|q| q.name.clone()),
        busiest_process,
        busiest_cpu_percent,
        log_consumer_keeps_up: log_keeps_up,
        verdict,
    }
}

/// A few lines for the terminal.
pub fn summary(report: &PipelineReport) -> String {
    let mut out = format!(
        "{} connections, {} users, {:.1}s window: created {:.0}/s, assigned {:.0}/s, log entries \
         stored {:.0}/s\n",
        report.connections,
        report.users,
        report.measured_seconds,
        report.created_per_second,
        report.assigned_per_second,
        report.log_entries_per_second
    );
    if let Some(config) = &report.subgraph_config {
        out += &format!("subgraphs' settings: {}\n", config.display());
    }
    out += &format!(
        "createConsignment p50 {:.1} ms p99 {:.1} ms; create -> ASSIGNED p50 {:.0} ms p99 {:.0} ms; \
         log lag p50 {:.0} ms p99 {:.0} ms\n",
        report.create_latency_ms.p50,
        report.create_latency_ms.p99,
        report.assignment_lag_ms.p50,
        report.assignment_lag_ms.p99,
        report.log_lag_ms.p50,
        report.log_lag_ms.p99
    );
    for q in &report.queues {
        out += &format!(
            "  queue {}: {} -> {} ({:+.0}/s)\n",
            q.name, q.at_start, q.at_end, q.growth_per_second
        );
    }
    for p in &report.processes {
        out += &format!(
            "  cpu {}: {:.0}% ({:.2} ms per assigned)\n",
            p.label, p.cpu_percent, p.cpu_ms_per_assigned
        );
    }
    out += &format!(
        "  machine {:.0}% of 200% busy, {:.0}% not ours\n",
        report.machine_cpu_percent, report.other_cpu_percent
    );
    out += &format!("bottleneck: {}\n", report.bottleneck.verdict);
    out += &format!(
        "log consumer keeps up: {}\n",
        report.bottleneck.log_consumer_keeps_up
    );
    out += &format!(
        "drain {:.1}s: {} confirmed, {} stored, {} assigned; lost {}, not assigned {}, log entries \
         missing {}; {} failed requests{}",
        report.drain_seconds,
        report.confirmed_total,
        report.final_consignments,
        report.final_assigned,
        report.lost,
        report.not_assigned,
        report.missing_log_entries,
        report.create_failures,
        report
            .first_failure
            .as_deref()
            .map(|f| format!(" (first: {f})"))
            .unwrap_or_default()
    );
    out
}

/// The `shippy` binary beside `exe` (`target/<profile>/shippy` for `target/<profile>/shippy-bench`),
/// or beside its parent (`target/<profile>/deps/<test>` for a test).
pub fn shippy_beside(exe: &Path) -> Option<PathBuf> {
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("shippy"))
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_server_user_and_parameters() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/test", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_url("postgres://u:p@db/test?sslmode=disable", "x").unwrap(),
            "postgres://u:p@db/x?sslmode=disable"
        );
        assert!(database_url("postgres://host-without-database", "x").is_err());
        assert!(database_url("not a url", "x").is_err());
    }

    #[test]
    fn confirmed_creates_have_an_id_and_no_errors() {
        assert!(created_id(br#"{"data":{"createConsignment":{"id":"a"}}}"#));
        assert!(!created_id(
            br#"{"data":{"createConsignment":{"id":"a"}},"errors":[{"message":"x"}]}"#
        ));
        assert!(!created_id(br#"{"data":null,"errors":[]}"#));
        assert!(!created_id(b"not json"));
    }

    #[test]
    fn group_backlog_adds_lag_and_pending_of_the_named_group() {
        use redis::Value;
        let group = |name: &str, lag: Value, pending: i64| {
            Value::Array(vec![
                Value::BulkString(b"name".to_vec()),
                Value::BulkString(name.as_bytes().to_vec()),
                Value::BulkString(b"pending".to_vec()),
                Value::Int(pending),
                Value::BulkString(b"lag".to_vec()),
                lag,
            ])
        };
        let reply = Value::Array(vec![
            group("vessel", Value::Int(7), 3),
            group("log", Value::Nil, 5),
        ]);
        assert_eq!(group_backlog(&reply, "vessel"), Some(10));
        // Redis cannot always tell the lag (nil): the pending entries still count.
        assert_eq!(group_backlog(&reply, "log"), Some(5));
        assert_eq!(group_backlog(&reply, "consignment"), None);
        let resp3 = Value::Array(vec![Value::Map(vec![
            (
                Value::SimpleString("name".into()),
                Value::BulkString(b"log".to_vec()),
            ),
            (Value::SimpleString("lag".into()), Value::Int(2)),
        ])]);
        assert_eq!(group_backlog(&resp3, "log"), Some(2));
    }

    fn queue(name: &str, at_start: u64, at_end: u64) -> Queue {
        Queue {
            name: name.to_owned(),
            at_start,
            at_end,
            growth_per_second: (at_end as f64 - at_start as f64) / 10.0,
        }
    }

    fn cpu(label: &str, cpu_percent: f64) -> ProcessCpu {
        ProcessCpu {
            label: label.to_owned(),
            pids: vec![1],
            cpu_percent,
            cpu_ms_per_assigned: 0.0,
        }
    }

    #[test]
    fn the_first_growing_queue_of_the_chain_is_the_bottleneck() {
        let queues = [
            queue(OUTBOX_CONSIGNMENT, 0, 5),
            queue(GROUP_VESSEL, 10, 4000),
            queue(OUTBOX_VESSEL, 0, 0),
            queue(GROUP_CONSIGNMENT, 0, 900),
            queue(GROUP_LOG, 0, 3000),
        ];
        let processes = [
            cpu("vessel", 95.0),
            cpu("postgres (x)", 120.0),
            cpu("router", 30.0),
        ];
        let b = bottleneck(&queues, &processes, 10_000, 5000, 10.0);
        assert_eq!(b.growing_queue.as_deref(), Some(GROUP_VESSEL));
        assert_eq!(b.busiest_process, "vessel", "PostgreSQL is not one of ours");
        assert!(!b.log_consumer_keeps_up);
        assert!(b.verdict.contains(GROUP_VESSEL), "{}", b.verdict);
    }

    #[test]
    fn small_wobbles_are_not_a_growing_queue() {
        // 20 entries, or 2% of the window's consignments, are batches in flight.
        let queues = [
            queue(OUTBOX_CONSIGNMENT, 100, 120),
            queue(GROUP_VESSEL, 0, 150),
            queue(OUTBOX_VESSEL, 50, 0),
            queue(GROUP_CONSIGNMENT, 0, 0),
            queue(GROUP_LOG, 0, 199),
        ];
        let b = bottleneck(&queues, &[cpu("router", 80.0)], 10_000, 3, 10.0);
        assert_eq!(b.growing_queue, None);
        assert!(b.log_consumer_keeps_up);
        assert!(b.verdict.contains("create path"), "{}", b.verdict);
        assert_eq!(b.busiest_process, "router");
    }

    #[test]
    fn shippy_is_found_beside_the_binary_or_its_parent() {
        let dir = tempfile_dir();
        std::fs::create_dir_all(dir.join("deps")).unwrap();
        assert_eq!(shippy_beside(&dir.join("deps/test-123")), None);
        std::fs::write(dir.join("shippy"), b"").unwrap();
        assert_eq!(
            shippy_beside(&dir.join("deps/test-123")),
            Some(dir.join("shippy"))
        );
        assert_eq!(
            shippy_beside(&dir.join("shippy-bench")),
            Some(dir.join("shippy"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        std::env::temp_dir().join(format!("shippy-beside-{}", uuid::Uuid::new_v4().simple()))
    }
}
