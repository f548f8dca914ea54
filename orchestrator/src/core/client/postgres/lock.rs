//! [`LockClient`] on PostgreSQL: one row per lock in `locks`.
//!
//! Times come from the server's clock (`now()`), so processes on hosts whose clocks disagree
//! still agree on expiry. A lock whose `expires_at` is not after now counts as free and is
//! overwritten by the next acquire (no sweeper needed). Every operation is one statement:
//! `acquire_lock` is `INSERT … ON CONFLICT (key) DO UPDATE … WHERE locks.expires_at <= now()`,
//! which PostgreSQL applies atomically, so of concurrent acquires exactly one returns a row.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgPool, PgRow},
    Row,
};

use super::{apply_schema, is_transient};
use crate::core::client::lock::{LockClient, LockError, LockInfo, LockValue};

/// Schema of the locks; idempotent.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS locks (
    key TEXT PRIMARY KEY,
    value JSONB NOT NULL,
    owner TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
)";

/// Columns returned by every statement that yields a lock (times in microseconds).
const RETURNING: &str = "key, value::text AS value, owner,
    (extract(epoch FROM created_at) * 1000000)::bigint AS created_us,
    (extract(epoch FROM expires_at) * 1000000)::bigint AS expires_us";

/// Longest TTL stored; longer ones are clamped (PostgreSQL intervals have a range).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// TTL locks on PostgreSQL.
///
/// Build it with [`PostgresLock::open`] over the pool from [`super::open_pool`].
#[derive(Debug, Clone)]
pub struct PostgresLock {
    pool: PgPool,
}

impl PostgresLock {
    /// Wraps a pool; call [`Self::init`] before use.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Wraps a pool and creates the table.
    ///
    /// # Errors
    /// When the table cannot be created.
    pub async fn open(pool: PgPool) -> Result<Self, LockError> {
        let lock = Self::new(pool);
        lock.init().await?;
        Ok(lock)
    }

    /// Creates the `locks` table if it does not exist.
    ///
    /// # Errors
    /// `Unavailable` when the server is unreachable, `Other` otherwise.
    pub async fn init(&self) -> Result<(), LockError> {
        apply_schema(&self.pool, SCHEMA).await.map_err(lock_err)
    }
}

#[async_trait]
impl LockClient for PostgresLock {
    async fn acquire_lock(
        &self,
        key: &str,
        value: LockValue,
        ttl: Duration,
        owner: Option<&str>,
    ) -> Result<LockInfo, LockError> {
        let value = serde_json::to_string(&value).map_err(LockError::other)?;
        // Insert, or take over a row whose lock has expired; a live lock makes the conflict
        // clause's WHERE false, so nothing is returned.
        let sql = format!(
            "INSERT INTO locks AS l (key, value, owner, created_at, expires_at)
             VALUES ($1, $2::jsonb, $3, now(), now() + make_interval(secs => $4))
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, owner = EXCLUDED.owner,
                 created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
             WHERE l.expires_at <= now()
             RETURNING {RETURNING}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(value)
            .bind(owner)
            .bind(ttl_secs(ttl))
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
            "DELETE FROM locks WHERE key = $1 AND expires_at > now() AND ($2::text IS NULL OR owner = $2)",
        )
        .bind(key)
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
        let sql = format!(
            "UPDATE locks SET expires_at = now() + make_interval(secs => $3)
             WHERE key = $1 AND expires_at > now() AND ($2::text IS NULL OR owner = $2)
             RETURNING {RETURNING}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(owner)
            .bind(ttl_secs(ttl))
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
        let sql = format!("SELECT {RETURNING} FROM locks WHERE key = $1 AND expires_at > now()");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(lock_err)?;
        row.map(|r| decode(&r)).transpose()
    }
}

/// The TTL in seconds, clamped to [`MAX_TTL`].
fn ttl_secs(ttl: Duration) -> f64 {
    ttl.min(MAX_TTL).as_secs_f64()
}

fn decode(row: &PgRow) -> Result<LockInfo, LockError> {
    let key: String = row.try_get("key").map_err(lock_err)?;
    let bad = |reason: String| LockError::other(format!("corrupt lock {key}: {reason}"));
    let value: String = row.try_get("value").map_err(lock_err)?;
    let value: LockValue = serde_json::from_str(&value).map_err(|e| bad(e.to_string()))?;
    let time = |col: &str| -> Result<DateTime<Utc>, LockError> {
        let us: i64 = row.try_get(col).map_err(lock_err)?;
        DateTime::from_timestamp_micros(us).ok_or_else(|| bad(format!("{col} {us} out of range")))
    };
    Ok(LockInfo {
        owner: row.try_get("owner").map_err(lock_err)?,
        value,
        created_at: time("created_us")?,
        expires_at: time("expires_us")?,
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
    use crate::core::client::postgres::{connect_with, test_support::TestDb};

    /// A fresh lock store in its own database (dropped with the guard); `None` when skipped.
    async fn fresh() -> Option<(PostgresLock, TestDb)> {
        let db = TestDb::create().await?;
        let pool = connect_with(db.options.clone()).await.expect("connect to the test database");
        Some((PostgresLock::open(pool).await.expect("init"), db))
    }

    mod conformance {
        // Returns early (after printing "skipped: no PostgreSQL") when the server is unreachable
        // and ORCH_SKIP_POSTGRES_TESTS=1; otherwise an unreachable server fails the test.
        crate::lock_conformance_tests!({
            let Some((locks, guard)) = super::fresh().await else { return };
            let locks: std::sync::Arc<dyn crate::core::client::LockClient> =
                std::sync::Arc::new(locks);
            std::future::ready((locks, guard))
        });
    }

    /// Two pools on one database (two processes): one acquire wins, the other sees it held;
    /// many racing acquires from both pools have one winner.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_is_shared_across_pools() {
        let Some((a, db)) = fresh().await else { return };
        let b = PostgresLock::open(connect_with(db.options.clone()).await.expect("b"))
            .await
            .expect("init b");
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

        let (a, b) = (Arc::new(a), Arc::new(b));
        let racers: Vec<_> = (0..16)
            .map(|i| {
                let locks = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    locks
                        .acquire_lock(
                            "race",
                            LockValue::Number(i),
                            Duration::from_secs(60),
                            Some(&format!("o{i}")),
                        )
                        .await
                })
            })
            .collect();
        let mut winners = 0;
        for r in racers {
            match r.await.expect("racer panicked") {
                Ok(_) => winners += 1,
                Err(LockError::AlreadyHeld { .. }) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn a_huge_ttl_is_clamped_not_an_error() {
        let Some((locks, _db)) = fresh().await else { return };
        let info = locks
            .acquire_lock("k", LockValue::Number(1), Duration::MAX, None)
            .await
            .expect("acquire");
        assert!(info.expires_at > Utc::now() + chrono::Duration::days(365 * 50), "{info:?}");
    }
}
