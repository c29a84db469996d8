//! The `shippy` binary: parse, load settings, start logging and tracing, run.

use std::process::ExitCode;

use clap::Parser;
use shippy::cli::{self, Cli};

// jemalloc, with the dirty-page decay `.cargo/config.toml` compiles in: as cheap per request as
// mimalloc (Hive Router's choice, ours before) on the router benchmark, with ~15 MiB less peak RSS
// under load; glibc malloc costs 1.5x the CPU per request there (bench/README.md, "Allocator").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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

#[cfg(test)]
mod tests {
    /// The decay is a build setting (`.cargo/config.toml`), so a build that missed it would only
    /// show as more memory in production: check it reached the allocator this binary links.
    #[test]
    fn the_allocator_runs_with_the_checkouts_settings() {
        let built_with = tikv_jemalloc_ctl::config::malloc_conf::read().expect("jemalloc answers");
        let configured = env!(
            "JEMALLOC_SYS_WITH_MALLOC_CONF",
            "cargo sets it from .cargo/config.toml"
        );
        assert!(configured.contains("dirty_decay_ms:"), "{configured}");
        // The crate hands the C string back with its terminating NUL.
        assert_eq!(built_with.trim_end_matches('\0'), configured);
    }
}
