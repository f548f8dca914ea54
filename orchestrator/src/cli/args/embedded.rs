//! The embedded tier's data directory.

use std::path::PathBuf;

/// Where the embedded tier keeps its SQLite database, queue, artifacts and alert log.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Embedded tier")]
pub struct EmbeddedArgs {
    /// Directory of the embedded database, queues, artifacts and alerts (not in the reference).
    #[arg(long, env = "MADARA_ORCHESTRATOR_DATA_DIR", default_value = "./orchestrator-data")]
    pub data_dir: PathBuf,
}
