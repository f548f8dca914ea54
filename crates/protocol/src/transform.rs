//! The EIP-4844 evaluation transform: blob felts ↔ blob bytes.
//!
//! A blob carries 4096 elements of the BLS12-381 scalar field. Starknet puts its DA felts in a
//! blob as the *coefficients* of a polynomial `P` of degree < 4096; the blob holds
//! `P(ω^bitrev12(i))` for `i = 0..4096`, where `ω` is the EIP-4844 primitive 4096-th root of
//! unity and `bitrev12` reverses the 12 bits of the index. Each evaluation is a 32-byte
//! big-endian word, so a blob is 131072 bytes.
//!
//! The reference implementation evaluates with Horner's rule at every point (O(n²)). Here the
//! forward transform is a decimation-in-frequency NTT, whose output comes out in bit-reversed
//! order — exactly the order of the blob — and the inverse is a decimation-in-time NTT over the
//! inverse root that reads bit-reversed input and writes natural order. Both are O(n log n).

use std::sync::OnceLock;

use starknet_types_core::felt::Felt;

use crate::fr::{be_bytes_to_limbs, Fr};

/// Field elements per blob.
pub const FELTS_PER_BLOB: usize = 4096;
/// Bytes per field element in a blob.
pub const BYTES_PER_FELT: usize = 32;
/// Bytes per blob.
pub const BYTES_PER_BLOB: usize = FELTS_PER_BLOB * BYTES_PER_FELT;
/// log2 of [`FELTS_PER_BLOB`].
const LOG_N: u32 = 12;

/// The EIP-4844 primitive 4096-th root of unity
/// (`39033254847818212395286706435128746857159659164139250548781411570340225835782`),
/// little-endian limbs.
const OMEGA: [u64; 4] =
    [0xe206_da11_a5d3_6306, 0x0ad1_347b_378f_bf96, 0xfc3e_8acf_e0f8_245f, 0x564c_0a11_a0f7_04f4];

/// A blob: 131072 bytes, 4096 big-endian 32-byte field elements in evaluation form.
pub type Blob = Vec<u8>;

/// Problems turning felts into blobs or blobs into felts.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TransformError {
    /// The data needs more blobs than allowed.
    #[error("the data needs {needed} blobs ({n_felts} felts) but at most {max} are allowed")]
    TooManyBlobs {
        /// Blobs needed.
        needed: usize,
        /// Blobs allowed.
        max: usize,
        /// Felts to carry.
        n_felts: usize,
    },
    /// A blob does not have 131072 bytes.
    #[error("a blob must be {BYTES_PER_BLOB} bytes, got {0}")]
    BlobSize(usize),
    /// A 32-byte word of a blob is not below the BLS12-381 scalar modulus.
    #[error("blob element {index} is not below the BLS12-381 scalar field modulus")]
    NonCanonical {
        /// Index of the word in the blob.
        index: usize,
    },
    /// More than 4096 coefficients were given for one blob.
    #[error("a blob holds at most {FELTS_PER_BLOB} felts, got {0}")]
    TooManyFelts(usize),
}

struct Twiddles {
    /// `ω^j` for `j < n/2`.
    forward: Vec<Fr>,
    /// `ω^-j` for `j < n/2`.
    inverse: Vec<Fr>,
    /// `n^-1`.
    n_inv: Fr,
}

fn twiddles() -> &'static Twiddles {
    static TW: OnceLock<Twiddles> = OnceLock::new();
    TW.get_or_init(|| {
        // OMEGA is a literal below the modulus (checked by a unit test).
        let omega = Fr::from_canonical_limbs(OMEGA).unwrap_or(Fr::ONE);
        let omega_inv = omega.inverse().unwrap_or(Fr::ONE);
        let half = FELTS_PER_BLOB / 2;
        let powers = |base: Fr| {
            let mut v = Vec::with_capacity(half);
            let mut acc = Fr::ONE;
            for _ in 0..half {
                v.push(acc);
                acc = acc.mul(base);
            }
            v
        };
        let n_inv = Fr::from_u64(FELTS_PER_BLOB as u64).inverse().unwrap_or(Fr::ONE);
        Twiddles { forward: powers(omega), inverse: powers(omega_inv), n_inv }
    })
}

/// The EIP-4844 root of unity `ω` as a field element.
pub fn omega() -> Fr {
    twiddles().forward[1]
}

/// `bitrev12(i)`: the 12-bit reversal of `i`.
#[inline]
pub fn bit_reverse(i: usize) -> usize {
    (i as u32).reverse_bits().wrapping_shr(32 - LOG_N) as usize
}

/// Forward transform in place: coefficients (natural order, exactly 4096) → evaluations
/// `values[i] = P(ω^bitrev12(i))`.
///
/// # Panics
/// Never for a 4096-element slice; other lengths are a programming error and panic.
pub fn evaluate_in_place(values: &mut [Fr]) {
    assert_eq!(values.len(), FELTS_PER_BLOB, "the transform works on exactly 4096 elements");
    let tw = &twiddles().forward;
    let n = values.len();
    let mut half = n / 2;
    let mut stride = 1;
    while half >= 1 {
        for block in values.chunks_exact_mut(2 * half) {
            let (lo, hi) = block.split_at_mut(half);
            // j = 0: twiddle is one.
            let (u, v) = (lo[0], hi[0]);
            lo[0] = u.add(v);
            hi[0] = u.sub(v);
            for j in 1..half {
                let (u, v) = (lo[j], hi[j]);
                lo[j] = u.add(v);
                hi[j] = u.sub(v).mul(tw[j * stride]);
            }
        }
        half /= 2;
        stride *= 2;
    }
}

/// Inverse transform in place: evaluations in bit-reversed order (exactly 4096) → coefficients
/// in natural order.
///
/// # Panics
/// Never for a 4096-element slice; other lengths are a programming error and panic.
pub fn interpolate_in_place(values: &mut [Fr]) {
    assert_eq!(values.len(), FELTS_PER_BLOB, "the transform works on exactly 4096 elements");
    let t = twiddles();
    let tw = &t.inverse;
    let n = values.len();
    let mut half = 1;
    let mut stride = n / 2;
    while half < n {
        for block in values.chunks_exact_mut(2 * half) {
            let (lo, hi) = block.split_at_mut(half);
            let (u, v) = (lo[0], hi[0]);
            lo[0] = u.add(v);
            hi[0] = u.sub(v);
            for j in 1..half {
                let u = lo[j];
                let v = hi[j].mul(tw[j * stride]);
                lo[j] = u.add(v);
                hi[j] = u.sub(v);
            }
        }
        half *= 2;
        stride /= 2;
    }
    for v in values.iter_mut() {
        *v = v.mul(t.n_inv);
    }
}

/// A Starknet felt as a BLS12-381 scalar (every felt is below the BLS modulus).
#[inline]
pub fn felt_to_fr(felt: &Felt) -> Fr {
    // The Starknet prime (< 2^252) is below the BLS12-381 scalar modulus (> 2^254), so every felt
    // is canonical here; the fallback is unreachable.
    Fr::from_canonical_limbs(felt.to_le_digits()).unwrap_or(Fr::ZERO)
}

/// Evaluation form of up to 4096 felts (padded with zeros): one blob of 131072 bytes.
pub fn felts_to_blob(felts: &[Felt]) -> Result<Blob, TransformError> {
    if felts.len() > FELTS_PER_BLOB {
        return Err(TransformError::TooManyFelts(felts.len()));
    }
    let coefficients: Vec<Fr> = felts.iter().map(felt_to_fr).collect();
    coefficients_to_blob(&coefficients)
}

/// Evaluation form of 4096 BLS12-381 scalars given as coefficients: the inverse of
/// [`blob_to_coefficients`].
pub fn coefficients_to_blob(coefficients: &[Fr]) -> Result<Blob, TransformError> {
    if coefficients.len() > FELTS_PER_BLOB {
        return Err(TransformError::TooManyFelts(coefficients.len()));
    }
    let mut values = vec![Fr::ZERO; FELTS_PER_BLOB];
    values[..coefficients.len()].copy_from_slice(coefficients);
    evaluate_in_place(&mut values);
    let mut blob = vec![0u8; BYTES_PER_BLOB];
    for (v, out) in values.iter().zip(blob.chunks_exact_mut(BYTES_PER_FELT)) {
        v.write_be_bytes(out);
    }
    Ok(blob)
}

/// Splits felts into chunks of 4096 (the last padded with zeros) and transforms each into a blob.
/// Errors when more than `max_num_blobs` blobs would be needed. No felts give no blobs.
pub fn felts_to_blobs(felts: &[Felt], max_num_blobs: usize) -> Result<Vec<Blob>, TransformError> {
    let needed = felts.len().div_ceil(FELTS_PER_BLOB);
    if needed > max_num_blobs {
        return Err(TransformError::TooManyBlobs {
            needed,
            max: max_num_blobs,
            n_felts: felts.len(),
        });
    }
    felts.chunks(FELTS_PER_BLOB).map(felts_to_blob).collect()
}

/// The 4096 coefficients (natural order) of a blob: the inverse of [`felts_to_blob`]. Each is
/// returned as a BLS12-381 scalar; those of a Starknet blob are felts.
pub fn blob_to_coefficients(blob: &[u8]) -> Result<Vec<Fr>, TransformError> {
    if blob.len() != BYTES_PER_BLOB {
        return Err(TransformError::BlobSize(blob.len()));
    }
    let mut values = Vec::with_capacity(FELTS_PER_BLOB);
    for (index, word) in blob.chunks_exact(BYTES_PER_FELT).enumerate() {
        let mut w = [0u8; 32];
        w.copy_from_slice(word);
        let fr = Fr::from_canonical_limbs(be_bytes_to_limbs(&w))
            .ok_or(TransformError::NonCanonical { index })?;
        values.push(fr);
    }
    interpolate_in_place(&mut values);
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Direct evaluation by Horner's rule at `ω^bitrev(i)` (O(n²)); only used on a few points.
    fn horner_at(coeffs: &[Fr], x: Fr) -> Fr {
        coeffs.iter().rev().fold(Fr::ZERO, |acc, c| acc.mul(x).add(*c))
    }

    #[test]
    fn omega_has_order_4096() {
        assert!(Fr::from_canonical_limbs(OMEGA).is_some());
        let w = omega();
        assert_eq!(w.pow(4096), Fr::ONE);
        assert_ne!(w.pow(2048), Fr::ONE);
        assert_eq!(
            w.to_string(),
            "0x564c0a11a0f704f4fc3e8acfe0f8245f0ad1347b378fbf96e206da11a5d36306"
        );
    }

    #[test]
    fn bit_reverse_is_12_bit() {
        assert_eq!(bit_reverse(0), 0);
        assert_eq!(bit_reverse(1), 2048);
        assert_eq!(bit_reverse(2), 1024);
        assert_eq!(bit_reverse(4095), 4095);
        assert_eq!(bit_reverse(3), 3072);
    }

    #[test]
    fn ntt_matches_horner_on_sample_points() {
        let coeffs: Vec<Fr> = (0..FELTS_PER_BLOB as u64).map(|i| Fr::from_u64(i * i + 7)).collect();
        let mut evals = coeffs.clone();
        evaluate_in_place(&mut evals);
        let w = omega();
        for i in [0usize, 1, 2, 3, 17, 1000, 2048, 4095] {
            let x = w.pow(bit_reverse(i) as u64);
            assert_eq!(evals[i], horner_at(&coeffs, x), "point {i}");
        }
    }

    #[test]
    fn sizes_and_limits() {
        assert_eq!(felts_to_blobs(&[], 6).unwrap().len(), 0);
        let felts = vec![Felt::ONE; 4097];
        assert_eq!(felts_to_blobs(&felts, 6).unwrap().len(), 2);
        assert_eq!(
            felts_to_blobs(&felts, 1),
            Err(TransformError::TooManyBlobs { needed: 2, max: 1, n_felts: 4097 })
        );
        assert_eq!(blob_to_coefficients(&[0u8; 10]), Err(TransformError::BlobSize(10)));
        let mut blob = vec![0u8; BYTES_PER_BLOB];
        blob[32 * 5..32 * 6].fill(0xff);
        assert_eq!(blob_to_coefficients(&blob), Err(TransformError::NonCanonical { index: 5 }));
        assert!(matches!(felts_to_blob(&felts), Err(TransformError::TooManyFelts(4097))));
    }

    #[test]
    fn constant_polynomial_gives_constant_blob() {
        let blob = felts_to_blob(&[Felt::from(5u8)]).unwrap();
        for word in blob.chunks_exact(32) {
            assert_eq!(word[31], 5);
            assert!(word[..31].iter().all(|b| *b == 0));
        }
    }

    fn arb_felt() -> impl Strategy<Value = Felt> {
        prop_oneof![
            any::<u64>().prop_map(Felt::from),
            proptest::array::uniform32(any::<u8>()).prop_map(|b| Felt::from_bytes_be(&b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// decode(encode(x)) = x for the transform.
        #[test]
        fn transform_round_trip(felts in proptest::collection::vec(arb_felt(), 0..=FELTS_PER_BLOB)) {
            let blob = felts_to_blob(&felts).unwrap();
            let back = blob_to_coefficients(&blob).unwrap();
            for (i, v) in back.iter().enumerate() {
                let expected = felts.get(i).map(felt_to_fr).unwrap_or(Fr::ZERO);
                prop_assert_eq!(*v, expected);
            }
        }
    }
}
