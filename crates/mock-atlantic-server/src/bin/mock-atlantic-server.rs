//! `mock-atlantic-server`: runs the mock Atlantic API until SIGINT/SIGTERM.

use clap::Parser;
use orchestrator_mock_atlantic_server::{MockAtlanticArgs, MockAtlanticServer};

/// A mock of the Herodotus Atlantic API (queries, buckets, dedup lookup, artifacts).
#[derive(Debug, Parser)]
#[command(name = "mock-atlantic-server", version)]
struct Cli {
    #[command(flatten)]
    args: MockAtlanticArgs,
    /// Print the program hash of the aggregations this server produces (the stand-in's: the
    /// `programHash` a core contract needs to accept them) and exit.
    #[arg(long)]
    print_program_hash: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    if cli.print_program_hash {
        println!("{:#x}", orchestrator_snos_runner::stand_in::program_hash()?);
        return Ok(());
    }
    let config = cli.args.into_config()?;
    let server = MockAtlanticServer::start(config).await?;
    tracing::info!(url = %server.url(), "Serving; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}
