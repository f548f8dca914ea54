//! TTL locks that keep batching and cleanup workers single across processes.

use orchestrator_utils::Retryable;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::BoxError;

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds the lock.
    #[error("lock {key} is held by {owner:?}")]
    AlreadyHeld {
        /// The lock.
        key: String,
        /// Its owner.
        owner: Option<String>,
    },
    /// The lock is not held (or not by this owner).
    #[error("lock {key} is not held by {owner:?}")]
    NotHeld {
        /// The lock.
        key: String,
        /// The owner that asked.
        owner: Option<String>,
    },
    /// The lock store is unreachable or busy.
    #[error("lock store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Anything else.
    #[error(transparent)]
    Other(BoxError),
}

impl LockError {
    /// Wraps any error as `Other`.
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self::Other(e.into())
    }
}

impl Retryable for LockError {
    /// Whether the same operation may succeed later.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::AlreadyHeld { .. })
    }
}

/// A value stored with a lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LockValue {
    /// Text.
    String(String),
    /// A number.
    Number(i64),
    /// A flag.
    Boolean(bool),
    /// Any JSON.
    Json(serde_json::Value),
}

/// A held lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The lock.
    pub key: String,
    /// Its value.
    pub value: LockValue,
    /// Who holds it.
    pub owner: Option<String>,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// When it expires by itself.
    pub expires_at: DateTime<Utc>,
}

/// What `try_acquire_lock` asks for: the lock `key` with `value` for `ttl`, held by `owner`.
#[derive(Debug, Clone, PartialEq)]
pub struct LockRequest<'a> {
    /// The lock.
    pub key: &'a str,
    /// Its value.
    pub value: LockValue,
    /// How long it stays held unless extended.
    pub ttl: Duration,
    /// Who takes it.
    pub owner: Option<&'a str>,
}

/// The `NotHeld` error of `key` and `owner`.
fn not_held(key: &str, owner: Option<&str>) -> LockError {
    LockError::NotHeld { key: key.to_owned(), owner: owner.map(str::to_owned) }
}

/// Named locks with a time to live: an expired lock counts as free.
///
/// Contract shared by every backend (checked by `conformance::lock`):
/// - a lock is held while `expires_at > now`; a zero TTL gives a lock that is already free;
/// - `acquire_lock` is not re-entrant: a live lock is `AlreadyHeld` even for its own owner,
///   and of concurrent acquires of a free lock exactly one succeeds;
/// - `release_lock` / `extend_lock` of a missing or expired lock are `NotHeld`; without an
///   owner they act on any holder, with one only on that owner's lock.
///
/// A backend implements the `try_` methods and `get_lock`; the others are provided.
#[async_trait]
pub trait LockClient: Send + Sync + std::fmt::Debug {
    /// Takes the lock if it is free or expired; `None` when it is held.
    async fn try_acquire_lock(&self, req: LockRequest<'_>) -> Result<Option<LockInfo>, LockError>;
    /// Deletes the lock if it is held (by `owner`, when given); whether it was.
    async fn try_release_lock(&self, key: &str, owner: Option<&str>) -> Result<bool, LockError>;
    /// Pushes the expiry of a lock held (by `owner`, when given) to now + `ttl`; `None` when
    /// it is not held.
    async fn try_extend_lock(
        &self,
        key: &str,
        owner: Option<&str>,
        ttl: Duration,
    ) -> Result<Option<LockInfo>, LockError>;
    /// The lock, if held and not expired.
    async fn get_lock(&self, key: &str) -> Result<Option<LockInfo>, LockError>;
    /// Takes the lock if it is free or expired; `AlreadyHeld` otherwise.
    async fn acquire_lock(
        &self,
        key: &str,
        value: LockValue,
        ttl: Duration,
        owner: Option<&str>,
    ) -> Result<LockInfo, LockError> {
        match self.try_acquire_lock(LockRequest { key, value, ttl, owner }).await? {
            Some(lock) => Ok(lock),
            None => {
                let holder = self.get_lock(key).await?.and_then(|l| l.owner);
                Err(LockError::AlreadyHeld { key: key.to_owned(), owner: holder })
            }
        }
    }
    /// Releases the lock; with an owner, only if that owner holds it (`NotHeld` otherwise).
    async fn release_lock(&self, key: &str, owner: Option<&str>) -> Result<(), LockError> {
        if self.try_release_lock(key, owner).await? {
            Ok(())
        } else {
            Err(not_held(key, owner))
        }
    }
    /// Pushes the expiry of a held lock to now + `ttl`; `NotHeld` if it is not held by `owner`.
    async fn extend_lock(
        &self,
        key: &str,
        owner: Option<&str>,
        ttl: Duration,
    ) -> Result<LockInfo, LockError> {
        self.try_extend_lock(key, owner, ttl).await?.ok_or_else(|| not_held(key, owner))
    }
    /// Whether the lock is held and not expired.
    async fn is_locked(&self, key: &str) -> Result<bool, LockError> {
        Ok(self.get_lock(key).await?.is_some())
    }
    /// Time left before the lock expires, if held.
    async fn get_lock_ttl(&self, key: &str) -> Result<Option<Duration>, LockError> {
        Ok(self
            .get_lock(key)
            .await?
            .map(|l| (l.expires_at - Utc::now()).to_std().unwrap_or_default()))
    }
}
