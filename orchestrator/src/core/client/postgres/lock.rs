//! [`LockClient`](crate::core::client::LockClient) on PostgreSQL: the shared [`SqlLock`] over
//! the PostgreSQL dialect (see [`super`]). Times come from the server's clock (`now()`), so
//! processes on hosts whose clocks disagree still agree on expiry.

use sqlx::Postgres;

use crate::core::client::sql::SqlLock;

/// TTL locks on PostgreSQL.
///
/// Build it with [`PostgresLock::open`] over the pool from [`super::open_pool`].
pub type PostgresLock = SqlLock<Postgres>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::client::{
        postgres::{connect_with, test_support::TestDb},
        sql::lock::checks,
    };

    /// A fresh lock store in its own database (dropped with the guard); `None` when skipped.
    async fn fresh() -> Option<(PostgresLock, TestDb)> {
        let db = TestDb::create().await?;
        let pool = connect_with(db.options.clone()).await.expect("connect to the test database");
        Some((PostgresLock::open(pool).await.expect("init"), db))
    }

    mod conformance {
        // Returns early (after printing "skipped: no PostgreSQL") with
        // ORCH_SKIP_POSTGRES_TESTS=1; otherwise an unreachable server fails the test.
        crate::lock_conformance_tests!({
            let Some((locks, guard)) = super::fresh().await else { return };
            let locks: std::sync::Arc<dyn crate::core::client::LockClient> =
                std::sync::Arc::new(locks);
            std::future::ready((locks, guard))
        });
    }

    /// Two pools on one database: two processes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_is_shared_across_pools() {
        let Some((a, db)) = fresh().await else { return };
        let b = PostgresLock::open(connect_with(db.options.clone()).await.expect("b"))
            .await
            .expect("init b");
        checks::a_lock_is_shared_across_clients(a, b).await;
    }

    #[tokio::test]
    async fn a_huge_ttl_is_clamped_not_an_error() {
        let Some((locks, _db)) = fresh().await else { return };
        checks::a_huge_ttl_is_clamped_not_an_error(&locks).await;
    }
}
