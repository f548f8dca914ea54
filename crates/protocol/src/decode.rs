//! The fast path of `orchestrator blob decode`: a line of hex → 4096 canonical coefficients,
//! without leaving the raw limbs.
//!
//! [`crate::compression::transform::blob_to_coefficients`] converts every word into Montgomery
//! form, runs the inverse NTT and converts back. The inverse NTT is linear and its twiddles
//! multiply by Montgomery products, so feeding it the canonical limbs *as if* they were
//! Montgomery representations yields the canonical limbs of the coefficients directly: a
//! Montgomery product `mont(x, c·R) = x·c`, and additions are the same on either reading. That
//! saves 8192 products, and the twiddles (ω⁻ᵏ in Montgomery form), `ω⁻¹` and `4096⁻¹` are
//! computed at compile time. The arithmetic is the CIOS product of `compression::fr` (same
//! modulus); the tests check the whole path against `blob_to_coefficients`.
//!
//! Reading and transforming are separate steps ([`parse_words`] or [`words_from_bytes`], then
//! [`interpolate_raw`]), on a buffer the caller reuses from blob to blob.
//! [`parse_words`] only takes the usual line — optional whitespace, optional `0x`, exactly
//! 262144 hex digits, optional whitespace — with every word below the BLS12-381 modulus.
//! Anything else returns `false` and the caller takes the general parser
//! (`compression::io::parse_blob_hex`, then [`words_from_bytes`]), which accepts the other
//! forms and names the problem with bad input.

use crate::compression::{fr::be_bytes_to_limbs, BYTES_PER_BLOB, FELTS_PER_BLOB};

// The BLS12-381 scalar modulus `r` (little-endian limbs), `-r^{-1} mod 2^64`, the Montgomery
// form of 1 (`2^256 mod r`) and `2^512 mod r`, shared with the field of `snos-runner`.
use orchestrator_snos_runner::fr::{INV, MODULUS, R, R2};

/// The EIP-4844 primitive 4096-th root of unity ω, canonical little-endian limbs.
const OMEGA: [u64; 4] =
    [0xe206_da11_a5d3_6306, 0x0ad1_347b_378f_bf96, 0xfc3e_8acf_e0f8_245f, 0x564c_0a11_a0f7_04f4];

#[inline(always)]
const fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) * (c as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
const fn adc(a: u64, b: u64, carry: bool) -> (u64, bool) {
    let (s1, c1) = a.overflowing_add(b);
    let (s2, c2) = s1.overflowing_add(carry as u64);
    (s2, c1 | c2)
}

#[inline(always)]
const fn sbb(a: u64, b: u64, borrow: bool) -> (u64, bool) {
    let (d1, b1) = a.overflowing_sub(b);
    let (d2, b2) = d1.overflowing_sub(borrow as u64);
    (d2, b1 | b2)
}

/// `a - r` if `a >= r`, else `a` (for `a < 2r`).
#[inline(always)]
const fn reduce_once(a: [u64; 4]) -> [u64; 4] {
    let (d0, b) = sbb(a[0], MODULUS[0], false);
    let (d1, b) = sbb(a[1], MODULUS[1], b);
    let (d2, b) = sbb(a[2], MODULUS[2], b);
    let (d3, b) = sbb(a[3], MODULUS[3], b);
    // A borrow means a < r.
    if b {
        a
    } else {
        [d0, d1, d2, d3]
    }
}

/// Whether the limbs are below `r`.
#[inline(always)]
const fn below_modulus(a: &[u64; 4]) -> bool {
    let (_, b) = sbb(a[0], MODULUS[0], false);
    let (_, b) = sbb(a[1], MODULUS[1], b);
    let (_, b) = sbb(a[2], MODULUS[2], b);
    let (_, b) = sbb(a[3], MODULUS[3], b);
    b
}

// The low limb of r is 2^64 - 2^32 + 1; `cios_round` relies on it.
const _: () = assert!(MODULUS[0] == 0xffff_ffff_0000_0001);

/// One CIOS round: `(t + a_i·b + m·r) / 2^64` with `m` clearing the low limb.
#[inline(always)]
const fn cios_round(t: [u64; 4], ai: u64, b: &[u64; 4]) -> [u64; 4] {
    let (t0, c) = mac(t[0], ai, b[0], 0);
    let (t1, c) = mac(t[1], ai, b[1], c);
    let (t2, c) = mac(t[2], ai, b[2], c);
    let (t3, t4) = mac(t[3], ai, b[3], c);
    let m = t0.wrapping_mul(INV);
    // t0 + m·r[0] = m·2^64 + (t0 + m) - m·2^32, a multiple of 2^64 (that is what m is for): the
    // low limbs of t0 + m and of m·2^32 cancel, and the high limb is what is left, without a
    // product.
    let (_, low_carry) = t0.overflowing_add(m);
    let c = m - (m >> 32) + low_carry as u64;
    let (t0, c) = mac(t1, m, MODULUS[1], c);
    let (t1, c) = mac(t2, m, MODULUS[2], c);
    let (t2, c) = mac(t3, m, MODULUS[3], c);
    // r < 2^255: the running value fits four limbs plus this carry.
    let t3 = t4.wrapping_add(c);
    [t0, t1, t2, t3]
}

/// Montgomery product `a·b·2^-256 mod r` for `a, b < r`.
#[inline(always)]
const fn mont_mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let t = cios_round([0; 4], a[0], b);
    let t = cios_round(t, a[1], b);
    let t = cios_round(t, a[2], b);
    let t = cios_round(t, a[3], b);
    reduce_once(t)
}

#[inline(always)]
fn add(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let (d0, c) = adc(a[0], b[0], false);
    let (d1, c) = adc(a[1], b[1], c);
    let (d2, c) = adc(a[2], b[2], c);
    let (d3, _) = adc(a[3], b[3], c);
    // Both below r < 2^255: the sum fits four limbs.
    reduce_once([d0, d1, d2, d3])
}

#[inline(always)]
fn sub(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let (d0, br) = sbb(a[0], b[0], false);
    let (d1, br) = sbb(a[1], b[1], br);
    let (d2, br) = sbb(a[2], b[2], br);
    let (d3, br) = sbb(a[3], b[3], br);
    // Add r back when it borrowed.
    let m = 0u64.wrapping_sub(br as u64);
    let (d0, c) = adc(d0, MODULUS[0] & m, false);
    let (d1, c) = adc(d1, MODULUS[1] & m, c);
    let (d2, c) = adc(d2, MODULUS[2] & m, c);
    let (d3, _) = adc(d3, MODULUS[3] & m, c);
    [d0, d1, d2, d3]
}

/// `a / 4096 mod r` for `a < r`: `(a + k·r) / 2^12` with `k < 2^12` making the sum divisible
/// (r ≡ 1 mod 2^12, so `k = -a mod 2^12`); the quotient is below `2r`. Four small products
/// instead of a Montgomery product by `4096⁻¹`.
#[inline(always)]
fn div_4096(a: &[u64; 4]) -> [u64; 4] {
    let k = a[0].wrapping_neg() & 0xfff;
    let (y0, c) = mac(a[0], k, MODULUS[0], 0);
    let (y1, c) = mac(a[1], k, MODULUS[1], c);
    let (y2, c) = mac(a[2], k, MODULUS[2], c);
    let (y3, y4) = mac(a[3], k, MODULUS[3], c);
    reduce_once([
        y0 >> 12 | y1 << 52,
        y1 >> 12 | y2 << 52,
        y2 >> 12 | y3 << 52,
        y3 >> 12 | y4 << 52,
    ])
}

/// `base^exp` in Montgomery form (square and multiply, most significant bit first).
const fn mont_pow(base: [u64; 4], exp: [u64; 4]) -> [u64; 4] {
    let mut acc = R;
    let mut limb = 4;
    while limb > 0 {
        limb -= 1;
        let mut bit = 64;
        while bit > 0 {
            bit -= 1;
            acc = mont_mul(&acc, &acc);
            if (exp[limb] >> bit) & 1 == 1 {
                acc = mont_mul(&acc, &base);
            }
        }
    }
    acc
}

/// ω in Montgomery form.
const OMEGA_MONT: [u64; 4] = mont_mul(&OMEGA, &R2);
/// ω⁻¹ = ω^4095, Montgomery form.
const OMEGA_INV_MONT: [u64; 4] = mont_pow(OMEGA_MONT, [FELTS_PER_BLOB as u64 - 1, 0, 0, 0]);
/// 4096⁻¹ = 4096^(r-2), Montgomery form (checks `div_4096`).
#[cfg(test)]
const N_INV_MONT: [u64; 4] = {
    let n = mont_mul(&[FELTS_PER_BLOB as u64, 0, 0, 0], &R2);
    let mut e = MODULUS;
    e[0] -= 2;
    mont_pow(n, e)
};
/// `ω^-k` for `k = 0..2048`, Montgomery form: the inverse NTT's twiddles.
static INV_TWIDDLES: [[u64; 4]; FELTS_PER_BLOB / 2] = {
    let mut t = [[0u64; 4]; FELTS_PER_BLOB / 2];
    let mut acc = R;
    let mut k = 0;
    while k < FELTS_PER_BLOB / 2 {
        t[k] = acc;
        acc = mont_mul(&acc, &OMEGA_INV_MONT);
        k += 1;
    }
    t
};

/// Inverse NTT in place on raw limbs: the values at `ω^bitrev12(i)` (blob order, canonical
/// limbs) → the canonical limbs of the coefficients in natural order. The same
/// decimation-in-time butterflies as `transform::interpolate_in_place`.
pub(super) fn interpolate_raw(values: &mut [[u64; 4]]) {
    debug_assert_eq!(values.len(), FELTS_PER_BLOB);
    let n = values.len();
    let mut half = 1;
    let mut stride = n / 2;
    while half < n {
        for block in values.chunks_exact_mut(2 * half) {
            let (lo, hi) = block.split_at_mut(half);
            let (u, v) = (lo[0], hi[0]);
            lo[0] = add(&u, &v);
            hi[0] = sub(&u, &v);
            for ((l, h), w) in lo[1..]
                .iter_mut()
                .zip(hi[1..].iter_mut())
                .zip(INV_TWIDDLES[stride..].iter().step_by(stride))
            {
                let u = *l;
                let v = mont_mul(h, w);
                *l = add(&u, &v);
                *h = sub(&u, &v);
            }
        }
        half *= 2;
        stride /= 2;
    }
    for v in values.iter_mut() {
        *v = div_4096(v);
    }
}

/// Eight hex digits (`digits[0]` most significant) → their value, and a mask that is 0 if and
/// only if every byte is a hex digit. Branch-free on the eight bytes at once (SWAR).
#[inline(always)]
fn hex_8(digits: &[u8]) -> (u32, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digits[..8]);
    let x = u64::from_le_bytes(bytes);
    // For bytes below 0x80, adding at most 0x50 never carries into the next byte, and bit 7 of
    // each byte of `x + (0x80 - c)` tells whether that byte is at least `c`. A byte at or above
    // 0x80 is not a digit whatever the other bits say, so its own bit 7 marks it.
    let at_least = |v: u64, c: u64| v.wrapping_add(ONES * (0x80 - c));
    let is_digit = at_least(x, 0x30) & !at_least(x, 0x3a);
    let lower = x | (ONES * 0x20);
    let is_letter = at_least(lower, 0x61) & !at_least(lower, 0x67);
    let bad = (x | !(is_digit | is_letter)) & HIGH;
    // '0'..'9' (bit 6 clear) → low nibble; 'a'..'f' / 'A'..'F' (bit 6 set) → low nibble + 9.
    let nibbles = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    // Byte i holds digit i; pack to one byte per pair, then four consecutive bytes.
    let pairs = ((nibbles << 4) | (nibbles >> 8)) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs | pairs >> 8) & 0x0000_ffff_0000_ffff;
    let word = (quads | quads >> 16) as u32;
    (word.swap_bytes(), bad)
}

/// The first 16 hex digits of `digits` (big-endian) → the value, and a mask that is 0 if and
/// only if every one of those bytes is a hex digit.
#[inline(always)]
fn hex_16(digits: &[u8]) -> (u64, u64) {
    let (hi, hi_bad) = hex_8(&digits[..8]);
    let (lo, lo_bad) = hex_8(&digits[8..16]);
    (u64::from(hi) << 32 | u64::from(lo), hi_bad | lo_bad)
}

/// Replaces `values` with the 4096 words (canonical little-endian limbs, blob order) of a line
/// in the usual form. `false` when the general parser must handle the line (another layout,
/// bad input); `values` is then unspecified.
pub(super) fn parse_words(line: &[u8], values: &mut Vec<[u64; 4]>) -> bool {
    values.clear();
    let body = line.trim_ascii();
    let body = body.strip_prefix(b"0x").or_else(|| body.strip_prefix(b"0X")).unwrap_or(body);
    if body.len() != 2 * BYTES_PER_BLOB {
        return false;
    }
    for word in body.chunks_exact(64) {
        let (l3, bad3) = hex_16(word);
        let (l2, bad2) = hex_16(&word[16..]);
        let (l1, bad1) = hex_16(&word[32..]);
        let (l0, bad0) = hex_16(&word[48..]);
        let limbs = [l0, l1, l2, l3];
        if bad0 | bad1 | bad2 | bad3 != 0 || !below_modulus(&limbs) {
            return false;
        }
        values.push(limbs);
    }
    true
}

/// Replaces `values` with the words (canonical little-endian limbs, blob order) of a blob's
/// 131072 bytes; the error is the index of the first word that is not below the BLS12-381
/// modulus.
pub(super) fn words_from_bytes(blob: &[u8], values: &mut Vec<[u64; 4]>) -> Result<(), usize> {
    debug_assert_eq!(blob.len(), BYTES_PER_BLOB);
    values.clear();
    for (index, word) in blob.chunks_exact(32).enumerate() {
        let mut w = [0u8; 32];
        w.copy_from_slice(word);
        let limbs = be_bytes_to_limbs(&w);
        if !below_modulus(&limbs) {
            return Err(index);
        }
        values.push(limbs);
    }
    Ok(())
}

/// Two lowercase hex digits per byte value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [digits[i >> 4], digits[i & 0xf]];
        i += 1;
    }
    t
};

#[inline(always)]
fn hex16(x: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (pair, byte) in out.chunks_exact_mut(2).zip(x.to_be_bytes()) {
        pair.copy_from_slice(&HEX_PAIRS[byte as usize]);
    }
    out
}

/// Appends `0x` and the lowercase hex of the value of little-endian `limbs` without leading
/// zeros (`0x0` for zero): the text of `Fr`'s `Display` (`fr::hex_limbs`).
pub(super) fn push_hex(buf: &mut Vec<u8>, limbs: &[u64; 4]) {
    buf.extend_from_slice(b"0x");
    match limbs.iter().rposition(|&l| l != 0) {
        None => buf.push(b'0'),
        Some(top) => {
            let first = limbs[top];
            let n_digits = (64 - first.leading_zeros() as usize).div_ceil(4);
            buf.extend_from_slice(&hex16(first)[16 - n_digits..]);
            for l in limbs[..top].iter().rev() {
                buf.extend_from_slice(&hex16(*l));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::compression::{
        fr::{hex_limbs, Fr},
        io::parse_blob_hex,
        transform::{blob_to_coefficients, coefficients_to_blob, omega},
    };

    fn general(text: &str) -> Vec<[u64; 4]> {
        let blob = parse_blob_hex(text).unwrap();
        blob_to_coefficients(&blob).unwrap().iter().map(|c| c.to_canonical_limbs()).collect()
    }

    /// The fast path on a whole line: words, then the inverse NTT.
    fn decode_line(line: &[u8]) -> Option<Vec<[u64; 4]>> {
        let mut values = vec![[7; 4]; 3];
        if !parse_words(line, &mut values) {
            return None;
        }
        interpolate_raw(&mut values);
        Some(values)
    }

    /// [`parse_words`] as a value.
    fn fast_words(line: &[u8]) -> Option<Vec<[u64; 4]>> {
        let mut values = Vec::new();
        parse_words(line, &mut values).then_some(values)
    }

    /// [`words_from_bytes`] as a value.
    fn words_of_bytes(blob: &[u8]) -> Result<Vec<[u64; 4]>, usize> {
        let mut values = vec![[7; 4]; 3];
        words_from_bytes(blob, &mut values).map(|()| values)
    }

    fn fr(limbs: [u64; 4]) -> Fr {
        let mut l = limbs;
        l[3] &= 0x3fff_ffff_ffff_ffff; // below 2^254 < r
        Fr::from_canonical_limbs(l).unwrap()
    }

    #[test]
    fn constants_match_the_transform() {
        assert_eq!(omega().to_canonical_limbs(), OMEGA);
        assert_eq!(Fr::ONE.to_canonical_limbs(), mont_mul(&R, &[1, 0, 0, 0]));
        assert_eq!(mont_mul(&OMEGA_MONT, &OMEGA_INV_MONT), R);
        assert_eq!(mont_mul(&N_INV_MONT, &mont_mul(&[4096, 0, 0, 0], &R2)), R, "4096 · 4096⁻¹ = 1");
        assert_eq!(INV_TWIDDLES[1], OMEGA_INV_MONT);
    }

    #[test]
    fn hex_matches_display() {
        let cases = [
            [0, 0, 0, 0],
            [1, 0, 0, 0],
            [0xf, 0, 0, 0],
            [0x10, 0, 0, 0],
            [0, 1, 0, 0],
            [u64::MAX, u64::MAX, u64::MAX, u64::MAX],
            [5, 0, 0x0123_4567_89ab_cdef, 0],
            [0, 0, 0, 0x0800_0000_0000_0011],
        ];
        for l in cases {
            let mut buf = Vec::new();
            push_hex(&mut buf, &l);
            assert_eq!(String::from_utf8(buf).unwrap(), hex_limbs(&l));
        }
    }

    #[test]
    fn parses_hex_digits_like_the_hex_crate() {
        for b in 0..=255u8 {
            for pos in 0..16 {
                let mut digits = *b"0123456789abcdef";
                digits[pos] = b;
                let expected = std::str::from_utf8(&digits)
                    .ok()
                    .filter(|s| s.bytes().all(|c| c.is_ascii_hexdigit()))
                    .map(|s| u64::from_str_radix(s, 16).unwrap());
                let (value, bad) = hex_16(&digits);
                assert_eq!((bad == 0).then_some(value), expected, "byte {b:#x} at {pos}");
            }
        }
        assert_eq!(hex_16(b"FEDCBA9876543210"), (0xfedc_ba98_7654_3210, 0));
        assert_eq!(hex_16(b"ffffffffffffffff"), (u64::MAX, 0));
        // Bytes at or above 0x80 (UTF-8 of U+FFFD here) are not digits wherever they are.
        assert_ne!(hex_16("0123456\u{fffd}789abc".as_bytes()).1, 0);
        assert_ne!(hex_16("\u{fffd}0123456789abc".as_bytes()).1, 0);
    }

    #[test]
    fn zero_blob_and_forms() {
        let zeros = "00".repeat(BYTES_PER_BLOB);
        assert_eq!(decode_line(zeros.as_bytes()).unwrap(), vec![[0u64; 4]; 4096]);
        for text in [
            format!("0x{zeros}\n"),
            format!("  0X{zeros}  \r\n"),
            format!("\n{}", zeros.to_uppercase()),
        ] {
            assert!(decode_line(text.as_bytes()).is_some(), "{}", &text[..4]);
        }
        // Other layouts and bad input are left to the general path.
        for text in [
            format!("{} {}", &zeros[..64], &zeros[64..]),
            zeros[2..].to_string(),
            format!("{zeros}00"),
            format!("zz{}", &zeros[2..]),
            format!("{}g", &zeros[1..]),
            format!("0x0x{}", &zeros[4..]),
            "ff".repeat(BYTES_PER_BLOB),
            String::new(),
        ] {
            assert!(decode_line(text.as_bytes()).is_none());
        }
        // The modulus itself is not canonical; r - 1 is.
        let word = |l: [u64; 4]| format!("{:016x}{:016x}{:016x}{:016x}", l[3], l[2], l[1], l[0]);
        let mut r_minus_1 = MODULUS;
        r_minus_1[0] -= 1;
        let at_r = format!("{}{}", word(MODULUS), &zeros[64..]);
        assert!(decode_line(at_r.as_bytes()).is_none());
        let below = format!("{}{}", word(r_minus_1), &zeros[64..]);
        assert_eq!(decode_line(below.as_bytes()).unwrap(), general(&below));
        // The general parser's bytes give the same words, and name the first word at r.
        let bytes = |text: &str| parse_blob_hex(text).unwrap();
        assert_eq!(words_of_bytes(&bytes(&below)), Ok(fast_words(below.as_bytes()).unwrap()));
        assert_eq!(words_of_bytes(&bytes(&at_r)), Err(0));
        let at_r_later = format!("{}{}{}", &zeros[..64 * 7], word(MODULUS), &zeros[64 * 8..]);
        assert_eq!(words_of_bytes(&bytes(&at_r_later)), Err(7));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random blobs (any words below r) and blobs of random coefficients: the same
        /// coefficients as the general path.
        #[test]
        fn matches_blob_to_coefficients(seed in any::<u64>(), n_coeffs in 0usize..=4096) {
            let mut s = seed;
            let mut next = move || {
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            };
            let words: Vec<Fr> = (0..4096).map(|_| fr([next(), next(), next(), next()])).collect();
            let mut blob = Vec::with_capacity(BYTES_PER_BLOB);
            for w in &words {
                blob.extend_from_slice(&w.to_be_bytes());
            }
            let text = hex::encode(&blob);
            prop_assert_eq!(decode_line(text.as_bytes()).unwrap(), general(&text));
            prop_assert_eq!(words_of_bytes(&blob), Ok(fast_words(text.as_bytes()).unwrap()));

            let mut coeffs: Vec<Fr> = (0..n_coeffs).map(|_| fr([next(), next(), next(), next()])).collect();
            coeffs.resize(4096, Fr::ZERO);
            let text = hex::encode(coefficients_to_blob(&coeffs).unwrap());
            let expected: Vec<[u64; 4]> = coeffs.iter().map(|c| c.to_canonical_limbs()).collect();
            prop_assert_eq!(decode_line(text.as_bytes()).unwrap(), expected);
        }
    }
}
