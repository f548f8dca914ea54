//! Squash: several consecutive blocks' state updates → one state diff against the state before
//! the range.
//!
//! Rules (as the reference orchestrator's `compression/squash.rs`):
//! - storage: the last write of each `(contract, key)` wins; then a write equal to the value the
//!   slot had before the range is dropped, and for a contract that did not exist before the range
//!   (newly deployed) a zero write is dropped; contracts left without writes disappear;
//! - deployed contracts: merged; a class replaced after the deployment in the same range is
//!   folded into the deployment (the deployed entry takes the final class hash and the
//!   replacement disappears);
//! - replaced classes: the last replacement wins; dropped when the contract had that same class
//!   hash before the range;
//! - nonces: the latest wins; declared classes: merged (latest compiled class hash wins);
//!   deprecated declared classes: union.
//!
//! Lookups of the pre-range state go through one batched [`StateReader`] call per kind. With no
//! pre-range block (the range starts at genesis) every contract is new.
//!
//! The result is sorted (contracts by address, storage by key, classes by hash) so it is
//! deterministic.

use std::collections::{BTreeMap, BTreeSet};

use starknet_core::types::{
    DeclaredClassItem, DeployedContractItem, Felt, NonceUpdate, ReplacedClassItem, StateDiff,
    StateUpdate,
};

use super::{
    state::{StateReadError, StateReader},
    stateful::storage_diffs,
};

/// Problems squashing state updates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SquashError {
    /// Nothing to squash.
    #[error("no state updates to squash")]
    Empty,
    /// Reading the pre-range state failed.
    #[error("reading the state before the range (block {block}): {source}")]
    State {
        /// The pre-range block.
        block: u64,
        /// The failure.
        source: StateReadError,
    },
    /// The state reader answered a different number of values than asked.
    #[error("the state reader answered {got} values for {expected} queries")]
    ReaderLength {
        /// Asked.
        expected: usize,
        /// Answered.
        got: usize,
    },
}

fn check_len(expected: usize, got: usize) -> Result<(), SquashError> {
    if expected == got {
        Ok(())
    } else {
        Err(SquashError::ReaderLength { expected, got })
    }
}

/// Merges `updates` (consecutive blocks, oldest first) into one update whose diff is relative to
/// the state at `pre_range_block` (`None` when the range starts at genesis).
///
/// The result takes `old_root` from the first update and `block_hash`/`new_root` from the last.
pub async fn squash_state_updates(
    updates: &[StateUpdate],
    pre_range_block: Option<u64>,
    reader: &dyn StateReader,
) -> Result<StateUpdate, SquashError> {
    let (first, last) = match (updates.first(), updates.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => return Err(SquashError::Empty),
    };

    let mut storage: BTreeMap<Felt, BTreeMap<Felt, Felt>> = BTreeMap::new();
    let mut deployed: BTreeMap<Felt, Felt> = BTreeMap::new();
    let mut replaced: BTreeMap<Felt, Felt> = BTreeMap::new();
    let mut declared: BTreeMap<Felt, Felt> = BTreeMap::new();
    let mut nonces: BTreeMap<Felt, Felt> = BTreeMap::new();
    let mut deprecated: BTreeSet<Felt> = BTreeSet::new();

    for update in updates {
        let d = &update.state_diff;
        for item in &d.storage_diffs {
            let slots = storage.entry(item.address).or_default();
            for e in &item.storage_entries {
                slots.insert(e.key, e.value);
            }
        }
        for item in &d.deployed_contracts {
            deployed.insert(item.address, item.class_hash);
            // A redeployment after a replacement (not possible on Starknet) would supersede it.
            replaced.remove(&item.address);
        }
        for item in &d.replaced_classes {
            replaced.insert(item.contract_address, item.class_hash);
        }
        for item in &d.declared_classes {
            declared.insert(item.class_hash, item.compiled_class_hash);
        }
        for item in &d.nonces {
            nonces.insert(item.contract_address, item.nonce);
        }
        deprecated.extend(d.deprecated_declared_classes.iter().copied());
    }

    // Fold replacements of contracts deployed in the range into the deployment.
    replaced.retain(|address, class_hash| match deployed.get_mut(address) {
        Some(deployed_class) => {
            *deployed_class = *class_hash;
            false
        }
        None => true,
    });

    match pre_range_block {
        None => {
            for slots in storage.values_mut() {
                slots.retain(|_, v| *v != Felt::ZERO);
            }
        }
        Some(block) => {
            let state_err = |source| SquashError::State { block, source };
            // Which contracts existed before the range, and with which class.
            let contracts: Vec<Felt> = storage
                .keys()
                .chain(replaced.keys())
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let classes = reader.class_hash_at(block, &contracts).await.map_err(state_err)?;
            check_len(contracts.len(), classes.len())?;
            let pre_class: BTreeMap<Felt, Option<Felt>> =
                contracts.into_iter().zip(classes).collect();
            let existed = |a: &Felt| matches!(pre_class.get(a), Some(Some(_)));

            // Pre-range values of every slot of contracts that existed.
            let queries: Vec<(Felt, Felt)> = storage
                .iter()
                .filter(|(a, _)| existed(a))
                .flat_map(|(a, slots)| slots.keys().map(move |k| (*a, *k)))
                .collect();
            let values = reader.storage_at(block, &queries).await.map_err(state_err)?;
            check_len(queries.len(), values.len())?;
            let pre_values: BTreeMap<(Felt, Felt), Felt> =
                queries.into_iter().zip(values).collect();

            for (address, slots) in storage.iter_mut() {
                if existed(address) {
                    slots.retain(|k, v| pre_values.get(&(*address, *k)) != Some(v));
                } else {
                    slots.retain(|_, v| *v != Felt::ZERO);
                }
            }
            replaced
                .retain(|address, class_hash| pre_class.get(address) != Some(&Some(*class_hash)));
        }
    }
    storage.retain(|_, slots| !slots.is_empty());

    let state_diff = StateDiff {
        storage_diffs: storage_diffs(storage),
        deprecated_declared_classes: deprecated.into_iter().collect(),
        declared_classes: declared
            .into_iter()
            .map(|(class_hash, compiled_class_hash)| DeclaredClassItem {
                class_hash,
                compiled_class_hash,
            })
            .collect(),
        deployed_contracts: deployed
            .into_iter()
            .map(|(address, class_hash)| DeployedContractItem { address, class_hash })
            .collect(),
        replaced_classes: replaced
            .into_iter()
            .map(|(contract_address, class_hash)| ReplacedClassItem {
                contract_address,
                class_hash,
            })
            .collect(),
        nonces: nonces
            .into_iter()
            .map(|(contract_address, nonce)| NonceUpdate { contract_address, nonce })
            .collect(),
    };
    Ok(StateUpdate {
        block_hash: last.block_hash,
        old_root: first.old_root,
        new_root: last.new_root,
        state_diff,
    })
}

#[cfg(test)]
mod tests {
    use starknet_core::types::{ContractStorageDiffItem, StorageEntry};

    use super::*;
    use crate::compression::state::MemoryState;

    fn f(x: u64) -> Felt {
        Felt::from(x)
    }

    fn empty_diff() -> StateDiff {
        StateDiff {
            storage_diffs: vec![],
            deprecated_declared_classes: vec![],
            declared_classes: vec![],
            deployed_contracts: vec![],
            replaced_classes: vec![],
            nonces: vec![],
        }
    }

    fn update(n: u64, diff: StateDiff) -> StateUpdate {
        StateUpdate {
            block_hash: f(1000 + n),
            old_root: f(n),
            new_root: f(n + 1),
            state_diff: diff,
        }
    }

    fn writes(address: u64, kv: &[(u64, u64)]) -> ContractStorageDiffItem {
        ContractStorageDiffItem {
            address: f(address),
            storage_entries: kv
                .iter()
                .map(|(k, v)| StorageEntry { key: f(*k), value: f(*v) })
                .collect(),
        }
    }

    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        futures::executor::block_on(fut)
    }

    #[test]
    fn squashes_against_pre_range_state() {
        let mut pre = MemoryState::new();
        // Contract 0xa existed with slot 1 = 5, slot 2 = 0; class 0xc1.
        pre.classes.insert(f(0xa), f(0xc1));
        pre.storage.insert((f(0xa), f(1)), f(5));
        // Contract 0xb existed with class 0xc2.
        pre.classes.insert(f(0xb), f(0xc2));

        let mut d1 = empty_diff();
        d1.storage_diffs =
            vec![writes(0xa, &[(1, 7), (2, 3), (3, 4)]), writes(0xd, &[(1, 0), (2, 9)])];
        d1.deployed_contracts = vec![DeployedContractItem { address: f(0xd), class_hash: f(0xc3) }];
        d1.nonces = vec![NonceUpdate { contract_address: f(0xa), nonce: f(1) }];
        d1.declared_classes =
            vec![DeclaredClassItem { class_hash: f(0xc3), compiled_class_hash: f(0xcc3) }];
        d1.replaced_classes =
            vec![ReplacedClassItem { contract_address: f(0xb), class_hash: f(0xc9) }];
        d1.deprecated_declared_classes = vec![f(0xdead)];

        let mut d2 = empty_diff();
        // slot 1 back to its pre-range value, slot 2 changes again, slot 3 stays.
        d2.storage_diffs = vec![writes(0xa, &[(1, 5), (2, 8)]), writes(0xd, &[(2, 0)])];
        d2.nonces = vec![NonceUpdate { contract_address: f(0xa), nonce: f(2) }];
        // 0xb's class goes back to what it was; 0xd (deployed in range) is replaced.
        d2.replaced_classes = vec![
            ReplacedClassItem { contract_address: f(0xb), class_hash: f(0xc2) },
            ReplacedClassItem { contract_address: f(0xd), class_hash: f(0xc4) },
        ];

        let out = block_on(squash_state_updates(&[update(10, d1), update(11, d2)], Some(9), &pre))
            .unwrap();
        assert_eq!(out.old_root, f(10));
        assert_eq!(out.new_root, f(12));
        assert_eq!(out.block_hash, f(1011));
        let d = out.state_diff;
        assert_eq!(d.storage_diffs, vec![writes(0xa, &[(2, 8), (3, 4)])]);
        assert_eq!(
            d.deployed_contracts,
            vec![DeployedContractItem { address: f(0xd), class_hash: f(0xc4) }]
        );
        assert!(d.replaced_classes.is_empty());
        assert_eq!(d.nonces, vec![NonceUpdate { contract_address: f(0xa), nonce: f(2) }]);
        assert_eq!(d.declared_classes.len(), 1);
        assert_eq!(d.deprecated_declared_classes, vec![f(0xdead)]);
    }

    #[test]
    fn keeps_real_replacements_and_genesis_ranges() {
        let mut pre = MemoryState::new();
        pre.classes.insert(f(0xb), f(0xc2));
        let mut d = empty_diff();
        d.replaced_classes =
            vec![ReplacedClassItem { contract_address: f(0xb), class_hash: f(0xc5) }];
        d.storage_diffs = vec![writes(0xe, &[(1, 0), (2, 2)])];
        let out = block_on(squash_state_updates(&[update(1, d.clone())], Some(0), &pre)).unwrap();
        assert_eq!(out.state_diff.replaced_classes.len(), 1);
        assert_eq!(out.state_diff.storage_diffs, vec![writes(0xe, &[(2, 2)])]);

        let out = block_on(squash_state_updates(&[update(0, d)], None, &pre)).unwrap();
        assert_eq!(out.state_diff.storage_diffs, vec![writes(0xe, &[(2, 2)])]);
        assert_eq!(out.state_diff.replaced_classes.len(), 1);
    }

    #[test]
    fn empty_is_an_error() {
        assert_eq!(
            block_on(squash_state_updates(&[], Some(1), &MemoryState::new())),
            Err(SquashError::Empty)
        );
    }
}
