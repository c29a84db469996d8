//! `shippy-bench`: the benchmark's command-line tool. `bench/run.sh` drives its subcommands: serve the
//! subgraphs, write the supergraph, run our router, wait for readiness, load a target, render the
//! report.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use shippy_bench::{
    client, fanout,
    json::Json,
    load::{self, Labels, LoadOptions, Request, Stop, Watched},
    pipeline::{self, PipelineOptions},
    procfs, report,
    subgraphs::{self, SubgraphOptions},
    units::parse_duration,
    varied, workload,
};

#[derive(Parser)]
#[command(
    name = "shippy-bench",
    about = "Router benchmark: subgraphs, load generator, report"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the four benchmark subgraphs and the monolith baseline under /<name> on one port.
    Subgraphs(SubgraphsArgs),
    /// Print a workload's supergraph with its subgraph URLs under the given base URL.
    Supergraph {
        /// Where the subgraphs listen, e.g. http://127.0.0.1:4200.
        #[arg(long)]
        subgraphs_url: String,
        #[arg(long, value_enum, default_value_t = Workload::Benchmark)]
        workload: Workload,
    },
    /// Load a GraphQL endpoint with a workload and report what it measured (JSON).
    Load(LoadArgs),
    /// Render the markdown comparison from a directory of `load` reports.
    Report(ReportArgs),
    /// Wait until a URL answers GET with 200; fails after the timeout.
    WaitReady {
        url: String,
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Print a TCP port that is free on 127.0.0.1 right now.
    FreePort,
    /// Run our router (the same entry point as `shippy router`) until SIGINT or SIGTERM.
    Router(shippy_router::RouterArgs),
    /// Subscription fan-out: N WebSocket subscribers through our router (started as a child
    /// process) on one subscription; prints delivery latency and router RSS per subscriber.
    Fanout(FanoutArgs),
    /// Event pipeline: createConsignment through the router with every service a separate `shippy`
    /// process on fresh PostgreSQL databases and Redis; prints consignments assigned and log
    /// entries stored per second, and where the rest wait. Fails if any consignment is lost.
    Pipeline(PipelineArgs),
}

#[derive(Args)]
struct PipelineArgs {
    /// The `shippy` binary [default: `shippy` beside this executable].
    #[arg(long)]
    shippy: Option<PathBuf>,
    /// A PostgreSQL database of a user allowed to create databases; the run's own are created
    /// (and dropped) beside it.
    #[arg(
        long,
        env = "TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
    /// The shared Redis; only keys under the run's own prefix are written and deleted.
    #[arg(long, env = "TEST_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Users the consignments are spread over, each owning one vessel.
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Concurrent keep-alive connections sending createConsignment.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    warmup: Duration,
    /// The measured window.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// After the load, how long every consignment has to be assigned and logged.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Clock ticks per second of /proc CPU times (`getconf CLK_TCK`).
    #[arg(long, default_value_t = procfs::DEFAULT_CLK_TCK)]
    clk_tck: u64,
    /// A `shippy` settings file every subgraph starts with (`--config`), e.g. other
    /// `[events.consumer]` or `[relay]` settings; recorded in the report.
    #[arg(long)]
    subgraph_config: Option<PathBuf>,
    /// Write the JSON report here as well.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What a load run sends.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// The published benchmark: one operation, one expected response.
    Benchmark,
    /// Five operation shapes with changing variables, in rotation (its own supergraph).
    Varied,
}

#[derive(Args)]
struct FanoutArgs {
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Measured events.
    #[arg(long, default_value_t = 20)]
    events: usize,
    /// Time between measured events.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    interval: Duration,
    /// Subscribers connecting at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// The run fails after this long.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// Write the JSON report here as well.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Clock ticks per second of /proc CPU times (`getconf CLK_TCK`).
    #[arg(long, default_value_t = procfs::DEFAULT_CLK_TCK)]
    clk_tck: u64,
    /// Each subscriber's WebSocket read buffer, in bytes (tungstenite's default is 131072).
    #[arg(long, default_value_t = fanout::CLIENT_READ_BUFFER_SIZE)]
    client_read_buffer: usize,
    /// Run this router binary (`shippy`, started as `PATH router --supergraph .. --listen ..`)
    /// instead of the one built into this benchmark, e.g. to compare two builds with one client.
    #[arg(long)]
    router: Option<PathBuf>,
}

#[derive(Args)]
struct SubgraphsArgs {
    /// Address to listen on; port 0 picks a free one (see --addr-file).
    #[arg(long, default_value = "127.0.0.1:4200")]
    listen: SocketAddr,
    /// Execute every request instead of replaying memoized responses.
    #[arg(long)]
    no_memo: bool,
    /// Distinct requests memoized per subgraph.
    #[arg(long, default_value_t = SubgraphOptions::default().memo_capacity)]
    memo_capacity: usize,
    /// Write the bound address here once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[derive(Args)]
struct LoadArgs {
    /// The GraphQL endpoint, e.g. http://127.0.0.1:4000/graphql.
    #[arg(long)]
    url: String,
    /// What to send; `--operation` replaces the benchmark's operation.
    #[arg(long, value_enum, default_value_t = Workload::Benchmark)]
    workload: Workload,
    /// The operation to send (default: the benchmark operation).
    #[arg(long, conflicts_with = "workload")]
    operation: Option<PathBuf>,
    /// The operation name to send with it (default: TestQuery with the default operation).
    #[arg(long)]
    operation_name: Option<String>,
    /// The response every request must get (default: the benchmark's expected response).
    #[arg(long, conflicts_with = "workload")]
    expected: Option<PathBuf>,
    /// Concurrent keep-alive connections, each one request at a time.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Length of the measured window.
    #[arg(long, default_value = "20s", value_parser = parse_duration, conflicts_with = "requests")]
    duration: Duration,
    /// Measure this many requests instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Unmeasured load before the window.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// A request without an answer after this long is a failure.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// A process to measure, as LABEL=PID (`router`, `subgraphs`); repeatable.
    #[arg(long = "pid", value_parser = parse_watched)]
    watch: Vec<Watched>,
    /// The benchmark subgraphs' traffic counters (http://HOST:PORT/stats), to report subgraph
    /// calls per request.
    #[arg(long)]
    subgraph_stats: Option<String>,
    /// Clock ticks per second of /proc CPU times (`getconf CLK_TCK`).
    #[arg(long, default_value_t = procfs::DEFAULT_CLK_TCK)]
    clk_tck: u64,
    /// Labels recorded in the report.
    #[arg(long, default_value = "target")]
    target: String,
    #[arg(long, default_value = "default")]
    mode: String,
    #[arg(long, default_value_t = 1)]
    round: u32,
    /// Write the JSON report here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Threads of the load generator; it shares the machine with what it measures.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Exit non-zero when any measured request failed (CI smoke runs).
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
struct ReportArgs {
    /// Directory of `load --out` JSON files.
    results: PathBuf,
    #[arg(long, default_value = "Router benchmark")]
    title: String,
    /// A line under the title; repeatable.
    #[arg(long = "note")]
    notes: Vec<String>,
    /// The target ratios are taken against.
    #[arg(long, default_value = "hive")]
    reference: String,
    /// Callgrind instruction counts, `mode<TAB>target<TAB>instructions per request` per line.
    #[arg(long)]
    instructions: Option<PathBuf>,
}

fn parse_watched(text: &str) -> Result<Watched, String> {
    let (label, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not LABEL=PID"))?;
    let pid = pid
        .parse()
        .map_err(|_| format!("`{pid}` is not a process id"))?;
    Ok(Watched {
        label: label.to_owned(),
        pid,
    })
}

// The same allocator as the `shippy` binary, so that `shippy-bench router` measures what `shippy
// router` runs (and the subgraphs and load generator allocate as cheaply).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("shippy-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Subgraphs(args) => runtime(None)?.block_on(serve_subgraphs(args))?,
        Command::Supergraph {
            subgraphs_url,
            workload,
        } => match workload {
            Workload::Benchmark => print!("{}", workload::supergraph_for(&subgraphs_url)),
            Workload::Varied => print!("{}", varied::supergraph_for(&subgraphs_url)),
        },
        Command::Load(args) => {
            let threads = args.threads.max(1);
            return runtime(Some(threads))?.block_on(load(args));
        }
        Command::Report(args) => {
            let reports = report::load_dir(&args.results)
                .with_context(|| format!("reading {}", args.results.display()))?;
            if reports.is_empty() {
                bail!("no run reports in {}", args.results.display());
            }
            let instructions = match &args.instructions {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    report::parse_instructions(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                }
                None => Vec::new(),
            };
            let options = report::ReportOptions {
                title: args.title,
                notes: args.notes,
                reference: args.reference,
                ..report::ReportOptions::default()
            };
            print!("{}", report::render(&reports, &instructions, &options));
        }
        Command::WaitReady { url, timeout } => {
            if !runtime(Some(1))?.block_on(client::wait_ready(&url, timeout))? {
                bail!("{url} did not answer 200 within {timeout:?}");
            }
        }
        Command::Router(args) => {
            // As the `shippy` binary does: one rustls crypto provider for the whole process (an
            // error only means one is installed already).
            let _ = rustls::crypto::ring::default_provider().install_default();
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            runtime(None)?.block_on(shippy_router::run(args, shutdown_signal()))?;
        }
        Command::Fanout(args) => return runtime(None)?.block_on(fanout(args)),
        Command::Pipeline(args) => return runtime(None)?.block_on(pipeline(args)),
        Command::FreePort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", listener.local_addr()?.port());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}

async fn serve_subgraphs(args: SubgraphsArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    if let Some(path) = &args.addr_file {
        std::fs::write(path, addr.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "benchmark subgraphs listening on http://{addr} (memoize: {})",
        !args.no_memo
    );
    let options = SubgraphOptions {
        memoize: !args.no_memo,
        memo_capacity: args.memo_capacity,
    };
    subgraphs::serve(listener, options, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM, so `run.sh` can stop the subgraphs cleanly.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        // Without a SIGTERM handler, Ctrl-C still works and SIGTERM's default action ends us.
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The requests of a load run and the workload's name for the report.
async fn requests(args: &LoadArgs) -> anyhow::Result<(Vec<Request>, String)> {
    if args.workload == Workload::Varied {
        let requests = varied::requests()
            .await
            .context("computing the expected responses")?;
        return Ok((requests, varied::NAME.to_owned()));
    }
    let (query, operation_name) = match &args.operation {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            (text, args.operation_name.clone())
        }
        None => (
            workload::OPERATION.to_owned(),
            Some(
                args.operation_name
                    .clone()
                    .unwrap_or_else(|| workload::OPERATION_NAME.to_owned()),
            ),
        ),
    };
    let expected_text = match &args.expected {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => workload::EXPECTED_RESPONSE.as_bytes().to_vec(),
    };
    let expected = Json::parse(&expected_text).context("the expected response is not JSON")?;
    let custom = args.operation.is_some() || args.expected.is_some();
    let name = operation_name
        .clone()
        .unwrap_or_else(|| "the operation".into());
    let request = Request::new(
        name,
        workload::request_body(&query, operation_name.as_deref()),
        expected,
    );
    let workload = if custom {
        "custom"
    } else {
        load::BENCHMARK_WORKLOAD
    };
    Ok((vec![request], workload.to_owned()))
}

async fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let (requests, workload) = requests(&args).await?;
    let mut watch = args.watch;
    // Our own cost too: a saturated load generator would cap every target at the same rate.
    watch.push(Watched {
        label: "loadgen".into(),
        pid: std::process::id(),
    });
    let options = LoadOptions {
        url: args.url.clone(),
        requests,
        workload,
        connections: args.connections,
        stop: args
            .requests
            .map_or(Stop::After(args.duration), Stop::Requests),
        warmup: args.warmup,
        request_timeout: args.request_timeout,
        watch,
        subgraph_stats: args.subgraph_stats,
        clk_tck: args.clk_tck,
        labels: Labels {
            target: args.target,
            mode: args.mode,
            round: args.round,
        },
    };
    let report = load::run(options)
        .await
        .with_context(|| format!("loading {}", args.url))?;

    let l = &report.latency_ms;
    eprintln!(
        "{} [{} round {}]: {:.0} req/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, {} ok, {} failed{}",
        report.labels.target,
        report.labels.mode,
        report.labels.round,
        report.requests_per_second,
        l.p50,
        l.p90,
        l.p99,
        report.ok,
        report.failures.total(),
        report
            .processes
            .iter()
            .fold(String::new(), |acc, p| format!(
                "{acc}; {} {:.0}% CPU, {:.3} CPU ms/req, peak {:.1} MiB",
                p.label, p.cpu_percent, p.cpu_ms_per_request, p.peak_rss_mib
            )),
    );
    if let Some(mismatch) = &report.first_mismatch {
        eprintln!("first wrong response: {mismatch}");
    }
    let json = serde_json::to_string_pretty(&report)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?
        }
        None => println!("{json}"),
    }
    if args.strict && report.failures.total() > 0 {
        eprintln!("{} requests failed", report.failures.total());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn fanout(args: FanoutArgs) -> anyhow::Result<ExitCode> {
    let source = fanout::Source::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = source.app();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let supergraph =
        std::env::temp_dir().join(format!("shippy-fanout-{}.graphql", std::process::id()));
    std::fs::write(&supergraph, fanout::supergraph(&base))
        .with_context(|| format!("writing {}", supergraph.display()))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let router_bin = match &args.router {
        Some(path) => path.clone(),
        None => std::env::current_exe()?,
    };
    let spawned = tokio::process::Command::new(&router_bin)
        .arg("router")
        .arg("--supergraph")
        .arg(&supergraph)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        // The fan-out's subgraphs do not check the router's signature: no signing key needed.
        .env("SHIPPY_ROUTER__SUBGRAPH_SIGNING__REQUIRED", "false")
        .env(
            "SHIPPY_ROUTER__SUBSCRIPTIONS__MAX_CONNECTIONS",
            (args.subscribers + 100).to_string(),
        )
        // Every subscriber connects from 127.0.0.1: the connection caps (total and per client
        // IP) must fit them all.
        .env(
            "SHIPPY_ROUTER__HTTP__CONNECTIONS__MAX_CONNECTIONS",
            (args.subscribers + 100).to_string(),
        )
        .env(
            "SHIPPY_ROUTER__HTTP__CONNECTIONS__MAX_CONNECTIONS_PER_IP",
            (args.subscribers + 100).to_string(),
        )
        // Its banner would go before the report, which is all this command prints on stdout;
        // its logs (stderr) still show.
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut router = match spawned {
        Ok(router) => router,
        Err(err) => {
            let _ = std::fs::remove_file(&supergraph);
            return Err(err)
                .with_context(|| format!("starting the router ({})", router_bin.display()));
        }
    };
    let health = format!("http://127.0.0.1:{port}/health");
    if !client::wait_ready(&health, Duration::from_secs(30)).await? {
        bail!("the router did not answer {health}");
    }
    let options = fanout::FanoutOptions {
        url: format!("ws://127.0.0.1:{port}/graphql"),
        subscribers: args.subscribers,
        events: args.events,
        interval: args.interval,
        connect_concurrency: args.connect_concurrency,
        timeout: args.timeout,
        router_pid: router.id(),
        clk_tck: args.clk_tck,
        client_read_buffer: args.client_read_buffer,
    };
    let result = fanout::run(source, &options).await;
    let _ = router.kill().await;
    let _ = std::fs::remove_file(&supergraph);
    let report = result?;
    eprintln!("{}", fanout::summary(&report));
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{json}");
    Ok(if report.lost_or_reordered == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn pipeline(args: PipelineArgs) -> anyhow::Result<ExitCode> {
    let shippy = match args.shippy {
        Some(path) => path,
        None => pipeline::shippy_beside(&std::env::current_exe()?).context(
            "no `shippy` beside this executable: build it (cargo build --release -p shippy) or pass --shippy",
        )?,
    };
    let mut options = PipelineOptions::new(shippy, args.database_url, args.redis_url);
    options.users = args.users;
    options.connections = args.connections;
    options.warmup = args.warmup;
    options.duration = args.duration;
    options.drain_timeout = args.drain_timeout;
    options.clk_tck = args.clk_tck;
    // Absolute: the services run in a directory of their own.
    options.subgraph_config = args
        .subgraph_config
        .map(|path| {
            std::fs::canonicalize(&path).with_context(|| format!("reading {}", path.display()))
        })
        .transpose()?;
    let report = pipeline::run(&options).await?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{json}");
    eprintln!("{}", pipeline::summary(&report));
    Ok(if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
