//! Stateless compression of blob felts (Starknet ≥ 0.13.3, compression version 0).
//!
//! Behaves exactly like cairo-lang's `starkware/starknet/core/os/data_availability/compression.py`
//! (checked against it by `scripts/pyref/check.sh`):
//!
//! - Every value goes to the smallest of six buckets by bit length (252, 125, 83, 62, 31, 15
//!   bits; bucket indices follow that order). The first occurrence of a value is stored in its
//!   bucket; later occurrences become a *repeating* entry pointing at the first copy.
//! - Output: a header felt (20-bit elements, first at the least significant bits:
//!   `[version = 0, data length, 6 bucket lengths, number of repeating values]`), then each
//!   bucket's values packed `⌊251 / n_bits⌋` per felt (one per felt for the 252-bit bucket), then
//!   the repeating-value pointers (index into the concatenated buckets) packed with bound = number
//!   of unique values, then one bucket index per input value (0..=6, 6 = repeating) packed with
//!   bound 7.
//! - Packing `n` elements with bound `b` puts `Σ e_i · b^i` in one felt, `⌊251 / ⌈log2 b⌉⌋` per
//!   felt (251 per felt when `b ≤ 1`).

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

use starknet_core::types::Felt;

/// The compression format version written in the header.
pub const COMPRESSION_VERSION: u64 = 0;
/// Bits per value in each unique-value bucket, in bucket-index order.
pub const N_BITS_PER_BUCKET: [u32; 6] = [252, 125, 83, 62, 31, 15];
/// Number of unique-value buckets.
const N_UNIQUE_BUCKETS: usize = N_BITS_PER_BUCKET.len();
/// Number of buckets including the repeating-values bucket.
const TOTAL_N_BUCKETS: u64 = N_UNIQUE_BUCKETS as u64 + 1;
/// Index of the repeating-values bucket.
const REPEATING_BUCKET: usize = N_UNIQUE_BUCKETS;
/// Header elements: version, data length, 6 unique bucket lengths, repeating length.
const HEADER_LEN: usize = 2 + N_UNIQUE_BUCKETS + 1;
/// Bits of each header element.
const HEADER_ELM_N_BITS: u32 = 20;
/// Maximum number of bits packed in one felt.
const MAX_N_BITS: u32 = 251;
/// Exclusive bound of the data length.
pub const MAX_DATA_LEN: usize = 1 << HEADER_ELM_N_BITS;

/// Problems compressing or decompressing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// Too many values for the 20-bit length field of the header.
    #[error("cannot compress {0} felts: the data length must be below 2^20 ({MAX_DATA_LEN})")]
    DataTooLong(usize),
    /// The header names an unknown compression version.
    #[error("unsupported compression version {0} (expected 0)")]
    UnsupportedVersion(u64),
    /// The compressed data ended too early.
    #[error(
        "compressed data is truncated: {section} needs {needed} more felt(s) at offset {offset}"
    )]
    Truncated {
        /// Which section was being read.
        section: &'static str,
        /// Felts still needed.
        needed: usize,
        /// Felt offset where the section starts.
        offset: usize,
    },
    /// A packed felt holds more than its elements.
    #[error("packed felt at offset {offset} ({section}) has bits beyond its {n_elms} elements")]
    PackingOverflow {
        /// Which section.
        section: &'static str,
        /// Felt offset.
        offset: usize,
        /// Elements per felt.
        n_elms: usize,
    },
    /// A repeating-value pointer is outside the unique values.
    #[error("repeating-value pointer {pointer} is outside the {n_unique} unique values")]
    BadPointer {
        /// The pointer.
        pointer: u64,
        /// Number of unique values.
        n_unique: usize,
    },
    /// The bucket indices do not match the bucket lengths of the header.
    #[error("bucket {bucket} is used by {used} values but holds {len}")]
    BucketMismatch {
        /// Bucket index.
        bucket: usize,
        /// How many values name it.
        used: usize,
        /// How many values it holds.
        len: usize,
    },
    /// Felts follow the compressed data.
    #[error("{0} felt(s) follow the end of the compressed data")]
    TrailingData(usize),
}

/// 256-bit unsigned integer as little-endian limbs.
type U256 = [u64; 4];

/// A cheap hasher for 256-bit keys (the values are not attacker-chosen in a way that matters for
/// an offline encoder, and the map is private).
#[derive(Default)]
struct LimbHasher(u64);

impl Hasher for LimbHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<LimbHasher>>;

/// An element bound for packing.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// `2^k`.
    Pow2(u32),
    /// A small bound.
    Small(u64),
}

impl Bound {
    /// Elements that fit in one felt.
    fn elms_per_felt(self) -> usize {
        match self {
            Bound::Pow2(0) | Bound::Small(0..=1) => MAX_N_BITS as usize,
            Bound::Pow2(k) if k > MAX_N_BITS => 1,
            Bound::Pow2(k) => (MAX_N_BITS / k) as usize,
            Bound::Small(b) => (MAX_N_BITS / (64 - (b - 1).leading_zeros())) as usize,
        }
    }
}

fn bit_length(v: &U256) -> u32 {
    for i in (0..4).rev() {
        if v[i] != 0 {
            return 64 * i as u32 + (64 - v[i].leading_zeros());
        }
    }
    0
}

/// `acc |= v << shift` (the caller guarantees no overflow past 256 bits).
fn or_shifted(acc: &mut U256, v: &U256, shift: u32) {
    let limb = (shift / 64) as usize;
    let bits = shift % 64;
    for (i, &vi) in v.iter().enumerate() {
        if vi == 0 {
            continue;
        }
        let dst = i + limb;
        if dst < 4 {
            acc[dst] |= vi << bits;
        }
        if bits != 0 && dst + 1 < 4 {
            acc[dst + 1] |= vi >> (64 - bits);
        }
    }
}

/// `(v >> shift) & (2^k - 1)`.
fn extract_bits(v: &U256, shift: u32, k: u32) -> U256 {
    let mut out = [0u64; 4];
    let limb = (shift / 64) as usize;
    let bits = shift % 64;
    for (i, o) in out.iter_mut().enumerate() {
        let src = i + limb;
        if src < 4 {
            *o = v[src] >> bits;
            if bits != 0 && src + 1 < 4 {
                *o |= v[src + 1] << (64 - bits);
            }
        }
    }
    // Mask to k bits.
    for (i, o) in out.iter_mut().enumerate() {
        let lo = 64 * i as u32;
        if k <= lo {
            *o = 0;
        } else if k < lo + 64 {
            *o &= (1u64 << (k - lo)) - 1;
        }
    }
    out
}

/// `acc * m + a`.
fn mul_add_small(acc: &U256, m: u64, a: u64) -> U256 {
    let mut out = [0u64; 4];
    let mut carry = a as u128;
    for i in 0..4 {
        let t = (acc[i] as u128) * (m as u128) + carry;
        out[i] = t as u64;
        carry = t >> 64;
    }
    out
}

/// `(v / d, v % d)` for `d ≥ 1`.
fn divmod_small(v: &U256, d: u64) -> (U256, u64) {
    let mut q = [0u64; 4];
    let mut rem: u128 = 0;
    for i in (0..4).rev() {
        let cur = (rem << 64) | v[i] as u128;
        q[i] = (cur / d as u128) as u64;
        rem = cur % d as u128;
    }
    (q, rem as u64)
}

fn felt_limbs(f: &Felt) -> U256 {
    f.to_le_digits()
}

fn limbs_felt(l: &U256) -> Felt {
    let mut bytes = [0u8; 32];
    for i in 0..4 {
        bytes[8 * i..8 * i + 8].copy_from_slice(&l[3 - i].to_be_bytes());
    }
    Felt::from_bytes_be(&bytes)
}

fn pack_one(chunk: &[U256], bound: Bound) -> U256 {
    match bound {
        Bound::Pow2(k) => {
            let mut acc = [0u64; 4];
            for (i, v) in chunk.iter().enumerate() {
                or_shifted(&mut acc, v, k * i as u32);
            }
            acc
        }
        Bound::Small(b) => {
            let mut acc = [0u64; 4];
            for v in chunk.iter().rev() {
                acc = mul_add_small(&acc, b, v[0]);
            }
            acc
        }
    }
}

fn pack_into(out: &mut Vec<Felt>, elms: &[U256], bound: Bound) {
    for chunk in elms.chunks(bound.elms_per_felt()) {
        out.push(limbs_felt(&pack_one(chunk, bound)));
    }
}

fn pack_small_into(out: &mut Vec<Felt>, elms: &[u64], bound: u64) {
    let per = Bound::Small(bound).elms_per_felt();
    for chunk in elms.chunks(per) {
        let mut acc = [0u64; 4];
        for v in chunk.iter().rev() {
            acc = mul_add_small(&acc, bound, *v);
        }
        out.push(limbs_felt(&acc));
    }
}

/// The bucket of a value with the given bit length (smallest bucket that fits).
fn bucket_for(bits: u32) -> usize {
    match bits {
        0..=15 => 5,
        16..=31 => 4,
        32..=62 => 3,
        63..=83 => 2,
        84..=125 => 1,
        _ => 0,
    }
}

/// Compresses `data` exactly like cairo-lang's `compress`.
pub fn compress(data: &[Felt]) -> Result<Vec<Felt>, CompressionError> {
    if data.len() >= MAX_DATA_LEN {
        return Err(CompressionError::DataTooLong(data.len()));
    }
    let mut buckets: [Vec<U256>; N_UNIQUE_BUCKETS] = Default::default();
    let mut seen: FastMap<U256, (u8, u32)> = FastMap::default();
    seen.reserve(data.len());
    let mut repeating: Vec<(u8, u32)> = Vec::new();
    let mut bucket_per_elm: Vec<u64> = Vec::with_capacity(data.len());

    for felt in data {
        let v = felt_limbs(felt);
        match seen.get(&v) {
            Some(loc) => {
                repeating.push(*loc);
                bucket_per_elm.push(REPEATING_BUCKET as u64);
            }
            None => {
                let b = bucket_for(bit_length(&v));
                let idx = buckets[b].len() as u32;
                buckets[b].push(v);
                seen.insert(v, (b as u8, idx));
                bucket_per_elm.push(b as u64);
            }
        }
    }

    let lengths: Vec<usize> = buckets.iter().map(Vec::len).collect();
    let n_unique: usize = lengths.iter().sum();
    let mut offsets = [0usize; N_UNIQUE_BUCKETS];
    for i in 1..N_UNIQUE_BUCKETS {
        offsets[i] = offsets[i - 1] + lengths[i - 1];
    }

    let mut header: Vec<U256> = Vec::with_capacity(HEADER_LEN);
    header.push([COMPRESSION_VERSION, 0, 0, 0]);
    header.push([data.len() as u64, 0, 0, 0]);
    header.extend(lengths.iter().map(|l| [*l as u64, 0, 0, 0]));
    header.push([repeating.len() as u64, 0, 0, 0]);

    let mut out = Vec::with_capacity(1 + data.len() / 2);
    pack_into(&mut out, &header, Bound::Pow2(HEADER_ELM_N_BITS));
    for (bucket, n_bits) in buckets.iter().zip(N_BITS_PER_BUCKET) {
        pack_into(&mut out, bucket, Bound::Pow2(n_bits));
    }
    let pointers: Vec<u64> =
        repeating.iter().map(|(b, i)| (offsets[*b as usize] + *i as usize) as u64).collect();
    pack_small_into(&mut out, &pointers, n_unique as u64);
    pack_small_into(&mut out, &bucket_per_elm, TOTAL_N_BUCKETS);
    Ok(out)
}

struct Reader<'a> {
    data: &'a [Felt],
    pos: usize,
}

impl Reader<'_> {
    fn unpack(
        &mut self,
        n_elms: usize,
        bound: Bound,
        section: &'static str,
    ) -> Result<Vec<U256>, CompressionError> {
        let per = bound.elms_per_felt();
        let n_felts = n_elms.div_ceil(per);
        if self.data.len() - self.pos < n_felts {
            return Err(CompressionError::Truncated {
                section,
                needed: n_felts - (self.data.len() - self.pos),
                offset: self.pos,
            });
        }
        let mut out = Vec::with_capacity(n_felts * per);
        for felt in &self.data[self.pos..self.pos + n_felts] {
            let v = felt_limbs(felt);
            let overflow =
                CompressionError::PackingOverflow { section, offset: self.pos, n_elms: per };
            match bound {
                Bound::Pow2(k) => {
                    if (per as u32) * k < 256 && bit_length(&v) > per as u32 * k {
                        return Err(overflow);
                    }
                    for i in 0..per {
                        out.push(extract_bits(&v, k * i as u32, k));
                    }
                }
                Bound::Small(b) if b <= 1 => {
                    if v != [0; 4] && b == 1 || (b == 0 && n_elms > 0) {
                        return Err(overflow);
                    }
                    out.extend(std::iter::repeat_n([0u64; 4], per));
                }
                Bound::Small(b) => {
                    let mut rest = v;
                    for _ in 0..per {
                        let (q, r) = divmod_small(&rest, b);
                        out.push([r, 0, 0, 0]);
                        rest = q;
                    }
                    if rest != [0; 4] {
                        return Err(overflow);
                    }
                }
            }
            self.pos += 1;
        }
        out.truncate(n_elms);
        Ok(out)
    }
}

/// Decompresses data produced by [`compress`]; returns the values and the number of felts read.
pub fn decompress_prefix(compressed: &[Felt]) -> Result<(Vec<Felt>, usize), CompressionError> {
    let mut r = Reader { data: compressed, pos: 0 };
    let header = r.unpack(HEADER_LEN, Bound::Pow2(HEADER_ELM_N_BITS), "header")?;
    let h = |i: usize| header[i][0];
    if h(0) != COMPRESSION_VERSION {
        return Err(CompressionError::UnsupportedVersion(h(0)));
    }
    let data_len = h(1) as usize;
    let lengths: Vec<usize> = (0..N_UNIQUE_BUCKETS).map(|i| h(2 + i) as usize).collect();
    let n_repeating = h(2 + N_UNIQUE_BUCKETS) as usize;

    let mut unique: Vec<U256> = Vec::with_capacity(lengths.iter().sum());
    for (len, n_bits) in lengths.iter().zip(N_BITS_PER_BUCKET) {
        unique.extend(r.unpack(*len, Bound::Pow2(n_bits), "unique values")?);
    }
    let n_unique = unique.len();
    let pointers =
        r.unpack(n_repeating, Bound::Small(n_unique as u64), "repeating-value pointers")?;
    let bucket_per_elm = r.unpack(data_len, Bound::Small(TOTAL_N_BUCKETS), "bucket indices")?;

    let mut all_lengths = lengths.clone();
    all_lengths.push(n_repeating);
    let mut used = [0usize; N_UNIQUE_BUCKETS + 1];
    for b in &bucket_per_elm {
        used[b[0] as usize] += 1;
    }
    for (bucket, (u, len)) in used.iter().zip(&all_lengths).enumerate() {
        if u != len {
            return Err(CompressionError::BucketMismatch { bucket, used: *u, len: *len });
        }
    }

    let mut repeating: Vec<&U256> = Vec::with_capacity(n_repeating);
    for p in &pointers {
        let v = unique
            .get(p[0] as usize)
            .ok_or(CompressionError::BadPointer { pointer: p[0], n_unique })?;
        repeating.push(v);
    }

    let mut next = [0usize; N_UNIQUE_BUCKETS + 1];
    let mut offset = 0;
    for (n, len) in next.iter_mut().zip(&all_lengths).take(N_UNIQUE_BUCKETS) {
        *n = offset;
        offset += len;
    }
    let mut out = Vec::with_capacity(data_len);
    for b in &bucket_per_elm {
        let b = b[0] as usize;
        let v = if b == REPEATING_BUCKET { repeating[next[b]] } else { &unique[next[b]] };
        next[b] += 1;
        out.push(limbs_felt(v));
    }
    Ok((out, r.pos))
}

/// Decompresses data produced by [`compress`]; felts after the compressed data are an error.
pub fn decompress(compressed: &[Felt]) -> Result<Vec<Felt>, CompressionError> {
    let (values, used) = decompress_prefix(compressed)?;
    if used != compressed.len() {
        return Err(CompressionError::TrailingData(compressed.len() - used));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn felts(v: &[u64]) -> Vec<Felt> {
        v.iter().map(|x| Felt::from(*x)).collect()
    }

    #[test]
    fn empty() {
        let c = compress(&[]).unwrap();
        assert_eq!(c, vec![Felt::ZERO]);
        assert_eq!(decompress(&c).unwrap(), Vec::<Felt>::new());
    }

    #[test]
    fn small_example_layout() {
        // [1, 1, 70000, 2^70]: 1 → 15-bit bucket, 70000 → 31-bit bucket, 2^70 → 83-bit bucket.
        let big = Felt::from(1u128 << 70);
        let data = vec![Felt::ONE, Felt::ONE, Felt::from(70000u64), big];
        let c = compress(&data).unwrap();
        // Header: version 0, len 4, lengths [0,0,1,0,1,1], 1 repeating.
        let header = Felt::from(4u128 << 20 | 1u128 << 80 | 1u128 << 120)
            + Felt::TWO.pow(140u128)
            + Felt::TWO.pow(160u128);
        assert_eq!(c[0], header);
        assert_eq!(c[1], big); // 83-bit bucket
        assert_eq!(c[2], Felt::from(70000u64)); // 31-bit bucket
        assert_eq!(c[3], Felt::ONE); // 15-bit bucket
        assert_eq!(c[4], Felt::from(2u64)); // pointer: offset of the 15-bit bucket (2) + 0
                                            // bucket indices [5, 6, 4, 2] packed with bound 7
        assert_eq!(c[5], Felt::from(5 + 6 * 7 + 4 * 49 + 2 * 343u64));
        assert_eq!(c.len(), 6);
        assert_eq!(decompress(&c).unwrap(), data);
    }

    #[rstest]
    #[case(Bound::Pow2(252), 1)]
    #[case(Bound::Pow2(125), 2)]
    #[case(Bound::Pow2(83), 3)]
    #[case(Bound::Pow2(62), 4)]
    #[case(Bound::Pow2(31), 8)]
    #[case(Bound::Pow2(15), 16)]
    #[case(Bound::Pow2(20), 12)]
    #[case(Bound::Small(7), 83)]
    #[case(Bound::Small(1), 251)]
    #[case(Bound::Small(2), 251)]
    #[case(Bound::Small(3), 125)]
    #[case(Bound::Small(1024), 25)]
    #[case(Bound::Small(1025), 22)]
    fn elements_per_felt(#[case] bound: Bound, #[case] n: usize) {
        assert_eq!(bound.elms_per_felt(), n);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decompress(&[Felt::ONE]), Err(CompressionError::UnsupportedVersion(1)));
        let c = compress(&felts(&[1, 2, 3, 3])).unwrap();
        assert!(matches!(decompress(&c[..c.len() - 1]), Err(CompressionError::Truncated { .. })));
        let mut longer = c.clone();
        longer.push(Felt::ONE);
        assert_eq!(decompress(&longer), Err(CompressionError::TrailingData(1)));
        assert_eq!(decompress_prefix(&longer).unwrap().1, c.len());
        // A bucket-index felt with bits beyond its 83 elements.
        let mut bad = c.clone();
        let last = bad.len() - 1;
        bad[last] += Felt::TWO.pow(250u128);
        assert!(matches!(decompress(&bad), Err(CompressionError::PackingOverflow { .. })));
        assert_eq!(
            compress(&vec![Felt::ZERO; MAX_DATA_LEN]),
            Err(CompressionError::DataTooLong(MAX_DATA_LEN))
        );
    }

    fn arb_data() -> impl Strategy<Value = Vec<Felt>> {
        let value = prop_oneof![
            (0u64..4).prop_map(Felt::from),
            any::<u16>().prop_map(Felt::from),
            any::<u32>().prop_map(Felt::from),
            any::<u64>().prop_map(Felt::from),
            any::<u128>().prop_map(Felt::from),
            proptest::array::uniform32(any::<u8>()).prop_map(|b| Felt::from_bytes_be(&b)),
            Just(Felt::MAX),
        ];
        proptest::collection::vec(value, 0..600)
    }

    proptest! {
        /// decompress(compress(x)) = x.
        #[test]
        fn round_trip(data in arb_data()) {
            let c = compress(&data).unwrap();
            prop_assert_eq!(decompress(&c).unwrap(), data);
        }
    }
}
