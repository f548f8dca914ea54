//! The OS-shaped output the stand-in writes (layout of cairo-lang's
//! `starknet/core/aggregator/output_parser.py`, reference §9.2).
//!
//! ```text
//! 0 initial_root        1 final_root
//! 2 prev_block_number   3 new_block_number
//! 4 prev_block_hash     5 new_block_hash
//! 6 os_program_hash (0: the OS ran directly)
//! 7 starknet_os_config_hash
//! 8 use_kzg_da          9 full_output
//! if use_kzg_da:
//!   10 x0 (z)  11 n_blobs
//!   n_blobs × commitment (low, high: 192-bit halves of the 48-byte commitment)
//!   n_blobs × y          (low, high: 128-bit halves of the 32-byte evaluation)
//! messages_to_l1: size, payload...
//! messages_to_l2: size, payload...
//! if not use_kzg_da: the state diff section (as given by the caller)
//! ```
//!
//! With KZG DA, `x0 = poseidon(poseidon_many(blob felts), poseidon_many(commitment halves))`
//! and `y_i` is blob `i`'s polynomial evaluated at `x0` (c-kzg), so a settlement contract that
//! checks point proofs against the blobs accepts it.

use orchestrator_protocol::kzg::{Kzg, BYTES_PER_BLOB};
use starknet_types_core::hash::{Poseidon, StarkHash};

use crate::{Felt, SnosInput, SnosRunnerError};

/// Index of `x0` in the OS output.
pub const X_0_POINT_OFFSET: usize = 10;
/// Index of the number of blobs in the OS output.
pub const N_BLOBS_OFFSET: usize = 11;
/// Index of the KZG-DA flag.
pub const USE_KZG_DA_OFFSET: usize = 8;
/// Number of header felts.
pub const HEADER_SIZE: usize = 10;

/// The batch's data availability payload: the felts the OS publishes and the blobs carrying
/// them (evaluation form, 131072 bytes each).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlobData {
    /// The DA felts (state diff encoded and compressed as the Starknet version does).
    pub felts: Vec<Felt>,
    /// The blobs, as they go into the settlement transaction.
    pub blobs: Vec<Vec<u8>>,
}

/// What the chain did over the batch, read from the node by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchData {
    /// State root before the first block.
    pub initial_root: Felt,
    /// State root after the last block.
    pub final_root: Felt,
    /// Hash of the block before the first one (0 for block 0).
    pub prev_block_hash: Felt,
    /// Hash of the last block.
    pub new_block_hash: Felt,
    /// L2 → L1 messages, OS-encoded (`from, to, payload_size, payload...` each).
    pub messages_to_l1: Vec<Felt>,
    /// L1 → L2 messages, OS-encoded (`from, to, nonce, selector, payload_size, payload...`).
    pub messages_to_l2: Vec<Felt>,
    /// The blobs (used when `use_kzg_da`).
    pub blob_data: BlobData,
    /// The state-diff section written after the messages (used when not `use_kzg_da`).
    pub state_diff_section: Vec<Felt>,
}

/// `poseidon_many([chain_id, poseidon_many(da_public_keys)])` tagged with "STAND_IN_OS_CONFIG":
/// the stand-in's config hash (not the OS's `starknet_os_config_hash`).
pub fn stand_in_config_hash(chain_id: Felt, da_public_keys: &[Felt]) -> Felt {
    let tag = Felt::from_bytes_be_slice(b"STAND_IN_OS_CONFIG");
    Poseidon::hash_array(&[tag, chain_id, Poseidon::hash_array(da_public_keys)])
}

/// The KZG segment (`x0, n_blobs, commitments, evaluations`) of `blob_data`.
pub fn kzg_segment(blob_data: &BlobData) -> Result<Vec<Felt>, SnosRunnerError> {
    if blob_data.blobs.is_empty() {
        return Err(SnosRunnerError::Deterministic(
            "KZG DA needs at least one blob (the batch has no DA data)".into(),
        ));
    }
    let kzg = Kzg::ethereum();
    let mut commitment_halves = Vec::with_capacity(2 * blob_data.blobs.len());
    for (i, blob) in blob_data.blobs.iter().enumerate() {
        if blob.len() != BYTES_PER_BLOB {
            return Err(SnosRunnerError::Deterministic(format!(
                "blob {i} has {} bytes, expected {BYTES_PER_BLOB}",
                blob.len()
            )));
        }
        let c = kzg.commitment(blob).map_err(SnosRunnerError::deterministic)?;
        // A 48-byte commitment as a Uint384 in two 192-bit halves, low first.
        commitment_halves.push(Felt::from_bytes_be_slice(&c[24..]));
        commitment_halves.push(Felt::from_bytes_be_slice(&c[..24]));
    }
    let x0 = Poseidon::hash(
        &Poseidon::hash_array(&blob_data.felts),
        &Poseidon::hash_array(&commitment_halves),
    );
    let z = x0.to_bytes_be();
    let mut out = Vec::with_capacity(2 + 4 * blob_data.blobs.len());
    out.push(x0);
    out.push(Felt::from(blob_data.blobs.len()));
    out.extend(commitment_halves);
    for blob in &blob_data.blobs {
        let y = kzg.point_proof(blob, &z).map_err(SnosRunnerError::deterministic)?.y;
        // A 32-byte evaluation as a Uint256 in two 128-bit halves, low first.
        out.push(Felt::from_bytes_be_slice(&y[16..]));
        out.push(Felt::from_bytes_be_slice(&y[..16]));
    }
    Ok(out)
}

/// The OS-shaped output of `input` (whose `batch` must be set).
pub fn build_os_output(input: &SnosInput) -> Result<Vec<Felt>, SnosRunnerError> {
    let batch = input.batch.as_ref().ok_or_else(|| {
        SnosRunnerError::Deterministic(
            "the stand-in needs the batch data read from the node".into(),
        )
    })?;
    if input.end_block < input.start_block {
        return Err(SnosRunnerError::Deterministic(format!(
            "empty block range {}..={}",
            input.start_block, input.end_block
        )));
    }
    let mut out = vec![
        batch.initial_root,
        batch.final_root,
        // The block before the range; -1 (as a felt) before block 0.
        Felt::from(input.start_block) - Felt::ONE,
        Felt::from(input.end_block),
        batch.prev_block_hash,
        batch.new_block_hash,
        Felt::ZERO,
        stand_in_config_hash(input.chain_id, &input.da_public_keys),
        Felt::from(u8::from(input.use_kzg_da)),
        Felt::from(u8::from(input.full_output)),
    ];
    if input.use_kzg_da {
        out.extend(kzg_segment(&batch.blob_data)?);
    }
    out.push(Felt::from(batch.messages_to_l1.len()));
    out.extend_from_slice(&batch.messages_to_l1);
    out.push(Felt::from(batch.messages_to_l2.len()));
    out.extend_from_slice(&batch.messages_to_l2);
    if !input.use_kzg_da {
        out.extend_from_slice(&batch.state_diff_section);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Retryable;
    use orchestrator_protocol::kzg::program_output_points;

    pub(crate) fn blob_of(felts: &[Felt]) -> Vec<u8> {
        // Coefficient form is enough for KZG: any canonical scalars make a valid blob.
        let mut blob = vec![0u8; BYTES_PER_BLOB];
        for (i, f) in felts.iter().enumerate() {
            blob[32 * i..32 * (i + 1)].copy_from_slice(&f.to_bytes_be());
        }
        blob
    }

    fn input(use_kzg_da: bool) -> SnosInput {
        let felts: Vec<Felt> = (1u64..=20).map(Felt::from).collect();
        SnosInput {
            start_block: 5,
            end_block: 7,
            rpc_url: "http://127.0.0.1:1".parse().unwrap(),
            layout: "all_cairo".into(),
            use_kzg_da,
            full_output: !use_kzg_da,
            chain_id: Felt::from_bytes_be_slice(b"SN_TEST"),
            da_public_keys: vec![],
            is_l3: use_kzg_da,
            strk_fee_token_address: crate::MAINNET_STRK_FEE_TOKEN_ADDRESS,
            eth_fee_token_address: crate::MAINNET_ETH_FEE_TOKEN_ADDRESS,
            versioned_constants_path: None,
            batch: Some(BatchData {
                initial_root: Felt::from(11u8),
                final_root: Felt::from(12u8),
                prev_block_hash: Felt::from(13u8),
                new_block_hash: Felt::from(14u8),
                messages_to_l1: vec![Felt::ONE, Felt::TWO, Felt::ZERO],
                messages_to_l2: vec![],
                blob_data: BlobData { blobs: vec![blob_of(&felts), blob_of(&felts[..3])], felts },
                state_diff_section: vec![Felt::from(99u8)],
            }),
        }
    }

    #[test]
    fn header_and_messages_without_kzg() {
        let out = build_os_output(&input(false)).unwrap();
        assert_eq!(out[..6], [11u8, 12, 4, 7, 13, 14].map(Felt::from));
        assert_eq!(out[8], Felt::ZERO);
        assert_eq!(out[9], Felt::ONE);
        assert_eq!(out[10..], [3u8, 1, 2, 0, 0, 99].map(Felt::from));
    }

    #[test]
    fn block_zero_has_minus_one_as_previous_block() {
        let mut i = input(false);
        i.start_block = 0;
        assert_eq!(build_os_output(&i).unwrap()[2], -Felt::ONE);
    }

    #[test]
    fn kzg_segment_verifies_against_the_blobs() {
        let i = input(true);
        let out = build_os_output(&i).unwrap();
        assert_eq!(out[USE_KZG_DA_OFFSET], Felt::ONE);
        assert_eq!(out[N_BLOBS_OFFSET], Felt::TWO);
        // 10 header + 2 + 4 per blob + messages (1 + 3, 1 + 0); no state diff.
        assert_eq!(out.len(), 10 + 2 + 8 + 4 + 1);
        let words: Vec<[u8; 32]> = out.iter().map(Felt::to_bytes_be).collect();
        let blobs = i.batch.unwrap().blob_data.blobs;
        // The settlement client's own check: commitment, proof at x0 and y from the output.
        let proofs = Kzg::ethereum().prove_program_output(&words, &blobs).unwrap();
        for (k, p) in proofs.iter().enumerate() {
            let low = out[12 + 2 * k].to_bytes_be();
            let high = out[13 + 2 * k].to_bytes_be();
            assert_eq!(&p.commitment[24..], &low[8..]);
            assert_eq!(&p.commitment[..24], &high[8..]);
        }
        let (x0, ys) = program_output_points(&words).unwrap();
        assert_eq!(x0, out[X_0_POINT_OFFSET].to_bytes_be());
        assert_eq!(ys.len(), 2);
    }

    #[test]
    fn kzg_without_blobs_is_deterministic() {
        let mut i = input(true);
        i.batch.as_mut().unwrap().blob_data.blobs.clear();
        assert!(!build_os_output(&i).unwrap_err().is_retryable());
        i.batch = None;
        assert!(!build_os_output(&i).unwrap_err().is_retryable());
    }
}
