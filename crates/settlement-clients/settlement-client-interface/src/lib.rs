//! The `SettlementClient` trait: how the orchestrator settles a state update on its base layer
//! (the Starknet core contract on Ethereum, or the Cairo core contract on Starknet), reference
//! §9.1.
//!
//! Contract shared by every backend:
//! - Input is validated before anything is sent: an invalid request returns
//!   [`SettlementError::InvalidInput`] and no transaction leaves the process.
//! - `update_state_with_blobs` is safe to call again for the same update after a crash or an
//!   error: it first checks whether the contract already advanced and whether one of the
//!   attempts it is given (or an in-flight transaction of the signer) already carries the
//!   update, and only then signs a new transaction, on the same nonce as any in-flight one.
//! - Every transaction attempt is reported, both in the result and, as it happens, to an
//!   optional [`AttemptRecorder`], so a caller can persist attempts before the wait for
//!   confirmations starts.

use std::{fmt, sync::Arc};

use async_trait::async_trait;
pub use orchestrator_utils::Retryable;
use serde::{Deserialize, Serialize};

/// A 32-byte big-endian word (a felt of a program output).
pub type Word = [u8; 32];

/// Why a settlement call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementError {
    /// The request is invalid (program output too short, too many blobs, y mismatch, bad
    /// blob); nothing was sent and sending it again will not help.
    #[error("invalid state update: {0}")]
    InvalidInput(String),
    /// The node could not be reached or answered with an error; trying later may work.
    #[error("settlement RPC error: {0}")]
    Rpc(String),
    /// The transaction was mined and reverted (or its simulation reverted).
    #[error("state update reverted{}: {reason}", tx_hash.as_ref().map(|h| format!(" in {h}")).unwrap_or_default())]
    Reverted {
        /// The reverted transaction, when one was mined.
        tx_hash: Option<String>,
        /// The revert reason or the node's message.
        reason: String,
    },
    /// Signing the update would exceed the configured fee cap; settlement pauses until fees
    /// fall (retryable).
    #[error("fee cap exceeded: the update needs up to {needed_wei} wei, the cap is {cap_wei} wei")]
    FeeCapExceeded {
        /// Worst-case fee of the next attempt.
        needed_wei: u128,
        /// The configured cap.
        cap_wei: u128,
    },
    /// Every allowed fee bump was used and no attempt was confirmed in time (retryable: the
    /// last attempt may still be mined, and the next call resumes on the same nonce).
    #[error("no attempt confirmed after {attempts} attempt(s) and {bumps} fee bump(s)")]
    NotConfirmed {
        /// Attempts sent.
        attempts: usize,
        /// Bumps used.
        bumps: u32,
    },
    /// Our transaction left the node's pool unmined (evicted, or the node restarted) too many
    /// times in one call, each time sent again on the same nonce (retryable: the next call
    /// starts over).
    #[error("the state update transaction was dropped from the pool {drops} time(s) at nonce {nonce}; giving up for now")]
    Dropped {
        /// Attempts found dropped in the call.
        drops: u32,
        /// The nonce they used.
        nonce: u64,
    },
    /// The signer failed (KMS unreachable, key not usable).
    #[error("signer error: {0}")]
    Signer(String),
    /// This backend does not implement the call.
    #[error("not supported by this settlement client: {0}")]
    Unsupported(&'static str),
}

impl Retryable for SettlementError {
    /// RPC and signer failures, a fee cap in the way, unconfirmed and dropped attempts are
    /// retryable;
    /// invalid input, reverts and unsupported calls are not.
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Rpc(_)
                | Self::FeeCapExceeded { .. }
                | Self::NotConfirmed { .. }
                | Self::Dropped { .. }
                | Self::Signer(_)
        )
    }
}

impl Retryable for StateUpdateTxError {
    /// The answer of the settlement error.
    fn is_retryable(&self) -> bool {
        self.error.is_retryable()
    }
}

/// Result of a settlement call.
pub type SettlementResult<T> = Result<T, SettlementError>;

/// What happened to one transaction attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxAttemptStatus {
    /// Sent; the outcome is not known yet.
    Sent,
    /// Included with the required confirmations.
    Finalized,
    /// Replaced by a same-nonce attempt with higher fees.
    Replaced,
    /// Not confirmed within the confirmation timeout (and not replaced: no bump left).
    TimedOut,
    /// Refused by the node as an underpriced replacement.
    RejectedUnderpriced,
    /// Could not be submitted.
    SubmissionFailed,
    /// Mined and reverted.
    Reverted,
    /// Its nonce was used by another transaction carrying the same update (an earlier attempt
    /// or the contract already advanced).
    Superseded,
    /// Gone from the node's pool without being mined (evicted, or the node restarted): nothing
    /// of ours was pending at its nonce any more, so the update was sent again on that nonce.
    Dropped,
}

/// One transaction attempt of a state update, as recorded in the job's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxAttempt {
    /// 1-based attempt number, across restarts.
    pub attempt_no: u32,
    /// Transaction hash, `0x` hex (empty when submission failed before hashing).
    pub tx_hash: String,
    /// Nonce used.
    pub nonce: u64,
    /// Fee multiplier over the base estimate in thousandths (1100 = 1.1 on the first attempt,
    /// doubled per bump).
    pub gas_multiplier_milli: u64,
    /// `max_fee_per_gas` signed, in wei.
    pub max_fee_per_gas: u128,
    /// `max_priority_fee_per_gas` signed, in wei.
    pub max_priority_fee_per_gas: u128,
    /// `max_fee_per_blob_gas` signed, in wei (0 for non-blob transactions).
    pub max_fee_per_blob_gas: u128,
    /// Outcome.
    pub status: TxAttemptStatus,
    /// Error, when the attempt failed.
    pub error: Option<String>,
}

/// A state update whose data travels in blobs.
#[derive(Clone, Default)]
pub struct BlobStateUpdate {
    /// The program output (32-byte big-endian felts).
    pub program_output: Vec<Word>,
    /// The blobs (131072 bytes each), in the order of the program output's commitments.
    pub blobs: Vec<Vec<u8>>,
    /// Attempts recorded by earlier calls for the same update (after a restart or a retry).
    pub prior_attempts: Vec<TxAttempt>,
    /// Told about every attempt as soon as it is sent or changes status.
    pub recorder: Option<Arc<dyn AttemptRecorder>>,
}

impl TxAttempt {
    /// The multiplier as the reference formats it (`x.xx`).
    pub fn gas_multiplier_display(&self) -> String {
        format!(
            "{}.{:02}",
            self.gas_multiplier_milli / 1000,
            (self.gas_multiplier_milli % 1000) / 10
        )
    }
}

impl fmt::Debug for BlobStateUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStateUpdate")
            .field("program_output_words", &self.program_output.len())
            .field("blobs", &self.blobs.len())
            .field("prior_attempts", &self.prior_attempts)
            .field("recorder", &self.recorder.is_some())
            .finish()
    }
}

/// The outcome of a settled state update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateUpdateOutcome {
    /// The transaction that settled it; `None` when the contract had already advanced past the
    /// update and no attempt of ours is known to have carried it.
    pub tx_hash: Option<String>,
    /// The block it was included in, when known.
    pub block_number: Option<u64>,
    /// Every attempt, earlier calls' included, oldest first.
    pub attempts: Vec<TxAttempt>,
}

/// A failed state update with the attempts made so far (to store in the job's metadata).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct StateUpdateTxError {
    /// What went wrong.
    #[source]
    pub error: SettlementError,
    /// Every attempt, earlier calls' included, oldest first.
    pub attempts: Vec<TxAttempt>,
}

/// Whether a settlement transaction is final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettlementVerificationStatus {
    /// Not included yet, or not enough confirmations.
    Pending,
    /// Included and succeeded.
    Verified,
    /// Included and reverted, or unknown to the node.
    Rejected(String),
}

/// Told about transaction attempts as they happen, so they can be persisted before the
/// (long) wait for confirmations; a crash then loses no sent transaction.
#[async_trait]
pub trait AttemptRecorder: Send + Sync {
    /// Stores `attempts` (all of them, oldest first). An error is logged and does not stop
    /// the update: the chain is still checked on the next call.
    async fn record(&self, attempts: &[TxAttempt]) -> Result<(), String>;
}

/// Metric values a settlement client exposes (read by the metrics exporter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementMetrics {
    /// Sum of fees paid by confirmed state updates, in the layer's fee unit (wei on Ethereum,
    /// fri on Starknet).
    pub fees_paid_wei: u128,
    /// State updates confirmed (the fees above are theirs).
    #[serde(default)]
    pub updates_confirmed: u64,
    /// Blob base fee last observed, in wei.
    pub blob_base_fee_wei: Option<u128>,
    /// Base fee last observed, in wei.
    pub base_fee_wei: Option<u128>,
    /// Signer balance last observed, in the layer's fee unit.
    pub signer_balance_wei: Option<u128>,
    /// State update transactions sent (attempts, replacements included).
    pub txs_sent: u64,
    /// Fee bumps sent.
    pub fee_bumps: u64,
    /// Attempts found dropped from the pool unmined (each then sent again on its nonce).
    #[serde(default)]
    pub txs_dropped: u64,
}

/// One state update the core contract accepted, as its `LogStateUpdate` event reports it
/// (Ethereum: `LogStateUpdate(uint256 globalRoot, int256 blockNumber, uint256 blockHash)`;
/// the Cairo core contract: `LogStateUpdate { state_root, block_number, block_hash }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledStateUpdate {
    /// The last block of the settled range (the event's block number).
    pub block_number: u64,
    /// The state root after that block, 32-byte big-endian.
    pub state_root: Word,
    /// The hash of that block, 32-byte big-endian.
    pub block_hash: Word,
    /// The transaction that carried the update, `0x` hex.
    pub tx_hash: String,
    /// The settlement-layer block that included it.
    pub settlement_block: u64,
}

/// One argument of a state update call, each element as `0x` hex (a `uint256[]` gives one value
/// per element, a scalar one value, `bytes[]` one value per item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallField {
    /// The argument's name in the contract's ABI (`programOutput`, `kzgProofs`).
    pub name: String,
    /// Its values, `0x` hex.
    pub values: Vec<String>,
}

/// A state update transaction's content, decoded field by field: what a shadow orchestrator
/// would send ([`SettlementClient::preview_update_with_blobs`]) or what landed on the
/// settlement layer ([`SettlementClient::landed_update`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateUpdateCall {
    /// The function called (`updateStateKzgDA`), or `unknown 0x<selector>`.
    pub function: String,
    /// Its arguments in ABI order.
    pub fields: Vec<CallField>,
    /// The versioned hashes of the blobs the transaction carries, `0x` hex, in order.
    pub blob_versioned_hashes: Vec<String>,
    /// The calldata's length in bytes.
    pub calldata_len: usize,
    /// Would-be: the fee estimate (gas estimate and blob gas at the current fees, with the
    /// first attempt's caps); landed: the fee the transaction paid. In the layer's fee unit.
    pub fee_wei: Option<u128>,
    /// Why `fee_wei` is missing (the node refused the gas estimate, no receipt yet), if it is.
    pub fee_note: Option<String>,
    /// The transaction, for a landed update.
    pub tx_hash: Option<String>,
}

/// Settles state updates on a base layer (reference §9.1).
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait SettlementClient: Send + Sync + fmt::Debug {
    /// Registers a proof on the settlement layer. Neither backend implements it (as in the
    /// reference); returns [`SettlementError::Unsupported`].
    async fn register_proof(&self, _proof: Word) -> SettlementResult<String> {
        Err(SettlementError::Unsupported("register_proof"))
    }

    /// State update with the data in calldata (Starknet settlement, or Ethereum without
    /// blobs). Returns the transaction hash.
    async fn update_state_calldata(
        &self,
        snos_output: Vec<Word>,
        program_output: Vec<Word>,
        onchain_data_hash: Word,
        onchain_data_size: Word,
    ) -> SettlementResult<String>;

    /// State update with the data in blobs; idempotent per update (see the crate docs).
    async fn update_state_with_blobs(
        &self,
        update: BlobStateUpdate,
    ) -> Result<StateUpdateOutcome, StateUpdateTxError> {
        Err(StateUpdateTxError {
            error: SettlementError::Unsupported("update_state_with_blobs"),
            attempts: update.prior_attempts,
        })
    }

    /// Whether `tx_hash` is included and succeeded.
    async fn verify_tx_inclusion(
        &self,
        tx_hash: &str,
    ) -> SettlementResult<SettlementVerificationStatus>;

    /// Waits (bounded) until `tx_hash` is included; returns its block, or `None` if it was not
    /// included in time.
    async fn wait_for_tx_finality(&self, tx_hash: &str) -> SettlementResult<Option<u64>>;

    /// The last block the core contract has settled; `None` before the first update.
    async fn get_last_settled_block(&self) -> SettlementResult<Option<u64>>;

    /// The signer's next nonce as the node sees it (pending transactions included).
    async fn get_nonce(&self) -> SettlementResult<u64>;
    /// Every state update the core contract accepted from settlement-layer block
    /// `from_block` to the latest block, oldest first, read from its `LogStateUpdate` events
    /// page by page (block ranges, so no node refuses the query for its size). The default
    /// reads nothing: [`SettlementError::Unsupported`].
    async fn settled_state_updates(
        &self,
        _from_block: u64,
    ) -> SettlementResult<Vec<SettledStateUpdate>> {
        Err(SettlementError::Unsupported("settled_state_updates"))
    }

    /// What [`Self::update_state_with_blobs`] would send for this update, decoded, with a fee
    /// estimate; nothing is signed or sent (shadow mode). The default: `Unsupported`.
    async fn preview_update_with_blobs(
        &self,
        _program_output: Vec<Word>,
        _blobs: Vec<Vec<u8>>,
    ) -> SettlementResult<StateUpdateCall> {
        Err(SettlementError::Unsupported("preview_update_with_blobs"))
    }

    /// The state update that transaction `tx_hash` carried, decoded, with the fee it paid
    /// (shadow mode compares it with its own). The default: `Unsupported`.
    async fn landed_update(&self, _tx_hash: &str) -> SettlementResult<StateUpdateCall> {
        Err(SettlementError::Unsupported("landed_update"))
    }

    /// Metric values; the default has none.
    fn metrics(&self) -> SettlementMetrics {
        SettlementMetrics::default()
    }

    /// Reads the sampled values (fees, signer balance) from the settlement layer, then
    /// returns [`Self::metrics`]; the default reads nothing.
    async fn refresh_metrics(&self) -> SettlementResult<SettlementMetrics> {
        Ok(self.metrics())
    }

    /// The settlement layer's name as a metric label (`ethereum`, `starknet`).
    fn layer_name(&self) -> &'static str {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability() {
        assert!(SettlementError::Rpc("down".into()).is_retryable());
        assert!(SettlementError::FeeCapExceeded { needed_wei: 2, cap_wei: 1 }.is_retryable());
        assert!(!SettlementError::InvalidInput("short".into()).is_retryable());
        assert!(!SettlementError::Reverted { tx_hash: None, reason: "x".into() }.is_retryable());
        assert!(SettlementError::Dropped { drops: 6, nonce: 3 }.is_retryable());
    }

    #[test]
    fn reverted_message_names_the_tx() {
        let e = SettlementError::Reverted { tx_hash: Some("0xab".into()), reason: "BAD".into() };
        assert_eq!(e.to_string(), "state update reverted in 0xab: BAD");
    }
}
