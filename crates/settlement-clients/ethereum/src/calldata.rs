//! What a state update sends: `updateStateKzgDA` calldata (built by hand, checked against the
//! ABI encoder in the tests), `updateState` calldata, and the blob sidecar (EIP-4844 blob proofs
//! or EIP-7594 cell proofs), after validating the program output and the blobs.

use alloy::{
    eips::{
        eip4844::{kzg_to_versioned_hash, Blob, BlobTransactionSidecar, Bytes48},
        eip7594::{BlobTransactionSidecarEip7594, BlobTransactionSidecarVariant},
    },
    primitives::B256,
    sol,
    sol_types::SolCall,
};
use orchestrator_settlement_client_interface::{SettlementError, Word};

use orchestrator_protocol::kzg::{
    BlobPointProof, Kzg, KzgError, BYTES_PER_BLOB, G1, N_BLOBS_OFFSET,
};

sol! {
    /// The functions of the Starknet core contract this client calls.
    #[derive(Debug)]
    interface StarknetValidityContract {
        function stateBlockNumber() external view returns (int256);
        function stateRoot() external view returns (uint256);
        function programHash() external view returns (uint256);
        function updateStateKzgDA(uint256[] calldata programOutput, bytes[] calldata kzgProofs) external;
        function updateState(uint256[] calldata programOutput, uint256 onchainDataHash, uint256 onchainDataSize) external;
    }
}

/// Selector of `updateStateKzgDA(uint256[],bytes[])`.
pub const UPDATE_STATE_KZG_DA_SELECTOR: [u8; 4] = [0x50, 0x7e, 0xe5, 0x28];
/// Most blobs one state update may carry (EIP-4844 / Pectra per-transaction limit used by the
/// reference).
pub const MAX_BLOBS_PER_UPDATE: usize = 6;
/// Index of the new block number in the program output.
pub const NEW_BLOCK_NUMBER_OFFSET: usize = 3;
/// Index of the KZG-DA flag in the program output.
pub const USE_KZG_DA_OFFSET: usize = 8;

/// A validated blob state update, ready to sign.
#[derive(Debug, Clone)]
pub struct PreparedBlobUpdate {
    /// `updateStateKzgDA` calldata.
    pub calldata: Vec<u8>,
    /// The sidecar.
    pub sidecar: BlobTransactionSidecarVariant,
    /// Versioned hashes of the blobs, in order.
    pub versioned_hashes: Vec<B256>,
    /// Commitment, proof at x0 and y of every blob.
    pub point_proofs: Vec<BlobPointProof>,
    /// The block the contract reaches once the update lands.
    pub target_block: u64,
}

/// `updateStateKzgDA(programOutput, kzgProofs)` calldata, ABI-encoded by hand: selector, two
/// head offsets, the `uint256[]` (length + words), the `bytes[]` (length, per-element offsets
/// relative to the first offset slot, then each 48-byte proof as length + 64 padded bytes).
pub fn update_state_kzg_da_calldata(program_output: &[Word], kzg_proofs: &[G1]) -> Vec<u8> {
    fn word(v: usize) -> [u8; 32] {
        let mut w = [0u8; 32];
        w[24..].copy_from_slice(&(v as u64).to_be_bytes());
        w
    }
    let n = program_output.len();
    let m = kzg_proofs.len();
    let mut out = Vec::with_capacity(4 + 32 * (3 + n + 1 + 4 * m));
    out.extend_from_slice(&UPDATE_STATE_KZG_DA_SELECTOR);
    out.extend_from_slice(&word(0x40));
    out.extend_from_slice(&word(0x40 + 32 * (1 + n)));
    out.extend_from_slice(&word(n));
    for w in program_output {
        out.extend_from_slice(w);
    }
    out.extend_from_slice(&word(m));
    for i in 0..m {
        out.extend_from_slice(&word(32 * m + i * 96));
    }
    for p in kzg_proofs {
        out.extend_from_slice(&word(p.len()));
        out.extend_from_slice(p);
        out.extend_from_slice(&[0u8; 16]);
    }
    out
}

/// `updateState(programOutput, onchainDataHash, onchainDataSize)` calldata.
pub fn update_state_calldata(
    program_output: &[Word],
    onchain_data_hash: Word,
    onchain_data_size: Word,
) -> Vec<u8> {
    StarknetValidityContract::updateStateCall {
        programOutput: program_output
            .iter()
            .map(|w| alloy::primitives::U256::from_be_bytes(*w))
            .collect(),
        onchainDataHash: alloy::primitives::U256::from_be_bytes(onchain_data_hash),
        onchainDataSize: alloy::primitives::U256::from_be_bytes(onchain_data_size),
    }
    .abi_encode()
}

/// The sidecar of `blobs`: EIP-7594 cell proofs when `peerdas`, else EIP-4844 blob proofs.
/// Does not look at any program output (tests use it to build deliberately wrong updates).
pub fn build_sidecar(
    kzg: &Kzg,
    blobs: &[Vec<u8>],
    peerdas: bool,
) -> Result<(BlobTransactionSidecarVariant, Vec<B256>), KzgError> {
    let proofs = kzg.sidecar_proofs(blobs, peerdas)?;
    let blobs: Vec<Blob> = blobs.iter().map(|b| Blob::from_slice(b)).collect();
    let commitments: Vec<Bytes48> = proofs.commitments.iter().map(|c| Bytes48::from(*c)).collect();
    let hashes = commitments.iter().map(|c| kzg_to_versioned_hash(c.as_slice())).collect();
    let proofs: Vec<Bytes48> = proofs.proofs.iter().map(|p| Bytes48::from(*p)).collect();
    let sidecar = if peerdas {
        BlobTransactionSidecarVariant::Eip7594(BlobTransactionSidecarEip7594::new(
            blobs,
            commitments,
            proofs,
        ))
    } else {
        BlobTransactionSidecarVariant::Eip4844(BlobTransactionSidecar::new(
            blobs,
            commitments,
            proofs,
        ))
    };
    Ok((sidecar, hashes))
}

fn invalid(e: impl std::fmt::Display) -> SettlementError {
    SettlementError::InvalidInput(e.to_string())
}

fn small(word: &Word) -> Option<u64> {
    word[..24].iter().all(|b| *b == 0).then(|| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&word[24..]);
        u64::from_be_bytes(w)
    })
}

/// Validates a blob state update and builds its calldata and sidecar. Every check that the
/// core contract makes on the data is made here first, so an invalid update is refused
/// before anything is signed: program output long enough for its blobs, KZG-DA flag set,
/// 1..=`max_blobs` blobs of 131072 bytes matching the announced count, each blob's commitment
/// equal to the one in the output, and each blob's value at x0 equal to the output's y.
pub fn prepare_blob_update(
    kzg: &Kzg,
    program_output: &[Word],
    blobs: &[Vec<u8>],
    peerdas: bool,
    max_blobs: usize,
) -> Result<PreparedBlobUpdate, SettlementError> {
    if blobs.is_empty() {
        return Err(invalid("no blobs given"));
    }
    if blobs.len() > max_blobs {
        return Err(invalid(format!(
            "{} blobs given; at most {max_blobs} fit in one transaction",
            blobs.len()
        )));
    }
    if let Some((index, b)) = blobs.iter().enumerate().find(|(_, b)| b.len() != BYTES_PER_BLOB) {
        return Err(invalid(format!(
            "blob {index} has {} bytes, expected {BYTES_PER_BLOB}",
            b.len()
        )));
    }
    if program_output.len() <= N_BLOBS_OFFSET {
        return Err(invalid(format!(
            "program output has {} words; the KZG header needs at least {}",
            program_output.len(),
            N_BLOBS_OFFSET + 1
        )));
    }
    if small(&program_output[USE_KZG_DA_OFFSET]) != Some(1) {
        return Err(invalid("program output does not use KZG DA (word 8 is not 1)"));
    }
    let target_block = small(&program_output[NEW_BLOCK_NUMBER_OFFSET])
        .filter(|b| *b < i64::MAX as u64)
        .ok_or_else(|| invalid("program output's new block number (word 3) is out of range"))?;
    let point_proofs = kzg.prove_program_output(program_output, blobs).map_err(invalid)?;
    let n = blobs.len();
    for (i, pp) in point_proofs.iter().enumerate() {
        // Commitment felts: low 192 bits at 12 + 2i, high 192 bits at 13 + 2i.
        let low = &program_output[N_BLOBS_OFFSET + 1 + 2 * i];
        let high = &program_output[N_BLOBS_OFFSET + 2 + 2 * i];
        let in_output = [&high[8..], &low[8..]].concat();
        if low[..8].iter().any(|b| *b != 0)
            || high[..8].iter().any(|b| *b != 0)
            || in_output != pp.commitment
        {
            return Err(invalid(format!(
                "blob {i}: its commitment 0x{} is not the one in the program output (0x{})",
                hex::encode(pp.commitment),
                hex::encode(in_output)
            )));
        }
    }
    debug_assert_eq!(point_proofs.len(), n);
    let proofs: Vec<G1> = point_proofs.iter().map(|p| p.proof).collect();
    let calldata = update_state_kzg_da_calldata(program_output, &proofs);
    let (sidecar, versioned_hashes) = build_sidecar(kzg, blobs, peerdas).map_err(invalid)?;
    Ok(PreparedBlobUpdate { calldata, sidecar, versioned_hashes, point_proofs, target_block })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Bytes, U256};

    #[test]
    fn selector_is_the_references() {
        assert_eq!(
            StarknetValidityContract::updateStateKzgDACall::SELECTOR,
            UPDATE_STATE_KZG_DA_SELECTOR
        );
    }

    #[test]
    fn hand_encoding_equals_the_abi_encoder() {
        for (n, m) in [(0usize, 0usize), (1, 1), (23, 1), (40, 6)] {
            let po: Vec<Word> = (0..n).map(|i| [i as u8 + 1; 32]).collect();
            let proofs: Vec<G1> = (0..m).map(|i| [0xa0 + i as u8; 48]).collect();
            let expected = StarknetValidityContract::updateStateKzgDACall {
                programOutput: po.iter().map(|w| U256::from_be_bytes(*w)).collect(),
                kzgProofs: proofs.iter().map(|p| Bytes::copy_from_slice(p)).collect(),
            }
            .abi_encode();
            assert_eq!(update_state_kzg_da_calldata(&po, &proofs), expected, "n={n} m={m}");
        }
    }

    fn vector(rel: &str) -> String {
        orchestrator_test_support::vectors::read(&format!("kzg_sidecar/{rel}"))
    }

    fn hex_vec(s: &str) -> Vec<u8> {
        hex::decode(s.trim().trim_start_matches("0x")).unwrap()
    }

    fn dec_word(s: &str) -> Word {
        let v = U256::from_str_radix(s.trim(), 10).unwrap();
        v.to_be_bytes()
    }

    #[test]
    fn mainnet_update_builds_the_exact_calldata_and_sidecar() {
        let kzg = Kzg::ethereum();
        let po: Vec<Word> =
            vector("program_output/6806848.txt").split_whitespace().map(dec_word).collect();
        let blob = hex_vec(&vector("blob_data/6806848.txt"));
        for peerdas in [false, true] {
            let p =
                prepare_blob_update(&kzg, &po, std::slice::from_ref(&blob), peerdas, 6).unwrap();
            assert_eq!(p.target_block, 0x35522);
            // Calldata: selector, offsets 0x40 and 0x40 + 32 × 24, the 23 words, then one proof.
            let cd = &p.calldata;
            assert_eq!(&cd[..4], &UPDATE_STATE_KZG_DA_SELECTOR);
            assert_eq!(U256::from_be_slice(&cd[4..36]), U256::from(0x40));
            assert_eq!(U256::from_be_slice(&cd[36..68]), U256::from(0x40 + 32 * 24));
            assert_eq!(U256::from_be_slice(&cd[68..100]), U256::from(23));
            assert_eq!(&cd[100..100 + 23 * 32], po.concat().as_slice());
            let tail = &cd[100 + 23 * 32..];
            assert_eq!(U256::from_be_slice(&tail[..32]), U256::from(1)); // one proof
            assert_eq!(U256::from_be_slice(&tail[32..64]), U256::from(32)); // its offset
            assert_eq!(U256::from_be_slice(&tail[64..96]), U256::from(48)); // its length
            let proof = kzg.point_proof(&blob, &po[10]).unwrap().proof;
            assert_eq!(&tail[96..144], &proof);
            assert_eq!(&tail[144..160], &[0u8; 16]);
            assert_eq!(cd.len(), 4 + 32 * 3 + 23 * 32 + 32 * 2 + 32 + 64);
            // Sidecar: the blob, the commitment of the program output (high ‖ low).
            let commitment: Vec<u8> = [&po[13][8..], &po[12][8..]].concat();
            let (blobs, commitments, n_proofs) = match &p.sidecar {
                BlobTransactionSidecarVariant::Eip4844(s) => {
                    (s.blobs.clone(), s.commitments.clone(), s.proofs.len())
                }
                BlobTransactionSidecarVariant::Eip7594(s) => {
                    (s.blobs.clone(), s.commitments.clone(), s.cell_proofs.len())
                }
            };
            assert_eq!(blobs[0].as_slice(), blob.as_slice());
            assert_eq!(commitments[0].as_slice(), commitment.as_slice());
            assert_eq!(n_proofs, if peerdas { 128 } else { 1 });
            assert_eq!(p.versioned_hashes[0], kzg_to_versioned_hash(&commitment));
        }
        // The two mainnet sidecars: commitments and blob proofs equal the recorded ones.
        for block in ["20462788", "20462818"] {
            let blob = hex_vec(&vector(&format!("blob_data/{block}.txt")));
            let (sidecar, _) = build_sidecar(&kzg, &[blob], false).unwrap();
            let BlobTransactionSidecarVariant::Eip4844(s) = sidecar else {
                panic!("4844 expected")
            };
            assert_eq!(
                s.commitments[0].as_slice(),
                hex_vec(&vector(&format!("blob_commitment/{block}.txt"))).as_slice()
            );
            assert_eq!(
                s.proofs[0].as_slice(),
                hex_vec(&vector(&format!("blob_proof/{block}.txt"))).as_slice()
            );
        }
    }

    #[test]
    fn invalid_updates_are_named() {
        let kzg = Kzg::ethereum();
        let po: Vec<Word> =
            vector("program_output/6806848.txt").split_whitespace().map(dec_word).collect();
        let blob = hex_vec(&vector("blob_data/6806848.txt"));
        let err = |po: &[Word], blobs: &[Vec<u8>], max| {
            prepare_blob_update(&kzg, po, blobs, false, max).unwrap_err().to_string()
        };
        assert!(err(&po, &[], 6).contains("no blobs"));
        assert!(err(&po, &[blob.clone(), blob.clone()], 1).contains("at most 1"));
        assert!(err(&po[..11], std::slice::from_ref(&blob), 6).contains("at least 12"));
        assert!(
            err(&po[..14], std::slice::from_ref(&blob), 6).contains("program output has 14 words")
        );
        let mut flag = po.clone();
        flag[8] = [0u8; 32];
        assert!(err(&flag, std::slice::from_ref(&blob), 6).contains("KZG DA"));
        let mut c = po.clone();
        c[12][31] ^= 1;
        assert!(err(&c, std::slice::from_ref(&blob), 6).contains("commitment"));
        assert!(err(&po, &[vec![0u8; 10]], 6).contains("10 bytes"));
    }
}
