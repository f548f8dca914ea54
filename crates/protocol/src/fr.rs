//! The BLS12-381 scalar field (the field of EIP-4844 blob elements), as four 64-bit limbs in
//! Montgomery form.
//!
//! Only what the evaluation transform needs: addition, subtraction, multiplication, powers and
//! inversion, plus conversion from and to 32-byte big-endian words. Written for speed on the
//! transform's hot loop (a fully unrolled CIOS Montgomery product), in safe Rust.

use std::fmt;

/// The modulus `r`, little-endian limbs.
pub const MODULUS: [u64; 4] =
    [0xffff_ffff_0000_0001, 0x53bd_a402_fffe_5bfe, 0x3339_d808_09a1_d805, 0x73ed_a753_299d_7d48];
/// `-r^{-1} mod 2^64`.
pub const INV: u64 = 0xffff_fffe_ffff_ffff;
/// `2^256 mod r` (the Montgomery form of 1).
pub const R: [u64; 4] =
    [0x0000_0001_ffff_fffe, 0x5884_b7fa_0003_4802, 0x998c_4fef_ecbc_4ff5, 0x1824_b159_acc5_056f];
/// `2^512 mod r` (used to enter Montgomery form).
pub const R2: [u64; 4] =
    [0xc999_e990_f3f2_9c6d, 0x2b6c_edcb_8792_5c23, 0x05d3_1496_7254_398f, 0x0748_d9d9_9f59_ff11];

/// The modulus `r` of the BLS12-381 scalar field as a decimal string.
pub const MODULUS_DECIMAL: &str =
    "52435875175126190479447740508185965837690552500527637822603658699938581184513";

// The arithmetic works on little-endian limbs. Besides the canonical range `[0, r)`, the
// transform keeps some values in `[0, 2r)`: `r < 2^255`, so `2r` still fits four limbs (but `3r`
// does not, which is why every sum is reduced or bounded).

/// `a·b` as (low, high) words.
#[inline(always)]
const fn wide_mul(a: u64, b: u64) -> (u64, u64) {
    let t = (a as u128) * (b as u128);
    (t as u64, (t >> 64) as u64)
}

/// `a + b + carry` and the carry out.
#[inline(always)]
const fn adc(a: u64, b: u64, carry: bool) -> (u64, bool) {
    let (s, c1) = a.overflowing_add(b);
    let (s, c2) = s.overflowing_add(carry as u64);
    (s, c1 | c2)
}

/// `a - b - borrow` and the borrow out.
#[inline(always)]
const fn sbb(a: u64, b: u64, borrow: bool) -> (u64, bool) {
    let (d, b1) = a.overflowing_sub(b);
    let (d, b2) = d.overflowing_sub(borrow as u64);
    (d, b1 | b2)
}

/// `a - r` if `a >= r`, else `a` (for `a < 2r`: the result is below `r`).
///
/// Branch-free, `a - r` and `r` added back on a borrow: whether `a >= r` is a coin toss in the
/// transform (sums of two uniform values), so a branch would be mispredicted about half the
/// time — measured ~4% of the whole inverse transform on blobs that differ from call to call.
#[inline(always)]
pub(crate) const fn reduce_once(a: [u64; 4]) -> [u64; 4] {
    let (d0, b) = sbb(a[0], MODULUS[0], false);
    let (d1, b) = sbb(a[1], MODULUS[1], b);
    let (d2, b) = sbb(a[2], MODULUS[2], b);
    let (d3, b) = sbb(a[3], MODULUS[3], b);
    add_modulus_if(&[d0, d1, d2, d3], b)
}

/// `a + r` (wrapping) if `add`, else `a`: the correction after a subtraction that borrowed.
#[inline(always)]
const fn add_modulus_if(a: &[u64; 4], add: bool) -> [u64; 4] {
    let mask = 0u64.wrapping_sub(add as u64);
    let (d0, c) = adc(a[0], MODULUS[0] & mask, false);
    let (d1, c) = adc(a[1], MODULUS[1] & mask, c);
    let (d2, c) = adc(a[2], MODULUS[2] & mask, c);
    let (d3, _) = adc(a[3], MODULUS[3] & mask, c);
    [d0, d1, d2, d3]
}

/// Whether the little-endian limbs are below `r`.
#[inline]
pub(crate) const fn limbs_below_modulus(a: &[u64; 4]) -> bool {
    let (_, b) = sbb(a[0], MODULUS[0], false);
    let (_, b) = sbb(a[1], MODULUS[1], b);
    let (_, b) = sbb(a[2], MODULUS[2], b);
    let (_, b) = sbb(a[3], MODULUS[3], b);
    b
}

// The low limb of r is 2^64 - 2^32 + 1; `mont_round` relies on it.
const _: () = assert!(MODULUS[0] == 0xffff_ffff_0000_0001);

/// One round of the Montgomery product (coarsely integrated operand scanning):
/// `(t + ai·b + m·r) / 2^64` with `m` chosen to clear the low word.
///
/// Each product row is first summed on its own (`lo_j + hi_{j-1}`, one carry chain) and then
/// added to `t` (a second chain), which keeps the carries in the flags instead of
/// materialising them; and `m·r[0]` needs no product (see below).
#[inline(always)]
const fn mont_round(t: [u64; 4], ai: u64, b: &[u64; 4]) -> [u64; 4] {
    let (l0, h0) = wide_mul(ai, b[0]);
    let (l1, h1) = wide_mul(ai, b[1]);
    let (l2, h2) = wide_mul(ai, b[2]);
    let (l3, h3) = wide_mul(ai, b[3]);
    // The row ai·b = [l0, l1 + h0, l2 + h1, l3 + h2, h3 + carry].
    let (s1, c) = l1.overflowing_add(h0);
    let (s2, c) = adc(l2, h1, c);
    let (s3, c) = adc(l3, h2, c);
    let s4 = h3 + c as u64;
    // t + row: five words.
    let (t0, c) = t[0].overflowing_add(l0);
    let (t1, c) = adc(t[1], s1, c);
    let (t2, c) = adc(t[2], s2, c);
    let (t3, c) = adc(t[3], s3, c);
    let t4 = s4 + c as u64;
    // m = -t0 / r mod 2^64. t0 + m·r[0] = m·2^64 + (t0 + m) - m·2^32 is a multiple of 2^64 (that
    // is what m is for): the low words of t0 + m and of m·2^32 cancel, and the high word, the
    // carry into the next limb, is m - (m >> 32) plus the carry of t0 + m.
    let m = t0.wrapping_mul(INV);
    let (_, low_carry) = t0.overflowing_add(m);
    let c0 = m - (m >> 32) + low_carry as u64;
    let (k1, j1) = wide_mul(m, MODULUS[1]);
    let (k2, j2) = wide_mul(m, MODULUS[2]);
    let (k3, j3) = wide_mul(m, MODULUS[3]);
    // (m·r) >> 64 = [k1 + c0, k2 + j1, k3 + j2, j3 + carry], then added to t >> 64.
    let (s1, c) = k1.overflowing_add(c0);
    let (s2, c) = adc(k2, j1, c);
    let (s3, c) = adc(k3, j2, c);
    let s4 = j3 + c as u64;
    let (u0, c) = t1.overflowing_add(s1);
    let (u1, c) = adc(t2, s2, c);
    let (u2, c) = adc(t3, s3, c);
    // r < 2^255 and the bounds below keep the running value within four limbs plus this word.
    let u3 = t4.wrapping_add(s4).wrapping_add(c as u64);
    [u0, u1, u2, u3]
}

/// Montgomery product `a·b·2^-256 mod r`, unreduced: below `2r` for any `a < 2^256` and
/// `b < r` (`a·b/2^256 < r` because `b < r < 2^256`, and the reduction adds less than `r`).
#[inline(always)]
pub(crate) const fn mont_mul_lazy(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let t = mont_round([0; 4], a[0], b);
    let t = mont_round(t, a[1], b);
    let t = mont_round(t, a[2], b);
    mont_round(t, a[3], b)
}

/// Montgomery product `a·b·2^-256 mod r` for `a < 2^256` and `b < r`, reduced.
#[inline(always)]
pub(crate) const fn mont_mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    reduce_once(mont_mul_lazy(a, b))
}

/// `a + b` without reduction (for `a + b < 2^256`, e.g. both below `r`: the sum is below `2r`).
#[inline(always)]
pub(crate) const fn add_lazy(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let (d0, c) = adc(a[0], b[0], false);
    let (d1, c) = adc(a[1], b[1], c);
    let (d2, c) = adc(a[2], b[2], c);
    let (d3, _) = adc(a[3], b[3], c);
    [d0, d1, d2, d3]
}

/// `a + b mod r` for `a, b < r`.
#[inline(always)]
pub(crate) const fn add_mod(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    reduce_once(add_lazy(a, b))
}

/// `a - b mod r` for `a, b < r`.
#[inline(always)]
pub(crate) const fn sub_mod(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let (d0, br) = sbb(a[0], b[0], false);
    let (d1, br) = sbb(a[1], b[1], br);
    let (d2, br) = sbb(a[2], b[2], br);
    let (d3, br) = sbb(a[3], b[3], br);
    add_modulus_if(&[d0, d1, d2, d3], br)
}

/// `a + r - b`, unreduced, for `a, b < r`: congruent to `a - b`, in `(0, 2r)`, without a
/// condition.
#[inline(always)]
pub(crate) const fn sub_lazy(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let (s0, c) = adc(a[0], MODULUS[0], false);
    let (s1, c) = adc(a[1], MODULUS[1], c);
    let (s2, c) = adc(a[2], MODULUS[2], c);
    let (s3, _) = adc(a[3], MODULUS[3], c);
    let (d0, br) = sbb(s0, b[0], false);
    let (d1, br) = sbb(s1, b[1], br);
    let (d2, br) = sbb(s2, b[2], br);
    let (d3, _) = sbb(s3, b[3], br);
    [d0, d1, d2, d3]
}

/// `a / 2^12 mod r` for `a < 2^256`, reduced: `(a + k·r) / 2^12` with `k < 2^12` making the sum
/// divisible (r ≡ 1 mod 2^12, so `k = -a mod 2^12`); the quotient is below `2r`. Four small
/// products instead of a Montgomery product by `4096⁻¹`.
#[inline(always)]
pub(crate) const fn div_4096(a: &[u64; 4]) -> [u64; 4] {
    let k = a[0].wrapping_neg() & 0xfff;
    let (l0, h0) = wide_mul(k, MODULUS[0]);
    let (l1, h1) = wide_mul(k, MODULUS[1]);
    let (l2, h2) = wide_mul(k, MODULUS[2]);
    let (l3, h3) = wide_mul(k, MODULUS[3]);
    // a + [l0, l1 + h0, l2 + h1, l3 + h2, h3]: five words.
    let (y0, c) = a[0].overflowing_add(l0);
    let (y1, c) = adc(a[1], l1, c);
    let (y2, c) = adc(a[2], l2, c);
    let (y3, c) = adc(a[3], l3, c);
    let y4 = c as u64;
    let (y1, c) = y1.overflowing_add(h0);
    let (y2, c) = adc(y2, h1, c);
    let (y3, c) = adc(y3, h2, c);
    let y4 = y4 + h3 + c as u64;
    reduce_once([
        y0 >> 12 | y1 << 52,
        y1 >> 12 | y2 << 52,
        y2 >> 12 | y3 << 52,
        y3 >> 12 | y4 << 52,
    ])
}

/// `base^exp` in Montgomery form (square and multiply, most significant bit first).
pub(crate) const fn mont_pow(base: [u64; 4], exp: &[u64; 4]) -> [u64; 4] {
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

/// An element of the BLS12-381 scalar field (kept in Montgomery form).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fr([u64; 4]);

impl Fr {
    /// Zero.
    pub const ZERO: Fr = Fr([0; 4]);
    /// One.
    pub const ONE: Fr = Fr(R);

    /// From little-endian limbs of a canonical value (`None` if the value is not below `r`).
    pub const fn from_canonical_limbs(limbs: [u64; 4]) -> Option<Fr> {
        if limbs_below_modulus(&limbs) {
            Some(Fr(mont_mul(&limbs, &R2)))
        } else {
            None
        }
    }

    /// From its Montgomery representation `x·2^256 mod r` (limbs below `r`).
    #[inline(always)]
    pub(crate) const fn from_montgomery(limbs: [u64; 4]) -> Fr {
        Fr(limbs)
    }

    /// The Montgomery representation `x·2^256 mod r`.
    #[inline(always)]
    pub(crate) const fn montgomery(self) -> [u64; 4] {
        self.0
    }

    /// From a 32-byte big-endian word (`None` if the value is not below `r`).
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Option<Fr> {
        Fr::from_canonical_limbs(be_bytes_to_limbs(bytes))
    }

    /// From a small integer.
    pub const fn from_u64(v: u64) -> Fr {
        Fr(mont_mul(&[v, 0, 0, 0], &R2))
    }

    /// The canonical value as little-endian limbs.
    pub const fn to_canonical_limbs(self) -> [u64; 4] {
        mont_mul(&self.0, &[1, 0, 0, 0])
    }

    /// The canonical value as a 32-byte big-endian word.
    pub fn to_be_bytes(self) -> [u8; 32] {
        limbs_to_be_bytes(&self.to_canonical_limbs())
    }

    /// Writes the canonical value as a 32-byte big-endian word into `out`.
    #[inline]
    pub fn write_be_bytes(self, out: &mut [u8]) {
        let l = self.to_canonical_limbs();
        for (i, chunk) in out.chunks_exact_mut(8).take(4).enumerate() {
            chunk.copy_from_slice(&l[3 - i].to_be_bytes());
        }
    }

    /// `self + rhs`.
    #[inline(always)]
    pub const fn add(self, rhs: Fr) -> Fr {
        Fr(add_mod(&self.0, &rhs.0))
    }

    /// `self - rhs`.
    #[inline(always)]
    pub const fn sub(self, rhs: Fr) -> Fr {
        Fr(sub_mod(&self.0, &rhs.0))
    }

    /// `-self`.
    pub const fn neg(self) -> Fr {
        Fr::ZERO.sub(self)
    }

    /// `self * rhs`.
    #[inline(always)]
    pub const fn mul(self, rhs: Fr) -> Fr {
        Fr(mont_mul(&self.0, &rhs.0))
    }

    /// `self^exp` for an exponent given as little-endian limbs.
    pub const fn pow_limbs(self, exp: &[u64; 4]) -> Fr {
        Fr(mont_pow(self.0, exp))
    }

    /// `self^exp`.
    pub fn pow(self, exp: u64) -> Fr {
        self.pow_limbs(&[exp, 0, 0, 0])
    }

    /// The multiplicative inverse (`None` for zero), by Fermat's little theorem.
    pub fn inverse(self) -> Option<Fr> {
        if self == Fr::ZERO {
            return None;
        }
        let mut e = MODULUS;
        // r is odd and above 2, so r - 2 only touches the lowest limb.
        e[0] -= 2;
        Some(self.pow_limbs(&e))
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self == Fr::ZERO
    }
}

impl fmt::Debug for Fr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fr({})", hex_limbs(&self.to_canonical_limbs()))
    }
}

impl fmt::Display for Fr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_limbs(&self.to_canonical_limbs()))
    }
}

/// `0x`-prefixed lowercase hex without leading zeros (`0x0` for zero) of little-endian limbs.
pub fn hex_limbs(l: &[u64; 4]) -> String {
    let mut s = String::with_capacity(66);
    s.push_str("0x");
    let mut started = false;
    for limb in l.iter().rev() {
        if started {
            s.push_str(&format!("{limb:016x}"));
        } else if *limb != 0 {
            s.push_str(&format!("{limb:x}"));
            started = true;
        }
    }
    if !started {
        s.push('0');
    }
    s
}

/// Little-endian limbs of a 32-byte big-endian word.
#[inline]
pub fn be_bytes_to_limbs(bytes: &[u8; 32]) -> [u64; 4] {
    let mut l = [0u64; 4];
    for (i, limb) in l.iter_mut().enumerate() {
        let start = 32 - 8 * (i + 1);
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[start..start + 8]);
        *limb = u64::from_be_bytes(w);
    }
    l
}

/// A 32-byte big-endian word from little-endian limbs.
#[inline]
pub fn limbs_to_be_bytes(l: &[u64; 4]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for i in 0..4 {
        out[8 * i..8 * i + 8].copy_from_slice(&l[3 - i].to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use proptest::prelude::*;

    fn modulus() -> BigUint {
        MODULUS_DECIMAL.parse().unwrap()
    }

    fn to_big(l: &[u64; 4]) -> BigUint {
        BigUint::from_bytes_be(&limbs_to_be_bytes(l))
    }

    fn from_big(b: &BigUint) -> [u64; 4] {
        let mut bytes = [0u8; 32];
        let v = b.to_bytes_be();
        bytes[32 - v.len()..].copy_from_slice(&v);
        be_bytes_to_limbs(&bytes)
    }

    #[test]
    fn constants_are_consistent() {
        let r = modulus();
        assert_eq!(to_big(&MODULUS), r);
        let two256 = BigUint::from(1u8) << 256;
        assert_eq!(to_big(&R), &two256 % &r);
        assert_eq!(to_big(&R2), (&two256 * &two256) % &r);
        assert_eq!(MODULUS[0].wrapping_mul(INV), u64::MAX); // r * INV = -1 mod 2^64
        assert_eq!(Fr::ONE.to_canonical_limbs(), [1, 0, 0, 0]);
    }

    #[test]
    fn rejects_non_canonical() {
        assert!(Fr::from_canonical_limbs(MODULUS).is_none());
        let mut below = MODULUS;
        below[0] -= 1;
        assert!(Fr::from_canonical_limbs(below).is_some());
        assert!(Fr::from_be_bytes(&[0xff; 32]).is_none());
    }

    #[test]
    fn inverse_works() {
        let a = Fr::from_u64(12345);
        assert_eq!(a.mul(a.inverse().unwrap()), Fr::ONE);
        assert!(Fr::ZERO.inverse().is_none());
    }

    fn arb_fr() -> impl Strategy<Value = BigUint> {
        proptest::array::uniform32(any::<u8>()).prop_map(|b| BigUint::from_bytes_be(&b) % modulus())
    }

    proptest! {
        #[test]
        fn arithmetic_matches_bigint(a in arb_fr(), b in arb_fr()) {
            let r = modulus();
            let fa = Fr::from_canonical_limbs(from_big(&a)).unwrap();
            let fb = Fr::from_canonical_limbs(from_big(&b)).unwrap();
            prop_assert_eq!(to_big(&fa.to_canonical_limbs()), a.clone());
            prop_assert_eq!(to_big(&fa.mul(fb).to_canonical_limbs()), (&a * &b) % &r);
            prop_assert_eq!(to_big(&fa.add(fb).to_canonical_limbs()), (&a + &b) % &r);
            prop_assert_eq!(to_big(&fa.sub(fb).to_canonical_limbs()), (&a + &r - &b) % &r);
            prop_assert_eq!(fa.to_be_bytes().to_vec(), {
                let mut v = vec![0u8; 32];
                let x = a.to_bytes_be();
                v[32 - x.len()..].copy_from_slice(&x);
                v
            });
        }
    }
}
