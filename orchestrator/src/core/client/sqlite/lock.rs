//! [`LockClient`](crate::core::client::LockClient) on the embedded SQLite file: the shared
//! [`SqlLock`] over the SQLite dialect (see [`super`]). Times are unix milliseconds of this
//! process's clock.

use sqlx::Sqlite;

use crate::core::client::sql::SqlLock;

/// TTL locks on the shared SQLite file.
///
/// Build it with [`SqliteLock::open`] over the pool from [`super::open_pool`].
pub type SqliteLock = SqlLock<Sqlite>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::client::{sql::lock::checks, sqlite::open_pool, LockClient};

    /// A fresh lock store in its own temp dir (kept alive by the returned guard).
    async fn fresh() -> (Arc<dyn LockClient>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = open_pool(dir.path()).await.expect("open pool");
        (Arc::new(SqliteLock::open(pool).await.expect("init")), dir)
    }

    mod conformance {
        crate::lock_conformance_tests!(super::fresh());
    }

    /// Two pools on one file: two processes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_is_shared_across_pools() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = SqliteLock::open(open_pool(dir.path()).await.expect("a")).await.expect("init a");
        let b = SqliteLock::open(open_pool(dir.path()).await.expect("b")).await.expect("init b");
        checks::a_lock_is_shared_across_clients(a, b).await;
    }

    #[tokio::test]
    async fn a_huge_ttl_is_clamped_not_an_error() {
        let (locks, _dir) = fresh().await;
        checks::a_huge_ttl_is_clamped_not_an_error(&*locks).await;
    }
}
