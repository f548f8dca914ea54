//! The whole pipeline (squash → nonces/aliases → felts → compression → blobs) on real state
//! updates, with an in-memory pre-range state.

use orchestrator_protocol::{
    compression::{
        io::{parse_nonces, parse_state_update},
        stateful::{values_needing_aliases, ALIAS_CONTRACT_ADDRESS},
        stateless, MemoryState, StarknetVersion,
    },
    transform::{blob_to_coefficients, felt_to_fr},
};
use starknet::core::types::{Felt, StateUpdate};

use crate::blob_vectors::read;

fn update(block: u64) -> StateUpdate {
    parse_state_update(&read(&format!("da_blob/state_update/{block}.txt"))).unwrap()
}

fn run(
    updates: &[StateUpdate],
    version: StarknetVersion,
    state: &MemoryState,
) -> orchestrator_protocol::compression::PipelineOutput {
    futures::executor::block_on(orchestrator_protocol::compression::state_updates_to_blobs(
        updates, 100, version, 6, state,
    ))
    .unwrap()
}

#[test]
fn two_blocks_squash_and_encode_with_0_13_2_rules() {
    let updates = [update(638353), update(640641)];
    let mut state = MemoryState::new();
    // Every contract with writes existed before the range (storage reads answer zero).
    for u in &updates {
        for d in &u.state_diff.storage_diffs {
            state.classes.insert(d.address, Felt::ONE);
        }
    }
    for block in [638353, 640641] {
        for (a, n) in parse_nonces(&read(&format!("da_blob/nonces/{block}.txt"))).unwrap() {
            state.nonces.insert(a, n);
        }
    }
    let out = run(&updates, StarknetVersion::V0_13_2, &state);
    let n_contracts: usize = out.felts[0].to_biguint().try_into().unwrap();
    assert!(n_contracts > 0);
    assert!(!out.blobs.is_empty() && out.blobs.len() <= 6);
    // Blob 0 decodes back to the first 4096 felts.
    let coefficients = blob_to_coefficients(&out.blobs[0]).unwrap();
    for (c, f) in coefficients.iter().zip(&out.felts) {
        assert_eq!(*c, felt_to_fr(f));
    }
}

#[test]
fn newest_rules_alias_and_compress() {
    let updates = [update(671070)];
    let mut state = MemoryState::new();
    state.strict_aliases = true;
    for (i, v) in values_needing_aliases(&updates[0].state_diff).into_iter().enumerate() {
        state.storage.insert((ALIAS_CONTRACT_ADDRESS, v), Felt::from(0x80u64 + i as u64));
    }
    let out = run(&updates, StarknetVersion::Later(0, 14, 4), &state);
    let felts = stateless::decompress(&out.felts).unwrap();
    // Every contract address in the encoding is now a small alias.
    let n_contracts: usize = felts[0].to_biguint().try_into().unwrap();
    assert!(n_contracts > 0);
    assert!(felts[1] < Felt::from(0x80u64 + 100_000));
    assert!(out.felts.len() < felts.len(), "compression should shrink real data");
}
