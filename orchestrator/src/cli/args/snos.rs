//! SNOS flags (reference §2.5) and the Cairo layouts.

pub use crate::config::choices::{CairoLayout, SnosRunnerKind};

use std::path::PathBuf;

use url::Url;

/// The STRK fee token of Starknet mainnet and Sepolia, `--snos-strk-fee-token-address`'s
/// default.
pub const STRK_FEE_TOKEN_ADDRESS: &str =
    "0x04718f5a0fc34cc1af16a1cdee98ffb20c31f5cd61d6ab07201858f4287c938d";
/// The ETH fee token of Starknet mainnet and Sepolia, `--snos-eth-fee-token-address`'s
/// default.
pub const ETH_FEE_TOKEN_ADDRESS: &str =
    "0x049d36570d4e46f48e99674bd3fcc84644ddd6b96f7c741b1562b82f9e004dc7";

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

    /// JSON file overriding the blockifier versioned constants; its absolute path reaches the
    /// external SNOS command as `SNOS_VERSIONED_CONSTANTS_PATH`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_VERSIONED_CONSTANTS_PATH")]
    pub versioned_constants: Option<PathBuf>,

    /// The chain's STRK fee token contract (hex felt), passed to the external SNOS command as
    /// `SNOS_STRK_FEE_TOKEN_ADDRESS`. Default: Starknet mainnet's (also Sepolia's).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_SNOS_STRK_FEE_TOKEN_ADDRESS",
        default_value = STRK_FEE_TOKEN_ADDRESS
    )]
    pub snos_strk_fee_token_address: String,

    /// The chain's ETH fee token contract (hex felt), passed to the external SNOS command as
    /// `SNOS_ETH_FEE_TOKEN_ADDRESS`. Default: Starknet mainnet's (also Sepolia's).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_SNOS_ETH_FEE_TOKEN_ADDRESS",
        default_value = ETH_FEE_TOKEN_ADDRESS
    )]
    pub snos_eth_fee_token_address: String,

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

    /// Command line (run with `sh -c`) of the external runner; it gets the block range and the
    /// chain settings in `SNOS_*` environment variables and writes its PIE to `$SNOS_OUTPUT`
    /// (`$SNOS_OUTPUT_DIR/cairo_pie.zip`; see docs/snos.md). The snos project's PIE generator
    /// reads those variables itself: `--snos-command /path/to/generate-pie`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_SNOS_COMMAND")]
    pub snos_command: Option<String>,

    /// Seconds the external SNOS command may run before it is killed (the job is retried).
    #[arg(long, env = "MADARA_ORCHESTRATOR_SNOS_COMMAND_TIMEOUT_SECONDS", default_value_t = 3600)]
    pub snos_command_timeout_seconds: u64,
}
