//! The `orchestrator` binary: parses the command line and hands over to library code.

use std::process::ExitCode;

use clap::Parser;
use orchestrator::cli::dev::{blob::BlobCommand, fact::FactArgs};

#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, about = "Carries Madara blocks to settlement")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Developer tools for blobs: encode, compress, decompress, decode, KZG.
    #[command(subcommand)]
    Blob(BlobCommand),
    /// Prints the fact of a Cairo PIE.
    Fact(FactArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Blob(cmd) => cmd.execute(),
        Command::Fact(args) => args.execute(),
    }
}
