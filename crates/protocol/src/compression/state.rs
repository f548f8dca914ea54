//! Reading chain state the DA pipeline needs but the state diffs do not carry.
//!
//! The squash compares the merged diff with the state before the range, the stateful
//! compression looks up aliases held by contract `0x2`, and the 0.13.2 encoding needs the nonce
//! of every contract with storage writes. All of it goes through [`StateReader`], batched so an
//! RPC implementation can send JSON-RPC batches; [`MemoryState`] is an in-memory implementation
//! for tests and for the developer commands (which read nonces and aliases from files).

use std::collections::HashMap;

use async_trait::async_trait;
use starknet_core::types::Felt;

/// A failed state lookup (transport error, node error, missing data...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StateReadError(pub String);

/// Batched reads of Starknet state at a given block.
///
/// Every method answers one value per query, in the order of the queries.
#[async_trait]
pub trait StateReader: Send + Sync {
    /// `starknet_getStorageAt(contract, key, block)` for each `(contract, key)`; zero for unset
    /// slots and for contracts that do not exist.
    async fn storage_at(
        &self,
        block: u64,
        queries: &[(Felt, Felt)],
    ) -> Result<Vec<Felt>, StateReadError>;

    /// `starknet_getClassHashAt(contract, block)` for each contract; `None` when the contract is
    /// not deployed at that block.
    async fn class_hash_at(
        &self,
        block: u64,
        contracts: &[Felt],
    ) -> Result<Vec<Option<Felt>>, StateReadError>;

    /// `starknet_getNonce(contract, block)` for each contract.
    async fn nonce_at(&self, block: u64, contracts: &[Felt]) -> Result<Vec<Felt>, StateReadError>;
}

/// An in-memory [`StateReader`] whose state does not depend on the block (tests, CLI files).
///
/// Storage and class lookups that are not set answer zero / "not deployed". A nonce lookup that
/// is not set is an error naming the contract when `strict_nonces` is on (the CLI), and zero
/// otherwise.
#[derive(Debug, Clone, Default)]
pub struct MemoryState {
    /// `(contract, key) → value`.
    pub storage: HashMap<(Felt, Felt), Felt>,
    /// `contract → class hash` of deployed contracts.
    pub classes: HashMap<Felt, Felt>,
    /// `contract → nonce`.
    pub nonces: HashMap<Felt, Felt>,
    /// Whether a nonce that is not set is an error.
    pub strict_nonces: bool,
    /// Whether a storage read of contract `0x2` (aliases) that is not set is an error.
    pub strict_aliases: bool,
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl StateReader for MemoryState {
    async fn storage_at(
        &self,
        _block: u64,
        queries: &[(Felt, Felt)],
    ) -> Result<Vec<Felt>, StateReadError> {
        queries
            .iter()
            .map(|q| match self.storage.get(q) {
                Some(v) => Ok(*v),
                None if self.strict_aliases && q.0 == Felt::TWO => {
                    Err(StateReadError(format!("no alias given for key {:#x}", q.1)))
                }
                None => Ok(Felt::ZERO),
            })
            .collect()
    }

    async fn class_hash_at(
        &self,
        _block: u64,
        contracts: &[Felt],
    ) -> Result<Vec<Option<Felt>>, StateReadError> {
        Ok(contracts.iter().map(|c| self.classes.get(c).copied()).collect())
    }

    async fn nonce_at(&self, _block: u64, contracts: &[Felt]) -> Result<Vec<Felt>, StateReadError> {
        contracts
            .iter()
            .map(|c| match self.nonces.get(c) {
                Some(n) => Ok(*n),
                None if self.strict_nonces => Err(StateReadError(format!(
                    "no nonce given for contract {c:#x} ({}), which has storage writes but no nonce \
                     in the state diff",
                    c.to_biguint()
                ))),
                None => Ok(Felt::ZERO),
            })
            .collect()
    }
}
