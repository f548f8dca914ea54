//! Starknet versions whose data-availability encoding this crate knows.

use std::{fmt, str::FromStr};

/// A Starknet version, as far as the DA encoding is concerned.
///
/// The rules change at three points:
/// - 0.13.2: one `da_word` per contract with the full nonce; no compression.
/// - ≥ 0.13.3: packed `da_word` (nonce only when changed) and stateless compression.
/// - ≥ 0.13.4: stateful compression (aliases held by contract `0x2`) as well.
///
/// Versions after 0.14.2 are accepted as [`StarknetVersion::Later`] and encoded with the rules of
/// the newest known version (the DA rules have not changed since 0.13.4; e.g. starknet-devnet
/// reports 0.14.4). A fourth component (`0.13.2.1`) is a patch of its three-part version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StarknetVersion {
    /// 0.13.2 (and 0.13.2.x).
    V0_13_2,
    /// 0.13.3.
    V0_13_3,
    /// 0.13.4.
    V0_13_4,
    /// 0.13.5.
    V0_13_5,
    /// 0.13.6.
    V0_13_6,
    /// 0.14.0.
    V0_14_0,
    /// 0.14.1.
    V0_14_1,
    /// 0.14.2.
    V0_14_2,
    /// A version newer than 0.14.2 (`major.minor.patch`), encoded like the newest known one.
    Later(u32, u32, u32),
}

/// Why a version string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Not of the form `MAJOR.MINOR.PATCH[.BUILD]` with decimal numbers.
    #[error("`{0}` is not a Starknet version (expected MAJOR.MINOR.PATCH, e.g. 0.13.2)")]
    Malformed(String),
    /// Older than the oldest supported version.
    #[error("Starknet version {0} is not supported: the oldest supported DA encoding is 0.13.2")]
    TooOld(String),
    /// Between supported versions but not a released version known here.
    #[error(
        "unknown Starknet version {0}: supported are 0.13.2, 0.13.3, 0.13.4, 0.13.5, 0.13.6, \
         0.14.0, 0.14.1, 0.14.2 and anything newer than 0.14.2"
    )]
    Unknown(String),
}

impl StarknetVersion {
    /// Every named version, oldest first.
    pub const KNOWN: [StarknetVersion; 8] = [
        StarknetVersion::V0_13_2,
        StarknetVersion::V0_13_3,
        StarknetVersion::V0_13_4,
        StarknetVersion::V0_13_5,
        StarknetVersion::V0_13_6,
        StarknetVersion::V0_14_0,
        StarknetVersion::V0_14_1,
        StarknetVersion::V0_14_2,
    ];

    /// `(major, minor, patch)`.
    pub const fn triple(self) -> (u32, u32, u32) {
        match self {
            StarknetVersion::V0_13_2 => (0, 13, 2),
            StarknetVersion::V0_13_3 => (0, 13, 3),
            StarknetVersion::V0_13_4 => (0, 13, 4),
            StarknetVersion::V0_13_5 => (0, 13, 5),
            StarknetVersion::V0_13_6 => (0, 13, 6),
            StarknetVersion::V0_14_0 => (0, 14, 0),
            StarknetVersion::V0_14_1 => (0, 14, 1),
            StarknetVersion::V0_14_2 => (0, 14, 2),
            StarknetVersion::Later(a, b, c) => (a, b, c),
        }
    }

    /// Parses `MAJOR.MINOR.PATCH[.BUILD]` (an optional leading `v` is allowed).
    pub fn parse(s: &str) -> Result<StarknetVersion, VersionError> {
        let trimmed = s.trim();
        let body = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let parts: Vec<&str> = body.split('.').collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(VersionError::Malformed(s.to_string()));
        }
        let mut nums = [0u32; 4];
        for (n, p) in nums.iter_mut().zip(&parts) {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::Malformed(s.to_string()));
            }
            *n = p.parse().map_err(|_| VersionError::Malformed(s.to_string()))?;
        }
        let triple = (nums[0], nums[1], nums[2]);
        if let Some(v) = Self::KNOWN.iter().find(|v| v.triple() == triple) {
            return Ok(*v);
        }
        if triple < (0, 13, 2) {
            return Err(VersionError::TooOld(body.to_string()));
        }
        if triple > StarknetVersion::V0_14_2.triple() {
            return Ok(StarknetVersion::Later(triple.0, triple.1, triple.2));
        }
        Err(VersionError::Unknown(body.to_string()))
    }

    /// Whether the packed `da_word` of 0.13.3 and later is used.
    pub fn uses_packed_da_word(self) -> bool {
        self >= StarknetVersion::V0_13_3
    }

    /// Whether the blob data is compressed with the stateless compression (0.13.3 and later).
    pub fn supports_stateless_compression(self) -> bool {
        self >= StarknetVersion::V0_13_3
    }

    /// Whether the state diff is alias-compressed (stateful compression, 0.13.4 and later).
    pub fn uses_stateful_compression(self) -> bool {
        self >= StarknetVersion::V0_13_4
    }

    /// Whether the `da_word` carries the contract's full nonce even when unchanged (0.13.2), so
    /// nonces missing from the diff must be fetched.
    pub fn needs_full_nonces(self) -> bool {
        !self.uses_packed_da_word()
    }
}

impl fmt::Display for StarknetVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = self.triple();
        write!(f, "{a}.{b}.{c}")
    }
}

impl FromStr for StarknetVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StarknetVersion::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("0.13.2", StarknetVersion::V0_13_2)]
    #[case("0.13.2.1", StarknetVersion::V0_13_2)]
    #[case("0.13.3", StarknetVersion::V0_13_3)]
    #[case("0.13.4", StarknetVersion::V0_13_4)]
    #[case("0.13.5", StarknetVersion::V0_13_5)]
    #[case("0.13.6", StarknetVersion::V0_13_6)]
    #[case("0.14.0", StarknetVersion::V0_14_0)]
    #[case("v0.14.1", StarknetVersion::V0_14_1)]
    #[case("0.14.2", StarknetVersion::V0_14_2)]
    #[case("0.14.4", StarknetVersion::Later(0, 14, 4))]
    #[case("0.15.0", StarknetVersion::Later(0, 15, 0))]
    fn parses(#[case] s: &str, #[case] v: StarknetVersion) {
        assert_eq!(StarknetVersion::parse(s), Ok(v));
    }

    #[rstest]
    #[case("0.13.1", "not supported")]
    #[case("0.12.3", "not supported")]
    #[case("0.13.7", "unknown Starknet version 0.13.7")]
    #[case("0.13", "not a Starknet version")]
    #[case("latest", "not a Starknet version")]
    #[case("0.13.x", "not a Starknet version")]
    #[case("0.13.2.1.1", "not a Starknet version")]
    fn rejects(#[case] s: &str, #[case] msg: &str) {
        let err = StarknetVersion::parse(s).unwrap_err().to_string();
        assert!(err.contains(msg), "{err}");
    }

    #[test]
    fn ordering_and_rules() {
        assert!(StarknetVersion::V0_13_2 < StarknetVersion::V0_13_3);
        assert!(StarknetVersion::V0_14_2 < StarknetVersion::Later(0, 14, 4));
        assert!(StarknetVersion::V0_13_2.needs_full_nonces());
        assert!(!StarknetVersion::V0_13_3.uses_stateful_compression());
        assert!(StarknetVersion::V0_13_4.uses_stateful_compression());
        assert!(StarknetVersion::Later(0, 14, 4).uses_packed_da_word());
        assert_eq!(StarknetVersion::Later(0, 14, 4).to_string(), "0.14.4");
    }
}
