//! A 32-byte hash value (keccak digests, Merkle nodes, facts) and the keccak helper.

use std::fmt;

use sha3::{Digest, Keccak256};

/// A 256-bit hash, stored big-endian. Displays as `0x` followed by 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash256(pub [u8; 32]);

impl Hash256 {
    /// The raw big-endian bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits (either case), with or without a `0x` prefix.
    pub fn from_hex(s: &str) -> Option<Self> {
        let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
        if digits.len() != 64 || !digits.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.as_bytes().chunks(2)) {
            // `pair` is ASCII (checked above), so it is valid UTF-8.
            let text = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(out))
    }

    /// Adds `n` modulo 2^256 (big-endian arithmetic).
    pub fn wrapping_add_u64(self, n: u64) -> Self {
        let mut out = self.0;
        let mut carry = u128::from(n);
        for byte in out.iter_mut().rev() {
            if carry == 0 {
                break;
            }
            let sum = u128::from(*byte) + (carry & 0xff);
            *byte = (sum & 0xff) as u8;
            carry = (carry >> 8) + (sum >> 8);
        }
        Self(out)
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<[u8; 32]> for Hash256 {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

/// Keccak-256 (the Ethereum variant, not NIST SHA3-256) of the concatenation of `parts`.
pub fn keccak256_concat<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Hash256 {
    let mut hasher = Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    Hash256(hasher.finalize().into())
}

/// Encodes a `usize` as a 32-byte big-endian word (as Solidity's `uint256`).
pub(crate) fn usize_be32(n: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    let bytes = n.to_be_bytes();
    out[32 - bytes.len()..].copy_from_slice(&bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_of_empty_input_is_the_well_known_value() {
        assert_eq!(
            keccak256_concat([]).to_string(),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn display_and_parse_round_trip() {
        let s = "0x17F41BA1DB11E3A164B23B72B52190FB0DA6184B4B80CF74E0882FDE7438E47F";
        let h = Hash256::from_hex(s).unwrap();
        assert_eq!(h.to_string(), s.to_lowercase());
        assert_eq!(Hash256::from_hex(&s[2..]), Some(h));
        assert_eq!(Hash256::from_hex("0x1234"), None);
        assert_eq!(Hash256::from_hex(&format!("0x{}", "g".repeat(64))), None);
    }

    #[test]
    fn wrapping_add_carries_and_wraps() {
        let mut b = [0u8; 32];
        b[31] = 0xff;
        b[30] = 0xff;
        let mut expected = [0u8; 32];
        expected[29] = 1;
        assert_eq!(Hash256(b).wrapping_add_u64(1), Hash256(expected));
        assert_eq!(Hash256([0xff; 32]).wrapping_add_u64(1), Hash256([0; 32]));
        assert_eq!(Hash256([0; 32]).wrapping_add_u64(0), Hash256([0; 32]));
    }

    #[test]
    fn usize_is_encoded_as_uint256() {
        let w = usize_be32(0x0102);
        assert_eq!(&w[..30], &[0u8; 30]);
        assert_eq!(&w[30..], &[1, 2]);
    }
}
