//! Artifact storage: PIEs, outputs, proofs, blobs (S3 or a directory).

use async_trait::async_trait;
use bytes::Bytes;
use orchestrator_utils::Retryable;

use super::BoxError;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No object under this key.
    #[error("no object stored at {0}")]
    NotFound(String),
    /// The key is not acceptable (empty, absolute, `..`).
    #[error("invalid storage key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store is unreachable or timed out.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Anything else.
    #[error(transparent)]
    Other(BoxError),
}

impl StorageError {
    /// Wraps any error as `Other`.
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self::Other(e.into())
    }
}

impl Retryable for StorageError {
    /// Whether the same operation may succeed later.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A key → bytes store.
///
/// Contract: `put_data` overwrites; `get_data` of a missing key is `NotFound`; keys are
/// relative `/`-separated paths; tags are key/value pairs used by lifecycle rules.
#[async_trait]
pub trait StorageClient: Send + Sync + std::fmt::Debug {
    /// Reads an object.
    async fn get_data(&self, key: &str) -> Result<Bytes, StorageError>;
    /// Writes an object, replacing any previous one.
    async fn put_data(&self, data: Bytes, key: &str) -> Result<(), StorageError>;
    /// Deletes an object; deleting a missing key is not an error.
    async fn delete_data(&self, key: &str) -> Result<(), StorageError>;
    /// Keys under a prefix, sorted.
    async fn list_files_in_dir(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Sets tags on an object; `NotFound` if it does not exist.
    async fn tag_object(&self, key: &str, tags: &[(String, String)]) -> Result<(), StorageError>;
    /// Checks the store answers.
    async fn health_check(&self) -> Result<(), StorageError>;
}

/// Checks a storage key (or, with `allow_partial`, a listing prefix): relative, `/`-separated,
/// with no empty, `.` or `..` segment and no NUL. Every backend applies the same rule, so a
/// key accepted by the directory store is accepted by S3 and means the same object.
///
/// # Errors
/// `InvalidKey` naming what is wrong.
pub fn check_key(key: &str, allow_partial: bool) -> Result<(), StorageError> {
    let invalid = |reason: &str| {
        Err(StorageError::InvalidKey { key: key.to_owned(), reason: reason.to_owned() })
    };
    if key.is_empty() {
        return if allow_partial { Ok(()) } else { invalid("empty") };
    }
    if key.starts_with('/') {
        return invalid("absolute");
    }
    if key.contains('\0') {
        return invalid("contains NUL");
    }
    let segments: Vec<&str> = key.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            ".." => return invalid("contains a `..` segment"),
            "." => return invalid("contains a `.` segment"),
            // A prefix may end with `/` ("snos/"), a key may not.
            "" if !(allow_partial && i == last) => return invalid("contains an empty segment"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("a", true)]
    #[case("snos_output/1/cairo_pie.zip", true)]
    #[case("a.b/c..d/.hidden", true)]
    #[case("", false)]
    #[case("/abs", false)]
    #[case("..", false)]
    #[case("a/../b", false)]
    #[case("a/..", false)]
    #[case("./a", false)]
    #[case("a//b", false)]
    #[case("a/", false)]
    #[case("a\0b", false)]
    fn keys(#[case] key: &str, #[case] ok: bool) {
        assert_eq!(check_key(key, false).is_ok(), ok, "{key:?}");
    }

    #[rstest]
    #[case("", true)]
    #[case("snos/", true)]
    #[case("snos/1", true)]
    #[case("/snos", false)]
    #[case("../", false)]
    #[case("a//", false)]
    fn prefixes(#[case] prefix: &str, #[case] ok: bool) {
        assert_eq!(check_key(prefix, true).is_ok(), ok, "{prefix:?}");
    }
}
