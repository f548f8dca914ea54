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

#[inline(always)]
const fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) * (c as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
const fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
const fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub((b as u128) + ((borrow >> 63) as u128));
    (t as u64, (t >> 64) as u64)
}

/// `a - r` if `a >= r`, else `a` (for `a < 2r`).
#[inline(always)]
const fn reduce_once(a: [u64; 4]) -> [u64; 4] {
    let (d0, b) = sbb(a[0], MODULUS[0], 0);
    let (d1, b) = sbb(a[1], MODULUS[1], b);
    let (d2, b) = sbb(a[2], MODULUS[2], b);
    let (d3, b) = sbb(a[3], MODULUS[3], b);
    // b is all ones when a < r: keep a.
    [(a[0] & b) | (d0 & !b), (a[1] & b) | (d1 & !b), (a[2] & b) | (d2 & !b), (a[3] & b) | (d3 & !b)]
}

/// Whether the little-endian limbs are below `r`.
#[inline]
pub(crate) const fn limbs_below_modulus(a: &[u64; 4]) -> bool {
    let (_, b) = sbb(a[0], MODULUS[0], 0);
    let (_, b) = sbb(a[1], MODULUS[1], b);
    let (_, b) = sbb(a[2], MODULUS[2], b);
    let (_, b) = sbb(a[3], MODULUS[3], b);
    b != 0
}

/// Montgomery product `a * b * 2^-256 mod r` for `a, b < r`.
#[inline(always)]
const fn mont_mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    // Coarsely integrated operand scanning; r < 2^255 so the running value never needs a
    // fifth limb beyond one carry word.
    let (t0, c) = mac(0, a[0], b[0], 0);
    let (t1, c) = mac(0, a[0], b[1], c);
    let (t2, c) = mac(0, a[0], b[2], c);
    let (t3, t4) = mac(0, a[0], b[3], c);
    let m = t0.wrapping_mul(INV);
    let (_, c) = mac(t0, m, MODULUS[0], 0);
    let (t0, c) = mac(t1, m, MODULUS[1], c);
    let (t1, c) = mac(t2, m, MODULUS[2], c);
    let (t2, c) = mac(t3, m, MODULUS[3], c);
    let (t3, t4) = adc(t4, c, 0);
    let _ = t4;

    let (t0, c) = mac(t0, a[1], b[0], 0);
    let (t1, c) = mac(t1, a[1], b[1], c);
    let (t2, c) = mac(t2, a[1], b[2], c);
    let (t3, t4) = mac(t3, a[1], b[3], c);
    let m = t0.wrapping_mul(INV);
    let (_, c) = mac(t0, m, MODULUS[0], 0);
    let (t0, c) = mac(t1, m, MODULUS[1], c);
    let (t1, c) = mac(t2, m, MODULUS[2], c);
    let (t2, c) = mac(t3, m, MODULUS[3], c);
    let (t3, _) = adc(t4, c, 0);

    let (t0, c) = mac(t0, a[2], b[0], 0);
    let (t1, c) = mac(t1, a[2], b[1], c);
    let (t2, c) = mac(t2, a[2], b[2], c);
    let (t3, t4) = mac(t3, a[2], b[3], c);
    let m = t0.wrapping_mul(INV);
    let (_, c) = mac(t0, m, MODULUS[0], 0);
    let (t0, c) = mac(t1, m, MODULUS[1], c);
    let (t1, c) = mac(t2, m, MODULUS[2], c);
    let (t2, c) = mac(t3, m, MODULUS[3], c);
    let (t3, _) = adc(t4, c, 0);

    let (t0, c) = mac(t0, a[3], b[0], 0);
    let (t1, c) = mac(t1, a[3], b[1], c);
    let (t2, c) = mac(t2, a[3], b[2], c);
    let (t3, t4) = mac(t3, a[3], b[3], c);
    let m = t0.wrapping_mul(INV);
    let (_, c) = mac(t0, m, MODULUS[0], 0);
    let (t0, c) = mac(t1, m, MODULUS[1], c);
    let (t1, c) = mac(t2, m, MODULUS[2], c);
    let (t2, c) = mac(t3, m, MODULUS[3], c);
    let (t3, _) = adc(t4, c, 0);

    reduce_once([t0, t1, t2, t3])
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
        let (d0, c) = adc(self.0[0], rhs.0[0], 0);
        let (d1, c) = adc(self.0[1], rhs.0[1], c);
        let (d2, c) = adc(self.0[2], rhs.0[2], c);
        let (d3, _) = adc(self.0[3], rhs.0[3], c);
        // Both are below r < 2^255, so the sum fits in four limbs.
        Fr(reduce_once([d0, d1, d2, d3]))
    }

    /// `self - rhs`.
    #[inline(always)]
    pub const fn sub(self, rhs: Fr) -> Fr {
        let (d0, b) = sbb(self.0[0], rhs.0[0], 0);
        let (d1, b) = sbb(self.0[1], rhs.0[1], b);
        let (d2, b) = sbb(self.0[2], rhs.0[2], b);
        let (d3, b) = sbb(self.0[3], rhs.0[3], b);
        // Add r back when the subtraction borrowed (b is then all ones).
        let (d0, c) = adc(d0, MODULUS[0] & b, 0);
        let (d1, c) = adc(d1, MODULUS[1] & b, c);
        let (d2, c) = adc(d2, MODULUS[2] & b, c);
        let (d3, _) = adc(d3, MODULUS[3] & b, c);
        Fr([d0, d1, d2, d3])
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
    pub fn pow_limbs(self, exp: &[u64; 4]) -> Fr {
        let mut acc = Fr::ONE;
        for limb in exp.iter().rev() {
            for bit in (0..64).rev() {
                acc = acc.mul(acc);
                if (limb >> bit) & 1 == 1 {
                    acc = acc.mul(self);
                }
            }
        }
        acc
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
