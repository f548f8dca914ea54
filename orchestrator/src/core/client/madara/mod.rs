//! The Madara (Starknet) node the orchestrator reads blocks from.
//!
//! [`MadaraClient`] is what the batching triggers and SNOS code need from the node: the tip,
//! block headers (hash, Starknet version, timestamp), state updates, batched state reads at a
//! block, the chain id, and Madara's feeder-gateway extras (per-block bouncer weights, core
//! contract addresses). [`rpc::MadaraRpcClient`] implements it over JSON-RPC (starknet-rs
//! types) and plain HTTP for the feeder gateway; [`memory::InMemoryMadara`] is a scripted node for
//! tests. [`NodeStateReader`] adapts any node to the DA pipeline's
//! [`StateReader`] (pre-range state, aliases, nonces).
//!
//! Errors say whether trying again may help ([`MadaraError::is_retryable`]) and whether the
//! node simply does not have the block yet ([`MadaraError::is_wait`]): a batching run stops
//! quietly on those and the next run picks the block up.

pub mod memory;
pub mod rpc;

use orchestrator_utils::{
    upstream::{equal_jitter, UpstreamRetry},
    Retryable,
};
use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use orchestrator_protocol::compression::{StateReadError, StateReader};
use serde::{Deserialize, Serialize};
use starknet::core::types::{Felt, StateUpdate};

use crate::types::batch::BouncerWeights;

/// Result of a node call.
pub type MadaraResult<T> = Result<T, MadaraError>;

/// Why a node call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MadaraError {
    /// The block exists only as a pending (pre-confirmed) block: wait for it.
    #[error("block {block} is still pending")]
    Pending {
        /// The block.
        block: u64,
    },
    /// The node does not have the block (yet): wait for it.
    #[error("block {block} not found on the node")]
    BlockNotFound {
        /// The block.
        block: u64,
    },
    /// The node could not be reached, timed out or answered with a server error.
    #[error("node unreachable ({what}): {reason}")]
    Transport {
        /// The call.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// The node asked us to slow down.
    #[error("node rate-limited {0}")]
    RateLimited(String),
    /// The node answered something that is not what the API promises.
    #[error("malformed answer to {what}: {reason}")]
    Malformed {
        /// The call.
        what: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// The node answered with a JSON-RPC error other than "block not found".
    #[error("node error on {what}: {code} {message}")]
    Rpc {
        /// The call.
        what: String,
        /// JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
}

impl MadaraError {
    /// Whether the error only means "the block is not final yet": callers wait for a later run
    /// instead of reporting an error.
    pub fn is_wait(&self) -> bool {
        matches!(self, Self::Pending { .. } | Self::BlockNotFound { .. })
    }

    /// Whether retrying at once (with backoff) may help: transport errors and rate limits. A
    /// pending block is not retried in a loop; the next run asks again.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transport { .. } | Self::RateLimited(_))
    }
}

impl Retryable for MadaraError {
    /// Whether the same call may succeed later (transport trouble, or a block not there yet).
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Pending { .. }
                | Self::BlockNotFound { .. }
                | Self::Transport { .. }
                | Self::RateLimited(_)
        )
    }
}

/// What the batching code needs to know about one (closed) block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: Felt,
    /// Parent block hash.
    pub parent_hash: Felt,
    /// Starknet version string as the node reports it (e.g. `0.14.4`).
    pub starknet_version: String,
    /// Unix timestamp (seconds).
    pub timestamp: u64,
}

/// Core contract addresses served by Madara's `/feeder_gateway/get_contract_addresses`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractAddresses {
    /// The Starknet core contract on the settlement layer.
    #[serde(rename = "Starknet", default, skip_serializing_if = "Option::is_none")]
    pub starknet: Option<String>,
    /// The GPS statement verifier (fact registry).
    #[serde(rename = "GpsStatementVerifier", default, skip_serializing_if = "Option::is_none")]
    pub gps_statement_verifier: Option<String>,
}

/// Read access to a Madara node.
///
/// Contract:
/// - every block-scoped call answers `Pending` for a block that is only pre-confirmed and
///   `BlockNotFound` for a block the node does not have; both are [`MadaraError::is_wait`];
/// - the batched state reads answer one value per query in query order; a contract that does
///   not exist at the block reads as zero storage, no class (`None`) and nonce zero;
/// - the feeder-gateway extras answer the configured defaults when the node does not serve
///   them (e.g. starknet-devnet), never an error for that reason;
/// - implementations retry transport errors, 429 and 5xx answers with capped exponential backoff
///   and jitter before giving up (`--upstream-read-*`); JSON-RPC errors are answers and are not
///   retried; every call is read-only and safe to repeat.
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait MadaraClient: Send + Sync + std::fmt::Debug {
    /// The latest closed block number.
    async fn block_number(&self) -> MadaraResult<u64>;
    /// The chain id.
    async fn chain_id(&self) -> MadaraResult<Felt>;
    /// Header facts of a closed block.
    async fn block(&self, block: u64) -> MadaraResult<BlockInfo>;
    /// The state update of a closed block.
    async fn state_update(&self, block: u64) -> MadaraResult<StateUpdate>;
    /// `starknet_getStorageAt` for each `(contract, key)` at `block`.
    async fn storage_at(&self, block: u64, queries: &[(Felt, Felt)]) -> MadaraResult<Vec<Felt>>;
    /// `starknet_getClassHashAt` for each contract at `block`; `None` when not deployed.
    async fn class_hash_at(
        &self,
        block: u64,
        contracts: &[Felt],
    ) -> MadaraResult<Vec<Option<Felt>>>;
    /// `starknet_getNonce` for each contract at `block`.
    async fn nonce_at(&self, block: u64, contracts: &[Felt]) -> MadaraResult<Vec<Felt>>;
    /// The bouncer weights of a closed block (Madara feeder gateway), or the configured
    /// defaults when the node does not serve them.
    async fn bouncer_weights(&self, block: u64) -> MadaraResult<BouncerWeights>;
    /// The core contract addresses (Madara feeder gateway), or the configured defaults.
    async fn contract_addresses(&self) -> MadaraResult<ContractAddresses>;
}

/// Capped exponential backoff with jitter for transport errors, 429 and 5xx answers.
///
/// The wait after the `n`-th failure is [`RetryPolicy::delay`]`(n)` with equal jitter (a random
/// point of its upper half, [`orchestrator_utils::upstream::equal_jitter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// The defaults of `--upstream-read-max-attempts` (3) and the upstream backoff (0.5 s
    /// doubling, at most 8 s apart).
    fn default() -> Self {
        Self::upstream(&UpstreamRetry::default())
    }
}

impl RetryPolicy {
    /// No retries: one attempt.
    pub const NONE: Self =
        Self { attempts: 1, base_delay: Duration::ZERO, max_delay: Duration::ZERO };

    /// The attempts and backoff of `upstream` (`--upstream-read-max-attempts`).
    pub fn upstream(upstream: &UpstreamRetry) -> Self {
        Self {
            attempts: upstream.max_attempts.max(1),
            base_delay: upstream.base_delay,
            max_delay: upstream.max_delay,
        }
    }

    /// Delay after the `attempt`-th failure (1-based), before jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Runs `op` until it succeeds, fails with a non-transient error, or the attempts run out.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> MadaraResult<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = MadaraResult<T>> + Send,
        T: Send,
    {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if e.is_transient() && attempt < attempts => {
                    let delay = equal_jitter(self.delay(attempt));
                    tracing::debug!(target: "orch::madara", what, attempt, ?delay, error = %e, "Retrying node call");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// The DA pipeline's [`StateReader`] over a node: batched reads at a block.
#[derive(Debug, Clone)]
pub struct NodeStateReader {
    node: Arc<dyn MadaraClient>,
}

impl NodeStateReader {
    /// Reads through `node`.
    pub fn new(node: Arc<dyn MadaraClient>) -> Self {
        Self { node }
    }
}

fn read_err(e: MadaraError) -> StateReadError {
    StateReadError(e.to_string())
}

#[async_trait]
impl StateReader for NodeStateReader {
    async fn storage_at(
        &self,
        block: u64,
        queries: &[(Felt, Felt)],
    ) -> Result<Vec<Felt>, StateReadError> {
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        self.node.storage_at(block, queries).await.map_err(read_err)
    }

    async fn class_hash_at(
        &self,
        block: u64,
        contracts: &[Felt],
    ) -> Result<Vec<Option<Felt>>, StateReadError> {
        if contracts.is_empty() {
            return Ok(Vec::new());
        }
        self.node.class_hash_at(block, contracts).await.map_err(read_err)
    }

    async fn nonce_at(&self, block: u64, contracts: &[Felt]) -> Result<Vec<Felt>, StateReadError> {
        if contracts.is_empty() {
            return Ok(Vec::new());
        }
        self.node.nonce_at(block, contracts).await.map_err(read_err)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(3), Duration::from_millis(400));
        assert_eq!(p.delay(4), Duration::from_millis(500));
        assert_eq!(p.delay(40), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_transient_errors() {
        let p = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        };
        let calls = AtomicU32::new(0);
        let r: MadaraResult<()> = p
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(MadaraError::Transport { what: "t".into(), reason: "down".into() })
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let r: MadaraResult<()> = p
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(MadaraError::Pending { block: 3 })
            })
            .await;
        assert_eq!(r, Err(MadaraError::Pending { block: 3 }));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn error_classes() {
        assert!(MadaraError::Pending { block: 1 }.is_wait());
        assert!(MadaraError::BlockNotFound { block: 1 }.is_retryable());
        let m = MadaraError::Malformed { what: "x".into(), reason: "y".into() };
        assert!(!m.is_retryable() && !m.is_wait());
        assert!(MadaraError::Transport { what: "x".into(), reason: "y".into() }.is_transient());
    }
}
