//! Runs the router until Ctrl-C: `cargo run -p shippy-router --example serve -- --supergraph PATH`.
//! The same entry point `shippy router` uses; handy for benchmarks and manual testing.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: shippy_router::RouterArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    shippy_router::run(cli.args, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
