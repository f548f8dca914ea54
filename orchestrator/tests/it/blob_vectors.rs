//! The acceptance vectors of `da_blob/` (in `orchestrator-test-support`): state update → blob
//! (0.13.2 encoding, no compression) and blob round trips.

use orchestrator_protocol::{
    compression::{
        diff_to_blob_felts,
        io::{parse_blob_hex, parse_nonces, parse_state_update},
        EncodeOptions, MemoryState, StarknetVersion, FELTS_PER_BLOB,
    },
    fr::Fr,
    transform::{blob_to_coefficients, coefficients_to_blob, felt_to_fr, felts_to_blob},
};
use rstest::rstest;

pub(crate) use orchestrator_test_support::vectors::{path as vector, read};

fn encode_block(block: u64) -> Vec<starknet::core::types::Felt> {
    let update = parse_state_update(&read(&format!("da_blob/state_update/{block}.txt"))).unwrap();
    let mut state = MemoryState::new();
    state.strict_nonces = true;
    for (address, nonce) in parse_nonces(&read(&format!("da_blob/nonces/{block}.txt"))).unwrap() {
        state.nonces.insert(address, nonce);
    }
    let options = EncodeOptions { version: StarknetVersion::V0_13_2, compress: false };
    futures::executor::block_on(diff_to_blob_felts(&update.state_diff, block, options, &state))
        .unwrap()
}

#[rstest]
#[case(178)]
#[case(631861)]
#[case(638353)]
#[case(640641)]
#[case(671070)]
fn state_update_encodes_to_the_mainnet_blob(#[case] block: u64) {
    let felts = encode_block(block);
    assert!(felts.len() <= FELTS_PER_BLOB, "block {block}: {} felts", felts.len());
    let blob = felts_to_blob(&felts).unwrap();
    let expected = read(&format!("da_blob/test_blob/{block}.txt"));
    let expected = expected.trim().trim_start_matches("0x").to_ascii_lowercase();
    assert_eq!(hex::encode(&blob), expected, "block {block}: blob differs");

    // And the inverse transform of the expected blob is our felts padded with zeros.
    let coefficients = blob_to_coefficients(&parse_blob_hex(&expected).unwrap()).unwrap();
    let mut padded: Vec<Fr> = felts.iter().map(felt_to_fr).collect();
    padded.resize(FELTS_PER_BLOB, Fr::ZERO);
    assert_eq!(coefficients, padded, "block {block}: coefficients differ");
}

#[rstest]
#[case(178)]
#[case(631861)]
#[case(638353)]
#[case(639404)]
#[case(640641)]
#[case(640644)]
#[case(640646)]
#[case(640647)]
#[case(671070)]
fn blob_round_trip(#[case] block: u64) {
    let blob = parse_blob_hex(&read(&format!("da_blob/test_blob/{block}.txt"))).unwrap();
    let coefficients = blob_to_coefficients(&blob).unwrap();
    assert_eq!(coefficients_to_blob(&coefficients).unwrap(), blob, "block {block}");
}
