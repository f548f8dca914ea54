//! orchestrator-snos-runner
//!
//! The seam behind the SnosRun job: a [`SnosRunner`] runs the Starknet OS (or something standing
//! in for it) over a block range and returns a Cairo PIE zip, the raw OS output and the step
//! count.
//!
//! Two implementations:
//! - [`ExternalRunner`] spawns a configured command (for example the snos project's
//!   `generate-pie`) that writes `cairo_pie.zip` (and optionally `os_output.json`) into a
//!   directory; see `docs/snos.md` for the contract.
//! - [`StandInRunner`] runs a small Cairo 0 program of ours with cairo-vm whose Rust hint writes
//!   an OS-shaped output for the batch. It yields a real PIE with a real fact, but it is a
//!   **stand-in**: it executes no transaction and proves nothing about the blocks.
//!
//! The Starknet OS runner itself (`generate-pie`, `starknet_os`) is not published on crates.io,
//! which is why the seam exists.

pub mod aggregator;
mod command;
pub mod external;
pub mod external_aggregator;
pub mod os_output;
pub mod stand_in;

use std::{fmt, path::PathBuf};

use async_trait::async_trait;
pub use orchestrator_utils::Retryable;
pub use starknet_types_core::felt::Felt;

pub use external::{ExternalRunner, ExternalRunnerConfig};
pub use os_output::{BatchData, BlobData};
pub use stand_in::StandInRunner;

/// What a run is about: the block range, where to read it, and the OS configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SnosInput {
    /// First block of the batch.
    pub start_block: u64,
    /// Last block of the batch (inclusive).
    pub end_block: u64,
    /// RPC the OS runner reads the blocks and state from.
    pub rpc_url: url::Url,
    /// Cairo layout name (`all_cairo`, `dynamic`, ...).
    pub layout: String,
    /// Whether the OS publishes its data through KZG blobs (L3 in the reference) instead of
    /// writing the state diff into its output (L2).
    pub use_kzg_da: bool,
    /// Whether the state diff in the output carries previous values (L2 in the reference).
    pub full_output: bool,
    /// The chain id, as a felt (`starknet_chainId`).
    pub chain_id: Felt,
    /// DA encryption public keys.
    pub da_public_keys: Vec<Felt>,
    /// Whether the chain is an L3 (settles on a Starknet chain), whatever its DA flags.
    pub is_l3: bool,
    /// The chain's STRK fee token contract.
    pub strk_fee_token_address: Felt,
    /// The chain's ETH fee token contract.
    pub eth_fee_token_address: Felt,
    /// A JSON file overriding the blockifier versioned constants; `None` lets the runner pick
    /// the constants of each block's Starknet version.
    pub versioned_constants_path: Option<PathBuf>,
    /// What the chain did in the range, read from the node by the caller; needed by runners
    /// whose [`SnosRunner::needs_batch_data`] is true (the stand-in).
    pub batch: Option<BatchData>,
}

/// The STRK fee token of Starknet mainnet (and Sepolia), the default of
/// [`SnosInput::strk_fee_token_address`].
pub const MAINNET_STRK_FEE_TOKEN_ADDRESS: Felt =
    Felt::from_hex_unchecked("0x04718f5a0fc34cc1af16a1cdee98ffb20c31f5cd61d6ab07201858f4287c938d");
/// The ETH fee token of Starknet mainnet (and Sepolia), the default of
/// [`SnosInput::eth_fee_token_address`].
pub const MAINNET_ETH_FEE_TOKEN_ADDRESS: Felt =
    Felt::from_hex_unchecked("0x049d36570d4e46f48e99674bd3fcc84644ddd6b96f7c741b1562b82f9e004dc7");

impl SnosInput {
    /// The OS flags the reference uses per layer: L2 → no KZG DA, full output; L3 → KZG DA,
    /// no full output.
    pub fn os_flags(is_l3: bool) -> (bool, bool) {
        if is_l3 {
            (true, false)
        } else {
            (false, true)
        }
    }
}

/// What a run produced.
#[derive(Clone, PartialEq, Eq)]
pub struct SnosOutput {
    /// The Cairo PIE, zipped.
    pub cairo_pie_zip: Vec<u8>,
    /// The raw OS output (the PIE's output segment for a Starknet OS run).
    pub os_output: Vec<Felt>,
    /// Cairo steps of the run.
    pub n_steps: usize,
}

impl fmt::Debug for SnosOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnosOutput")
            .field("cairo_pie_zip_bytes", &self.cairo_pie_zip.len())
            .field("os_output_len", &self.os_output.len())
            .field("n_steps", &self.n_steps)
            .finish()
    }
}

/// Why a run failed, classified for the job's error policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnosRunnerError {
    /// May work later (RPC outage, a timeout, a transient failure of the command): the job
    /// is retried.
    #[error("{0}")]
    Retryable(String),
    /// Will fail again with the same input (OS execution error, bad configuration, garbage
    /// output): the job fails fast.
    #[error("{0}")]
    Deterministic(String),
}

impl Retryable for SnosRunnerError {
    /// The runner's own classification: `Retryable` is, `Deterministic` is not.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

impl SnosRunnerError {
    pub(crate) fn deterministic(e: impl fmt::Display) -> Self {
        Self::Deterministic(e.to_string())
    }
}

/// Runs the Starknet OS (or a stand-in) over a block range.
#[async_trait]
pub trait SnosRunner: Send + Sync + fmt::Debug {
    /// A short name for logs and metadata (`external`, `stand-in`).
    fn name(&self) -> &'static str;

    /// Whether [`SnosInput::batch`] must be filled in (read from the node) before [`run`].
    ///
    /// [`run`]: SnosRunner::run
    fn needs_batch_data(&self) -> bool {
        false
    }

    /// Runs over `input.start_block ..= input.end_block`.
    async fn run(&self, input: &SnosInput) -> Result<SnosOutput, SnosRunnerError>;
}

/// Reads the output segment of a zipped PIE, as felts.
pub fn pie_output(cairo_pie_zip: &[u8]) -> Result<Vec<Felt>, SnosRunnerError> {
    let pie =
        orchestrator_gps_fact_checker::fact::pie::read_pie_bytes(cairo_pie_zip).map_err(|e| {
            SnosRunnerError::Deterministic(format!("cairo_pie.zip is not a valid Cairo PIE: {e}"))
        })?;
    orchestrator_gps_fact_checker::fact::pie::program_output(&pie).map_err(|e| {
        SnosRunnerError::Deterministic(format!("cannot read the PIE's output segment: {e}"))
    })
}
