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
//! The twiddles (powers of `ω` and `ω⁻¹` in Montgomery form) are tables computed at compile
//! time. The inverse is the hot path of `orchestrator blob decode` and is tuned for it (lazy
//! reductions, branch-free arithmetic, two blocks at a time); see `interpolate_limbs`.

use starknet_core::types::Felt;

use crate::fr::{self, be_bytes_to_limbs, Fr, R, R2};

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

/// `ω` in Montgomery form.
const OMEGA_MONT: [u64; 4] = fr::mont_mul(&OMEGA, &R2);
/// `ω⁻¹ = ω^4095` in Montgomery form.
const OMEGA_INV_MONT: [u64; 4] = fr::mont_pow(OMEGA_MONT, &[FELTS_PER_BLOB as u64 - 1, 0, 0, 0]);

/// `base^k` for `k < 2048` (Montgomery form): the twiddles of one direction.
const fn powers(base: [u64; 4]) -> [[u64; 4]; FELTS_PER_BLOB / 2] {
    let mut t = [[0u64; 4]; FELTS_PER_BLOB / 2];
    let mut acc = R;
    let mut k = 0;
    while k < FELTS_PER_BLOB / 2 {
        t[k] = acc;
        acc = fr::mont_mul(&acc, &base);
        k += 1;
    }
    t
}

/// `4096⁻¹ = 4096^(r-2)` in Montgomery form.
const N_INV_MONT: [u64; 4] = {
    let n = fr::mont_mul(&[FELTS_PER_BLOB as u64, 0, 0, 0], &R2);
    let mut e = fr::MODULUS;
    e[0] -= 2;
    fr::mont_pow(n, &e)
};

/// `ω^k` for `k < 2048`, Montgomery form: the forward transform's twiddles, computed at compile
/// time.
static TWIDDLES: [[u64; 4]; FELTS_PER_BLOB / 2] = powers(OMEGA_MONT);
/// `ω^-k` for `k < 2048`, Montgomery form: the inverse transform's twiddles.
static INV_TWIDDLES: [[u64; 4]; FELTS_PER_BLOB / 2] = powers(OMEGA_INV_MONT);
/// `ω^-k / 4096` for `k < 2048`, Montgomery form: the inverse transform's twiddles with its
/// division by 4096 folded in (see `interpolate_limbs`).
static INV_TWIDDLES_DIV_N: [[u64; 4]; FELTS_PER_BLOB / 2] = {
    let mut t = powers(OMEGA_INV_MONT);
    let mut k = 0;
    while k < FELTS_PER_BLOB / 2 {
        t[k] = fr::mont_mul(&t[k], &N_INV_MONT);
        k += 1;
    }
    t
};

/// The EIP-4844 root of unity `ω` as a field element.
pub fn omega() -> Fr {
    Fr::from_montgomery(OMEGA_MONT)
}

/// `bitrev12(i)`: the 12-bit reversal of `i`.
#[inline]
pub fn bit_reverse(i: usize) -> usize {
    (i as u32).reverse_bits().wrapping_shr(32 - LOG_N) as usize
}

/// Forward transform in place: coefficients (natural order, exactly 4096) → evaluations
/// `values[i] = P(ω^bitrev12(i))`.
///
/// A decimation-in-frequency NTT: its output comes out in bit-reversed order, the order of the
/// blob.
///
/// # Panics
/// Never for a 4096-element slice; other lengths are a programming error and panic.
pub fn evaluate_in_place(values: &mut [Fr]) {
    assert_eq!(values.len(), FELTS_PER_BLOB, "the transform works on exactly 4096 elements");
    let n = values.len();
    let mut half = n / 2;
    let mut stride = 1;
    while half >= 1 {
        for block in values.chunks_exact_mut(2 * half) {
            let (lo, hi) = block.split_at_mut(half);
            // j = 0: the twiddle is one.
            let (u, v) = (lo[0], hi[0]);
            lo[0] = u.add(v);
            hi[0] = u.sub(v);
            for ((l, h), w) in lo[1..]
                .iter_mut()
                .zip(hi[1..].iter_mut())
                .zip(TWIDDLES[stride..].iter().step_by(stride))
            {
                let (u, v) = (*l, *h);
                *l = u.add(v);
                // (u - v)·ω^j, the difference left unreduced (below 2r) for the product.
                *h = Fr::from_montgomery(fr::mont_mul(
                    &fr::sub_lazy(&u.montgomery(), &v.montgomery()),
                    w,
                ));
            }
        }
        half /= 2;
        stride *= 2;
    }
}

/// Values the inverse transform works on: four little-endian limbs, read and written in place.
///
/// The inverse transform is linear and multiplies only by twiddles in Montgomery form, so it
/// gives the same answer on Montgomery representations ([`Fr`]) and on canonical limbs
/// (`[u64; 4]`): a Montgomery product `mont(x, w·R) = x·w` whatever `x` stands for.
pub(crate) trait Limbs: Copy {
    /// The limbs.
    fn limbs(&self) -> [u64; 4];
    /// Replaces the limbs.
    fn set_limbs(&mut self, limbs: [u64; 4]);
}

impl Limbs for [u64; 4] {
    #[inline(always)]
    fn limbs(&self) -> [u64; 4] {
        *self
    }
    #[inline(always)]
    fn set_limbs(&mut self, limbs: [u64; 4]) {
        *self = limbs;
    }
}

impl Limbs for Fr {
    #[inline(always)]
    fn limbs(&self) -> [u64; 4] {
        self.montgomery()
    }
    #[inline(always)]
    fn set_limbs(&mut self, limbs: [u64; 4]) {
        *self = Fr::from_montgomery(limbs);
    }
}

/// `(u + v, u - v)` reduced to `[0, r)`, for `u, v < r`.
#[inline(always)]
fn butterfly(u: &[u64; 4], v: &[u64; 4]) -> ([u64; 4], [u64; 4]) {
    (fr::add_mod(u, v), fr::sub_mod(u, v))
}

/// `(u + v, u + r - v)`, congruent to `(u + v, u - v)` and left in `[0, 2r)`, for `u, v < r`.
#[inline(always)]
fn butterfly_lazy(u: &[u64; 4], v: &[u64; 4]) -> ([u64; 4], [u64; 4]) {
    (fr::add_lazy(u, v), fr::sub_lazy(u, v))
}

/// Two neighbouring blocks of a stage, an even one (reduced outputs) and an odd one (lazy
/// outputs), side by side: the same twiddle serves both, and the two products are independent.
#[inline(always)]
fn inverse_block_pair<T: Limbs>(even: &mut [T], odd: &mut [T], stride: usize) {
    let half = even.len() / 2;
    let (lo_e, hi_e) = even.split_at_mut(half);
    let (lo_o, hi_o) = odd.split_at_mut(half);
    let (l, h) = butterfly(&lo_e[0].limbs(), &fr::reduce_once(hi_e[0].limbs()));
    lo_e[0].set_limbs(l);
    hi_e[0].set_limbs(h);
    let (l, h) = butterfly_lazy(&lo_o[0].limbs(), &fr::reduce_once(hi_o[0].limbs()));
    lo_o[0].set_limbs(l);
    hi_o[0].set_limbs(h);
    let twiddles = INV_TWIDDLES[stride..].iter().step_by(stride);
    let even = lo_e[1..].iter_mut().zip(hi_e[1..].iter_mut());
    let odd = lo_o[1..].iter_mut().zip(hi_o[1..].iter_mut());
    for (((ue, he), (uo, ho)), w) in even.zip(odd).zip(twiddles) {
        let ve = fr::mont_mul(&he.limbs(), w);
        let vo = fr::mont_mul(&ho.limbs(), w);
        let (l, h) = butterfly(&ue.limbs(), &ve);
        ue.set_limbs(l);
        he.set_limbs(h);
        let (l, h) = butterfly_lazy(&uo.limbs(), &vo);
        uo.set_limbs(l);
        ho.set_limbs(h);
    }
}

/// Block 0 of a stage and its neighbour, block 1, side by side as in [`inverse_block_pair`]:
/// block 0's products carry the division by 4096 (the twiddles `ω^-j / 4096`, and for `j = 0`
/// a division), block 1's do not.
#[inline(always)]
fn inverse_blocks_0_1<T: Limbs>(even: &mut [T], odd: &mut [T], stride: usize) {
    let half = even.len() / 2;
    let (lo_e, hi_e) = even.split_at_mut(half);
    let (lo_o, hi_o) = odd.split_at_mut(half);
    let (l, h) = butterfly(&lo_e[0].limbs(), &fr::div_4096(&hi_e[0].limbs()));
    lo_e[0].set_limbs(l);
    hi_e[0].set_limbs(h);
    let (l, h) = butterfly_lazy(&lo_o[0].limbs(), &fr::reduce_once(hi_o[0].limbs()));
    lo_o[0].set_limbs(l);
    hi_o[0].set_limbs(h);
    let twiddles = INV_TWIDDLES[stride..].iter().step_by(stride);
    let divided = INV_TWIDDLES_DIV_N[stride..].iter().step_by(stride);
    let even = lo_e[1..].iter_mut().zip(hi_e[1..].iter_mut());
    let odd = lo_o[1..].iter_mut().zip(hi_o[1..].iter_mut());
    for ((((ue, he), (uo, ho)), w), wd) in even.zip(odd).zip(twiddles).zip(divided) {
        let ve = fr::mont_mul(&he.limbs(), wd);
        let vo = fr::mont_mul(&ho.limbs(), w);
        let (l, h) = butterfly(&ue.limbs(), &ve);
        ue.set_limbs(l);
        he.set_limbs(h);
        let (l, h) = butterfly_lazy(&uo.limbs(), &vo);
        uo.set_limbs(l);
        ho.set_limbs(h);
    }
}

/// Inverse transform in place: evaluations in bit-reversed order (exactly 4096, each below `r`)
/// → coefficients in natural order, each below `r`.
///
/// A decimation-in-time NTT over `ω⁻¹`, which reads bit-reversed input and writes natural
/// order (no bit-reversal pass). Stage `s` combines `u` (the low half of each block) with
/// `v = ω^-j·h` (the high half); the sums of the even blocks are the next stage's `u`, those of
/// the odd blocks its `h`.
///
/// Laziness: only a `u` must be below `r` (so that `u + v < 2r` fits four limbs), while `h` only
/// goes into a Montgomery product, which takes anything below `2^256`. So the odd blocks skip
/// both reductions (`u + v` and `u + r - v` stay below `2r`), almost half of the butterflies.
///
/// The division by 4096 costs almost nothing: stage `s` leaves the index bits above `s` alone,
/// so every path from input `i` to an output crosses exactly one product edge of a block 0,
/// in the stage of `i`'s highest set bit (input 0 crosses none, and is divided on its own).
/// Block 0 of every stage thus multiplies by `ω^-j / 4096` instead of `ω^-j` (the last stage's
/// only block is a block 0), and no pass over the result is needed.
///
/// # Panics
/// Never for a 4096-element slice; other lengths are a programming error and panic.
pub(crate) fn interpolate_limbs<T: Limbs>(values: &mut [T]) {
    assert_eq!(values.len(), FELTS_PER_BLOB, "the transform works on exactly 4096 elements");
    let n = values.len();
    // Stage 0 (blocks of two, no twiddle): the input is canonical.
    for pairs in values.chunks_exact_mut(4) {
        let (even, odd) = pairs.split_at_mut(2);
        let (l, h) = butterfly(&even[0].limbs(), &even[1].limbs());
        even[0].set_limbs(l);
        even[1].set_limbs(h);
        let (l, h) = butterfly_lazy(&odd[0].limbs(), &odd[1].limbs());
        odd[0].set_limbs(l);
        odd[1].set_limbs(h);
    }
    // Block 0 of stage 0: input 0 and the product edge from input 1 (twiddle one) are divided,
    // which is dividing both outputs.
    for v in &mut values[..2] {
        v.set_limbs(fr::div_4096(&v.limbs()));
    }
    let mut half = 2;
    let mut stride = n / 4;
    while half < n / 2 {
        for (p, pair) in values.chunks_exact_mut(4 * half).enumerate() {
            let (even, odd) = pair.split_at_mut(2 * half);
            if p == 0 {
                inverse_blocks_0_1(even, odd, stride);
            } else {
                inverse_block_pair(even, odd, stride);
            }
        }
        half *= 2;
        stride /= 2;
    }
    // The last stage: one block, block 0, whose outputs are the coefficients; its first and
    // second quarters side by side (two independent products per step).
    let (lo, hi) = values.split_at_mut(n / 2);
    let (lo_a, lo_b) = lo.split_at_mut(n / 4);
    let (hi_a, hi_b) = hi.split_at_mut(n / 4);
    let first = lo_a.iter_mut().zip(hi_a.iter_mut()).zip(&INV_TWIDDLES_DIV_N[..n / 4]);
    let second = lo_b.iter_mut().zip(hi_b.iter_mut()).zip(&INV_TWIDDLES_DIV_N[n / 4..]);
    for (((ua, ha), wa), ((ub, hb), wb)) in first.zip(second) {
        // j = 0 is a product by 1/4096 like the others (h may be in [0, 2r): it reduces it).
        let va = fr::mont_mul(&ha.limbs(), wa);
        let vb = fr::mont_mul(&hb.limbs(), wb);
        let (l, h) = butterfly(&ua.limbs(), &va);
        ua.set_limbs(l);
        ha.set_limbs(h);
        let (l, h) = butterfly(&ub.limbs(), &vb);
        ub.set_limbs(l);
        hb.set_limbs(h);
    }
}

/// Inverse transform in place: evaluations in bit-reversed order (exactly 4096) → coefficients
/// in natural order: a decimation-in-time NTT over `ω⁻¹`, which reads bit-reversed input and
/// writes natural order (the decoder runs the same code on raw limbs).
///
/// # Panics
/// Never for a 4096-element slice; other lengths are a programming error and panic.
pub fn interpolate_in_place(values: &mut [Fr]) {
    interpolate_limbs(values);
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

    /// The inverse against the definition, `c_k = (1/4096)·Σ_i v_i·ω^(-k·bitrev12(i))`, on blob
    /// words anywhere below r (not only the images of felts), for the raw limbs (the decoder's
    /// path) and for field elements.
    #[test]
    fn inverse_matches_the_definition() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let values: Vec<Fr> = (0..FELTS_PER_BLOB)
            .map(|i| match i % 3 {
                // The largest words, where a missed reduction would show.
                0 => Fr::ZERO.sub(Fr::from_u64(1 + next() % 1000)),
                _ => Fr::from_canonical_limbs([next(), next(), next(), next() >> 2]).unwrap(),
            })
            .collect();
        let mut raw: Vec<[u64; 4]> = values.iter().map(|v| v.to_canonical_limbs()).collect();
        interpolate_limbs(&mut raw);
        let mut field = values.clone();
        interpolate_in_place(&mut field);
        let w_inv = omega().inverse().unwrap();
        let n_inv = Fr::from_u64(FELTS_PER_BLOB as u64).inverse().unwrap();
        for k in [0usize, 1, 2, 5, 1023, 2048, 3000, 4095] {
            let x = w_inv.pow(k as u64);
            let powers: Vec<Fr> = std::iter::successors(Some(Fr::ONE), |p| Some(p.mul(x)))
                .take(FELTS_PER_BLOB)
                .collect();
            let sum = (0..FELTS_PER_BLOB)
                .fold(Fr::ZERO, |acc, i| acc.add(values[i].mul(powers[bit_reverse(i)])));
            let expected = sum.mul(n_inv);
            assert_eq!(field[k], expected, "coefficient {k}");
            assert_eq!(raw[k], expected.to_canonical_limbs(), "coefficient {k}, raw limbs");
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
