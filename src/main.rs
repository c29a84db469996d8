//! The `shippy` binary: parse, load settings, start logging and tracing, run.

use std::process::ExitCode;

use clap::Parser;
use shippy::cli::{self, Cli};

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
