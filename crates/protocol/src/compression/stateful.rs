//! Stateful compression (Starknet ≥ 0.13.4): replace contract addresses and storage keys by
//! their short aliases.
//!
//! The OS keeps a global alias table in the storage of the system contract `0x2` (key = the
//! original value, storage value = its alias). Values below `0x80` are never aliased: neither
//! addresses of system contracts (whose storage keys are kept as they are) nor small keys.
//! An alias is taken from the diff's own writes to `0x2` (aliases allocated inside the range) or
//! else read from the state at the range's last block. Addresses of storage diffs, deployed
//! contracts, nonce updates and class replacements and the storage keys of aliased contracts are
//! rewritten; storage values and class hashes are not. The result is re-sorted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use starknet_core::types::{
    ContractStorageDiffItem, DeployedContractItem, Felt, NonceUpdate, ReplacedClassItem, StateDiff,
    StorageEntry,
};

use super::state::{StateReadError, StateReader};

/// The system contract holding the alias table.
pub const ALIAS_CONTRACT_ADDRESS: Felt = Felt::TWO;
/// The smallest value that gets an alias.
pub const MIN_VALUE_FOR_ALIAS: Felt = Felt::from_hex_unchecked("0x80");

/// Problems applying the stateful compression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatefulError {
    /// Reading aliases failed.
    #[error("reading aliases at block {block}: {source}")]
    State {
        /// The block read.
        block: u64,
        /// The failure.
        source: StateReadError,
    },
    /// A value that needs an alias has none (neither in the diff nor in the state).
    #[error("no alias for {value:#x}: neither written to contract 0x2 in the diff nor set at block {block}")]
    MissingAlias {
        /// The value.
        value: Felt,
        /// The block read.
        block: u64,
    },
    /// The state reader answered a different number of values than asked.
    #[error("the state reader answered {got} aliases for {expected} keys")]
    ReaderLength {
        /// Asked.
        expected: usize,
        /// Answered.
        got: usize,
    },
}

/// Whether a value is left as it is (below `0x80`).
pub fn is_unaliased(value: &Felt) -> bool {
    *value < MIN_VALUE_FOR_ALIAS
}

/// The values of `diff` that need an alias, ascending.
pub fn values_needing_aliases(diff: &StateDiff) -> BTreeSet<Felt> {
    let mut values = BTreeSet::new();
    for d in &diff.storage_diffs {
        if is_unaliased(&d.address) {
            continue;
        }
        values.insert(d.address);
        values.extend(d.storage_entries.iter().map(|e| e.key).filter(|k| !is_unaliased(k)));
    }
    values.extend(diff.deployed_contracts.iter().map(|d| d.address).filter(|a| !is_unaliased(a)));
    values.extend(diff.nonces.iter().map(|n| n.contract_address).filter(|a| !is_unaliased(a)));
    values.extend(
        diff.replaced_classes.iter().map(|r| r.contract_address).filter(|a| !is_unaliased(a)),
    );
    values
}

/// Alias-compresses `diff`; aliases missing from the diff's `0x2` writes are read at `end_block`.
pub async fn alias_compress(
    diff: &StateDiff,
    end_block: u64,
    reader: &dyn StateReader,
) -> Result<StateDiff, StatefulError> {
    let mut aliases: HashMap<Felt, Felt> = diff
        .storage_diffs
        .iter()
        .filter(|d| d.address == ALIAS_CONTRACT_ADDRESS)
        .flat_map(|d| d.storage_entries.iter())
        .filter(|e| !is_unaliased(&e.key))
        .map(|e| (e.key, e.value))
        .collect();

    let to_fetch: Vec<Felt> =
        values_needing_aliases(diff).into_iter().filter(|v| !aliases.contains_key(v)).collect();
    if !to_fetch.is_empty() {
        let queries: Vec<(Felt, Felt)> =
            to_fetch.iter().map(|v| (ALIAS_CONTRACT_ADDRESS, *v)).collect();
        let fetched = reader
            .storage_at(end_block, &queries)
            .await
            .map_err(|source| StatefulError::State { block: end_block, source })?;
        if fetched.len() != queries.len() {
            return Err(StatefulError::ReaderLength {
                expected: queries.len(),
                got: fetched.len(),
            });
        }
        aliases.extend(to_fetch.into_iter().zip(fetched));
    }

    let map = |v: &Felt| -> Result<Felt, StatefulError> {
        if is_unaliased(v) {
            return Ok(*v);
        }
        match aliases.get(v) {
            Some(a) if *a != Felt::ZERO => Ok(*a),
            _ => Err(StatefulError::MissingAlias { value: *v, block: end_block }),
        }
    };

    let mut storage: BTreeMap<Felt, BTreeMap<Felt, Felt>> = BTreeMap::new();
    for d in &diff.storage_diffs {
        let (address, keep_keys) =
            if is_unaliased(&d.address) { (d.address, true) } else { (map(&d.address)?, false) };
        let slots = storage.entry(address).or_default();
        for e in &d.storage_entries {
            let key = if keep_keys { e.key } else { map(&e.key)? };
            slots.insert(key, e.value);
        }
    }

    let mut deployed = diff
        .deployed_contracts
        .iter()
        .map(|d| Ok(DeployedContractItem { address: map(&d.address)?, class_hash: d.class_hash }))
        .collect::<Result<Vec<_>, StatefulError>>()?;
    deployed.sort_by_key(|d| d.address);
    let mut nonces = diff
        .nonces
        .iter()
        .map(|n| Ok(NonceUpdate { contract_address: map(&n.contract_address)?, nonce: n.nonce }))
        .collect::<Result<Vec<_>, StatefulError>>()?;
    nonces.sort_by_key(|n| n.contract_address);
    let mut replaced = diff
        .replaced_classes
        .iter()
        .map(|r| {
            Ok(ReplacedClassItem {
                contract_address: map(&r.contract_address)?,
                class_hash: r.class_hash,
            })
        })
        .collect::<Result<Vec<_>, StatefulError>>()?;
    replaced.sort_by_key(|r| r.contract_address);
    let mut declared = diff.declared_classes.clone();
    declared.sort_by_key(|d| d.class_hash);

    Ok(StateDiff {
        storage_diffs: storage_diffs(storage),
        deprecated_declared_classes: diff.deprecated_declared_classes.clone(),
        declared_classes: declared,
        deployed_contracts: deployed,
        replaced_classes: replaced,
        nonces,
    })
}

/// Storage writes by contract and key, as the storage diffs of a [`StateDiff`] (contracts and
/// keys in ascending order).
pub(crate) fn storage_diffs(
    storage: BTreeMap<Felt, BTreeMap<Felt, Felt>>,
) -> Vec<ContractStorageDiffItem> {
    storage
        .into_iter()
        .map(|(address, slots)| ContractStorageDiffItem {
            address,
            storage_entries: slots
                .into_iter()
                .map(|(key, value)| StorageEntry { key, value })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::state::MemoryState;

    fn f(x: u64) -> Felt {
        Felt::from(x)
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

    #[test]
    fn rewrites_with_diff_and_state_aliases() {
        let diff = StateDiff {
            storage_diffs: vec![
                // New aliases allocated in the range: 0x1000 → 0x90, 0x2000 → 0x91; counter at key 0.
                writes(2, &[(0, 0x92), (0x1000, 0x90), (0x2000, 0x91)]),
                writes(0x1000, &[(0x5, 1), (0x2000, 2), (0x3000, 3)]),
                writes(1, &[(0x777, 0xabc)]),
            ],
            deprecated_declared_classes: vec![],
            declared_classes: vec![],
            deployed_contracts: vec![DeployedContractItem {
                address: f(0x1000),
                class_hash: f(0xc1),
            }],
            replaced_classes: vec![ReplacedClassItem {
                contract_address: f(0x4000),
                class_hash: f(0xc2),
            }],
            nonces: vec![NonceUpdate { contract_address: f(0x4000), nonce: f(3) }],
        };
        let mut state = MemoryState::new();
        state.storage.insert((f(2), f(0x3000)), f(0x85));
        state.storage.insert((f(2), f(0x4000)), f(0x84));
        let out = futures::executor::block_on(alias_compress(&diff, 10, &state)).unwrap();
        assert_eq!(
            out.storage_diffs,
            vec![
                writes(1, &[(0x777, 0xabc)]),
                writes(2, &[(0, 0x92), (0x1000, 0x90), (0x2000, 0x91)]),
                writes(0x90, &[(0x5, 1), (0x85, 3), (0x91, 2)]),
            ]
        );
        assert_eq!(out.deployed_contracts[0].address, f(0x90));
        assert_eq!(out.replaced_classes[0].contract_address, f(0x84));
        assert_eq!(out.nonces[0].contract_address, f(0x84));
    }

    #[test]
    fn missing_alias_is_an_error() {
        let diff = StateDiff {
            storage_diffs: vec![writes(0x1000, &[(0x5, 1)])],
            deprecated_declared_classes: vec![],
            declared_classes: vec![],
            deployed_contracts: vec![],
            replaced_classes: vec![],
            nonces: vec![],
        };
        let err = futures::executor::block_on(alias_compress(&diff, 10, &MemoryState::new()))
            .unwrap_err();
        assert_eq!(err, StatefulError::MissingAlias { value: f(0x1000), block: 10 });
    }
}
