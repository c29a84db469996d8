//! The `shippy` binary: parse, load settings, start logging and tracing, run.

use std::process::ExitCode;

use clap::Parser;
use shippy::cli::{self, Cli};

// mimalloc (v2, see the workspace Cargo.toml), as Hive Router uses: its thread-local free lists
// cost fewer instructions per request than glibc malloc on the router's allocation-heavy hot path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    shippy_kit::install_crypto_provider();
    let cli = Cli::parse();
    let settings = match cli.load_settings() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("shippy: {err:#}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match settings
        .telemetry_config(&cli::service_name(&cli))
        .and_then(|config| Ok(shippy_kit::telemetry::init(&config)?))
    {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("shippy: {err:#}");
            return ExitCode::from(2);
        }
    };
    let code = match cli::run(cli, settings).await {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("shippy: {err:#}");
            ExitCode::FAILURE
        }
    };
    // Flushes the spans still buffered for export.
    drop(telemetry);
    code
}
