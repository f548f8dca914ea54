//! Data-availability flags (reference §2.7); `run` requires exactly one of `--da-on-ethereum`,
//! `--da-on-starknet`.

use orchestrator_utils::Secret;
use url::Url;

/// DA layer selection and settings.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Data availability")]
pub struct DaArgs {
    /// Publish state diffs on Ethereum (blobs).
    #[arg(long)]
    pub da_on_ethereum: bool,

    /// Ethereum RPC URL of the DA client (`_FILE` companion supported).
    #[arg(long, env = "MADARA_ORCHESTRATOR_ETHEREUM_DA_RPC_URL", hide_env_values = true)]
    pub ethereum_da_rpc_url: Option<Secret<Url>>,

    /// Publish state diffs on Starknet.
    #[arg(long)]
    pub da_on_starknet: bool,

    /// Starknet RPC URL of the DA client (`_FILE` companion supported).
    #[arg(long, env = "MADARA_ORCHESTRATOR_STARKNET_DA_RPC_URL", hide_env_values = true)]
    pub starknet_da_rpc_url: Option<Secret<Url>>,
}
