//! `orchestrator blob …`: encode a state update into blobs, (de)compress felts, decode a blob,
//! and compute KZG commitments and proofs.

use std::process::ExitCode;

/// The `blob` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BlobCommand {}

impl BlobCommand {
    /// Runs the command, writing results to stdout and problems to stderr.
    pub fn execute(self) -> ExitCode {
        match self {}
    }
}
