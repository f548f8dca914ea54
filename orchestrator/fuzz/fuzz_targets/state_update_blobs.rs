//! The state-update path to blobs: `starknet_getStateUpdate` JSON (one update, or a JSON array
//! of consecutive updates) → `parse_state_update` → squash → nonces → stateful and stateless
//! compression → blob felts → blobs, as `orchestrator blob encode` and the DA job run it.
//!
//! Input: one option byte (Starknet version, number of blobs allowed, whether the range starts
//! at genesis, whether the pre-range state knows the contracts), then the JSON text.
//!
//! Checked: no panic; on success, at most the allowed number of blobs of 131072 bytes each,
//! blobs that transform back to the felts, and compressed felts that decompress.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orchestrator_fuzz::block_on;
use orchestrator_protocol::{
    compression::{
        encode, io::parse_state_update, squash, state::MemoryState, state_updates_to_blobs,
        stateful, stateless, StarknetVersion, BYTES_PER_BLOB, FELTS_PER_BLOB,
    },
    transform,
};
use starknet_core::types::{Felt, StateUpdate};

fuzz_target!(|data: &[u8]| {
    let Some((&options, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let version = StarknetVersion::KNOWN[usize::from(options & 7)];
    let max_blobs = usize::from((options >> 3) & 7);
    let genesis = options & 0x40 != 0;
    let known_contracts = options & 0x80 != 0;

    let updates: Vec<StateUpdate> = if text.trim_start().starts_with('[') {
        let Ok(items) = serde_json::from_str::<Vec<serde_json::Value>>(text) else { return };
        let mut updates = Vec::with_capacity(items.len());
        for item in items {
            match parse_state_update(&item.to_string()) {
                Ok(u) => updates.push(u),
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    return;
                }
            }
        }
        updates
    } else {
        match parse_state_update(text) {
            Ok(u) => vec![u],
            Err(e) => {
                assert!(!e.to_string().is_empty());
                return;
            }
        }
    };

    // A state in which every value that needs an alias has one (0x80, 0x81, ...), and, when
    // asked, every contract of the diffs existed before the range with slots holding 1.
    let mut state = MemoryState::new();
    for u in &updates {
        for (i, v) in stateful::values_needing_aliases(&u.state_diff).into_iter().enumerate() {
            state.storage.insert((Felt::TWO, v), Felt::from(0x80 + i as u64));
        }
        if known_contracts {
            for d in &u.state_diff.storage_diffs {
                state.classes.insert(d.address, Felt::from(0xc1a55u64));
                for e in &d.storage_entries {
                    state.storage.entry((d.address, e.key)).or_insert(Felt::ONE);
                }
            }
            for r in &u.state_diff.replaced_classes {
                state.classes.insert(r.contract_address, r.class_hash);
            }
        }
    }
    // The squashed diff's values are among the updates', so each has an alias.
    let first_block = if genesis { 0 } else { 1000 };

    match block_on(state_updates_to_blobs(&updates, first_block, version, max_blobs, &state)) {
        Ok(out) => {
            assert!(out.blobs.len() <= max_blobs);
            assert_eq!(out.blobs.len(), out.felts.len().div_ceil(FELTS_PER_BLOB));
            for (i, blob) in out.blobs.iter().enumerate() {
                assert_eq!(blob.len(), BYTES_PER_BLOB);
                let coefficients = transform::blob_to_coefficients(blob).expect("our own blob");
                let chunk =
                    &out.felts[i * FELTS_PER_BLOB..out.felts.len().min((i + 1) * FELTS_PER_BLOB)];
                for (c, f) in coefficients.iter().zip(chunk) {
                    assert_eq!(*c, transform::felt_to_fr(f), "blob {i} does not carry its felts");
                }
            }
            if version.supports_stateless_compression() {
                let plain = stateless::decompress(&out.felts).expect("our own compression");
                // The uncompressed layout starts with the number of contracts.
                assert!(!plain.is_empty());
            } else {
                let again = encode::state_diff_to_felts(&out.squashed.state_diff, version)
                    .expect("encoded once already");
                // 0.13.2: the felts are the encoding of the squashed diff with nonces filled in,
                // so the same length at least as the diff without them.
                assert!(out.felts.len() >= again.len());
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }

    // The squash alone, against an empty pre-range state: deterministic and sorted.
    if let Ok(squashed) =
        block_on(squash::squash_state_updates(&updates, Some(1), &MemoryState::new()))
    {
        let addresses: Vec<Felt> =
            squashed.state_diff.storage_diffs.iter().map(|d| d.address).collect();
        assert!(addresses.windows(2).all(|w| w[0] < w[1]), "squashed diff is not sorted");
    }
});
