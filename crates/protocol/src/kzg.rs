//! KZG for EIP-4844 blobs: commitments, blob proofs, point proofs at the OS evaluation point
//! `x0` (checked against the program output), and EIP-7594 cell proofs for PeerDAS sidecars.
//!
//! Uses c-kzg with its embedded Ethereum mainnet trusted setup.
//!
//! Program output layout (Starknet OS / aggregator with KZG DA, reference §9.2): `x0` at index
//! [`X_0_POINT_OFFSET`], the number of blobs at [`N_BLOBS_OFFSET`], then per blob its commitment
//! as two felts, then per blob `i` the evaluation `y_i = high << 128 | low` with `low` at
//! `2 * (n_blobs + i) + 1 + 11` and `high` right after it (the low 128 bits of each felt count).

use c_kzg::{Blob, Bytes32, Bytes48, Cell, KzgSettings};

pub use crate::transform::BYTES_PER_BLOB;
// The transform's blob is c-kzg's.
const _: () = assert!(BYTES_PER_BLOB == c_kzg::BYTES_PER_BLOB);
/// Cells (and cell proofs) per extended blob (EIP-7594).
pub const CELLS_PER_BLOB: usize = c_kzg::CELLS_PER_EXT_BLOB;
/// Index of the evaluation point `x0` in the program output.
pub const X_0_POINT_OFFSET: usize = 10;
/// Index of the number of blobs in the program output.
pub const N_BLOBS_OFFSET: usize = 11;

/// A 48-byte compressed G1 point (commitment or proof).
pub type G1 = [u8; 48];

/// What went wrong with KZG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KzgError {
    /// A blob does not have 131072 bytes.
    #[error("blob {index}: expected {BYTES_PER_BLOB} bytes, got {len}")]
    BlobSize {
        /// Which blob.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// c-kzg refused a blob (an element not below the BLS12-381 scalar modulus).
    #[error("blob {index} is not a valid blob (an element is not a canonical BLS12-381 scalar): {detail}")]
    InvalidBlob {
        /// Which blob.
        index: usize,
        /// c-kzg's report.
        detail: String,
    },
    /// The evaluation point is not a canonical BLS12-381 scalar.
    #[error("evaluation point {0} is not below the BLS12-381 scalar modulus")]
    InvalidPoint(String),
    /// The precompute level of the trusted setup is out of range.
    #[error("trusted-setup precompute must be 0..=15, got {0}")]
    Precompute(u64),
    /// The program output is too short for its blobs.
    #[error("program output has {len} words; {n_blobs} blob(s) need at least {needed}")]
    ProgramOutputTooShort {
        /// Its length.
        len: usize,
        /// Blobs it announces.
        n_blobs: u64,
        /// Words needed.
        needed: usize,
    },
    /// The program output announces a different number of blobs than given.
    #[error("program output announces {in_output} blob(s) but {given} were given")]
    BlobCountMismatch {
        /// Announced at index 11.
        in_output: u64,
        /// Given.
        given: usize,
    },
    /// The blob's evaluation at `x0` is not the `y` of the program output.
    #[error("blob {index}: y at x0 is {computed} but the program output says {expected}")]
    YMismatch {
        /// Which blob.
        index: usize,
        /// From the program output.
        expected: String,
        /// Computed from the blob.
        computed: String,
    },
    /// A proof that was just computed does not verify.
    #[error("blob {index}: the {what} does not verify")]
    ProofRejected {
        /// Which blob.
        index: usize,
        /// Which proof.
        what: &'static str,
    },
    /// Any other c-kzg failure.
    #[error("c-kzg: {0}")]
    Library(String),
}

fn lib(e: c_kzg::Error) -> KzgError {
    KzgError::Library(format!("{e:?}"))
}

/// A point proof: `proof` that the blob's polynomial takes the value `y` at `z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointProof {
    /// The KZG proof.
    pub proof: G1,
    /// The evaluation (32-byte big-endian scalar).
    pub y: [u8; 32],
}

/// Commitment and point proof of one blob of a state update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobPointProof {
    /// The blob's commitment.
    pub commitment: G1,
    /// Proof of `y` at `x0`.
    pub proof: G1,
    /// The evaluation at `x0`.
    pub y: [u8; 32],
}

/// The proofs of a blob sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarProofs {
    /// One commitment per blob.
    pub commitments: Vec<G1>,
    /// One blob proof per blob (EIP-4844) or 128 cell proofs per blob (EIP-7594), blob by blob.
    pub proofs: Vec<G1>,
}

/// KZG operations with the Ethereum mainnet trusted setup.
#[derive(Debug, Clone, Copy)]
pub struct Kzg {
    settings: &'static KzgSettings,
}

impl Default for Kzg {
    fn default() -> Self {
        Self::ethereum()
    }
}

fn blob_of(index: usize, bytes: &[u8]) -> Result<Box<Blob>, KzgError> {
    if bytes.len() != BYTES_PER_BLOB {
        return Err(KzgError::BlobSize { index, len: bytes.len() });
    }
    Blob::from_bytes(bytes).map(Box::new).map_err(lib)
}

fn is_bad_args(e: &c_kzg::Error) -> bool {
    matches!(e, c_kzg::Error::CError(c_kzg::CkzgError::C_KZG_BADARGS))
}

impl Kzg {
    /// The Ethereum trusted setup without precomputation (as the reference orchestrator).
    pub fn ethereum() -> Self {
        Self { settings: c_kzg::ethereum_kzg_settings(0) }
    }

    /// The Ethereum trusted setup with a precompute level (0..=15; higher = faster cell proofs,
    /// more memory).
    pub fn ethereum_with_precompute(precompute: u64) -> Result<Self, KzgError> {
        if precompute > 15 {
            return Err(KzgError::Precompute(precompute));
        }
        Ok(Self { settings: c_kzg::ethereum_kzg_settings(precompute) })
    }

    /// The commitment of a blob.
    pub fn commitment(&self, blob: &[u8]) -> Result<G1, KzgError> {
        self.commitment_at(0, blob)
    }

    fn commitment_at(&self, index: usize, blob: &[u8]) -> Result<G1, KzgError> {
        let b = blob_of(index, blob)?;
        let c = self.settings.blob_to_kzg_commitment(&b).map_err(|e| {
            if is_bad_args(&e) {
                KzgError::InvalidBlob { index, detail: format!("{e:?}") }
            } else {
                lib(e)
            }
        })?;
        Ok(c.to_bytes().into_inner())
    }

    /// The EIP-4844 blob proof (`compute_blob_kzg_proof`).
    pub fn blob_proof(&self, blob: &[u8], commitment: &G1) -> Result<G1, KzgError> {
        let b = blob_of(0, blob)?;
        let p =
            self.settings.compute_blob_kzg_proof(&b, &Bytes48::from(*commitment)).map_err(|e| {
                if is_bad_args(&e) {
                    KzgError::InvalidBlob { index: 0, detail: format!("{e:?}") }
                } else {
                    lib(e)
                }
            })?;
        Ok(p.to_bytes().into_inner())
    }

    /// Verifies an EIP-4844 blob proof.
    pub fn verify_blob_proof(
        &self,
        blob: &[u8],
        commitment: &G1,
        proof: &G1,
    ) -> Result<bool, KzgError> {
        let b = blob_of(0, blob)?;
        self.settings
            .verify_blob_kzg_proof(&b, &Bytes48::from(*commitment), &Bytes48::from(*proof))
            .map_err(lib)
    }

    /// The proof of the blob's value at `z` (`compute_kzg_proof`), with that value.
    pub fn point_proof(&self, blob: &[u8], z: &[u8; 32]) -> Result<PointProof, KzgError> {
        let b = blob_of(0, blob)?;
        let (proof, y) = self.settings.compute_kzg_proof(&b, &Bytes32::from(*z)).map_err(|e| {
            if is_bad_args(&e) {
                KzgError::InvalidPoint(format!("0x{}", hex::encode(z)))
            } else {
                lib(e)
            }
        })?;
        let mut y_bytes = [0u8; 32];
        y_bytes.copy_from_slice(y.as_slice());
        Ok(PointProof { proof: proof.to_bytes().into_inner(), y: y_bytes })
    }

    /// Verifies a point proof against a commitment.
    pub fn verify_point_proof(
        &self,
        commitment: &G1,
        z: &[u8; 32],
        y: &[u8; 32],
        proof: &G1,
    ) -> Result<bool, KzgError> {
        self.settings
            .verify_kzg_proof(
                &Bytes48::from(*commitment),
                &Bytes32::from(*z),
                &Bytes32::from(*y),
                &Bytes48::from(*proof),
            )
            .map_err(lib)
    }

    /// The 128 EIP-7594 cells and cell proofs of a blob.
    pub fn cells_and_proofs(&self, blob: &[u8]) -> Result<(Vec<Cell>, Vec<G1>), KzgError> {
        let b = blob_of(0, blob)?;
        let (cells, proofs) = self.settings.compute_cells_and_kzg_proofs(&b).map_err(lib)?;
        Ok((cells.to_vec(), proofs.iter().map(|p| p.to_bytes().into_inner()).collect()))
    }

    /// The 128 EIP-7594 cell proofs of a blob.
    pub fn cell_proofs(&self, blob: &[u8]) -> Result<Vec<G1>, KzgError> {
        Ok(self.cells_and_proofs(blob)?.1)
    }

    /// Verifies all 128 cells and cell proofs of one blob against its commitment.
    pub fn verify_cell_proofs(
        &self,
        commitment: &G1,
        cells: &[Cell],
        proofs: &[G1],
    ) -> Result<bool, KzgError> {
        let commitments = vec![Bytes48::from(*commitment); cells.len()];
        let indices: Vec<u64> = (0..cells.len() as u64).collect();
        let proofs: Vec<Bytes48> = proofs.iter().map(|p| Bytes48::from(*p)).collect();
        self.settings
            .verify_cell_kzg_proof_batch(&commitments, &indices, cells, &proofs)
            .map_err(lib)
    }

    /// Commitments and proofs for a blob sidecar: blob proofs (EIP-4844) or, with `peerdas`,
    /// 128 cell proofs per blob (EIP-7594).
    pub fn sidecar_proofs(
        &self,
        blobs: &[Vec<u8>],
        peerdas: bool,
    ) -> Result<SidecarProofs, KzgError> {
        let mut commitments = Vec::with_capacity(blobs.len());
        let mut proofs = Vec::with_capacity(blobs.len() * if peerdas { CELLS_PER_BLOB } else { 1 });
        for (index, blob) in blobs.iter().enumerate() {
            let c = self.commitment_at(index, blob)?;
            if peerdas {
                proofs.extend(self.cell_proofs(blob)?);
            } else {
                proofs.push(self.blob_proof(blob, &c)?);
            }
            commitments.push(c);
        }
        Ok(SidecarProofs { commitments, proofs })
    }

    /// For a state update carried in `blobs`: each blob's commitment and its proof at the
    /// program output's `x0`, after checking that the blob's value there is the program output's
    /// `y` for that blob and that the proof verifies.
    pub fn prove_program_output(
        &self,
        program_output: &[[u8; 32]],
        blobs: &[Vec<u8>],
    ) -> Result<Vec<BlobPointProof>, KzgError> {
        let (x0, ys) = program_output_points(program_output)?;
        if ys.len() != blobs.len() {
            return Err(KzgError::BlobCountMismatch {
                in_output: ys.len() as u64,
                given: blobs.len(),
            });
        }
        let mut out = Vec::with_capacity(blobs.len());
        for (index, (blob, expected)) in blobs.iter().zip(&ys).enumerate() {
            let commitment = self.commitment_at(index, blob)?;
            let PointProof { proof, y } = self.point_proof(blob, &x0).map_err(|e| match e {
                KzgError::BlobSize { len, .. } => KzgError::BlobSize { index, len },
                other => other,
            })?;
            if &y != expected {
                return Err(KzgError::YMismatch {
                    index,
                    expected: format!("0x{}", hex::encode(expected)),
                    computed: format!("0x{}", hex::encode(y)),
                });
            }
            if !self.verify_point_proof(&commitment, &x0, &y, &proof)? {
                return Err(KzgError::ProofRejected { index, what: "point proof at x0" });
            }
            out.push(BlobPointProof { commitment, proof, y });
        }
        Ok(out)
    }
}

/// `x0` and the per-blob `y` of a program output (32-byte big-endian words).
pub fn program_output_points(
    program_output: &[[u8; 32]],
) -> Result<([u8; 32], Vec<[u8; 32]>), KzgError> {
    let len = program_output.len();
    let n_blobs_word = program_output
        .get(N_BLOBS_OFFSET)
        .ok_or(KzgError::ProgramOutputTooShort { len, n_blobs: 0, needed: N_BLOBS_OFFSET + 1 })?;
    let n_blobs = if n_blobs_word[..24].iter().all(|b| *b == 0) {
        let mut w = [0u8; 8];
        w.copy_from_slice(&n_blobs_word[24..]);
        u64::from_be_bytes(w)
    } else {
        u64::MAX
    };
    // The last y high word of the last blob sits at 2*(n + n-1) + 1 + 12 = 4n + 11.
    let needed = usize::try_from(n_blobs)
        .ok()
        .and_then(|n| n.checked_mul(4))
        .and_then(|n| n.checked_add(12))
        .unwrap_or(usize::MAX);
    if n_blobs == 0 || len < needed {
        return Err(KzgError::ProgramOutputTooShort { len, n_blobs, needed: needed.max(16) });
    }
    let n = n_blobs as usize;
    let x0 = program_output[X_0_POINT_OFFSET];
    let ys = (0..n)
        .map(|i| {
            let low_index = 2 * (n + i) + 1 + N_BLOBS_OFFSET;
            let low = &program_output[low_index][16..];
            let high = &program_output[low_index + 1][16..];
            let mut y = [0u8; 32];
            y[..16].copy_from_slice(high);
            y[16..].copy_from_slice(low);
            y
        })
        .collect();
    Ok((x0, ys))
}

#[cfg(test)]
mod tests {
    use super::*;

    use orchestrator_test_support::vectors::read;

    fn hex_bytes(s: &str) -> Vec<u8> {
        hex::decode(s.trim().trim_start_matches("0x")).unwrap()
    }

    fn g1(s: &str) -> G1 {
        hex_bytes(s).try_into().unwrap()
    }

    fn word(s: &str) -> [u8; 32] {
        let v = hex_bytes(s);
        let mut w = [0u8; 32];
        w[32 - v.len()..].copy_from_slice(&v);
        w
    }

    fn dec_word(s: &str) -> [u8; 32] {
        // Decimal → 32-byte BE via repeated multiply-add on bytes.
        let mut w = [0u8; 32];
        for d in s.trim().bytes() {
            let mut carry = u32::from(d - b'0');
            for b in w.iter_mut().rev() {
                let t = u32::from(*b) * 10 + carry;
                *b = t as u8;
                carry = t >> 8;
            }
        }
        w
    }

    #[test]
    fn mainnet_sidecar_commitments_and_blob_proofs() {
        let kzg = Kzg::ethereum();
        for block in ["20462788", "20462818"] {
            let blob = hex_bytes(&read(&format!("kzg_sidecar/blob_data/{block}.txt")));
            let commitment = kzg.commitment(&blob).unwrap();
            assert_eq!(
                commitment,
                g1(&read(&format!("kzg_sidecar/blob_commitment/{block}.txt"))),
                "{block}"
            );
            let proof = kzg.blob_proof(&blob, &commitment).unwrap();
            assert_eq!(proof, g1(&read(&format!("kzg_sidecar/blob_proof/{block}.txt"))), "{block}");
            assert!(kzg.verify_blob_proof(&blob, &commitment, &proof).unwrap());
            let side = kzg.sidecar_proofs(&[blob], false).unwrap();
            assert_eq!(side.proofs, vec![proof]);
        }
    }

    #[test]
    fn starknet_point_proofs_at_x0() {
        let kzg = Kzg::ethereum();
        for block in [651053, 651054, 651055, 651056] {
            let blob = hex_bytes(&read(&format!("kzg_state_update/{block}/blob_data.txt")));
            let x0 = word(&read(&format!("kzg_state_update/{block}/x_0.txt")));
            let expected = g1(&read(&format!("kzg_state_update/{block}/kzg_proof.txt")));
            let pp = kzg.point_proof(&blob, &x0).unwrap();
            assert_eq!(pp.proof, expected, "block {block}");
            let c = kzg.commitment(&blob).unwrap();
            assert!(kzg.verify_point_proof(&c, &x0, &pp.y, &pp.proof).unwrap(), "block {block}");
            let mut wrong_y = pp.y;
            wrong_y[31] ^= 1;
            assert!(!kzg.verify_point_proof(&c, &x0, &wrong_y, &pp.proof).unwrap());
        }
        // 630872 has no proof file: the proof must still verify.
        let blob = hex_bytes(&read("kzg_state_update/630872/blob_data.txt"));
        let x0 = word(&read("kzg_state_update/630872/x_0.txt"));
        let pp = kzg.point_proof(&blob, &x0).unwrap();
        assert!(kzg
            .verify_point_proof(&kzg.commitment(&blob).unwrap(), &x0, &pp.y, &pp.proof)
            .unwrap());
    }

    fn program_output(block: &str) -> Vec<[u8; 32]> {
        read(&format!("kzg_sidecar/program_output/{block}.txt"))
            .split_whitespace()
            .map(dec_word)
            .collect()
    }

    #[test]
    fn y_is_checked_against_the_program_output() {
        let kzg = Kzg::ethereum();
        let blob = hex_bytes(&read("kzg_sidecar/blob_data/6806848.txt"));
        let po = program_output("6806848");
        let proofs = kzg.prove_program_output(&po, std::slice::from_ref(&blob)).unwrap();
        assert_eq!(proofs.len(), 1);
        assert_eq!(proofs[0].commitment, kzg.commitment(&blob).unwrap());

        // A different blob has another y.
        let other = hex_bytes(&read("kzg_sidecar/blob_data/20468828.txt"));
        assert!(matches!(
            kzg.prove_program_output(&po, std::slice::from_ref(&other)),
            Err(KzgError::YMismatch { index: 0, .. })
        ));
        assert!(matches!(
            kzg.prove_program_output(&po, &[blob.clone(), blob.clone()]),
            Err(KzgError::BlobCountMismatch { in_output: 1, given: 2 })
        ));
        assert!(matches!(
            kzg.prove_program_output(&po[..14], &[blob]),
            Err(KzgError::ProgramOutputTooShort { .. })
        ));

        // 20468828 uses the older (0.13.1) output layout: x0 at 8, y low/high at 9/10.
        let po = program_output("20468828");
        let pp = kzg.point_proof(&other, &po[8]).unwrap();
        let mut y = [0u8; 32];
        y[..16].copy_from_slice(&po[10][16..]);
        y[16..].copy_from_slice(&po[9][16..]);
        assert_eq!(pp.y, y);
    }

    #[test]
    fn cell_proofs_verify() {
        let kzg = Kzg::ethereum();
        let blob = hex_bytes(&read("kzg_sidecar/blob_data/20462818.txt"));
        let c = kzg.commitment(&blob).unwrap();
        let (cells, proofs) = kzg.cells_and_proofs(&blob).unwrap();
        assert_eq!(proofs.len(), CELLS_PER_BLOB);
        assert!(kzg.verify_cell_proofs(&c, &cells, &proofs).unwrap());
        let mut bad = proofs.clone();
        bad.swap(0, 1);
        assert!(!kzg.verify_cell_proofs(&c, &cells, &bad).unwrap());
        let side = kzg.sidecar_proofs(&[blob], true).unwrap();
        assert_eq!(side.proofs, proofs);
    }

    #[test]
    fn bad_inputs_are_named() {
        let kzg = Kzg::ethereum();
        assert_eq!(kzg.commitment(&[0u8; 10]), Err(KzgError::BlobSize { index: 0, len: 10 }));
        let bad = vec![0xffu8; BYTES_PER_BLOB];
        assert!(matches!(kzg.commitment(&bad), Err(KzgError::InvalidBlob { index: 0, .. })));
        let zero = vec![0u8; BYTES_PER_BLOB];
        assert!(matches!(kzg.point_proof(&zero, &[0xff; 32]), Err(KzgError::InvalidPoint(_))));
        assert_eq!(Kzg::ethereum_with_precompute(16).unwrap_err(), KzgError::Precompute(16));
    }
}
