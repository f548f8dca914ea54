//! `mock-atlantic-server`: runs the mock Atlantic API until SIGINT/SIGTERM.

use clap::Parser;
use orchestrator_mock_atlantic_server::{MockAtlanticArgs, MockAtlanticServer};

/// A mock of the Herodotus Atlantic API (queries, buckets, dedup lookup, artifacts).
#[derive(Debug, Parser)]
#[command(name = "mock-atlantic-server", version)]
struct Cli {
    #[command(flatten)]
    args: MockAtlanticArgs,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Cli::parse().args.into_config()?;
    let server = MockAtlanticServer::start(config).await?;
    tracing::info!(url = %server.url(), "Serving; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}
