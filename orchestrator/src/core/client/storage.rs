//! Artifact storage: PIEs, outputs, proofs, blobs (S3 or a directory).

use async_trait::async_trait;
use bytes::Bytes;

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
    /// Whether the same operation may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Wraps any error as `Other`.
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self::Other(e.into())
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
