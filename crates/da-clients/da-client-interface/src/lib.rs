//! The `DaClient` trait: where a state diff is made available (reference §9.4).
//!
//! On Ethereum L2s the blobs travel inside the StateTransition transaction, so publishing is a
//! no-op that returns [`NOT_APPLICABLE`]; verification checks a blob transaction's receipt when
//! the external id is a transaction hash.

use async_trait::async_trait;
pub use orchestrator_utils::Retryable;

/// External id of a publication that happens elsewhere (inside the settlement transaction).
pub const NOT_APPLICABLE: &str = "NA";

/// Why a DA call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaError {
    /// Bad input (too many blobs, wrong blob size); nothing was published.
    #[error("invalid DA input: {0}")]
    InvalidInput(String),
    /// The DA layer's node failed; trying later may work.
    #[error("DA RPC error: {0}")]
    Rpc(String),
}

impl Retryable for DaError {
    /// Node failures are retryable; invalid input is not.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Rpc(_))
    }
}

/// Result of a DA call.
pub type DaResult<T> = Result<T, DaError>;

/// Whether published data is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaVerificationStatus {
    /// Not decided yet.
    Pending,
    /// Available.
    Verified,
    /// Not available, with the reason.
    Rejected(String),
}

/// Publishes state diffs and checks their availability.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait DaClient: Send + Sync + std::fmt::Debug {
    /// Publishes `blobs` (each `max_bytes_per_blob` bytes) to `to`; returns an external id.
    async fn publish_state_diff(&self, blobs: Vec<Vec<u8>>, to: &[u8; 32]) -> DaResult<String>;

    /// Whether the publication `external_id` is available.
    async fn verify_inclusion(&self, external_id: &str) -> DaResult<DaVerificationStatus>;

    /// Most blobs per publication.
    fn max_blob_per_txn(&self) -> u64 {
        6
    }

    /// Bytes per blob.
    fn max_bytes_per_blob(&self) -> u64 {
        131_072
    }

    /// Checks `blobs` against the limits.
    fn check_blobs(&self, blobs: &[Vec<u8>]) -> DaResult<()> {
        if blobs.len() as u64 > self.max_blob_per_txn() {
            return Err(DaError::InvalidInput(format!(
                "{} blobs; at most {}",
                blobs.len(),
                self.max_blob_per_txn()
            )));
        }
        if let Some((i, b)) =
            blobs.iter().enumerate().find(|(_, b)| b.len() as u64 != self.max_bytes_per_blob())
        {
            return Err(DaError::InvalidInput(format!(
                "blob {i} has {} bytes, expected {}",
                b.len(),
                self.max_bytes_per_blob()
            )));
        }
        Ok(())
    }
}
