//! SNOS flags (reference §2.5) and the Cairo layouts.

pub use crate::config::choices::{CairoLayout, SnosRunnerKind};

use std::path::PathBuf;

use url::Url;

/// The Starknet OS run.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "SNOS")]
pub struct SnosArgs {
    /// RPC used to run the Starknet OS (needs `starknet_getStorageProof` with history).
    #[arg(long, env = "MADARA_ORCHESTRATOR_RPC_FOR_SNOS")]
    pub rpc_for_snos: Url,

    /// RPC used when a SNOS job is retried.
    #[arg(long, env = "MADARA_ORCHESTRATOR_RPC_FOR_SNOS_BACKUP")]
    pub rpc_for_snos_backup: Option<Url>,

    /// Record full OS output in the SNOS metadata.
    #[arg(long, env = "MADARA_ORCHESTRATOR_SNOS_FULL_OUTPUT")]
    pub snos_full_output: bool,

    /// JSON file overriding the blockifier versioned constants.
    #[arg(long, env = "MADARA_ORCHESTRATOR_VERSIONED_CONSTANTS_PATH")]
    pub versioned_constants: Option<PathBuf>,

    /// Layout of the SNOS run.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_SNOS_LAYOUT_NAME",
        value_enum,
        default_value = "all_cairo"
    )]
    pub snos_layout_name: CairoLayout,

    /// Layout sent to the prover (Atlantic).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_PROVER_LAYOUT_NAME",
        value_enum,
        default_value = "dynamic"
    )]
    pub prover_layout_name: CairoLayout,

    /// Comma-separated felts: DA encryption public keys passed to SNOS, the aggregator and
    /// Atlantic buckets.
    #[arg(long, env = "MADARA_ORCHESTRATOR_DA_PUBLIC_KEYS", value_delimiter = ',')]
    pub da_public_keys: Option<Vec<String>>,

    /// Runner of the Starknet OS: `stand-in` (cairo-vm runs a small program of ours writing an
    /// OS-shaped output; proves nothing about execution) or `external` (`--snos-command`).
    #[arg(long, env = "MADARA_ORCHESTRATOR_SNOS_RUNNER", value_enum, default_value = "stand-in")]
    pub snos_runner: SnosRunnerKind,

    /// Command line (run with `sh -c`) of the external runner; it gets the block range in
    /// `SNOS_*` environment variables and writes `cairo_pie.zip` into `$SNOS_OUTPUT_DIR` (see
    /// docs/snos.md). Example with the snos project's PIE generator:
    /// `generate-pie --rpc-url "$SNOS_RPC_URL" --blocks "$SNOS_BLOCKS" --output "$SNOS_OUTPUT_DIR/cairo_pie.zip"`
    #[arg(long, env = "MADARA_ORCHESTRATOR_SNOS_COMMAND")]
    pub snos_command: Option<String>,

    /// Seconds the external SNOS command may run before it is killed (the job is retried).
    #[arg(long, env = "MADARA_ORCHESTRATOR_SNOS_COMMAND_TIMEOUT_SECONDS", default_value_t = 3600)]
    pub snos_command_timeout_seconds: u64,
}
