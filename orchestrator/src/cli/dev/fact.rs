//! `orchestrator fact --pie FILE.zip`: prints the fact of a Cairo PIE.

use std::{path::PathBuf, process::ExitCode};

/// Arguments of `orchestrator fact`.
#[derive(Debug, clap::Args)]
pub struct FactArgs {
    /// The Cairo PIE zip file.
    #[arg(long)]
    pub pie: PathBuf,
}

impl FactArgs {
    /// Runs the command, writing the fact to stdout and problems to stderr.
    pub fn execute(self) -> ExitCode {
        eprintln!("fact: not built yet ({})", self.pie.display());
        ExitCode::from(2)
    }
}
