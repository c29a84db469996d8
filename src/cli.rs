//! The `shippy` command line: one binary for the whole system or any one part of it.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use shippy_kit::{CancellationToken, db, events, shutdown};

use crate::{
    dead_letters::{self, EventsCommand},
    demo::{self, DemoArgs},
    schema_tool::{self, CheckOptions, ComposeOptions},
    services::{self, SUBGRAPHS},
    settings::{Settings, SettingsArgs},
    up,
};

/// Shippy: a federated GraphQL shipping platform.
///
/// With no subcommand, runs `shippy up`.
#[derive(Debug, Parser)]
#[command(name = "shippy", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process (the default): SQLite files in the data directory, an in-process
    /// event bus (Redis streams with REDIS_URL), ports from --port-base.
    Up,
    /// Run one subgraph as its own process (how production runs: with DATABASE_URL and REDIS_URL).
    Subgraph(SubgraphArgs),
    /// Apply one subgraph's migrations to its database (DATABASE_URL, else the SQLite file) and exit.
    Migrate(MigrateArgs),
    /// Run the federation router over a supergraph (any Apollo Federation v2 subgraphs, not only ours).
    Router(shippy_router::cli::RouterArgs),
    /// Schema tools.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Walk through Shippy via the router: register, log in, create a vessel, ship a consignment and
    /// print it once assigned (against `shippy up` by default).
    Demo(DemoArgs),
    /// The Redis event streams' dead letters (needs REDIS_URL).
    #[command(subcommand)]
    Events(EventsCommand),
}

/// `shippy subgraph` arguments.
#[derive(Debug, Args)]
pub struct SubgraphArgs {
    /// Which subgraph.
    #[arg(value_parser = services::subgraph_names())]
    pub name: String,
    /// Address to listen on [default: 127.0.0.1:<4000 + the subgraph's offset>].
    #[arg(long, env = "SHIPPY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// `shippy migrate` arguments.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Which subgraph's migrations.
    #[arg(value_parser = services::subgraph_names())]
    pub name: String,
}

/// `shippy schema` subcommands.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Write each subgraph's federation SDL to <OUT>/<name>.graphql.
    Export {
        /// Output directory.
        #[arg(long, default_value = "schema", value_name = "DIR")]
        out: PathBuf,
    },
    /// Compose `schema/<name>.graphql` into `schema/supergraph.graphql` (needs Node.js and npm).
    Compose(ComposeOptions),
    /// Check drift, composition, a stale supergraph and unapproved breaking changes (needs Node.js and npm).
    Check(CheckOptions),
}

impl Cli {
    /// Loads the layered settings for this invocation.
    pub fn load_settings(&self) -> anyhow::Result<Settings> {
        // `shippy router --config` names the router's configuration file; the global `--config`
        // flag shares its name, so clap hands the router's file to both. The router reads it
        // itself: loading it as `shippy` settings would reject every router key.
        if matches!(self.command, Some(Command::Router(_))) {
            let mut settings = self.settings.clone();
            settings.config = None;
            return settings.load();
        }
        self.settings.load()
    }
}

/// Runs the parsed command with loaded settings; the exit code distinguishes a failed check (1) from a
/// command that could not run (2) where that matters (the schema tools).
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Up) {
        Command::Schema(SchemaCommand::Compose(options)) => {
            let report =
                tokio::task::spawn_blocking(move || schema_tool::compose(&options)).await??;
            print!("{}", report.output);
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::Schema(SchemaCommand::Check(options)) => {
            // The scripts block on node; keep them off the async workers.
            let report = tokio::task::spawn_blocking(move || {
                schema_tool::check(&options, |dir: &std::path::Path| export_sdl(dir).map(drop))
            })
            .await??;
            print!("{}", report.output);
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::Demo(args) => {
            demo::run(&args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Events(command) => {
            print!("{}", dead_letters::run(command, &settings).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema(SchemaCommand::Export { out }) => {
            for path in export_sdl(&out)? {
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        command => run_service(command, settings)
            .await
            .map(|()| ExitCode::SUCCESS),
    }
}

/// The long-running commands and `migrate`: they either succeed or fail with an error.
async fn run_service(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Up => up::run(settings, up::services(), shutdown::on_signal()).await,
        Command::Subgraph(args) => run_subgraph(settings, args, shutdown::on_signal()).await,
        Command::Router(args) => {
            shippy_router::cli::run(args, shutdown::on_signal().cancelled_owned()).await
        }
        Command::Migrate(args) => {
            let subgraph = services::subgraph(&args.name).context("unknown subgraph")?;
            let url = settings.standalone_database_url(subgraph.name);
            if settings.database_url.is_none() {
                std::fs::create_dir_all(&settings.data_dir)?;
            }
            (subgraph.migrate)(url.clone()).await?;
            println!(
                "{}: migrations applied to {}",
                subgraph.name,
                db::redact(&url)
            );
            Ok(())
        }
        Command::Schema(_) | Command::Demo(_) | Command::Events(_) => {
            bail!("this command does not run as a service")
        }
    }
}

/// Writes every subgraph's federation SDL to `<out>/<name>.graphql`; returns the files written.
pub fn export_sdl(out: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    SUBGRAPHS
        .iter()
        .map(|subgraph| {
            let path = out.join(format!("{}.graphql", subgraph.name));
            std::fs::write(&path, (subgraph.sdl)())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

async fn run_subgraph(
    settings: Settings,
    args: SubgraphArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(subgraph) = services::subgraph(&args.name) else {
        bail!("unknown subgraph {}", args.name)
    };
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4000 + subgraph.port_offset)));
    // Credentials first: a subgraph without them must not even listen (scripts wait for its URL line).
    shippy_kit::auth::JwtVerifier::from_config(&settings.auth)
        .with_context(|| format!("the {} subgraph cannot start", subgraph.name))?;
    if !settings.access.open {
        shippy_kit::access::Gate::from_config(subgraph.name, &settings.access)?;
    }
    let url = settings.standalone_database_url(subgraph.name);
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!(
        "{:<12} http://{}/graphql",
        subgraph.name,
        listener.local_addr()?
    );
    // Without REDIS_URL the bus is in-process and reaches nobody else: fine for trying one subgraph, but
    // events between subgraphs need Redis.
    if settings.redis_url.is_none() {
        tracing::warn!(
            "REDIS_URL is not set: events stay in this process, other subgraphs will not see them"
        );
    }
    let bus = events::connect(settings.redis_url.as_deref(), &settings.events)?;
    let mut config = settings.subgraph_config(url);
    config.revocations = settings.redis_revocations()?;
    (subgraph.run)(listener, config, bus, shutdown).await
}

/// The OpenTelemetry `service.name` of this invocation: `shippy-<subgraph>`, `shippy-router`, or
/// `shippy` for everything in one process.
pub fn service_name(cli: &Cli) -> String {
    match &cli.command {
        Some(Command::Subgraph(args)) => format!("shippy-{}", args.name),
        Some(Command::Router(_)) => "shippy-router".to_owned(),
        _ => "shippy".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_config_file_is_the_routers_not_shippy_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("router.yaml");
        std::fs::write(&file, "http:\n  dedupe: false\n").unwrap();
        let file_arg = file.to_str().unwrap();
        let cli = Cli::try_parse_from([
            "shippy",
            "router",
            "--supergraph",
            "supergraph.graphql",
            "--config",
            file_arg,
        ])
        .unwrap();
        cli.load_settings()
            .expect("router keys are not shippy settings");
        match cli.command {
            Some(Command::Router(args)) => assert_eq!(args.config.as_deref(), Some(file.as_path())),
            other => panic!("parsed as {other:?}"),
        }
        // Any other command still reads the file as `shippy` settings, and rejects router keys.
        let up = Cli::try_parse_from(["shippy", "up", "--config", file_arg]).unwrap();
        let error = up.load_settings().unwrap_err();
        assert!(format!("{error:#}").contains("unknown field"), "{error:#}");
    }
}
