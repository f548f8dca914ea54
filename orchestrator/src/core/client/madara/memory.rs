//! [`InMemoryMadara`]: a scripted node for tests. Blocks are appended with their state diffs;
//! state reads at a block replay the diffs up to it. Tests can mark blocks pending, change a
//! block's hash or Starknet version, give weights, or take the node down.

use std::sync::Mutex;

use async_trait::async_trait;
use starknet::core::types::{Felt, StateDiff, StateUpdate};

use super::{BlockInfo, ContractAddresses, MadaraClient, MadaraError, MadaraResult};
use crate::types::batch::BouncerWeights;

#[derive(Debug, Clone)]
struct FakeBlock {
    info: BlockInfo,
    diff: StateDiff,
    weights: Option<BouncerWeights>,
}

#[derive(Debug, Default)]
struct Inner {
    blocks: Vec<FakeBlock>,
    pending_from: Option<u64>,
    down: bool,
    calls: u64,
}

/// A node held in memory (see the module docs).
#[derive(Debug, Default)]
pub struct InMemoryMadara {
    inner: Mutex<Inner>,
    /// Weights of blocks that were given none.
    pub default_weights: BouncerWeights,
}

fn empty_diff() -> StateDiff {
    StateDiff {
        storage_diffs: Vec::new(),
        deprecated_declared_classes: Vec::new(),
        declared_classes: Vec::new(),
        deployed_contracts: Vec::new(),
        replaced_classes: Vec::new(),
        nonces: Vec::new(),
    }
}

impl InMemoryMadara {
    /// A node without blocks.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock only happens in a failing test; keep going with its data.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a block of `version` with `diff` (empty when `None`) and returns its number.
    /// Its hash is `0x1000 + number`, its timestamp `1_700_000_000 + number`.
    pub fn push_block(&self, version: &str, diff: Option<StateDiff>) -> u64 {
        let mut inner = self.lock();
        let number = inner.blocks.len() as u64;
        let parent_hash = inner.blocks.last().map_or(Felt::ZERO, |b| b.info.hash);
        inner.blocks.push(FakeBlock {
            info: BlockInfo {
                number,
                hash: Felt::from(0x1000 + number),
                parent_hash,
                starknet_version: version.to_owned(),
                timestamp: 1_700_000_000 + number,
            },
            diff: diff.unwrap_or_else(empty_diff),
            weights: None,
        });
        number
    }

    /// Appends `n` blocks of `version`, each writing `slot n → n+1` of contract `0x1234567`.
    pub fn push_blocks(&self, n: u64, version: &str) {
        for _ in 0..n {
            let next = self.lock().blocks.len() as u64;
            self.push_block(
                version,
                Some(storage_diff(
                    Felt::from(0x1234567u64),
                    &[(Felt::from(0x100 + next), Felt::from(next + 1))],
                )),
            );
        }
    }

    /// Sets the bouncer weights of a block.
    pub fn set_weights(&self, block: u64, weights: BouncerWeights) {
        if let Some(b) = self.lock().blocks.get_mut(block as usize) {
            b.weights = Some(weights);
        }
    }

    /// Sets the hash of a block (a reorganised chain).
    pub fn set_hash(&self, block: u64, hash: Felt) {
        if let Some(b) = self.lock().blocks.get_mut(block as usize) {
            b.info.hash = hash;
        }
    }

    /// Sets the timestamp of a block (unix seconds).
    pub fn set_timestamp(&self, block: u64, timestamp: u64) {
        if let Some(b) = self.lock().blocks.get_mut(block as usize) {
            b.info.timestamp = timestamp;
        }
    }

    /// Blocks from `block` on are pending (`None`: none are).
    pub fn set_pending_from(&self, block: Option<u64>) {
        self.lock().pending_from = block;
    }

    /// Makes every call fail with a transport error (or work again).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Calls answered so far.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Counts a call; the node's state when it is up, `Transport` when it is down.
    fn answer(&self) -> MadaraResult<std::sync::MutexGuard<'_, Inner>> {
        let mut inner = self.lock();
        inner.calls += 1;
        if inner.down {
            return Err(MadaraError::Transport {
                what: "in-memory node".into(),
                reason: "node is down".into(),
            });
        }
        Ok(inner)
    }

    fn with_block<T>(
        &self,
        block: u64,
        f: impl FnOnce(&Inner, &FakeBlock) -> T,
    ) -> MadaraResult<T> {
        let inner = self.answer()?;
        if inner.pending_from.is_some_and(|p| block >= p) && (block as usize) < inner.blocks.len() {
            return Err(MadaraError::Pending { block });
        }
        let b = inner
            .blocks
            .get(block as usize)
            .cloned()
            .ok_or(MadaraError::BlockNotFound { block })?;
        Ok(f(&inner, &b))
    }

    fn diffs_up_to(inner: &Inner, block: u64) -> impl DoubleEndedIterator<Item = &StateDiff> {
        inner.blocks.iter().take(block as usize + 1).map(|b| &b.diff)
    }
}

/// A diff writing `entries` to `contract`.
pub fn storage_diff(contract: Felt, entries: &[(Felt, Felt)]) -> StateDiff {
    let mut diff = empty_diff();
    diff.storage_diffs.push(starknet::core::types::ContractStorageDiffItem {
        address: contract,
        storage_entries: entries
            .iter()
            .map(|(key, value)| starknet::core::types::StorageEntry { key: *key, value: *value })
            .collect(),
    });
    diff
}

#[async_trait]
impl MadaraClient for InMemoryMadara {
    async fn block_number(&self) -> MadaraResult<u64> {
        let inner = self.answer()?;
        let closed = inner
            .pending_from
            .map_or(inner.blocks.len() as u64, |p| p.min(inner.blocks.len() as u64));
        closed.checked_sub(1).ok_or(MadaraError::BlockNotFound { block: 0 })
    }

    async fn chain_id(&self) -> MadaraResult<Felt> {
        // "SN_SEPOLIA"
        Ok(Felt::from_hex_unchecked("0x534e5f5345504f4c4941"))
    }

    async fn block(&self, block: u64) -> MadaraResult<BlockInfo> {
        self.with_block(block, |_, b| b.info.clone())
    }

    async fn state_update(&self, block: u64) -> MadaraResult<StateUpdate> {
        self.with_block(block, |_, b| StateUpdate {
            block_hash: b.info.hash,
            old_root: Felt::ZERO,
            new_root: Felt::ZERO,
            state_diff: b.diff.clone(),
        })
    }

    async fn storage_at(&self, block: u64, queries: &[(Felt, Felt)]) -> MadaraResult<Vec<Felt>> {
        self.with_block(block, |inner, _| {
            queries
                .iter()
                .map(|(c, k)| {
                    Self::diffs_up_to(inner, block)
                        .rev()
                        .flat_map(|d| d.storage_diffs.iter().filter(|s| s.address == *c))
                        .flat_map(|s| s.storage_entries.iter().rev())
                        .find(|e| e.key == *k)
                        .map_or(Felt::ZERO, |e| e.value)
                })
                .collect()
        })
    }

    async fn class_hash_at(
        &self,
        block: u64,
        contracts: &[Felt],
    ) -> MadaraResult<Vec<Option<Felt>>> {
        self.with_block(block, |inner, _| {
            contracts
                .iter()
                .map(|c| {
                    let mut class = None;
                    for d in Self::diffs_up_to(inner, block) {
                        if let Some(x) = d.deployed_contracts.iter().find(|x| x.address == *c) {
                            class = Some(x.class_hash);
                        }
                        if let Some(x) =
                            d.replaced_classes.iter().find(|x| x.contract_address == *c)
                        {
                            class = Some(x.class_hash);
                        }
                    }
                    class
                })
                .collect()
        })
    }

    async fn nonce_at(&self, block: u64, contracts: &[Felt]) -> MadaraResult<Vec<Felt>> {
        self.with_block(block, |inner, _| {
            contracts
                .iter()
                .map(|c| {
                    Self::diffs_up_to(inner, block)
                        .rev()
                        .find_map(|d| {
                            d.nonces.iter().find(|n| n.contract_address == *c).map(|n| n.nonce)
                        })
                        .unwrap_or(Felt::ZERO)
                })
                .collect()
        })
    }

    async fn bouncer_weights(&self, block: u64) -> MadaraResult<BouncerWeights> {
        let default = self.default_weights;
        self.with_block(block, |_, b| b.weights.unwrap_or(default))
    }

    async fn contract_addresses(&self) -> MadaraResult<ContractAddresses> {
        Ok(ContractAddresses::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replays_state() {
        let node = InMemoryMadara::new();
        let c = Felt::from(0x999u64);
        node.push_block("0.14.2", Some(storage_diff(c, &[(Felt::ONE, Felt::TWO)])));
        node.push_block("0.14.2", Some(storage_diff(c, &[(Felt::ONE, Felt::THREE)])));
        assert_eq!(node.storage_at(0, &[(c, Felt::ONE)]).await.unwrap(), vec![Felt::TWO]);
        assert_eq!(
            node.storage_at(1, &[(c, Felt::ONE), (c, Felt::TWO)]).await.unwrap(),
            vec![Felt::THREE, Felt::ZERO]
        );
        assert_eq!(node.block_number().await.unwrap(), 1);
        node.set_pending_from(Some(1));
        assert_eq!(node.block_number().await.unwrap(), 0);
        assert_eq!(node.block(1).await.unwrap_err(), MadaraError::Pending { block: 1 });
        assert_eq!(node.block(5).await.unwrap_err(), MadaraError::BlockNotFound { block: 5 });
    }
}
