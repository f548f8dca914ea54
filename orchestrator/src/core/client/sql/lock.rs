//! [`LockClient`] on a SQL database, for every [`Dialect`]: one row per lock in `locks`.
//!
//! A lock whose `expires_at` is not after now counts as free and is overwritten by the next
//! acquire (no sweeper needed). Every operation is one statement, hence atomic across
//! processes: `acquire_lock` is `INSERT … ON CONFLICT (key) DO UPDATE … WHERE l.expires_at <=
//! now`, so of concurrent acquires exactly one returns a row. What "now" is — this process's
//! clock or the server's — is the dialect's [`Dialect::push_lock_time`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Pool;

use super::{
    dialect::{Dialect, Sql, Value},
    schema,
};
use crate::core::client::lock::{LockClient, LockError, LockInfo, LockRequest, LockValue};

/// Longest TTL stored; longer ones are clamped (stored times have a range).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// TTL locks on a SQL database of dialect `D`.
///
/// Build it with [`SqlLock::open`] over a pool (or [`SqlLock::new`], then [`SqlLock::init`]).
#[derive(Debug)]
pub struct SqlLock<D: sqlx::Database> {
    pool: Pool<D>,
}

// Not derived: the derive would demand `D: Clone`.
impl<D: sqlx::Database> Clone for SqlLock<D> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone() }
    }
}

impl<D: Dialect> SqlLock<D> {
    /// Wraps a pool; call [`Self::init`] before use.
    pub fn new(pool: Pool<D>) -> Self {
        Self { pool }
    }

    /// Wraps a pool and creates the table.
    ///
    /// # Errors
    /// When the table cannot be created.
    pub async fn open(pool: Pool<D>) -> Result<Self, LockError> {
        let lock = Self::new(pool);
        lock.init().await?;
        Ok(lock)
    }

    /// Creates the `locks` table if it does not exist.
    ///
    /// # Errors
    /// `Unavailable` when the database is busy or unreachable, `Other` otherwise.
    pub async fn init(&self) -> Result<(), LockError> {
        D::apply_schema(&self.pool, schema::locks(&D::TYPES)).await.map_err(lock_err::<D>)
    }

    /// Runs `q` and returns its rows.
    async fn fetch(&self, q: Sql<D>) -> Result<Vec<D::Row>, LockError> {
        let mut conn = self.pool.acquire().await.map_err(lock_err::<D>)?;
        q.fetch(&mut conn).await.map_err(lock_err::<D>)
    }

    /// Runs `q` and decodes the lock it returns, if any.
    async fn fetch_lock(&self, q: Sql<D>) -> Result<Option<LockInfo>, LockError> {
        self.fetch(q).await?.first().map(decode::<D>).transpose()
    }
}

#[async_trait]
impl<D: Dialect> LockClient for SqlLock<D> {
    async fn try_acquire_lock(&self, req: LockRequest<'_>) -> Result<Option<LockInfo>, LockError> {
        let LockRequest { key, value, ttl, owner } = req;
        let now = now_ms();
        let value = serde_json::to_string(&value).map_err(LockError::other)?;
        // Insert, or take over a row whose lock has expired; a live lock makes the conflict
        // clause's WHERE false, so nothing is returned.
        let mut q = Sql::<D>::new(
            "INSERT INTO locks AS l (key, value, owner, created_at, expires_at) VALUES (",
        );
        q.bind(key).push(", ").bind(Value::Json(value)).push(", ").bind(owner).push(", ");
        q.lock_time(now, None).push(", ").lock_time(now, Some(ttl.min(MAX_TTL)));
        q.push(
            ") ON CONFLICT (key) DO UPDATE SET value = excluded.value, owner = excluded.owner,
                created_at = excluded.created_at, expires_at = excluded.expires_at
             WHERE l.expires_at <= ",
        );
        q.lock_time(now, None).push(" RETURNING ").push(returning::<D>());
        self.fetch_lock(q).await
    }

    async fn try_release_lock(&self, key: &str, owner: Option<&str>) -> Result<bool, LockError> {
        let mut q = Sql::<D>::new("DELETE FROM locks WHERE ");
        push_held(&mut q, key, owner, now_ms()).push(" RETURNING key");
        Ok(!self.fetch(q).await?.is_empty())
    }

    async fn try_extend_lock(
        &self,
        key: &str,
        owner: Option<&str>,
        ttl: Duration,
    ) -> Result<Option<LockInfo>, LockError> {
        let now = now_ms();
        let mut q = Sql::<D>::new("UPDATE locks SET expires_at = ");
        q.lock_time(now, Some(ttl.min(MAX_TTL))).push(" WHERE ");
        push_held(&mut q, key, owner, now).push(" RETURNING ").push(returning::<D>());
        self.fetch_lock(q).await
    }

    async fn get_lock(&self, key: &str) -> Result<Option<LockInfo>, LockError> {
        let mut q = Sql::<D>::new(format!("SELECT {} FROM locks WHERE ", returning::<D>()));
        push_held(&mut q, key, None, now_ms());
        self.fetch_lock(q).await
    }
}

/// Appends the condition of a live lock `key` (at `now_ms`), held by `owner` if one is given.
fn push_held<'q, D: Dialect>(
    q: &'q mut Sql<D>,
    key: &str,
    owner: Option<&str>,
    now_ms: i64,
) -> &'q mut Sql<D> {
    q.push("key = ").bind(key).push(" AND expires_at > ").lock_time(now_ms, None);
    if let Some(owner) = owner {
        q.push(" AND owner = ").bind(owner);
    }
    q
}

/// Columns returned by every statement that yields a lock (times in microseconds).
fn returning<D: Dialect>() -> String {
    format!(
        "key, value{} AS value, owner, {} AS created_us, {} AS expires_us",
        D::TO_TEXT,
        D::lock_micros("created_at"),
        D::lock_micros("expires_at")
    )
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn decode<D: Dialect>(row: &D::Row) -> Result<LockInfo, LockError> {
    let text = |col: &str| D::text(row, col).map_err(lock_err::<D>);
    let key = text("key")?.unwrap_or_default();
    let bad = |reason: String| LockError::other(format!("corrupt lock {key}: {reason}"));
    let value = text("value")?.ok_or_else(|| bad("no value".to_owned()))?;
    let value: LockValue = serde_json::from_str(&value).map_err(|e| bad(e.to_string()))?;
    let time = |col: &str| -> Result<DateTime<Utc>, LockError> {
        let us = D::int(row, col).map_err(lock_err::<D>)?;
        let us = us.ok_or_else(|| bad(format!("{col} is NULL")))?;
        DateTime::from_timestamp_micros(us).ok_or_else(|| bad(format!("{col} {us} out of range")))
    };
    Ok(LockInfo {
        owner: text("owner")?,
        value,
        created_at: time("created_us")?,
        expires_at: time("expires_us")?,
        key,
    })
}

fn lock_err<D: Dialect>(e: sqlx::Error) -> LockError {
    if D::is_transient(&e) {
        LockError::Unavailable(Box::new(e))
    } else {
        LockError::other(e)
    }
}

/// Checks every dialect runs besides the conformance suite, on lock stores the caller opens.
#[cfg(test)]
pub(crate) mod checks {
    use std::sync::Arc;

    use super::*;

    /// Two clients on one database (two processes): one acquire wins, the other sees it held
    /// and may release it for the owner; many racing acquires from both have one winner.
    pub(crate) async fn a_lock_is_shared_across_clients<D: Dialect>(a: SqlLock<D>, b: SqlLock<D>) {
        a.acquire_lock("k", LockValue::Boolean(true), Duration::from_secs(60), Some("a"))
            .await
            .expect("a takes");
        let err =
            b.acquire_lock("k", LockValue::Boolean(true), Duration::from_secs(60), Some("b")).await;
        assert!(
            matches!(err, Err(LockError::AlreadyHeld { owner: Some(ref o), .. }) if o == "a"),
            "{err:?}"
        );
        b.release_lock("k", Some("a")).await.expect("release through the other client");
        b.acquire_lock("k", LockValue::Boolean(true), Duration::from_secs(60), Some("b"))
            .await
            .expect("b takes");

        let (a, b) = (Arc::new(a), Arc::new(b));
        let racers: Vec<_> = (0..16)
            .map(|i| {
                let locks = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    let owner = format!("o{i}");
                    let ttl = Duration::from_secs(60);
                    locks.acquire_lock("race", LockValue::Number(i), ttl, Some(&owner)).await
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

    /// A TTL beyond what times can hold is clamped to a century.
    pub(crate) async fn a_huge_ttl_is_clamped_not_an_error(locks: &dyn LockClient) {
        let info = locks
            .acquire_lock("k", LockValue::Number(1), Duration::MAX, None)
            .await
            .expect("acquire");
        assert!(info.expires_at > Utc::now() + chrono::Duration::days(365 * 50), "{info:?}");
        assert!(locks.is_locked("k").await.expect("is_locked"));
    }
}
