//! [`DatabaseClient`](crate::core::client::DatabaseClient) on the embedded SQLite file: the
//! shared [`SqlDatabase`] over the SQLite dialect (see [`super`]).
//!
//! Integers are SQLite `INTEGER`s (i64), times unix seconds, ids and documents `TEXT`.
//! Concurrency: the file is in WAL mode with a busy timeout (see [`super::open_file`]), so
//! several processes may share it; batch writes run in `BEGIN IMMEDIATE` transactions, so a
//! read-then-write never races another writer.

use sqlx::Sqlite;

use crate::core::client::sql::SqlDatabase;

/// The job and batch database on the shared SQLite file.
///
/// Build it with [`SqliteDatabase::open`] over the pool from [`super::open_pool`].
pub type SqliteDatabase = SqlDatabase<Sqlite>;

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Instant};

    use super::*;
    use crate::{
        core::client::{
            database::TriggerPause,
            sql::database::checks::{self, snos_job},
            sqlite::open_pool,
            DatabaseClient,
        },
        types::{
            jobs::{JobItemUpdates, JobStatus, JobType},
            queue::WorkerTriggerType,
        },
    };

    /// A fresh database in its own temp dir (kept alive by the returned guard).
    async fn fresh() -> (Arc<dyn DatabaseClient>, tempfile::TempDir) {
        let (db, dir) = fresh_db().await;
        (db, dir)
    }

    async fn fresh_db() -> (Arc<SqliteDatabase>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = open_pool(dir.path()).await.expect("open pool");
        (Arc::new(SqliteDatabase::open(pool).await.expect("init")), dir)
    }

    /// Two databases on one file: two processes.
    async fn two_pools() -> (Arc<SqliteDatabase>, Arc<SqliteDatabase>, tempfile::TempDir) {
        let (a, dir) = fresh_db().await;
        let b = SqliteDatabase::open(open_pool(dir.path()).await.expect("pool b")).await;
        (a, Arc::new(b.expect("b")), dir)
    }

    mod conformance {
        crate::database_conformance_tests!(super::fresh());
    }

    #[tokio::test]
    async fn the_runner_function_runs_every_check() {
        crate::core::client::conformance::database::database_conformance(fresh).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_pools_racing_updates_lose_nothing() {
        let (a, b, _dir) = two_pools().await;
        checks::racing_updates_lose_nothing(a, b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_pools_racing_creates_and_batch_writes() {
        let (a, b, _dir) = two_pools().await;
        checks::racing_creates_and_batch_writes(a, b).await;
    }

    #[tokio::test]
    async fn values_above_i64_max_are_refused_on_write() {
        checks::values_above_i64_max_are_refused_on_write(&*fresh_db().await.0).await;
    }

    #[tokio::test]
    async fn an_undecodable_document_is_corrupt_and_named() {
        checks::an_undecodable_document_is_corrupt_and_named(&*fresh_db().await.0).await;
    }

    #[tokio::test]
    async fn init_is_idempotent_and_a_closed_pool_is_unavailable() {
        checks::init_is_idempotent_and_a_closed_pool_is_unavailable(&*fresh_db().await.0).await;
    }

    #[tokio::test]
    async fn init_adds_trigger_pauses_to_an_older_database() {
        checks::init_adds_trigger_pauses_to_an_older_database(&*fresh_db().await.0).await;
    }

    /// A pause written through one pool is read through another (another process on the same
    /// file), and by a pool opened after every other closed (a restart).
    #[tokio::test]
    async fn trigger_pauses_are_shared_and_survive_reopening() {
        let (a, b, dir) = two_pools().await;
        let snos = WorkerTriggerType::Stage(JobType::SnosRun);
        let pause = TriggerPause::new(snos, "alice", Some("maintenance".to_owned()));
        assert!(a.insert_trigger_pause(&pause).await.expect("pause"));
        assert_eq!(b.get_trigger_pause(snos).await.expect("b reads"), Some(pause.clone()));
        a.disconnect().await.expect("disconnect");
        b.disconnect().await.expect("disconnect");
        let reopened =
            SqliteDatabase::open(open_pool(dir.path()).await.expect("reopen")).await.expect("init");
        assert_eq!(reopened.get_trigger_pauses().await.expect("list"), vec![pause.clone()]);
        assert_eq!(reopened.delete_trigger_pause(snos).await.expect("resume"), Some(pause));
    }

    /// The StorageCleanup page is read through the partial index `jobs_storage_cleanup` in
    /// index order (no sort, no scan of the settled jobs tagged already).
    #[tokio::test]
    async fn the_storage_cleanup_page_is_served_by_its_index() {
        use crate::{
            core::client::database::JobQuery,
            types::jobs::{JobItem, JobSpecificMetadata, StateUpdateMetadata},
        };

        let (db, _dir) = fresh_db().await;
        for i in 0..300 {
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
        for (min, want) in [(0, vec![7, 57, 107, 157, 207, 257]), (200, vec![207, 257])] {
            let page = db.get_jobs_without_storage_artifacts_tagged(min, 200).await.expect("page");
            assert_eq!(page.iter().map(|j| j.internal_id).collect::<Vec<_>>(), want);
        }
        let mut conn = db.pool().acquire().await.expect("conn");
        let plan = query_plan(&mut conn, JobQuery::storage_cleanup_page(0, 200)).await;
        assert!(plan.iter().any(|l| l.contains("USING INDEX jobs_storage_cleanup")), "{plan:?}");
        assert!(!plan.iter().any(|l| l.contains("TEMP B-TREE")), "sorted: {plan:?}");
    }

    /// `EXPLAIN QUERY PLAN` of the jobs query `query`: one line per plan step.
    async fn query_plan(
        conn: &mut sqlx::SqliteConnection,
        query: crate::core::client::database::JobQuery<'_>,
    ) -> Vec<String> {
        use sqlx::Row;
        let explain =
            crate::core::client::sql::database::job_select::<Sqlite>("EXPLAIN QUERY PLAN ", query)
                .expect("a query");
        let rows = explain.fetch(conn).await.expect("explain");
        rows.iter().map(|row| row.get::<String, _>("detail")).collect()
    }

    /// The buffer and failed-job reads of the stage triggers (several statuses, `LIMIT 1` by
    /// internal id) seek the few open jobs through `(job_type, status, …)` and sort them; they
    /// do not walk every job of the type in `(job_type, internal_id)` order.
    #[tokio::test]
    async fn open_job_reads_seek_the_open_jobs_not_every_job_of_the_type() {
        use crate::core::client::database::JobQuery;

        let (db, _dir) = fresh_db().await;
        for i in 0..400 {
            let mut job = snos_job(i);
            job.status = match i {
                373 => JobStatus::Failed,
                380.. => JobStatus::Created,
                _ => JobStatus::Completed,
            };
            db.create_job(job).await.expect("job");
        }
        let oldest = db
            .get_oldest_job_by_type_excluding_statuses(
                JobType::SnosRun,
                &[JobStatus::Completed],
                None,
            )
            .await
            .expect("oldest open");
        assert_eq!(oldest.map(|j| j.internal_id), Some(373));
        let halting = [JobStatus::Failed, JobStatus::VerificationTimeout];
        let failed = db
            .get_jobs_by_types_and_statuses(&[JobType::SnosRun], &halting, Some(1), None)
            .await
            .expect("failed");
        assert_eq!(failed.iter().map(|j| j.internal_id).collect::<Vec<_>>(), vec![373]);
        let all: Vec<JobStatus> = <JobStatus as strum::IntoEnumIterator>::iter().collect();
        let everything_excluded =
            db.get_oldest_job_by_type_excluding_statuses(JobType::SnosRun, &all, None);
        assert_eq!(everything_excluded.await.expect("none"), None, "nothing is left to match");

        let queries = [
            JobQuery {
                job_types: &[JobType::SnosRun],
                excluded_statuses: &[JobStatus::Completed],
                limit: Some(1),
                ..JobQuery::default()
            },
            JobQuery {
                job_types: &[JobType::SnosRun],
                statuses: &halting,
                orchestrator_version: Some("v"),
                limit: Some(1),
                ..JobQuery::default()
            },
        ];
        let mut conn = db.pool().acquire().await.expect("conn");
        for query in queries {
            let plan = query_plan(&mut conn, query).await;
            assert!(plan.iter().any(|l| l.contains("(job_type=? AND status=?)")), "{plan:?}");
            assert!(!plan.iter().any(|l| l.contains("sqlite_autoindex_jobs_2")), "{plan:?}");
        }
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let (db, dir) = fresh_db().await;
        let job = db.create_job(snos_job(1)).await.expect("create");
        db.disconnect().await.expect("disconnect");
        let db =
            SqliteDatabase::open(open_pool(dir.path()).await.expect("reopen")).await.expect("init");
        assert_eq!(db.get_job_by_id(job.id).await.expect("get"), Some(job));
    }

    #[tokio::test]
    async fn switch_database_opens_a_sibling_file() {
        let (db, dir) = fresh_db().await;
        let job = db.create_job(snos_job(1)).await.expect("create");
        db.switch_database("other_db").await.expect("switch");
        assert!(dir.path().join("other_db.sqlite").exists());
        assert_eq!(db.get_job_by_id(job.id).await.expect("get"), None);
        db.create_job(snos_job(1)).await.expect("same key in the other file");
        assert!(db.switch_database("../escape").await.is_err());
        assert!(db.switch_database("").await.is_err());
    }

    /// Throughput of the job life cycle: `create_job` + 3 `update_job`s per job, sequential.
    /// Run with `cargo test -p orchestrator --lib --release sqlite::database::tests::throughput -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "timing figure, not a check"]
    async fn throughput_create_and_three_updates() {
        let (db, _dir) = fresh().await;
        const JOBS: u64 = 2_000;
        let start = Instant::now();
        for i in 0..JOBS {
            let job = db.create_job(snos_job(i)).await.expect("create");
            let job = db
                .update_job(&job, JobItemUpdates::new().status(JobStatus::LockedForProcessing))
                .await
                .expect("u1");
            let job = db
                .update_job(
                    &job,
                    JobItemUpdates::new().status(JobStatus::PendingVerification).external_id("0x1"),
                )
                .await
                .expect("u2");
            db.update_job(&job, JobItemUpdates::new().status(JobStatus::Completed))
                .await
                .expect("u3");
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "sqlite: {JOBS} x (create_job + 3 update_job) in {secs:.2}s = {:.0} jobs/s ({:.0} writes/s)",
            JOBS as f64 / secs,
            4.0 * JOBS as f64 / secs
        );
    }
}
