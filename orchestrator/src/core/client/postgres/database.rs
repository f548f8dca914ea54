//! [`DatabaseClient`](crate::core::client::DatabaseClient) on PostgreSQL: the shared
//! [`SqlDatabase`] over the PostgreSQL dialect (see [`super`]).
//!
//! Ids are `UUID`, documents `JSONB`, integers `BIGINT`, times `TIMESTAMPTZ`. A batch write
//! locks the batch row first (`SELECT … FOR UPDATE`), and the schema is created under an
//! advisory lock, so several processes may share one database.

use sqlx::Postgres;

use crate::core::client::sql::SqlDatabase;

/// The job and batch database on PostgreSQL.
///
/// Build it with [`PostgresDatabase::open`] over the pool from [`super::open_pool`].
pub type PostgresDatabase = SqlDatabase<Postgres>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sqlx::AssertSqlSafe;

    use super::*;
    use crate::core::client::{
        postgres::{connect_with, test_support::TestDb},
        sql::database::checks::{self, snos_job},
        DatabaseClient,
    };

    /// A fresh database (dropped with the returned guard); `None` when skipped.
    async fn fresh_db() -> Option<(Arc<PostgresDatabase>, TestDb)> {
        let test_db = TestDb::create().await?;
        let db = open(&test_db).await;
        Some((db, test_db))
    }

    /// Another client of the test database: another process.
    async fn open(test_db: &TestDb) -> Arc<PostgresDatabase> {
        let pool =
            connect_with(test_db.options.clone()).await.expect("connect to the test database");
        Arc::new(PostgresDatabase::open(pool).await.expect("create the schema"))
    }

    mod conformance {
        // Each test returns early (after printing "skipped: no PostgreSQL") with
        // ORCH_SKIP_POSTGRES_TESTS=1; otherwise an unreachable server fails it.
        crate::database_conformance_tests!({
            let Some((db, guard)) = super::fresh_db().await else { return };
            let db: std::sync::Arc<dyn crate::core::client::DatabaseClient> = db;
            std::future::ready((db, guard))
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_pools_racing_updates_lose_nothing() {
        let Some((a, test_db)) = fresh_db().await else { return };
        checks::racing_updates_lose_nothing(a, open(&test_db).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_pools_racing_creates_and_batch_writes() {
        let Some((a, test_db)) = fresh_db().await else { return };
        checks::racing_creates_and_batch_writes(a, open(&test_db).await).await;
    }

    #[tokio::test]
    async fn values_above_i64_max_are_refused_on_write() {
        let Some((db, _guard)) = fresh_db().await else { return };
        checks::values_above_i64_max_are_refused_on_write(&*db).await;
    }

    #[tokio::test]
    async fn an_undecodable_document_is_corrupt_and_named() {
        let Some((db, _guard)) = fresh_db().await else { return };
        checks::an_undecodable_document_is_corrupt_and_named(&*db).await;
    }

    #[tokio::test]
    async fn init_is_idempotent_and_a_closed_pool_is_unavailable() {
        let Some((db, _guard)) = fresh_db().await else { return };
        checks::init_is_idempotent_and_a_closed_pool_is_unavailable(&*db).await;
    }

    #[tokio::test]
    async fn init_adds_trigger_pauses_to_an_older_database() {
        let Some((db, _guard)) = fresh_db().await else { return };
        checks::init_adds_trigger_pauses_to_an_older_database(&*db).await;
    }

    /// The StorageCleanup page can be read through the partial index `jobs_storage_cleanup`
    /// (the planner takes it once a sequential scan is ruled out, as on a large table).
    #[tokio::test]
    async fn the_storage_cleanup_page_is_served_by_its_index() {
        use crate::{
            core::client::database::JobQuery,
            types::jobs::{JobItem, JobSpecificMetadata, JobStatus, JobType, StateUpdateMetadata},
        };

        let Some((db, _guard)) = fresh_db().await else { return };
        for i in 0..200 {
            let mut m = StateUpdateMetadata::for_batch(i);
            if i % 50 != 7 {
                m.storage_artifacts_tagged_at = Some(crate::types::jobs::now_secs());
            }
            let mut job =
                JobItem::new(JobType::StateTransition, i, JobSpecificMetadata::StateUpdate(m));
            job.status = JobStatus::Completed;
            db.create_job(job).await.expect("settled job");
            db.create_job(snos_job(i)).await.expect("snos job");
        }
        let page = db.get_jobs_without_storage_artifacts_tagged(0, 200).await.expect("page");
        assert_eq!(page.iter().map(|j| j.internal_id).collect::<Vec<_>>(), [7, 57, 107, 157]);
        let mut conn = db.pool().acquire().await.expect("conn");
        sqlx::query("ANALYZE jobs").execute(&mut *conn).await.expect("analyze");
        sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await.expect("set");
        let plan = query_plan(&mut conn, JobQuery::storage_cleanup_page(0, 200)).await;
        assert!(plan.iter().any(|l| l.contains("jobs_storage_cleanup")), "{plan:#?}");
    }

    /// `EXPLAIN` of the jobs query `query`: one line per plan line.
    async fn query_plan(
        conn: &mut sqlx::PgConnection,
        query: crate::core::client::database::JobQuery<'_>,
    ) -> Vec<String> {
        use sqlx::Row;
        let explain = crate::core::client::sql::database::job_select::<Postgres>("EXPLAIN ", query)
            .expect("a query");
        let rows = explain.fetch(conn).await.expect("explain");
        rows.iter().map(|row| row.get::<String, _>(0)).collect()
    }

    /// The orchestrator's sessions run without JIT compilation, and a one-value list is an
    /// equality, so the latest job of a type is read backwards in an index, not sorted.
    #[tokio::test]
    async fn no_jit_and_the_latest_job_of_a_type_is_an_index_read() {
        use sqlx::Row;

        use crate::{
            core::client::database::JobQuery,
            types::{batch::SortOrder, jobs::JobType},
        };

        let Some((db, _guard)) = fresh_db().await else { return };
        for i in 0..200 {
            db.create_job(snos_job(i)).await.expect("job");
        }
        let latest = db.get_latest_job_by_type(JobType::SnosRun, None).await.expect("latest");
        assert_eq!(latest.map(|j| j.internal_id), Some(199));
        let mut conn = db.pool().acquire().await.expect("conn");
        let jit: String = sqlx::query("SHOW jit").fetch_one(&mut *conn).await.expect("jit").get(0);
        assert_eq!(jit, "off");
        sqlx::query("ANALYZE jobs").execute(&mut *conn).await.expect("analyze");
        sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await.expect("set");
        let query = JobQuery {
            job_types: &[JobType::SnosRun],
            sort: SortOrder::Descending,
            limit: Some(1),
            ..JobQuery::default()
        };
        let plan = query_plan(&mut conn, query).await;
        assert!(plan.iter().any(|l| l.contains("Index Scan Backward")), "{plan:#?}");
        assert!(!plan.iter().any(|l| l.contains("Sort")), "sorted: {plan:#?}");
    }

    #[tokio::test]
    async fn switch_database_creates_and_uses_a_sibling_database() {
        let Some((db, guard)) = fresh_db().await else { return };
        let job = db.create_job(snos_job(1)).await.expect("create");
        let other = format!("{}_other", guard.name);
        db.switch_database(&other).await.expect("switch");
        assert_eq!(db.get_job_by_id(job.id).await.expect("get"), None);
        db.create_job(snos_job(1)).await.expect("same key in the other database");
        assert!(db.switch_database("bad name; DROP").await.is_err());
        db.switch_database(&guard.name).await.expect("switch back");
        assert_eq!(db.get_job_by_id(job.id).await.expect("get"), Some(job));
        let admin = connect_with(guard.options.clone()).await.expect("admin");
        db.disconnect().await.expect("disconnect");
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE \"{other}\" WITH (FORCE)")))
            .execute(&admin)
            .await
            .expect("drop the sibling");
    }
}
