//! The `orchestrator` binary: loads `.env`, resolves `_FILE` secrets, parses the command line
//! and hands over to library code.

use std::process::ExitCode;

use clap::Parser;
use orchestrator::cli::{Cli, Commands, FILE_SECRET_VARS};
use orchestrator_utils::env::{apply_file_secrets, load_dotenv};

fn main() -> ExitCode {
    // Before any thread exists (docs/performance.md, "Memory").
    let _ = orchestrator_alloc::tune();
    // Both steps mutate the process environment, so they run before any thread exists.
    if let Err(e) = load_dotenv() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = apply_file_secrets(FILE_SECRET_VARS) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse_from(std::env::args_os());
    let result = match cli.command {
        Commands::Run(cmd) => cmd.execute(),
        Commands::Setup(cmd) => cmd.execute(),
        Commands::Recover(cmd) => cmd.execute_recover(),
        Commands::Blob(cmd) => return cmd.execute(),
        Commands::Fact(args) => return args.execute(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
