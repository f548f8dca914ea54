//! [`LockClient`] on the embedded SQLite file: one row per lock in `locks`.
//!
//! Times are unix milliseconds; a lock whose `expires_at` is not after now counts as free and
//! is overwritten by the next acquire (no sweeper needed). Every operation is one statement,
//! hence atomic across processes sharing the file.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    sqlite::{SqlitePool, SqliteRow},
    Row,
};

use super::is_transient;
use crate::core::client::lock::{LockClient, LockError, LockInfo, LockValue};

/// Schema of the locks; idempotent.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS locks (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    owner TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
)";

/// Columns returned by every statement that yields a lock.
const RETURNING: &str = "key, value, owner, created_at, expires_at";

/// TTL locks on the shared SQLite file.
///
/// Build it with [`SqliteLock::new`] over the pool from [`super::open_pool`] and call
/// [`SqliteLock::init`] once.
#[derive(Debug, Clone)]
pub struct SqliteLock {
    pool: SqlitePool,
}

impl SqliteLock {
    /// Wraps a pool; call [`Self::init`] before use.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Wraps a pool and creates the table.
    ///
    /// # Errors
    /// When the table cannot be created.
    pub async fn open(pool: SqlitePool) -> Result<Self, LockError> {
        let lock = Self::new(pool);
        lock.init().await?;
        Ok(lock)
    }

    /// Creates the `locks` table if it does not exist.
    ///
    /// # Errors
    /// `Unavailable` when the file is busy, `Other` otherwise.
    pub async fn init(&self) -> Result<(), LockError> {
        sqlx::query(SCHEMA).execute(&self.pool).await.map_err(lock_err)?;
        Ok(())
    }
}

#[async_trait]
impl LockClient for SqliteLock {
    async fn acquire_lock(
        &self,
        key: &str,
        value: LockValue,
        ttl: Duration,
        owner: Option<&str>,
    ) -> Result<LockInfo, LockError> {
        let now = now_ms();
        let value = serde_json::to_string(&value).map_err(LockError::other)?;
        // Insert, or take over a row whose lock has expired; a live lock makes the conflict
        // clause's WHERE false, so nothing is returned.
        let row = sqlx::query(
            "INSERT INTO locks (key, value, owner, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, owner = excluded.owner,
                 created_at = excluded.created_at, expires_at = excluded.expires_at
             WHERE locks.expires_at <= excluded.created_at
             RETURNING key, value, owner, created_at, expires_at",
        )
        .bind(key)
        .bind(value)
        .bind(owner)
        .bind(now)
        .bind(now.saturating_add(ttl_ms(ttl)))
        .fetch_optional(&self.pool)
        .await
        .map_err(lock_err)?;
        match row {
            Some(row) => decode(&row),
            None => {
                let holder = self.get_lock(key).await?.and_then(|l| l.owner);
                Err(LockError::AlreadyHeld { key: key.to_owned(), owner: holder })
            }
        }
    }

    async fn release_lock(&self, key: &str, owner: Option<&str>) -> Result<(), LockError> {
        let done = sqlx::query(
            "DELETE FROM locks WHERE key = ? AND expires_at > ? AND (?3 IS NULL OR owner = ?3)",
        )
        .bind(key)
        .bind(now_ms())
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(lock_err)?;
        if done.rows_affected() == 0 {
            return Err(LockError::NotHeld {
                key: key.to_owned(),
                owner: owner.map(str::to_owned),
            });
        }
        Ok(())
    }

    async fn extend_lock(
        &self,
        key: &str,
        owner: Option<&str>,
        ttl: Duration,
    ) -> Result<LockInfo, LockError> {
        let now = now_ms();
        let sql = format!(
            "UPDATE locks SET expires_at = ?1 WHERE key = ?2 AND expires_at > ?3 AND (?4 IS NULL OR owner = ?4)
             RETURNING {RETURNING}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now.saturating_add(ttl_ms(ttl)))
            .bind(key)
            .bind(now)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(lock_err)?;
        match row {
            Some(row) => decode(&row),
            None => {
                Err(LockError::NotHeld { key: key.to_owned(), owner: owner.map(str::to_owned) })
            }
        }
    }

    async fn get_lock(&self, key: &str) -> Result<Option<LockInfo>, LockError> {
        let sql = format!("SELECT {RETURNING} FROM locks WHERE key = ? AND expires_at > ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await
            .map_err(lock_err)?;
        row.map(|r| decode(&r)).transpose()
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

fn decode(row: &SqliteRow) -> Result<LockInfo, LockError> {
    let key: String = row.try_get("key").map_err(lock_err)?;
    let bad = |reason: String| LockError::other(format!("corrupt lock {key}: {reason}"));
    let value: String = row.try_get("value").map_err(lock_err)?;
    let value: LockValue = serde_json::from_str(&value).map_err(|e| bad(e.to_string()))?;
    let time = |col: &str| -> Result<DateTime<Utc>, LockError> {
        let ms: i64 = row.try_get(col).map_err(lock_err)?;
        DateTime::from_timestamp_millis(ms).ok_or_else(|| bad(format!("{col} {ms} out of range")))
    };
    Ok(LockInfo {
        owner: row.try_get("owner").map_err(lock_err)?,
        value,
        created_at: time("created_at")?,
        expires_at: time("expires_at")?,
        key,
    })
}

fn lock_err(e: sqlx::Error) -> LockError {
    if is_transient(&e) {
        LockError::Unavailable(Box::new(e))
    } else {
        LockError::other(e)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::client::sqlite::open_pool;

    /// A fresh lock store in its own temp dir (kept alive by the returned guard).
    async fn fresh() -> (Arc<dyn LockClient>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = open_pool(dir.path()).await.expect("open pool");
        (Arc::new(SqliteLock::open(pool).await.expect("init")), dir)
    }

    mod conformance {
        crate::lock_conformance_tests!(super::fresh());
    }

    /// Two pools on one file (two processes): one acquire wins, the other sees it held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_is_shared_across_pools() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = SqliteLock::open(open_pool(dir.path()).await.expect("a")).await.expect("init a");
        let b = SqliteLock::open(open_pool(dir.path()).await.expect("b")).await.expect("init b");
        a.acquire_lock("k", LockValue::Boolean(true), Duration::from_secs(60), Some("a"))
            .await
            .expect("a takes");
        let err =
            b.acquire_lock("k", LockValue::Boolean(true), Duration::from_secs(60), Some("b")).await;
        assert!(
            matches!(err, Err(LockError::AlreadyHeld { owner: Some(ref o), .. }) if o == "a"),
            "{err:?}"
        );
        b.release_lock("k", Some("a")).await.expect("release through the other pool");
        b.acquire_lock("k", LockValue::Boolean(true), Duration::from_secs(60), Some("b"))
            .await
            .expect("b takes");
    }
}
