//! Configuration: the typed parameters of `run` and `setup` ([`RunParams`], [`SetupParams`]),
//! the named choices among them, and the engine and server settings. The command line is
//! turned into them in `cli::params`; the runtime context built from them is
//! `worker::Config`.
//!
//! Sources, highest precedence first: command-line flag, environment variable (including
//! `.env`), `<VAR>_FILE` for secrets (see `orchestrator_utils::env`). Validation errors name
//! the flag and the problem; they never echo secret values.

pub mod choices;
pub mod params;
pub mod settings;

use std::path::PathBuf;

pub use choices::FailedJobHalt;
pub use params::*;
pub use settings::{EngineParams, ServerSettings};

/// Why a command line does not make a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag needed in this configuration is missing.
    #[error("{flag} is required {when}")]
    Missing {
        /// The missing flag.
        flag: &'static str,
        /// The configuration that needs it, e.g. "with --prover sharp".
        when: &'static str,
    },
    /// A flag's value is not acceptable.
    #[error("{flag}: {reason}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// What is wrong with the value (never the secret value itself).
        reason: String,
    },
    /// Two settings cannot be used together.
    #[error("{0}")]
    Conflict(String),
    /// A file named by a flag cannot be read.
    #[error("{flag}: cannot read {path}: {source}")]
    ReadFile {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file named by a flag does not hold what it should.
    #[error("{flag}: {path} is not a valid {what}: {source}")]
    ParseFile {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What the file should hold.
        what: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl ConfigError {
    pub(crate) fn invalid(flag: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { flag, reason: reason.into() }
    }
}

/// Result of building configuration.
pub type ConfigResult<T> = Result<T, ConfigError>;
