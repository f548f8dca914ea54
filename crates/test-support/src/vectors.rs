//! The acceptance vectors under `crates/test-support/vectors/` (see the README there for where
//! each one comes from).
//!
//! Paths are relative to that folder, e.g. `da_blob/test_blob/178.txt` or `pie/fibonacci.zip`.
//! A missing vector panics with its full path: a test never silently skips its vector.

use std::path::{Path, PathBuf};

/// The folder that holds the vectors (under [`crate::repo::root`], found at run time).
pub fn dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| crate::repo::root().join("crates/test-support/vectors"))
}

/// The path of one vector; panics when the file is not there.
pub fn path(rel: &str) -> PathBuf {
    let p = dir().join(rel);
    assert!(p.is_file(), "missing test vector {}", p.display());
    p
}

/// The text of one vector; panics when it cannot be read.
pub fn read(rel: &str) -> String {
    let p = path(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("test vector {}: {e}", p.display()))
}

/// The bytes of one vector; panics when it cannot be read.
pub fn bytes(rel: &str) -> Vec<u8> {
    let p = path(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("test vector {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vector_family_is_present() {
        for rel in [
            "da_blob/state_update/178.txt",
            "da_blob/nonces/178.txt",
            "da_blob/test_blob/178.txt",
            "kzg_sidecar/blob_data/20462788.txt",
            "kzg_state_update/651053/kzg_proof.txt",
            "pie/fibonacci.zip",
        ] {
            assert!(!bytes(rel).is_empty(), "{rel} is empty");
        }
        // A blob is 131072 bytes, written as hex.
        assert_eq!(read("da_blob/test_blob/178.txt").trim().len(), 2 * 131_072);
    }

    #[test]
    #[should_panic(expected = "missing test vector")]
    fn a_missing_vector_names_its_path() {
        let _ = path("da_blob/no_such_block.txt");
    }
}
