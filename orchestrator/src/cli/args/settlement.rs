//! Settlement flags (reference §2.7); `run` requires exactly one of `--settle-on-ethereum`,
//! `--settle-on-starknet`.

use orchestrator_utils::Secret;
use url::Url;

/// Settlement on Ethereum.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Settlement: Ethereum")]
pub struct EthereumSettlementArgs {
    /// Settle on Ethereum (the Starknet core contract).
    #[arg(long)]
    pub settle_on_ethereum: bool,

    /// Ethereum RPC URL (`_FILE` companion supported). Several URLs of the same chain,
    /// comma-separated (ours): the first is the primary, the others are failed over to when it
    /// fails at the transport level (connection, timeout, HTTP 5xx or 429).
    #[arg(long, env = "MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL", hide_env_values = true)]
    pub ethereum_rpc_url: Option<Secret<UrlList>>,

    /// Private key of the operator account (`_FILE` companion supported). Required with
    /// `--settle-on-ethereum` unless `--ethereum-kms-key-id` is given; not with it.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY", hide_env_values = true)]
    pub ethereum_private_key: Option<Secret<String>>,

    /// Starknet core contract address on L1.
    #[arg(long, env = "MADARA_ORCHESTRATOR_L1_CORE_CONTRACT_ADDRESS")]
    pub l1_core_contract_address: Option<String>,

    /// Operator address (`0x`-hex).
    #[arg(long, env = "MADARA_ORCHESTRATOR_STARKNET_OPERATOR_ADDRESS")]
    pub starknet_operator_address: Option<String>,

    /// Seconds between receipt polls.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_ETHEREUM_FINALITY_RETRY_WAIT_IN_SECS",
        default_value_t = 60
    )]
    pub ethereum_finality_retry_wait_in_secs: u64,

    /// Seconds to wait for a confirmation before bumping the fee of the same nonce.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_ETHEREUM_TX_CONFIRMATION_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub ethereum_tx_confirmation_timeout_secs: u64,

    /// Most fee bumps per state update.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ETHEREUM_MAX_FEE_BUMPS", default_value_t = 2)]
    pub ethereum_max_fee_bumps: u32,

    /// Hard cap in wei on the fee liability of one state update.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_ETHEREUM_L2_STATE_UPDATE_MAX_FEE_WEI",
        default_value_t = 10_000_000_000_000_000
    )]
    pub ethereum_l2_state_update_max_fee_wei: u128,

    /// Send EIP-4844 blob proofs instead of EIP-7594 (PeerDAS) cell proofs.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ETHEREUM_DISABLE_PEERDAS")]
    pub disable_peerdas: bool,

    /// AWS KMS key of the operator (key id, key ARN, `alias/…` or alias ARN; an
    /// `ECC_SECG_P256K1` `SIGN_VERIFY` key): state updates are signed by KMS, and
    /// `--ethereum-private-key` is then neither needed nor allowed. Region, credentials and
    /// endpoint come from the AWS environment (`AWS_REGION`, `AWS_ENDPOINT_URL_KMS`, …).
    #[arg(long, env = "MADARA_ORCHESTRATOR_ETHEREUM_KMS_KEY_ID")]
    pub ethereum_kms_key_id: Option<String>,
}

/// Settlement on Starknet.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Settlement: Starknet")]
pub struct StarknetSettlementArgs {
    /// Settle on Starknet (the Cairo core contract).
    #[arg(long)]
    pub settle_on_starknet: bool,

    /// Starknet RPC URL (`_FILE` companion supported). Several URLs of the same chain,
    /// comma-separated (ours): the first is the primary, the others are failed over to when it
    /// does not answer.
    #[arg(long, env = "MADARA_ORCHESTRATOR_STARKNET_SETTLEMENT_RPC_URL", hide_env_values = true)]
    pub starknet_rpc_url: Option<Secret<UrlList>>,

    /// Private key of the operator account (`_FILE` companion supported).
    #[arg(long, env = "MADARA_ORCHESTRATOR_STARKNET_PRIVATE_KEY", hide_env_values = true)]
    pub starknet_private_key: Option<Secret<String>>,

    /// Operator account address.
    #[arg(long, env = "MADARA_ORCHESTRATOR_STARKNET_ACCOUNT_ADDRESS")]
    pub starknet_account_address: Option<String>,

    /// Cairo core contract address.
    #[arg(long, env = "MADARA_ORCHESTRATOR_STARKNET_CAIRO_CORE_CONTRACT_ADDRESS")]
    pub starknet_cairo_core_contract_address: Option<String>,

    /// Seconds between finality polls (default 6).
    #[arg(long, env = "MADARA_ORCHESTRATOR_STARKNET_FINALITY_RETRY_WAIT_IN_SECS")]
    pub starknet_finality_retry_wait_in_secs: Option<u64>,
}

/// One URL or several, comma-separated (`--ethereum-rpc-url primary,fallback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlList(pub Vec<Url>);

impl std::str::FromStr for UrlList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let urls = s
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .enumerate()
            // The URL may carry an API key: the error names its position, not the URL.
            .map(|(i, u)| u.parse::<Url>().map_err(|e| format!("URL {} of the list: {e}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            return Err("no URL given".to_owned());
        }
        Ok(Self(urls))
    }
}
