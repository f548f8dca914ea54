//! Conformance checks of [`DatabaseClient`]: each takes a fresh, empty database.
//!
//! Run them with [`crate::database_conformance_tests!`] (one test per check) or
//! [`database_conformance`].

use orchestrator_utils::Retryable;
use std::{collections::BTreeSet, future::Future, sync::Arc};

use chrono::Utc;

use super::Fixture;
use crate::{
    core::client::database::{DatabaseClient, DatabaseError, TriggerPause},
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus, AggregatorBatchUpdates,
            SnosBatch, SnosBatchQuery, SnosBatchStatus, SnosBatchUpdates, SortOrder,
        },
        jobs::{
            AggregatorMetadata, DaMetadata, ExternalId, JobItem, JobItemUpdates,
            JobSpecificMetadata, JobStatus, JobType, ProvingMetadata, SettlementContext,
            SettlementContextData, SnosMetadata, StateUpdateMetadata,
        },
        queue::WorkerTriggerType,
        ORCHESTRATOR_VERSION,
    },
};

/// Generates one `#[tokio::test]` per database conformance check.
///
/// `$make` is an expression evaluated afresh in each test, yielding a future of a fresh, empty
/// `Arc<dyn DatabaseClient>` or of an `(Arc<dyn DatabaseClient>, guard)` pair:
///
/// ```ignore
/// mod conformance {
///     orchestrator::database_conformance_tests!(async { my_backend().await });
/// }
/// ```
#[macro_export]
macro_rules! database_conformance_tests {
    ($make:expr) => {
        $crate::database_conformance_tests!(@list tests [$make]);
    };
    (@list $mode:ident [$($arg:tt)*]) => {
        $crate::database_conformance_tests!(@$mode [$($arg)*] {
            health_check_answers,
            created_job_reads_back,
            duplicate_create_fails_and_changes_nothing,
            same_internal_id_of_other_types_coexist,
            jobs_by_internal_ids_are_filtered_and_ascending,
            update_applies_given_fields_and_bumps_version,
            update_leaves_fields_it_does_not_name,
            update_with_outdated_version_fails_and_changes_nothing,
            update_of_missing_job_fails,
            empty_update_is_rejected,
            concurrent_updates_of_one_version_have_one_winner,
            latest_job_by_type_is_highest_internal_id,
            latest_job_by_type_and_status,
            jobs_without_successor,
            jobs_after_internal_id,
            jobs_by_types_and_statuses,
            jobs_without_storage_artifacts_tagged,
            jobs_between_internal_ids,
            oldest_job_excluding_statuses,
            jobs_by_block_number,
            jobs_by_status,
            snos_batch_create_and_latest,
            snos_batch_query_filters_and_sorts,
            snos_batch_unique_constraints,
            snos_batch_status_update_by_index,
            snos_batch_update_grows_and_shrinks_lookups,
            snos_batch_update_or_create_inserts_then_replaces,
            snos_batches_without_jobs,
            snos_batches_by_aggregator_index,
            aggregator_batch_create_latest_oldest,
            aggregator_batch_query_filters_and_sorts,
            aggregator_batch_unique_constraints,
            aggregator_batch_updates,
            aggregator_batch_update_or_create_inserts_then_replaces,
            aggregator_batch_for_block,
            lookups_track_both_batch_kinds,
            trigger_pauses_are_stored_listed_and_removed,
            pausing_a_paused_trigger_keeps_the_first_pause,
            concurrent_pauses_of_one_trigger_have_one_winner,
        });
    };
    (@tests [$make:expr] { $($name:ident),* $(,)? }) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture: $crate::core::client::conformance::Fixture<
                    dyn $crate::core::client::DatabaseClient,
                > = ($make).await.into();
                $crate::core::client::conformance::run_check(
                    stringify!($name),
                    $crate::core::client::conformance::database::$name(fixture.client.clone()),
                )
                .await;
                drop(fixture);
            }
        )*
    };
    (@run [$make:expr] { $($name:ident),* $(,)? }) => {
        $(
            let fixture: $crate::core::client::conformance::Fixture<
                dyn $crate::core::client::DatabaseClient,
            > = ($make).await.into();
            $crate::core::client::conformance::run_check(
                stringify!($name),
                $crate::core::client::conformance::database::$name(fixture.client.clone()),
            )
            .await;
            drop(fixture);
        )*
    };
}

/// Runs every database check, each on a fresh database from `make`.
///
/// # Panics
/// On the first violated check, naming it.
pub async fn database_conformance<F, Fut, T>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
    T: Into<Fixture<dyn DatabaseClient>>,
{
    crate::database_conformance_tests!(@list run [make()]);
}

type Db = Arc<dyn DatabaseClient>;

const OLD_VERSION: &str = "0.0.1-old";

// ---- fixtures ----

/// A `Created` job of this type whose metadata points at blocks `10 * internal_id ..`.
fn job(job_type: JobType, internal_id: u64) -> JobItem {
    let block = internal_id * 10;
    let specific = match job_type {
        JobType::SnosRun => JobSpecificMetadata::Snos(SnosMetadata {
            snos_batch_index: internal_id,
            start_block: block,
            end_block: block + 9,
            num_blocks: 10,
            ..Default::default()
        }),
        JobType::ProofCreation | JobType::ProofRegistration => {
            JobSpecificMetadata::Proving(ProvingMetadata {
                block_number: block,
                ..Default::default()
            })
        }
        JobType::DataSubmission => {
            JobSpecificMetadata::Da(DaMetadata { block_number: block, ..Default::default() })
        }
        JobType::StateTransition => JobSpecificMetadata::StateUpdate(StateUpdateMetadata {
            snos_output_path: None,
            program_output_path: None,
            blob_data_path: None,
            da_segment_path: None,
            tx_hash: None,
            tx_nonce: None,
            tx_attempts: Vec::new(),
            context: SettlementContext::Batch(SettlementContextData {
                to_settle: internal_id,
                last_failed: None,
            }),
            storage_artifacts_tagged_at: None,
        }),
        JobType::Aggregator => JobSpecificMetadata::Aggregator(AggregatorMetadata {
            batch_num: internal_id,
            ..Default::default()
        }),
    };
    JobItem::new(job_type, internal_id, specific)
}

fn with_status(mut job: JobItem, status: JobStatus) -> JobItem {
    job.status = status;
    job
}

fn with_version(mut job: JobItem, version: &str) -> JobItem {
    job.metadata.common.orchestrator_version = version.to_owned();
    job
}

async fn create(db: &Db, job: JobItem) -> JobItem {
    db.create_job(job).await.expect("create_job")
}

async fn create_all(db: &Db, jobs: impl IntoIterator<Item = JobItem>) {
    for j in jobs {
        create(db, j).await;
    }
}

fn ids(jobs: &[JobItem]) -> Vec<u64> {
    jobs.iter().map(|j| j.internal_id).collect()
}

fn keyed(jobs: &[JobItem]) -> BTreeSet<(String, u64)> {
    jobs.iter().map(|j| (j.job_type.to_string(), j.internal_id)).collect()
}

fn snos_batch(index: u64, start: u64, end: u64) -> SnosBatch {
    let mut b = SnosBatch::new(index, None, start, "0.14.2", Default::default());
    b.end_block = end;
    b.num_blocks = 0; // the database recomputes it
    b
}

fn agg_batch(index: u64, start: u64, end: u64) -> AggregatorBatch {
    let mut b = AggregatorBatch::new(index, start, "0.14.2");
    b.end_block = end;
    b.num_blocks = 0; // the database recomputes it
    b
}

fn batch_indexes<B>(batches: &[B], index: impl Fn(&B) -> u64) -> Vec<u64> {
    batches.iter().map(index).collect()
}

async fn snos_lookup(db: &Db, block: u64) -> Option<u64> {
    db.get_block_batch_lookup(block).await.expect("lookup").and_then(|l| l.snos_batch_index)
}

async fn agg_lookup(db: &Db, block: u64) -> Option<u64> {
    db.get_block_batch_lookup(block).await.expect("lookup").and_then(|l| l.aggregator_batch_index)
}

// ---- jobs ----

/// `health_check` succeeds on a working database.
pub async fn health_check_answers(db: Db) {
    db.health_check().await.expect("health_check");
}

/// A created job reads back equal by id and by (type, internal id), its timestamps to the
/// millisecond; absent ones are `None`.
pub async fn created_job_reads_back(db: Db) {
    let mut j = job(JobType::SnosRun, 1);
    let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).expect("time");
    j.created_at = at(1_767_323_045_123);
    j.updated_at = at(1_767_323_045_987);
    j.metadata.common.process_started_at = Some(at(1_767_323_046_001));
    assert_eq!(db.create_job(j.clone()).await.expect("create"), j);
    let read = db.get_job_by_id(j.id).await.expect("by id").expect("stored");
    assert_eq!(read.created_at.timestamp_millis(), 1_767_323_045_123, "created_at ms");
    assert_eq!(read.updated_at.timestamp_millis(), 1_767_323_045_987, "updated_at ms");
    assert_eq!(
        read.metadata.common.process_started_at.map(|t| t.timestamp_millis()),
        Some(1_767_323_046_001)
    );
    assert_eq!(db.get_job_by_id(j.id).await.expect("by id"), Some(j.clone()));
    assert_eq!(
        db.get_job_by_internal_id_and_type(1, JobType::SnosRun).await.expect("by iid"),
        Some(j.clone())
    );
    assert_eq!(
        db.get_job_by_internal_id_and_type(1, JobType::ProofCreation).await.expect("other type"),
        None
    );
    assert_eq!(
        db.get_job_by_internal_id_and_type(2, JobType::SnosRun).await.expect("other iid"),
        None
    );
    assert_eq!(db.get_job_by_id(uuid::Uuid::new_v4()).await.expect("missing id"), None);
    assert_eq!(
        db.get_job_by_internal_id_and_type(u64::MAX, JobType::SnosRun).await.expect("huge iid"),
        None
    );
}

/// A second create of the same (type, internal id) fails with `ItemAlreadyExists` and leaves
/// the first job untouched.
pub async fn duplicate_create_fails_and_changes_nothing(db: Db) {
    let first = create(&db, job(JobType::SnosRun, 7)).await;
    let second = with_status(job(JobType::SnosRun, 7), JobStatus::Completed);
    let err = db.create_job(second.clone()).await.expect_err("duplicate must fail");
    assert!(
        matches!(
            err,
            DatabaseError::ItemAlreadyExists { job_type: JobType::SnosRun, internal_id: 7 }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        db.get_job_by_internal_id_and_type(7, JobType::SnosRun).await.expect("get"),
        Some(first)
    );
    assert_eq!(db.get_job_by_id(second.id).await.expect("get second"), None);
}

/// The uniqueness is per type: the same internal id may exist once per job type.
pub async fn same_internal_id_of_other_types_coexist(db: Db) {
    for t in [
        JobType::SnosRun,
        JobType::ProofCreation,
        JobType::DataSubmission,
        JobType::StateTransition,
    ] {
        create(&db, job(t, 3)).await;
    }
    let all = db.get_jobs_by_types_and_statuses(&[], &[], None, None).await.expect("all");
    assert_eq!(all.len(), 4);
}

/// `get_jobs_by_internal_ids_and_type` returns only matching jobs, by internal id ascending.
pub async fn jobs_by_internal_ids_are_filtered_and_ascending(db: Db) {
    create_all(&db, [5, 1, 3, 10].map(|i| job(JobType::SnosRun, i))).await;
    create(&db, job(JobType::ProofCreation, 3)).await;
    let got = db
        .get_jobs_by_internal_ids_and_type(&[10, 3, 99, 1], JobType::SnosRun)
        .await
        .expect("query");
    assert_eq!(ids(&got), vec![1, 3, 10]);
    assert!(got.iter().all(|j| j.job_type == JobType::SnosRun));
    assert!(db
        .get_jobs_by_internal_ids_and_type(&[], JobType::SnosRun)
        .await
        .expect("empty")
        .is_empty());
}

/// An update sets the named fields, increments the version, sets `updated_at`, and returns
/// what is stored.
pub async fn update_applies_given_fields_and_bumps_version(db: Db) {
    let j = create(&db, job(JobType::SnosRun, 1)).await;
    let v1 = db
        .update_job(
            &j,
            JobItemUpdates::new().status(JobStatus::LockedForProcessing).external_id("0xabc"),
        )
        .await
        .expect("update 1");
    assert_eq!(v1.version, 1);
    assert_eq!(v1.status, JobStatus::LockedForProcessing);
    assert_eq!(v1.external_id, ExternalId::from("0xabc"));
    assert_eq!(v1.metadata, j.metadata);
    assert_eq!(
        (v1.id, v1.internal_id, v1.job_type, v1.created_at),
        (j.id, j.internal_id, j.job_type, j.created_at)
    );
    assert!(v1.updated_at >= j.updated_at);
    assert!(v1.updated_at <= Utc::now());
    assert_eq!(db.get_job_by_id(j.id).await.expect("get"), Some(v1.clone()));

    let mut metadata = v1.metadata.clone();
    metadata.common.process_attempt_no = 1;
    metadata.common.process_started_at = Some(crate::types::jobs::now_ms());
    let v2 = db
        .update_job(&v1, JobItemUpdates::new().metadata(metadata.clone()))
        .await
        .expect("update 2");
    assert_eq!(v2.version, 2);
    assert_eq!(v2.metadata, metadata);
    assert_eq!(v2.status, JobStatus::LockedForProcessing);
    assert_eq!(v2.external_id, ExternalId::from("0xabc"));
    assert_eq!(db.get_job_by_id(j.id).await.expect("get"), Some(v2));
}

/// Fields absent from the update keep their stored value, whatever the caller's copy holds;
/// numeric external ids round-trip.
pub async fn update_leaves_fields_it_does_not_name(db: Db) {
    let stored = create(&db, job(JobType::ProofCreation, 2)).await;
    let mut local = stored.clone();
    local.metadata.common.record_failure("local only");
    local.status = JobStatus::Failed;
    let next = db
        .update_job(&local, JobItemUpdates::new().external_id(ExternalId::Number(42)))
        .await
        .expect("update");
    assert_eq!(next.metadata, stored.metadata);
    assert_eq!(next.status, stored.status);
    assert_eq!(next.external_id, ExternalId::Number(42));
    assert_eq!(db.get_job_by_id(stored.id).await.expect("get"), Some(next));
}

/// An update carrying an outdated version fails with `UpdateFailed` (retryable) and changes
/// nothing.
pub async fn update_with_outdated_version_fails_and_changes_nothing(db: Db) {
    let v0 = create(&db, job(JobType::SnosRun, 1)).await;
    let v1 = db
        .update_job(&v0, JobItemUpdates::new().status(JobStatus::LockedForProcessing))
        .await
        .expect("update");
    let err = db
        .update_job(&v0, JobItemUpdates::new().status(JobStatus::Failed))
        .await
        .expect_err("stale");
    assert!(
        matches!(err, DatabaseError::UpdateFailed { id, version: 0 } if id == v0.id),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(db.get_job_by_id(v0.id).await.expect("get"), Some(v1));
}

/// Updating a job that does not exist fails with `UpdateFailed`.
pub async fn update_of_missing_job_fails(db: Db) {
    let ghost = job(JobType::SnosRun, 1);
    let err = db
        .update_job(&ghost, JobItemUpdates::new().status(JobStatus::Completed))
        .await
        .expect_err("missing");
    assert!(matches!(err, DatabaseError::UpdateFailed { .. }), "{err:?}");
    assert_eq!(db.get_job_by_id(ghost.id).await.expect("get"), None);
}

/// An update with no fields fails with `NoUpdateFound` and does not bump the version.
pub async fn empty_update_is_rejected(db: Db) {
    let j = create(&db, job(JobType::SnosRun, 1)).await;
    let err = db.update_job(&j, JobItemUpdates::new()).await.expect_err("empty");
    assert!(matches!(err, DatabaseError::NoUpdateFound(id) if id == j.id), "{err:?}");
    assert_eq!(db.get_job_by_id(j.id).await.expect("get").map(|j| j.version), Some(0));
}

/// Two concurrent updates from the same version: exactly one succeeds, every round.
pub async fn concurrent_updates_of_one_version_have_one_winner(db: Db) {
    let j = create(&db, job(JobType::SnosRun, 1)).await;
    const ROUNDS: i32 = 10;
    for round in 0..ROUNDS {
        let current = db.get_job_by_id(j.id).await.expect("get").expect("job exists");
        assert_eq!(current.version, round);
        let racers: Vec<_> = [JobStatus::LockedForProcessing, JobStatus::PendingVerification]
            .into_iter()
            .map(|status| {
                let (db, current) = (db.clone(), current.clone());
                tokio::spawn(async move {
                    db.update_job(&current, JobItemUpdates::new().status(status)).await
                })
            })
            .collect();
        let mut wins = 0;
        for racer in racers {
            match racer.await.expect("racer panicked") {
                Ok(next) => {
                    wins += 1;
                    assert_eq!(next.version, round + 1);
                }
                Err(DatabaseError::UpdateFailed { .. }) => {}
                Err(e) => panic!("unexpected error in round {round}: {e:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one concurrent update must win");
    }
    assert_eq!(db.get_job_by_id(j.id).await.expect("get").map(|j| j.version), Some(ROUNDS));
}

/// The latest job is the highest internal id (numerically), optionally of one orchestrator
/// version.
pub async fn latest_job_by_type_is_highest_internal_id(db: Db) {
    assert_eq!(db.get_latest_job_by_type(JobType::SnosRun, None).await.expect("empty"), None);
    create_all(&db, [9, 10, 2].map(|i| job(JobType::SnosRun, i))).await;
    create(&db, job(JobType::ProofCreation, 50)).await;
    let latest = |v: Option<&'static str>| {
        let db = db.clone();
        async move {
            db.get_latest_job_by_type(JobType::SnosRun, v)
                .await
                .expect("latest")
                .map(|j| j.internal_id)
        }
    };
    assert_eq!(latest(None).await, Some(10));
    create(&db, with_version(job(JobType::SnosRun, 11), OLD_VERSION)).await;
    assert_eq!(latest(None).await, Some(11));
    assert_eq!(latest(Some(ORCHESTRATOR_VERSION)).await, Some(10));
    assert_eq!(latest(Some(OLD_VERSION)).await, Some(11));
    assert_eq!(latest(Some("9.9.9-none")).await, None);
}

/// The latest job of a type and status.
pub async fn latest_job_by_type_and_status(db: Db) {
    create(&db, with_status(job(JobType::SnosRun, 1), JobStatus::Completed)).await;
    create(&db, with_status(job(JobType::SnosRun, 2), JobStatus::Completed)).await;
    create(&db, job(JobType::SnosRun, 3)).await;
    create(
        &db,
        with_version(with_status(job(JobType::SnosRun, 4), JobStatus::Completed), OLD_VERSION),
    )
    .await;
    create(&db, with_status(job(JobType::ProofCreation, 9), JobStatus::Completed)).await;
    let latest = |s: JobStatus, v: Option<&'static str>| {
        let db = db.clone();
        async move {
            db.get_latest_job_by_type_and_status(JobType::SnosRun, s, v)
                .await
                .expect("latest")
                .map(|j| j.internal_id)
        }
    };
    assert_eq!(latest(JobStatus::Completed, None).await, Some(4));
    assert_eq!(latest(JobStatus::Completed, Some(ORCHESTRATOR_VERSION)).await, Some(2));
    assert_eq!(latest(JobStatus::Created, None).await, Some(3));
    assert_eq!(latest(JobStatus::Failed, None).await, None);
}

/// Jobs of type A in a status, from a minimum internal id, with no job of type B (in any
/// status) at the same internal id, ascending.
pub async fn jobs_without_successor(db: Db) {
    for i in 1..=5 {
        create(&db, with_status(job(JobType::SnosRun, i), JobStatus::Completed)).await;
    }
    create(&db, job(JobType::SnosRun, 6)).await;
    create(
        &db,
        with_version(with_status(job(JobType::SnosRun, 7), JobStatus::Completed), OLD_VERSION),
    )
    .await;
    create(&db, job(JobType::ProofCreation, 2)).await;
    create(&db, with_status(job(JobType::ProofCreation, 4), JobStatus::Failed)).await;
    create(&db, job(JobType::DataSubmission, 5)).await;
    let query = |v: Option<&'static str>, min: u64| {
        let db = db.clone();
        async move {
            let jobs = db
                .get_jobs_without_successor(
                    JobType::SnosRun,
                    JobStatus::Completed,
                    JobType::ProofCreation,
                    v,
                    min,
                )
                .await
                .expect("query");
            assert!(jobs
                .iter()
                .all(|j| j.job_type == JobType::SnosRun && j.status == JobStatus::Completed));
            ids(&jobs)
        }
    };
    assert_eq!(query(None, 0).await, vec![1, 3, 5, 7]);
    assert_eq!(query(Some(ORCHESTRATOR_VERSION), 0).await, vec![1, 3, 5]);
    assert_eq!(query(None, 3).await, vec![3, 5, 7]);
    assert_eq!(query(None, 8).await, Vec::<u64>::new());
    assert_eq!(query(None, u64::MAX).await, Vec::<u64>::new());
}

/// Jobs of a type and status with internal id strictly after the given one, ascending.
pub async fn jobs_after_internal_id(db: Db) {
    for i in [5, 1, 4, 2, 3] {
        create(&db, with_status(job(JobType::SnosRun, i), JobStatus::Completed)).await;
    }
    create(&db, job(JobType::SnosRun, 6)).await;
    create(
        &db,
        with_version(with_status(job(JobType::SnosRun, 7), JobStatus::Completed), OLD_VERSION),
    )
    .await;
    create(&db, with_status(job(JobType::ProofCreation, 8), JobStatus::Completed)).await;
    let after = |id: u64, v: Option<&'static str>| {
        let db = db.clone();
        async move {
            ids(&db
                .get_jobs_after_internal_id_by_job_type(
                    JobType::SnosRun,
                    JobStatus::Completed,
                    id,
                    v,
                )
                .await
                .expect("query"))
        }
    };
    assert_eq!(after(2, None).await, vec![3, 4, 5, 7]);
    assert_eq!(after(2, Some(ORCHESTRATOR_VERSION)).await, vec![3, 4, 5]);
    assert_eq!(after(0, Some(OLD_VERSION)).await, vec![7]);
    assert_eq!(after(7, None).await, Vec::<u64>::new());
    assert_eq!(after(u64::MAX, None).await, Vec::<u64>::new());
}

/// Empty type / status lists match anything; results ascend by internal id; the limit and
/// the version filter apply.
pub async fn jobs_by_types_and_statuses(db: Db) {
    create(&db, job(JobType::SnosRun, 4)).await;
    create(&db, with_status(job(JobType::SnosRun, 1), JobStatus::Completed)).await;
    create(&db, job(JobType::DataSubmission, 3)).await;
    create(&db, with_status(job(JobType::ProofCreation, 2), JobStatus::Failed)).await;
    create(&db, with_version(job(JobType::SnosRun, 5), OLD_VERSION)).await;
    let q = |types: Vec<JobType>,
             statuses: Vec<JobStatus>,
             limit: Option<u64>,
             v: Option<&'static str>| {
        let db = db.clone();
        async move {
            ids(&db
                .get_jobs_by_types_and_statuses(&types, &statuses, limit, v)
                .await
                .expect("query"))
        }
    };
    assert_eq!(q(vec![], vec![], None, None).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(q(vec![], vec![], Some(2), None).await, vec![1, 2]);
    assert_eq!(q(vec![], vec![], None, Some(ORCHESTRATOR_VERSION)).await, vec![1, 2, 3, 4]);
    assert_eq!(q(vec![JobType::SnosRun], vec![], None, None).await, vec![1, 4, 5]);
    assert_eq!(q(vec![], vec![JobStatus::Created], None, None).await, vec![3, 4, 5]);
    assert_eq!(
        q(vec![JobType::SnosRun, JobType::DataSubmission], vec![JobStatus::Created], Some(2), None)
            .await,
        vec![3, 4]
    );
    assert_eq!(q(vec![JobType::Aggregator], vec![], None, None).await, Vec::<u64>::new());
    assert_eq!(
        q(vec![], vec![JobStatus::Completed, JobStatus::Failed], None, None).await,
        vec![1, 2]
    );
    assert_eq!(q(vec![], vec![], Some(0), None).await, Vec::<u64>::new());
}

/// Completed StateTransition jobs whose artifacts are not tagged, from a minimum internal id,
/// ascending, limited: the pages of the StorageCleanup trigger.
pub async fn jobs_without_storage_artifacts_tagged(db: Db) {
    let tag = |mut j: JobItem| {
        if let JobSpecificMetadata::StateUpdate(m) = &mut j.metadata.specific {
            m.storage_artifacts_tagged_at = Some(crate::types::jobs::now_secs());
        }
        j
    };
    let settled = |i: u64| with_status(job(JobType::StateTransition, i), JobStatus::Completed);
    create(&db, settled(4)).await;
    let first = create(&db, settled(1)).await;
    create(&db, tag(settled(2))).await;
    create(&db, job(JobType::StateTransition, 3)).await;
    create(&db, with_status(job(JobType::StateTransition, 7), JobStatus::Failed)).await;
    create(&db, with_status(job(JobType::SnosRun, 5), JobStatus::Completed)).await;
    create(&db, settled(6)).await;
    create(&db, with_version(settled(8), OLD_VERSION)).await;
    let q = |min: u64, limit: u64| {
        let db = db.clone();
        async move {
            ids(&db.get_jobs_without_storage_artifacts_tagged(min, limit).await.expect("query"))
        }
    };
    // Every orchestrator version: an old version's settled artifacts expire too.
    assert_eq!(q(0, 100).await, vec![1, 4, 6, 8]);
    assert_eq!(q(0, 1).await, vec![1]);
    // Pages: each starts after the last id of the previous one.
    assert_eq!(q(2, 2).await, vec![4, 6]);
    assert_eq!(q(7, 2).await, vec![8]);
    assert_eq!(q(9, 2).await, Vec::<u64>::new());
    assert_eq!(q(0, 0).await, Vec::<u64>::new());
    assert_eq!(q(u64::MAX, 10).await, Vec::<u64>::new());
    let tagged = tag(first.clone()).metadata;
    let stored = db.update_job(&first, JobItemUpdates::new().metadata(tagged)).await.expect("tag");
    let JobSpecificMetadata::StateUpdate(m) = &stored.metadata.specific else {
        panic!("StateUpdate metadata expected, got {:?}", stored.metadata.specific)
    };
    assert!(m.storage_artifacts_tagged_at.is_some(), "the tagging time is stored");
    assert_eq!(q(0, 100).await, vec![4, 6, 8]);
    // Tagging is not undone by a later update that keeps the metadata.
    db.update_job(&stored, JobItemUpdates::new().status(JobStatus::Completed))
        .await
        .expect("touch");
    assert_eq!(q(0, 100).await, vec![4, 6, 8]);
}

/// Jobs of a type and status with internal id in an inclusive range, ascending.
pub async fn jobs_between_internal_ids(db: Db) {
    for i in [6, 1, 2, 3, 5] {
        create(&db, with_status(job(JobType::SnosRun, i), JobStatus::Completed)).await;
    }
    create(&db, with_status(job(JobType::SnosRun, 4), JobStatus::Failed)).await;
    create(&db, with_status(job(JobType::ProofCreation, 3), JobStatus::Completed)).await;
    let q = |gte: u64, lte: u64| {
        let db = db.clone();
        async move {
            ids(&db
                .get_jobs_between_internal_ids(JobType::SnosRun, JobStatus::Completed, gte, lte)
                .await
                .expect("query"))
        }
    };
    assert_eq!(q(2, 5).await, vec![2, 3, 5]);
    assert_eq!(q(0, u64::MAX).await, vec![1, 2, 3, 5, 6]);
    assert_eq!(q(6, 6).await, vec![6]);
    assert_eq!(q(5, 2).await, Vec::<u64>::new());
}

/// The lowest internal id of a type whose status is not excluded.
pub async fn oldest_job_excluding_statuses(db: Db) {
    create(&db, with_status(job(JobType::SnosRun, 2), JobStatus::Completed)).await;
    create(&db, with_status(job(JobType::SnosRun, 1), JobStatus::Completed)).await;
    create(&db, with_status(job(JobType::SnosRun, 3), JobStatus::Failed)).await;
    create(&db, with_version(job(JobType::SnosRun, 4), OLD_VERSION)).await;
    create(&db, job(JobType::SnosRun, 5)).await;
    create(&db, job(JobType::ProofCreation, 0)).await;
    let q = |statuses: Vec<JobStatus>, v: Option<&'static str>| {
        let db = db.clone();
        async move {
            db.get_oldest_job_by_type_excluding_statuses(JobType::SnosRun, &statuses, v)
                .await
                .expect("query")
                .map(|j| j.internal_id)
        }
    };
    assert_eq!(q(vec![], None).await, Some(1));
    assert_eq!(q(vec![JobStatus::Completed], None).await, Some(3));
    assert_eq!(q(vec![JobStatus::Completed, JobStatus::Failed], None).await, Some(4));
    assert_eq!(
        q(vec![JobStatus::Completed, JobStatus::Failed], Some(ORCHESTRATOR_VERSION)).await,
        Some(5)
    );
    assert_eq!(
        q(vec![JobStatus::Completed, JobStatus::Failed, JobStatus::Created], None).await,
        None
    );
}

/// The union of proving/DA jobs of the block, StateTransition jobs settling it, SnosRun jobs
/// whose range contains it and Aggregator jobs of the aggregator batch containing it.
pub async fn jobs_by_block_number(db: Db) {
    // SnosRun 10 covers blocks 100..=109; proving/DA jobs 10 point at block 100.
    create(&db, job(JobType::SnosRun, 10)).await;
    create(&db, job(JobType::SnosRun, 11)).await; // 110..=119
    create(&db, job(JobType::ProofCreation, 10)).await;
    create(&db, job(JobType::ProofRegistration, 10)).await;
    create(&db, job(JobType::DataSubmission, 10)).await;
    create(&db, job(JobType::ProofCreation, 11)).await; // block 110
    create(&db, job(JobType::StateTransition, 105)).await; // settles 105
    create(&db, job(JobType::StateTransition, 100)).await; // settles 100
    db.create_aggregator_batch(agg_batch(1, 100, 119)).await.expect("agg 1");
    db.create_aggregator_batch(agg_batch(2, 120, 130)).await.expect("agg 2");
    create(&db, job(JobType::Aggregator, 1)).await;
    create(&db, job(JobType::Aggregator, 2)).await;
    let q = |block: u64| {
        let db = db.clone();
        async move { keyed(&db.get_jobs_by_block_number(block).await.expect("query")) }
    };
    let set = |items: &[(JobType, u64)]| {
        items.iter().map(|(t, i)| (t.to_string(), *i)).collect::<BTreeSet<_>>()
    };
    assert_eq!(
        q(100).await,
        set(&[
            (JobType::SnosRun, 10),
            (JobType::ProofCreation, 10),
            (JobType::ProofRegistration, 10),
            (JobType::DataSubmission, 10),
            (JobType::StateTransition, 100),
            (JobType::Aggregator, 1),
        ])
    );
    assert_eq!(
        q(105).await,
        set(&[(JobType::SnosRun, 10), (JobType::StateTransition, 105), (JobType::Aggregator, 1)])
    );
    assert_eq!(
        q(110).await,
        set(&[(JobType::SnosRun, 11), (JobType::ProofCreation, 11), (JobType::Aggregator, 1)])
    );
    assert_eq!(q(125).await, set(&[(JobType::Aggregator, 2)]));
    assert_eq!(q(999).await, BTreeSet::new());
}

/// Jobs in a status, any type, by internal id ascending.
pub async fn jobs_by_status(db: Db) {
    create(&db, with_status(job(JobType::SnosRun, 3), JobStatus::Failed)).await;
    create(&db, with_status(job(JobType::ProofCreation, 1), JobStatus::Failed)).await;
    create(&db, job(JobType::SnosRun, 2)).await;
    create(&db, with_status(job(JobType::DataSubmission, 2), JobStatus::Failed)).await;
    let failed = db.get_jobs_by_status(JobStatus::Failed).await.expect("failed");
    assert_eq!(ids(&failed), vec![1, 2, 3]);
    assert!(failed.iter().all(|j| j.status == JobStatus::Failed));
    assert!(db.get_jobs_by_status(JobStatus::PendingRetry).await.expect("none").is_empty());
}

// ---- SNOS batches ----

/// Creating recomputes `num_blocks`; the latest batch is the highest index.
pub async fn snos_batch_create_and_latest(db: Db) {
    assert_eq!(db.get_latest_snos_batch().await.expect("empty"), None);
    let b2 = db.create_snos_batch(snos_batch(2, 5, 9)).await.expect("create 2");
    let b1 = db.create_snos_batch(snos_batch(1, 0, 4)).await.expect("create 1");
    assert_eq!((b1.num_blocks, b2.num_blocks), (5, 5));
    assert_eq!(db.get_latest_snos_batch().await.expect("latest"), Some(b2.clone()));
    assert_eq!(db.get_snos_batches(SnosBatchQuery::default()).await.expect("all"), vec![b1, b2]);
    for block in 0..=9 {
        let expected = if block < 5 { 1 } else { 2 };
        assert_eq!(snos_lookup(&db, block).await, Some(expected), "block {block}");
    }
    assert_eq!(snos_lookup(&db, 10).await, None);
}

/// Batch queries filter by index, status and version, sort both ways and honour the limit.
pub async fn snos_batch_query_filters_and_sorts(db: Db) {
    for i in 1..=5u64 {
        let mut b = snos_batch(i, i * 10, i * 10 + 9);
        if i % 2 == 0 {
            b.status = SnosBatchStatus::Closed;
        }
        if i == 5 {
            b.orchestrator_version = OLD_VERSION.to_owned();
        }
        db.create_snos_batch(b).await.expect("create");
    }
    let q = |query: SnosBatchQuery| {
        let db = db.clone();
        async move { batch_indexes(&db.get_snos_batches(query).await.expect("query"), |b| b.index) }
    };
    assert_eq!(q(SnosBatchQuery::default()).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        q(SnosBatchQuery { indexes: vec![4, 2, 99], ..Default::default() }).await,
        vec![2, 4]
    );
    assert_eq!(
        q(SnosBatchQuery { indexes: vec![u64::MAX], ..Default::default() }).await,
        Vec::<u64>::new()
    );
    assert_eq!(
        q(SnosBatchQuery { statuses: vec![SnosBatchStatus::Closed], ..Default::default() }).await,
        vec![2, 4]
    );
    assert_eq!(
        q(SnosBatchQuery { sort: SortOrder::Descending, limit: Some(2), ..Default::default() })
            .await,
        vec![5, 4]
    );
    assert_eq!(q(SnosBatchQuery { limit: Some(2), ..Default::default() }).await, vec![1, 2]);
    assert_eq!(
        q(SnosBatchQuery {
            statuses: vec![SnosBatchStatus::Open],
            orchestrator_version: Some(ORCHESTRATOR_VERSION.to_owned()),
            ..Default::default()
        })
        .await,
        vec![1, 3]
    );
}

/// Index, start block and end block are each unique: violations are `Conflict` and write
/// nothing (no batch, no lookups).
pub async fn snos_batch_unique_constraints(db: Db) {
    let b1 = db.create_snos_batch(snos_batch(1, 0, 4)).await.expect("create");
    for (what, dup) in [
        ("index", snos_batch(1, 10, 14)),
        ("start block", snos_batch(2, 0, 1)),
        ("end block", snos_batch(3, 3, 4)),
    ] {
        let err = db.create_snos_batch(dup).await.expect_err(what);
        assert!(matches!(err, DatabaseError::Conflict(_)), "{what}: {err:?}");
        assert!(!err.is_retryable(), "{what}");
    }
    assert_eq!(db.get_snos_batches(SnosBatchQuery::default()).await.expect("all"), vec![b1]);
    assert_eq!(snos_lookup(&db, 10).await, None);
    assert_eq!(snos_lookup(&db, 3).await, Some(1));
}

/// Setting a status by index; a missing index is `NotFound`.
pub async fn snos_batch_status_update_by_index(db: Db) {
    let b = db.create_snos_batch(snos_batch(1, 0, 4)).await.expect("create");
    let closed =
        db.update_snos_batch_status_by_index(1, SnosBatchStatus::Closed).await.expect("update");
    assert_eq!(closed.status, SnosBatchStatus::Closed);
    assert_eq!(
        (closed.id, closed.start_block, closed.end_block, closed.num_blocks),
        (b.id, 0, 4, 5)
    );
    assert!(closed.updated_at >= b.updated_at);
    assert_eq!(db.get_latest_snos_batch().await.expect("latest"), Some(closed));
    let err = db
        .update_snos_batch_status_by_index(2, SnosBatchStatus::Closed)
        .await
        .expect_err("missing");
    assert!(matches!(err, DatabaseError::NotFound { .. }), "{err:?}");
}

/// Growing and shrinking a batch recomputes `num_blocks` and moves the lookups.
pub async fn snos_batch_update_grows_and_shrinks_lookups(db: Db) {
    db.create_snos_batch(snos_batch(1, 10, 10)).await.expect("create");
    let grown = db
        .update_snos_batch(1, SnosBatchUpdates { end_block: Some(14), status: None })
        .await
        .expect("grow");
    assert_eq!((grown.end_block, grown.num_blocks, grown.status), (14, 5, SnosBatchStatus::Open));
    for block in 10..=14 {
        assert_eq!(snos_lookup(&db, block).await, Some(1), "block {block}");
    }
    let shrunk = db
        .update_snos_batch(
            1,
            SnosBatchUpdates { end_block: Some(12), status: Some(SnosBatchStatus::Closed) },
        )
        .await
        .expect("shrink");
    assert_eq!(
        (shrunk.end_block, shrunk.num_blocks, shrunk.status),
        (12, 3, SnosBatchStatus::Closed)
    );
    assert_eq!(snos_lookup(&db, 12).await, Some(1));
    assert_eq!(snos_lookup(&db, 13).await, None);
    assert_eq!(snos_lookup(&db, 14).await, None);
    let same = db.update_snos_batch(1, SnosBatchUpdates::default()).await.expect("no-op update");
    assert_eq!((same.start_block, same.end_block, same.num_blocks), (10, 12, 3));
    let err = db.update_snos_batch(9, SnosBatchUpdates::default()).await.expect_err("missing");
    assert!(matches!(err, DatabaseError::NotFound { .. }), "{err:?}");
}

/// `update_or_create` inserts a new id, replaces an existing one (recomputing `num_blocks`,
/// syncing lookups both ways) and reports unique violations as `Conflict`.
pub async fn snos_batch_update_or_create_inserts_then_replaces(db: Db) {
    let mut b = snos_batch(1, 0, 2);
    let created = db.update_or_create_snos_batch(&b).await.expect("insert");
    assert_eq!(created.num_blocks, 3);
    assert_eq!(db.get_latest_snos_batch().await.expect("latest"), Some(created.clone()));
    b.end_block = 5;
    b.status = SnosBatchStatus::Closed;
    let replaced = db.update_or_create_snos_batch(&b).await.expect("replace");
    assert_eq!((replaced.id, replaced.end_block, replaced.num_blocks), (b.id, 5, 6));
    assert_eq!(db.get_snos_batches(SnosBatchQuery::default()).await.expect("all"), vec![replaced]);
    for block in 0..=5 {
        assert_eq!(snos_lookup(&db, block).await, Some(1), "block {block}");
    }
    b.end_block = 1;
    db.update_or_create_snos_batch(&b).await.expect("shrink");
    assert_eq!(snos_lookup(&db, 1).await, Some(1));
    for block in 2..=5 {
        assert_eq!(snos_lookup(&db, block).await, None, "block {block}");
    }
    let err =
        db.update_or_create_snos_batch(&snos_batch(1, 50, 60)).await.expect_err("index taken");
    assert!(matches!(err, DatabaseError::Conflict(_)), "{err:?}");
    assert_eq!(snos_lookup(&db, 50).await, None);
}

/// Batches in a status from a minimum index with no SnosRun job at their index, ascending,
/// limited, optionally of one version.
pub async fn snos_batches_without_jobs(db: Db) {
    for i in 1..=6u64 {
        let mut b = snos_batch(i, i * 10, i * 10 + 9);
        b.status = if i == 3 { SnosBatchStatus::Open } else { SnosBatchStatus::Closed };
        if i == 6 {
            b.orchestrator_version = OLD_VERSION.to_owned();
        }
        db.create_snos_batch(b).await.expect("create");
    }
    create(&db, job(JobType::SnosRun, 2)).await;
    create(&db, job(JobType::ProofCreation, 4)).await; // not a SnosRun job: does not count
    let q = |limit: u64, v: Option<&'static str>, min: u64| {
        let db = db.clone();
        async move {
            batch_indexes(
                &db.get_snos_batches_without_jobs(SnosBatchStatus::Closed, limit, v, min)
                    .await
                    .expect("query"),
                |b| b.index,
            )
        }
    };
    assert_eq!(q(10, None, 0).await, vec![1, 4, 5, 6]);
    assert_eq!(q(10, None, 4).await, vec![4, 5, 6]);
    assert_eq!(q(2, None, 0).await, vec![1, 4]);
    assert_eq!(q(10, Some(ORCHESTRATOR_VERSION), 0).await, vec![1, 4, 5]);
    assert_eq!(q(0, None, 0).await, Vec::<u64>::new());
}

/// SNOS batches of an aggregator batch, ascending, and the first of them.
pub async fn snos_batches_by_aggregator_index(db: Db) {
    for (i, agg) in [(2, Some(1)), (1, Some(1)), (3, Some(2)), (4, None)] {
        let mut b = snos_batch(i, i * 10, i * 10 + 9);
        b.aggregator_batch_index = agg;
        db.create_snos_batch(b).await.expect("create");
    }
    let by = |agg: u64| {
        let db = db.clone();
        async move {
            batch_indexes(
                &db.get_snos_batches_by_aggregator_index(agg).await.expect("query"),
                |b| b.index,
            )
        }
    };
    assert_eq!(by(1).await, vec![1, 2]);
    assert_eq!(by(2).await, vec![3]);
    assert_eq!(by(3).await, Vec::<u64>::new());
    let start = db.get_start_snos_batch_for_aggregator(1).await.expect("start");
    assert_eq!(start.map(|b| b.index), Some(1));
    assert_eq!(db.get_start_snos_batch_for_aggregator(3).await.expect("none"), None);
}

// ---- aggregator batches ----

/// Creating recomputes `num_blocks`; latest is the highest index, oldest the lowest
/// (optionally of one version).
pub async fn aggregator_batch_create_latest_oldest(db: Db) {
    assert_eq!(db.get_latest_aggregator_batch().await.expect("empty"), None);
    assert_eq!(db.get_oldest_aggregator_batch(None).await.expect("empty"), None);
    let mut b1 = agg_batch(1, 0, 9);
    b1.orchestrator_version = OLD_VERSION.to_owned();
    let b3 = db.create_aggregator_batch(agg_batch(3, 20, 29)).await.expect("create 3");
    let b1 = db.create_aggregator_batch(b1).await.expect("create 1");
    let b2 = db.create_aggregator_batch(agg_batch(2, 10, 19)).await.expect("create 2");
    assert_eq!((b1.num_blocks, b2.num_blocks, b3.num_blocks), (10, 10, 10));
    assert_eq!(db.get_latest_aggregator_batch().await.expect("latest"), Some(b3.clone()));
    assert_eq!(db.get_oldest_aggregator_batch(None).await.expect("oldest"), Some(b1.clone()));
    assert_eq!(
        db.get_oldest_aggregator_batch(Some(ORCHESTRATOR_VERSION)).await.expect("oldest v"),
        Some(b2.clone())
    );
    assert_eq!(
        db.get_aggregator_batches(AggregatorBatchQuery::default()).await.expect("all"),
        vec![b1, b2, b3]
    );
}

/// Aggregator batch queries filter, sort and limit like SNOS batch queries.
pub async fn aggregator_batch_query_filters_and_sorts(db: Db) {
    for i in 1..=4u64 {
        let mut b = agg_batch(i, i * 10, i * 10 + 9);
        if i >= 3 {
            b.status = AggregatorBatchStatus::Closed;
        }
        if i == 4 {
            b.orchestrator_version = OLD_VERSION.to_owned();
        }
        db.create_aggregator_batch(b).await.expect("create");
    }
    let q = |query: AggregatorBatchQuery| {
        let db = db.clone();
        async move {
            batch_indexes(&db.get_aggregator_batches(query).await.expect("query"), |b| b.index)
        }
    };
    assert_eq!(
        q(AggregatorBatchQuery { indexes: vec![3, 1], ..Default::default() }).await,
        vec![1, 3]
    );
    assert_eq!(
        q(AggregatorBatchQuery {
            statuses: vec![AggregatorBatchStatus::Closed],
            ..Default::default()
        })
        .await,
        vec![3, 4]
    );
    assert_eq!(
        q(AggregatorBatchQuery { sort: SortOrder::Descending, ..Default::default() }).await,
        vec![4, 3, 2, 1]
    );
    assert_eq!(
        q(AggregatorBatchQuery {
            limit: Some(1),
            sort: SortOrder::Descending,
            ..Default::default()
        })
        .await,
        vec![4]
    );
    assert_eq!(
        q(AggregatorBatchQuery {
            orchestrator_version: Some(OLD_VERSION.to_owned()),
            ..Default::default()
        })
        .await,
        vec![4]
    );
}

/// Index, start block and end block are each unique for aggregator batches too.
pub async fn aggregator_batch_unique_constraints(db: Db) {
    let b1 = db.create_aggregator_batch(agg_batch(1, 0, 9)).await.expect("create");
    for (what, dup) in [
        ("index", agg_batch(1, 20, 29)),
        ("start block", agg_batch(2, 0, 3)),
        ("end block", agg_batch(3, 5, 9)),
    ] {
        let err = db.create_aggregator_batch(dup).await.expect_err(what);
        assert!(matches!(err, DatabaseError::Conflict(_)), "{what}: {err:?}");
        assert!(!err.is_retryable(), "{what}");
    }
    assert_eq!(
        db.get_aggregator_batches(AggregatorBatchQuery::default()).await.expect("all"),
        vec![b1]
    );
    assert_eq!(agg_lookup(&db, 20).await, None);
}

/// Updates by index change end block, status and bucket, recompute `num_blocks`, move the
/// lookups, and report a missing index as `NotFound`.
pub async fn aggregator_batch_updates(db: Db) {
    let b = db.create_aggregator_batch(agg_batch(1, 100, 100)).await.expect("create");
    let grown = db
        .update_aggregator_batch(
            1,
            AggregatorBatchUpdates {
                end_block: Some(104),
                status: None,
                bucket_id: Some("bucket-1".into()),
            },
        )
        .await
        .expect("grow");
    assert_eq!((grown.id, grown.end_block, grown.num_blocks), (b.id, 104, 5));
    assert_eq!(grown.bucket_id.as_deref(), Some("bucket-1"));
    assert_eq!(grown.status, AggregatorBatchStatus::Open);
    for block in 100..=104 {
        assert_eq!(agg_lookup(&db, block).await, Some(1), "block {block}");
    }
    let shrunk = db
        .update_aggregator_batch(
            1,
            AggregatorBatchUpdates {
                end_block: Some(101),
                status: Some(AggregatorBatchStatus::Closed),
                bucket_id: None,
            },
        )
        .await
        .expect("shrink");
    assert_eq!(
        (shrunk.end_block, shrunk.num_blocks, shrunk.status),
        (101, 2, AggregatorBatchStatus::Closed)
    );
    assert_eq!(shrunk.bucket_id.as_deref(), Some("bucket-1"));
    assert_eq!(agg_lookup(&db, 101).await, Some(1));
    assert_eq!(agg_lookup(&db, 102).await, None);
    let done = db
        .update_aggregator_batch_status_by_index(1, AggregatorBatchStatus::Completed)
        .await
        .expect("status");
    assert_eq!((done.status, done.end_block), (AggregatorBatchStatus::Completed, 101));
    assert_eq!(db.get_latest_aggregator_batch().await.expect("latest"), Some(done));
    let err = db
        .update_aggregator_batch(2, AggregatorBatchUpdates::default())
        .await
        .expect_err("missing");
    assert!(matches!(err, DatabaseError::NotFound { .. }), "{err:?}");
    let err = db
        .update_aggregator_batch_status_by_index(2, AggregatorBatchStatus::Closed)
        .await
        .expect_err("missing");
    assert!(matches!(err, DatabaseError::NotFound { .. }), "{err:?}");
}

/// `update_or_create` for aggregator batches: insert, replace by id, sync lookups.
pub async fn aggregator_batch_update_or_create_inserts_then_replaces(db: Db) {
    let mut b = agg_batch(1, 0, 0);
    assert_eq!(db.update_or_create_aggregator_batch(&b).await.expect("insert").num_blocks, 1);
    b.end_block = 3;
    b.blob_len = 77;
    let replaced = db.update_or_create_aggregator_batch(&b).await.expect("replace");
    assert_eq!((replaced.num_blocks, replaced.blob_len), (4, 77));
    assert_eq!(
        db.get_aggregator_batches(AggregatorBatchQuery::default()).await.expect("all"),
        vec![replaced]
    );
    assert_eq!(agg_lookup(&db, 3).await, Some(1));
    b.end_block = 1;
    db.update_or_create_aggregator_batch(&b).await.expect("shrink");
    assert_eq!(agg_lookup(&db, 1).await, Some(1));
    assert_eq!(agg_lookup(&db, 2).await, None);
    let err =
        db.update_or_create_aggregator_batch(&agg_batch(2, 0, 5)).await.expect_err("start taken");
    assert!(matches!(err, DatabaseError::Conflict(_)), "{err:?}");
}

/// The aggregator batch containing a block, following range changes.
pub async fn aggregator_batch_for_block(db: Db) {
    db.create_aggregator_batch(agg_batch(1, 0, 9)).await.expect("create 1");
    db.create_aggregator_batch(agg_batch(2, 10, 19)).await.expect("create 2");
    let for_block = |block: u64| {
        let db = db.clone();
        async move { db.get_aggregator_batch_for_block(block).await.expect("query").map(|b| b.index) }
    };
    assert_eq!(for_block(0).await, Some(1));
    assert_eq!(for_block(9).await, Some(1));
    assert_eq!(for_block(15).await, Some(2));
    assert_eq!(for_block(20).await, None);
    db.update_aggregator_batch(
        2,
        AggregatorBatchUpdates { end_block: Some(14), ..Default::default() },
    )
    .await
    .expect("shrink");
    assert_eq!(for_block(15).await, None);
    assert_eq!(for_block(14).await, Some(2));
}

/// One lookup row holds both batch kinds; changing one kind leaves the other alone.
pub async fn lookups_track_both_batch_kinds(db: Db) {
    assert_eq!(db.get_block_batch_lookup(7).await.expect("empty"), None);
    db.create_aggregator_batch(agg_batch(1, 0, 9)).await.expect("agg");
    let mut s1 = snos_batch(1, 0, 4);
    s1.aggregator_batch_index = Some(1);
    let mut s2 = snos_batch(2, 5, 9);
    s2.aggregator_batch_index = Some(1);
    db.create_snos_batch(s1).await.expect("snos 1");
    db.create_snos_batch(s2).await.expect("snos 2");
    let lookup = db.get_block_batch_lookup(7).await.expect("lookup").expect("row");
    assert_eq!(
        (lookup.block_number, lookup.snos_batch_index, lookup.aggregator_batch_index),
        (7, Some(2), Some(1))
    );
    assert!(lookup.created_at <= lookup.updated_at);
    assert!(lookup.updated_at <= Utc::now());
    db.update_snos_batch(2, SnosBatchUpdates { end_block: Some(6), status: None })
        .await
        .expect("shrink");
    assert_eq!(snos_lookup(&db, 7).await, None);
    assert_eq!(agg_lookup(&db, 7).await, Some(1));
    assert_eq!(snos_lookup(&db, 6).await, Some(2));
    assert_eq!(db.get_block_batch_lookup(100).await.expect("outside"), None);
}

// ---- trigger pauses ----

/// A pause of `trigger` by `by`, at a fixed millisecond (so the check compares exact values).
fn pause(trigger: WorkerTriggerType, by: &str, at_ms: i64, reason: Option<&str>) -> TriggerPause {
    let mut p = TriggerPause::new(trigger, by, reason.map(str::to_owned));
    p.paused_at = chrono::DateTime::from_timestamp_millis(at_ms).expect("valid time");
    p
}

/// A pause reads back exactly (who, when to the millisecond, why or none), the list is by
/// trigger name, and resuming returns the pause removed, once.
pub async fn trigger_pauses_are_stored_listed_and_removed(db: Db) {
    let snos = WorkerTriggerType::Stage(JobType::SnosRun);
    let batching = WorkerTriggerType::SnosBatching;
    assert_eq!(db.get_trigger_pauses().await.expect("empty"), vec![]);
    assert_eq!(db.get_trigger_pause(snos).await.expect("none"), None);
    assert_eq!(db.delete_trigger_pause(snos).await.expect("nothing to resume"), None);

    let a = pause(snos, "alice", 1_700_000_000_123, Some("prover down: ticket #42"));
    let b = pause(batching, "bob", 1_700_000_000_999, None);
    assert!(db.insert_trigger_pause(&a).await.expect("pause snos"));
    assert!(db.insert_trigger_pause(&b).await.expect("pause batching"));
    assert_eq!(db.get_trigger_pause(snos).await.expect("get"), Some(a.clone()));
    assert_eq!(db.get_trigger_pause(batching).await.expect("get"), Some(b.clone()));
    assert_eq!(db.get_trigger_pause(WorkerTriggerType::StorageCleanup).await.expect("get"), None);
    // By name: "Snos" < "SnosBatching".
    assert_eq!(db.get_trigger_pauses().await.expect("list"), vec![a.clone(), b.clone()]);

    assert_eq!(db.delete_trigger_pause(snos).await.expect("resume"), Some(a.clone()));
    assert_eq!(db.delete_trigger_pause(snos).await.expect("resume again"), None);
    assert_eq!(db.get_trigger_pause(snos).await.expect("get"), None);
    assert_eq!(db.get_trigger_pauses().await.expect("list"), vec![b]);
    // Paused again after a resume: a new pause with its own who and when.
    let c = pause(snos, "carol", 1_700_000_001_000, None);
    assert!(db.insert_trigger_pause(&c).await.expect("pause again"));
    assert_eq!(db.get_trigger_pause(snos).await.expect("get"), Some(c));
}

/// Pausing a paused trigger stores nothing: who, when and why stay the first pause's.
pub async fn pausing_a_paused_trigger_keeps_the_first_pause(db: Db) {
    let snos = WorkerTriggerType::Stage(JobType::SnosRun);
    let first = pause(snos, "alice", 1_700_000_000_000, Some("first"));
    assert!(db.insert_trigger_pause(&first).await.expect("pause"));
    let second = pause(snos, "bob", 1_700_000_005_000, Some("second"));
    assert!(!db.insert_trigger_pause(&second).await.expect("pause again"));
    assert_eq!(db.get_trigger_pause(snos).await.expect("get"), Some(first.clone()));
    assert_eq!(db.get_trigger_pauses().await.expect("list"), vec![first]);
}

/// Of several concurrent pauses of one trigger exactly one is stored, and it is the one whose
/// insert reported success.
pub async fn concurrent_pauses_of_one_trigger_have_one_winner(db: Db) {
    let snos = WorkerTriggerType::Stage(JobType::SnosRun);
    const RACERS: usize = 6;
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let db = db.clone();
            let p = pause(snos, &format!("operator-{i}"), 1_700_000_000_000 + i as i64, None);
            tokio::spawn(async move { (db.insert_trigger_pause(&p).await, p) })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let (result, p) = racer.await.expect("racer panicked");
        if result.expect("a racing pause is not an error") {
            winners.push(p);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent pause must be stored: {winners:?}");
    assert_eq!(db.get_trigger_pause(snos).await.expect("get"), winners.pop());
}
