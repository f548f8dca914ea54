//! State diff → blob felts (the uncompressed DA layout of the Starknet OS output).
//!
//! Layout: `[n_contracts]`, then per contract in ascending address order: `address`, `da_word`,
//! the new class hash if the contract was deployed or its class replaced, then its `(key, value)`
//! storage writes in ascending key order; then `[n_declared]` and the `(class_hash,
//! compiled_class_hash)` pairs in ascending class-hash order. The contracts are those with
//! storage writes plus those with only a nonce, deployment or class replacement.
//!
//! `da_word` (see [`da_word`]):
//! - 0.13.2: `class_flag << 128 | nonce << 64 | n_changes` where `nonce` is the contract's
//!   current nonce — so the nonce of a contract with storage writes but no nonce in the diff has
//!   to be fetched ([`fill_missing_nonces`]).
//! - ≥ 0.13.3: `(n_changes < 256 ? nonce << 10 | n_changes << 2 | 2 : nonce << 66 | n_changes << 2)
//!   | class_flag`, where `nonce` is the new nonce only when it changed (0 otherwise), as in
//!   cairo-lang's `ContractChanges.encode_packed_header`.

use std::collections::BTreeMap;

use num_bigint::BigUint;
use starknet_core::types::{Felt, NonceUpdate, StateDiff};

use super::{
    state::{StateReadError, StateReader},
    version::StarknetVersion,
};

/// Problems building the blob felts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A nonce does not fit the 64 bits the `da_word` gives it.
    #[error("nonce {nonce:#x} of contract {address:#x} does not fit in 64 bits")]
    NonceTooLarge {
        /// The contract.
        address: Felt,
        /// The nonce.
        nonce: Felt,
    },
    /// Fetching nonces failed.
    #[error("fetching nonces: {0}")]
    State(#[from] StateReadError),
    /// The state reader answered a different number of values than asked.
    #[error("the state reader answered {got} nonces for {expected} contracts")]
    ReaderLength {
        /// Asked.
        expected: usize,
        /// Answered.
        got: usize,
    },
}

/// The `da_word` of one contract.
///
/// `nonce` must fit in 64 bits (`None` = 0). For 0.13.3 and later it is the *new* nonce when it
/// changed (0 when it did not); for 0.13.2 the contract's current nonce.
pub fn da_word(class_updated: bool, nonce: u64, n_changes: u64, version: StarknetVersion) -> Felt {
    let flag = u128::from(class_updated);
    if version.uses_packed_da_word() {
        let n = BigUint::from(n_changes);
        let nonce = BigUint::from(nonce);
        let word = if n_changes < 256 {
            (nonce << 10u32) | (n << 2u32) | BigUint::from(2u8 | flag as u8)
        } else {
            (nonce << 66u32) | (n << 2u32) | BigUint::from(flag as u8)
        };
        Felt::from(word)
    } else {
        // class flag at bit 128, nonce in bits 64..128, n_changes in bits 0..64
        let low = (u128::from(nonce) << 64) | u128::from(n_changes);
        Felt::from(low) + Felt::from(flag) * Felt::from(1u128 << 64) * Felt::from(1u128 << 64)
    }
}

fn nonce_u64(address: Felt, nonce: Felt) -> Result<u64, EncodeError> {
    let d = nonce.to_le_digits();
    if d[1] != 0 || d[2] != 0 || d[3] != 0 {
        return Err(EncodeError::NonceTooLarge { address, nonce });
    }
    Ok(d[0])
}

/// One contract's entry in the blob.
#[derive(Debug, Default)]
struct ContractEntry {
    class_hash: Option<Felt>,
    nonce: Option<Felt>,
    storage: BTreeMap<Felt, Felt>,
}

/// Contracts whose nonce the 0.13.2 `da_word` needs but the diff lacks: those with at least one
/// storage write, no nonce update, and an address other than `0x1` and `0x2` (system contracts
/// without nonces). Ascending, without duplicates.
pub fn contracts_missing_nonces(diff: &StateDiff) -> Vec<Felt> {
    let with_nonce: std::collections::HashSet<Felt> =
        diff.nonces.iter().map(|n| n.contract_address).collect();
    let mut out: Vec<Felt> = diff
        .storage_diffs
        .iter()
        .filter(|d| !d.storage_entries.is_empty())
        .map(|d| d.address)
        .filter(|a| *a != Felt::ONE && *a != Felt::TWO && !with_nonce.contains(a))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Adds to the diff the nonces (at `block`) of [`contracts_missing_nonces`], as the 0.13.2
/// encoding needs. Does nothing for versions whose `da_word` only carries changed nonces.
pub async fn fill_missing_nonces(
    diff: &mut StateDiff,
    block: u64,
    version: StarknetVersion,
    reader: &dyn StateReader,
) -> Result<(), EncodeError> {
    if !version.needs_full_nonces() {
        return Ok(());
    }
    let missing = contracts_missing_nonces(diff);
    if missing.is_empty() {
        return Ok(());
    }
    let nonces = reader.nonce_at(block, &missing).await?;
    if nonces.len() != missing.len() {
        return Err(EncodeError::ReaderLength { expected: missing.len(), got: nonces.len() });
    }
    diff.nonces.extend(
        missing
            .into_iter()
            .zip(nonces)
            .map(|(contract_address, nonce)| NonceUpdate { contract_address, nonce }),
    );
    Ok(())
}

/// The blob felts of a state diff (before stateless compression and the transform).
///
/// Deprecated (Cairo 0) declared classes are not part of the DA. A nonce not in the diff is
/// encoded as 0 (call [`fill_missing_nonces`] first for 0.13.2).
pub fn state_diff_to_felts(
    diff: &StateDiff,
    version: StarknetVersion,
) -> Result<Vec<Felt>, EncodeError> {
    let mut contracts: BTreeMap<Felt, ContractEntry> = BTreeMap::new();
    for item in &diff.storage_diffs {
        let entry = contracts.entry(item.address).or_default();
        for e in &item.storage_entries {
            entry.storage.insert(e.key, e.value);
        }
    }
    for item in &diff.replaced_classes {
        contracts.entry(item.contract_address).or_default().class_hash = Some(item.class_hash);
    }
    // A deployment wins over a replacement of the same contract (the squash folds them anyway).
    for item in &diff.deployed_contracts {
        contracts.entry(item.address).or_default().class_hash = Some(item.class_hash);
    }
    for item in &diff.nonces {
        contracts.entry(item.contract_address).or_default().nonce = Some(item.nonce);
    }

    let n_storage: usize = contracts.values().map(|c| c.storage.len()).sum();
    let mut out = Vec::with_capacity(
        2 + 3 * contracts.len() + 2 * n_storage + 2 * diff.declared_classes.len(),
    );
    out.push(Felt::from(contracts.len()));
    for (address, c) in &contracts {
        let nonce = match c.nonce {
            Some(n) => nonce_u64(*address, n)?,
            None => 0,
        };
        out.push(*address);
        out.push(da_word(c.class_hash.is_some(), nonce, c.storage.len() as u64, version));
        if let Some(h) = c.class_hash {
            out.push(h);
        }
        for (k, v) in &c.storage {
            out.push(*k);
            out.push(*v);
        }
    }

    let declared: BTreeMap<Felt, Felt> =
        diff.declared_classes.iter().map(|d| (d.class_hash, d.compiled_class_hash)).collect();
    out.push(Felt::from(declared.len()));
    for (h, c) in declared {
        out.push(h);
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use starknet_core::types::{
        ContractStorageDiffItem, DeclaredClassItem, DeployedContractItem, StorageEntry,
    };

    fn dec(s: &str) -> Felt {
        Felt::from_dec_str(s).unwrap()
    }

    #[rstest]
    #[case(false, 1, 1, "18446744073709551617")]
    #[case(false, 1, 0, "18446744073709551616")]
    #[case(false, 0, 6, "6")]
    #[case(true, 1, 0, "340282366920938463481821351505477763072")]
    fn da_word_0_13_2(
        #[case] class: bool,
        #[case] nonce: u64,
        #[case] n: u64,
        #[case] expected: &str,
    ) {
        assert_eq!(da_word(class, nonce, n, StarknetVersion::V0_13_2), dec(expected));
    }

    #[rstest]
    #[case(false, 0, 15, "62")]
    #[case(false, 0, 1024, "4096")]
    #[case(false, 10, 0, "10242")]
    #[case(false, 15, 2025, "1106804644422573105060")]
    #[case(true, 0, 10, "43")]
    #[case(true, 0, 1000, "4001")]
    #[case(true, 20, 255, "21503")]
    #[case(true, 1000, 256, "73786976294838206465025")]
    fn da_word_packed(
        #[case] class: bool,
        #[case] nonce: u64,
        #[case] n: u64,
        #[case] expected: &str,
    ) {
        for v in [
            StarknetVersion::V0_13_3,
            StarknetVersion::V0_13_5,
            StarknetVersion::V0_14_2,
            StarknetVersion::Later(0, 14, 4),
        ] {
            assert_eq!(da_word(class, nonce, n, v), dec(expected), "{v}");
        }
    }

    #[test]
    fn da_word_extremes() {
        let w = da_word(true, u64::MAX, u64::MAX, StarknetVersion::V0_13_2);
        assert_eq!(w.bits(), 129);
        let w = da_word(true, u64::MAX, u64::MAX, StarknetVersion::V0_13_3);
        assert_eq!(w.bits(), 130);
    }

    fn f(x: u64) -> Felt {
        Felt::from(x)
    }

    #[test]
    fn layout_orders_and_includes_leftovers() {
        let diff = StateDiff {
            storage_diffs: vec![
                ContractStorageDiffItem {
                    address: f(0x300),
                    storage_entries: vec![
                        StorageEntry { key: f(9), value: f(1) },
                        StorageEntry { key: f(3), value: f(2) },
                    ],
                },
                ContractStorageDiffItem {
                    address: f(0x100),
                    storage_entries: vec![StorageEntry { key: f(1), value: f(5) }],
                },
            ],
            deprecated_declared_classes: vec![f(77)],
            declared_classes: vec![
                DeclaredClassItem { class_hash: f(50), compiled_class_hash: f(51) },
                DeclaredClassItem { class_hash: f(40), compiled_class_hash: f(41) },
            ],
            deployed_contracts: vec![DeployedContractItem { address: f(0x200), class_hash: f(99) }],
            replaced_classes: vec![],
            nonces: vec![
                NonceUpdate { contract_address: f(0x400), nonce: f(7) },
                NonceUpdate { contract_address: f(0x100), nonce: f(2) },
            ],
        };
        let v = StarknetVersion::V0_13_2;
        let felts = state_diff_to_felts(&diff, v).unwrap();
        let expected = vec![
            f(4),
            f(0x100),
            da_word(false, 2, 1, v),
            f(1),
            f(5),
            f(0x200),
            da_word(true, 0, 0, v),
            f(99),
            f(0x300),
            da_word(false, 0, 2, v),
            f(3),
            f(2),
            f(9),
            f(1),
            f(0x400),
            da_word(false, 7, 0, v),
            f(2),
            f(40),
            f(41),
            f(50),
            f(51),
        ];
        assert_eq!(felts, expected);
        assert_eq!(contracts_missing_nonces(&diff), vec![f(0x300)]);
    }

    #[test]
    fn nonce_too_large_is_an_error() {
        let diff = StateDiff {
            storage_diffs: vec![],
            deprecated_declared_classes: vec![],
            declared_classes: vec![],
            deployed_contracts: vec![],
            replaced_classes: vec![],
            nonces: vec![NonceUpdate {
                contract_address: f(0x400),
                nonce: Felt::from(1u128 << 64),
            }],
        };
        assert!(matches!(
            state_diff_to_felts(&diff, StarknetVersion::V0_13_3),
            Err(EncodeError::NonceTooLarge { .. })
        ));
    }
}
