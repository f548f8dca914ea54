//! StorageCleanup (L2 and L3, both tiers): tags the artifacts of settled batches so they
//! expire (reference §7, the trigger `setup`'s S3 lifecycle rule waits for).
//!
//! One run, under the TTL lock `StorageCleanupWorker` (300 s, extended after every page):
//! 1. reads the `Completed` StateTransition jobs whose `storage_artifacts_tagged_at` is unset,
//!    200 at a time by internal id (`get_jobs_without_storage_artifacts_tagged`);
//! 2. for each, lists every artifact of the batch it settled ([`artifact_locations`]): the
//!    batch's directories (listed, so every file in them is covered whatever its name) and
//!    its known single files, and tags each `expire-after-settlement=true`. A missing file is
//!    fine (a configuration that never writes it); tagging an object again changes nothing;
//! 3. when every artifact of the job is tagged, sets the job's `storage_artifacts_tagged_at`.
//!    A job with a failure keeps it unset and is tried again next run; the jobs done before
//!    a crash are never read again, the interrupted job's artifacts are tagged again
//!    (harmlessly);
//! 4. on the directory store (the embedded tier), deletes the tagged objects whose tag is
//!    older than `--storage-retention-days` ([`FsStorage::expire_tagged`]); on S3 the bucket's
//!    lifecycle rule `expire-settled-artifacts` does that.
//!
//! The trigger creates no job, so the failed-job halt never stops it
//! ([`crate::worker::trigger::is_halted`]): settled batches stay settled whatever fails later.
//! Only batches whose StateTransition is `Completed` are touched, and every directory listed
//! ends with `/`, so batch `1`'s listing never reaches batch `10`'s files.

use std::{collections::BTreeSet, fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::{
    config::{RunParams, StorageBackend},
    core::client::{fs_storage::FsStorage, LockError, StorageError},
    types::{
        batch::{AggregatorBatch, AggregatorBatchQuery},
        jobs::{
            now_secs, JobItem, JobItemUpdates, JobSpecificMetadata, JobType, StateUpdateMetadata,
        },
        queue::WorkerTriggerType,
        Layer,
    },
    worker::{
        batching::{lock_owner, system_clock, with_lock, Clock},
        stages::{aggregator::aggregator_metadata, data_submission, snos, state_transition},
        trigger::{JobTrigger, TriggerError},
        Config,
    },
};

pub use crate::setup::aws::EXPIRE_TAG;

/// Name of the TTL lock of this trigger.
pub const LOCK_KEY: &str = "StorageCleanupWorker";
/// TTL of the lock; extended after every page.
pub const LOCK_TTL: Duration = Duration::from_secs(300);
/// Settled jobs read per page.
pub const PAGE_SIZE: u64 = 200;
/// Tracing target.
const TARGET: &str = "orch::cleanup";

/// The directory store's stand-in for the S3 lifecycle rule: tagged objects are deleted once
/// their tag is `days` old.
#[derive(Debug, Clone)]
pub struct Retention {
    /// The artifact directory (the one the embedded tier opens, `<data-dir>/artifacts`).
    pub store: FsStorage,
    /// `--storage-retention-days`.
    pub days: u32,
}

/// The StorageCleanup trigger (see the module docs).
pub struct StorageCleanupTrigger {
    retention: Option<Retention>,
    page_size: u64,
    clock: Clock,
    owner: String,
}

impl fmt::Debug for StorageCleanupTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageCleanupTrigger")
            .field("retention", &self.retention)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl StorageCleanupTrigger {
    /// A trigger that tags settled artifacts and, with `retention`, deletes them from the
    /// directory store once the retention has passed.
    pub fn new(retention: Option<Retention>) -> Self {
        Self { retention, page_size: PAGE_SIZE, clock: system_clock(), owner: lock_owner(LOCK_KEY) }
    }

    /// The trigger of the `run` parameters: on the directory store (no `--aws-s3`) it also
    /// deletes after `--storage-retention-days`, in `<data-dir>/artifacts`.
    ///
    /// # Errors
    /// The artifact directory cannot be created.
    pub fn from_params(params: &RunParams) -> Result<Self, StorageError> {
        let retention = match &params.infra.storage {
            StorageBackend::Embedded { retention_days, .. } => Some(Retention {
                // The directory `core::client::embedded::open` stores artifacts in.
                store: FsStorage::open(params.infra.data_dir.join("artifacts"))?,
                days: *retention_days,
            }),
            StorageBackend::S3 { .. } => None,
        };
        Ok(Self::new(retention))
    }

    /// Uses `clock` instead of the system clock for the retention (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Reads `page_size` settled jobs per page instead of [`PAGE_SIZE`] (tests).
    pub fn with_page_size(mut self, page_size: u64) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// One run, the lock held.
    async fn run_cleanup(&self, config: &Config) -> Result<(), TriggerError> {
        let mut run = RunReport::default();
        let tagging = self.tag_settled(config, &mut run).await;
        if let Some(retention) = &self.retention {
            let days = Duration::from_secs(u64::from(retention.days) * 24 * 3600);
            let cutoff = std::time::SystemTime::from((self.clock)())
                .checked_sub(days)
                .unwrap_or(std::time::UNIX_EPOCH);
            match retention.store.expire_tagged(EXPIRE_TAG, cutoff).await {
                Ok(deleted) if deleted.is_empty() => {}
                Ok(deleted) => {
                    tracing::info!(target: TARGET, count = deleted.len(), days = retention.days, first = %deleted[0], "Deleted settled artifacts past their retention");
                }
                Err(e) => run.fail(format!(
                    "deleting the artifacts tagged more than {} days ago in {}: {e}",
                    retention.days,
                    retention.store.root().display()
                )),
            }
        }
        config.metrics.cleanup_run(run.tagged, run.failures);
        config.metrics.cleanup_jobs(run.attempted, run.jobs);
        tagging?;
        match run.first_failure {
            None => Ok(()),
            Some(first) => Err(TriggerError::Other(format!(
                "storage cleanup: {} failure(s), retried next run; the first: {first}",
                run.failures
            ))),
        }
    }

    /// Steps 1-3: the pages of settled jobs. `Err` only when the jobs cannot be read or
    /// marked at all (the database); a job whose artifacts fail is counted in `run`.
    async fn tag_settled(&self, config: &Config, run: &mut RunReport) -> Result<(), TriggerError> {
        let mut next = 0;
        loop {
            let page = config
                .database()
                .get_jobs_without_storage_artifacts_tagged(next, self.page_size)
                .await
                .map_err(|e| TriggerError::client("reading the settled jobs to clean up", e))?;
            let Some(last) = page.last().map(|j| j.internal_id) else { break };
            for job in &page {
                match clean_job(config, job).await {
                    Ok(tagged) => {
                        run.tagged += tagged;
                        run.jobs += 1;
                        run.attempted += 1;
                    }
                    Err((tagged, e)) => {
                        run.tagged += tagged;
                        run.attempted += 1;
                        run.fail(format!("job {} (internal id {}): {e}", job.id, job.internal_id));
                    }
                }
            }
            let full = page.len() as u64 >= self.page_size;
            let Some(after) = last.checked_add(1).filter(|_| full) else { break };
            next = after;
            // A long run keeps its lock; a lost lock means another worker took over.
            match config.lock().extend_lock(LOCK_KEY, Some(&self.owner), LOCK_TTL).await {
                Ok(_) => {}
                Err(LockError::NotHeld { .. }) => {
                    tracing::warn!(target: TARGET, "The StorageCleanupWorker lock expired during the run; stopping (the next run continues)");
                    break;
                }
                Err(e) => {
                    return Err(TriggerError::client("extending the StorageCleanupWorker lock", e))
                }
            }
        }
        if run.jobs > 0 {
            tracing::info!(target: TARGET, jobs = run.jobs, artifacts = run.tagged, "Tagged the artifacts of settled batches for expiry");
        }
        Ok(())
    }
}

#[async_trait]
impl JobTrigger for StorageCleanupTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::StorageCleanup
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        with_lock(&config, LOCK_KEY, LOCK_TTL, &self.owner, self.run_cleanup(&config))
            .await
            .map(|_| ())
    }
}

/// What one run did.
#[derive(Debug, Default)]
struct RunReport {
    /// Jobs fully tagged and marked.
    jobs: u64,
    /// Jobs gone through (fully tagged, or failed).
    attempted: u64,
    /// Objects tagged.
    tagged: u64,
    /// Jobs (or expiry passes) that failed.
    failures: u64,
    /// What the first failure was.
    first_failure: Option<String>,
}

impl RunReport {
    fn fail(&mut self, what: String) {
        tracing::warn!(target: TARGET, failure = %what, "Storage cleanup failure; retried next run");
        self.failures += 1;
        self.first_failure.get_or_insert(what);
    }
}

/// Where the artifacts of a settled batch are: directories to list (each ending with `/`)
/// and single files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactLocations {
    /// Directories whose every file belongs to the batch.
    pub dirs: BTreeSet<String>,
    /// Files of the batch outside those directories (or possibly so).
    pub files: BTreeSet<String>,
}

impl ArtifactLocations {
    fn dir(&mut self, dir: impl Into<String>) {
        let mut dir = dir.into();
        if !dir.ends_with('/') {
            dir.push('/');
        }
        // Never the whole store.
        if dir.len() > 1 && !dir.starts_with('/') {
            self.dirs.insert(dir);
        }
    }

    fn dir_of(&mut self, file: &str) {
        if let Some(i) = file.rfind('/') {
            self.dir(&file[..=i]);
        }
    }

    fn file(&mut self, file: Option<&String>) {
        if let Some(f) = file.filter(|f| !f.is_empty()) {
            self.files.insert(f.clone());
        }
    }
}

/// The artifacts of the batch settled by StateTransition `m` (`to_settle` = the batch):
/// - L3 (a SNOS batch `i`): the directory `i/` (PIE, OS and program output, blob data,
///   proofs, settlement attempts);
/// - L2 (an aggregator batch `i`): the aggregator's directory `artifacts/batch/i/` (PIE, DA
///   segment, outputs, proof, settlement attempts), the blob directory `blob/batch/i/`, the
///   squashed state update `state_update/batch/i.json`, and the directory of every SNOS
///   batch of the aggregator batch (its PIE, outputs, proof);
/// - both: the files the StateTransition and (L2) Aggregator jobs name.
///
/// Paths come from the stages' own path functions and the batch rows, so they follow the
/// stages.
///
/// # Errors
/// The database cannot be read.
pub async fn artifact_locations(
    config: &Config,
    m: &StateUpdateMetadata,
) -> Result<ArtifactLocations, TriggerError> {
    let index = m.context.to_settle();
    let mut at = ArtifactLocations::default();
    for file in [&m.snos_output_path, &m.program_output_path, &m.blob_data_path, &m.da_segment_path]
    {
        at.file(file.as_ref());
    }
    at.file(Some(&state_transition::tx_attempts_path(config.layer, index)));
    let db = config.database();
    match config.layer {
        Layer::L3 => {
            at.dir_of(&snos::cairo_pie_path(index));
            let (proof, proof_part2) = state_transition::l3_proof_paths(index);
            for file in [snos::snos_output_path(index), snos::program_output_path(index)] {
                at.file(Some(&file));
            }
            for file in [data_submission::blob_data_path(index), proof, proof_part2] {
                at.file(Some(&file));
            }
        }
        Layer::L2 => {
            let query = AggregatorBatchQuery { indexes: vec![index], ..Default::default() };
            let batch = db
                .get_aggregator_batches(query)
                .await
                .map_err(|e| TriggerError::client(format!("reading aggregator batch {index}"), e))?
                .into_iter()
                .next()
                // A batch row gone: the reference's paths.
                .unwrap_or_else(|| AggregatorBatch::new(index, 0, ""));
            at.dir(&batch.blob_path);
            at.file(Some(&batch.squashed_state_updates_path));
            let own = aggregator_metadata(&batch, true);
            at.dir_of(own.cairo_pie_path.as_deref().unwrap_or_default());
            let job = db
                .get_job_by_internal_id_and_type(index, JobType::Aggregator)
                .await
                .map_err(|e| TriggerError::client(format!("reading Aggregator job {index}"), e))?;
            let named = match job.map(|j| j.metadata.specific) {
                Some(JobSpecificMetadata::Aggregator(a)) => a,
                _ => own,
            };
            for file in [
                &named.download_proof,
                &named.da_segment_path,
                &named.cairo_pie_path,
                &named.snos_output_path,
                &named.program_output_path,
            ] {
                at.file(file.as_ref());
            }
            if let Some(blobs) = &named.blob_data_path {
                at.dir(blobs);
            }
            let members = db.get_snos_batches_by_aggregator_index(index).await.map_err(|e| {
                TriggerError::client(
                    format!("reading the SNOS batches of aggregator batch {index}"),
                    e,
                )
            })?;
            for b in members {
                at.dir_of(&snos::cairo_pie_path(b.index));
            }
        }
    }
    // Files inside a listed directory are tagged through the listing.
    let dirs = at.dirs.clone();
    at.files.retain(|f| !dirs.iter().any(|d| f.starts_with(d.as_str())));
    Ok(at)
}

/// Tags every artifact of the batch `job` settled, then marks the job. Returns the objects
/// tagged, or those tagged before the failure and the failure.
async fn clean_job(config: &Config, job: &JobItem) -> Result<u64, (u64, String)> {
    let JobSpecificMetadata::StateUpdate(m) = &job.metadata.specific else {
        return Err((0, "not StateUpdate metadata".to_owned()));
    };
    let at = artifact_locations(config, m).await.map_err(|e| (0, e.to_string()))?;
    let storage = config.storage();
    let mut keys = at.files.clone();
    for dir in &at.dirs {
        let listed =
            storage.list_files_in_dir(dir).await.map_err(|e| (0, format!("listing {dir}: {e}")))?;
        keys.extend(listed);
    }
    let tags = [(EXPIRE_TAG.0.to_owned(), EXPIRE_TAG.1.to_owned())];
    let mut tagged = 0;
    for key in &keys {
        match storage.tag_object(key, &tags).await {
            Ok(()) => tagged += 1,
            // A file this configuration never wrote.
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err((tagged, format!("tagging {key}: {e}"))),
        }
    }
    let mut metadata = job.metadata.clone();
    if let JobSpecificMetadata::StateUpdate(m) = &mut metadata.specific {
        m.storage_artifacts_tagged_at = Some(now_secs());
    }
    config
        .database()
        .update_job(job, JobItemUpdates::new().metadata(metadata))
        .await
        .map_err(|e| (tagged, format!("recording that its artifacts are tagged: {e}")))?;
    tracing::debug!(target: TARGET, job_id = %job.id, batch = m.context.to_settle(), artifacts = tagged, "Settled artifacts tagged");
    Ok(tagged)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    };

    use bytes::Bytes;
    use chrono::{DateTime, Utc};
    use tempfile::TempDir;

    use super::*;
    use crate::{
        config::{EngineParams, FailedJobHalt},
        core::client::{embedded, StorageClient},
        types::{
            batch::{BouncerWeights, SnosBatch, SnosBatchStatus},
            jobs::{JobStatus, SnosMetadata},
        },
        worker::{event_worker, handler::JobHandlers, trigger::Triggers},
    };

    const EXPIRE: (&str, &str) = ("expire-after-settlement", "true");

    /// A `layer` engine on a fresh embedded tier whose artifacts are `storage` (the tier's
    /// own directory store when `None`), without triggers.
    async fn config(
        layer: Layer,
        storage: Option<Arc<dyn StorageClient>>,
    ) -> (Arc<Config>, FsStorage, TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, fs) = config_in(dir.path(), layer, storage, Triggers::new()).await;
        (config, fs, dir)
    }

    /// [`config`] in `dir`, with `triggers`, halting every trigger that creates jobs on any
    /// failed job.
    async fn config_in(
        dir: &std::path::Path,
        layer: Layer,
        storage: Option<Arc<dyn StorageClient>>,
        triggers: Triggers,
    ) -> (Arc<Config>, FsStorage) {
        let mut clients = embedded::open(dir, &embedded::EmbeddedOptions::default())
            .await
            .expect("embedded tier");
        let fs = FsStorage::open(dir.join("artifacts")).expect("artifacts");
        if let Some(storage) = storage {
            clients.storage = storage;
        }
        let engine =
            EngineParams { failed_job_halt: FailedJobHalt::Global, ..EngineParams::default() };
        (Arc::new(Config::new(layer, clients, JobHandlers::new(), triggers, engine)), fs)
    }

    /// A StateTransition job settling batch `index`, in `status`.
    async fn settlement(config: &Config, index: u64, status: JobStatus) -> JobItem {
        let mut job = JobItem::new(
            JobType::StateTransition,
            index,
            JobSpecificMetadata::StateUpdate(StateUpdateMetadata::for_batch(index)),
        );
        job.status = status;
        config.database().create_job(job).await.expect("create the StateTransition job")
    }

    async fn put(storage: &dyn StorageClient, keys: &[String]) {
        for key in keys {
            storage.put_data(Bytes::from(format!("artifact {key}")), key).await.expect("put");
        }
    }

    /// The files of SNOS batch `i` (L3: also its proofs, blob and settlement attempts).
    fn snos_files(i: u64) -> Vec<String> {
        ["cairo_pie.zip", "snos_output.json", "program_output.txt", "proof.json", "blob_data.txt"]
            .iter()
            .map(|f| format!("{i}/{f}"))
            .collect()
    }

    async fn tags(fs: &FsStorage, key: &str) -> Vec<(String, String)> {
        fs.tags(key).await.unwrap_or_else(|e| panic!("tags of {key}: {e}"))
    }

    async fn is_tagged(fs: &FsStorage, key: &str) -> bool {
        tags(fs, key).await == [(EXPIRE.0.to_owned(), EXPIRE.1.to_owned())]
    }

    async fn tagged_at_set(config: &Config, index: u64) -> bool {
        let job = config
            .database()
            .get_job_by_internal_id_and_type(index, JobType::StateTransition)
            .await
            .expect("db")
            .expect("job");
        matches!(job.metadata.specific, JobSpecificMetadata::StateUpdate(m) if m.storage_artifacts_tagged_at.is_some())
    }

    /// A clock the test moves.
    fn settable_clock() -> (Clock, Arc<Mutex<DateTime<Utc>>>) {
        let now = Arc::new(Mutex::new(Utc::now()));
        let read = now.clone();
        (Arc::new(move || *read.lock().expect("clock")), now)
    }

    #[test]
    fn the_tag_is_the_one_of_the_lifecycle_rule() {
        assert_eq!(EXPIRE_TAG, EXPIRE);
    }

    /// L3 on the directory store, through the trigger dispatch of `orchestrator run` with a
    /// failed job in the database (the failed-job halt does not stop cleanup): settled
    /// batches 1 and 10 are tagged, then deleted once the retention has passed; batch 2
    /// (settling), 11 (settlement failed) and 100 (nothing yet) are never touched, although
    /// `1/` is a string prefix of `10/`, `11/` and `100/`.
    #[tokio::test]
    async fn settled_l3_batches_are_tagged_then_deleted_after_the_retention_only_them() {
        let (clock, now) = settable_clock();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsStorage::open(dir.path().join("artifacts")).expect("store");
        let trigger = StorageCleanupTrigger::new(Some(Retention { store, days: 14 }))
            .with_clock(clock.clone());
        let triggers = Triggers::new().with(Arc::new(trigger));
        let (config, fs) = config_in(dir.path(), Layer::L3, None, triggers).await;
        let settled = [1, 10];
        let unsettled = [2, 11, 100];
        for i in settled.iter().chain(&unsettled) {
            put(&fs, &snos_files(*i)).await;
        }
        put(&fs, &["1/tx_attempts.json".to_owned(), "preflight/probe-1".to_owned()]).await;
        for i in settled {
            settlement(&config, i, JobStatus::Completed).await;
        }
        settlement(&config, 2, JobStatus::PendingVerification).await;
        settlement(&config, 11, JobStatus::Failed).await;
        let mut failed = JobItem::new(
            JobType::SnosRun,
            7,
            JobSpecificMetadata::Snos(SnosMetadata { snos_batch_index: 7, ..Default::default() }),
        );
        failed.status = JobStatus::Failed;
        config.database().create_job(failed).await.expect("failed job");

        event_worker::run_trigger(&config, WorkerTriggerType::StorageCleanup).await;

        let mut settled_keys: Vec<String> = settled.iter().flat_map(|i| snos_files(*i)).collect();
        settled_keys.push("1/tx_attempts.json".to_owned());
        for key in &settled_keys {
            assert!(is_tagged(&fs, key).await, "{key} is tagged");
        }
        let mut untouched: Vec<String> = unsettled.iter().flat_map(|i| snos_files(*i)).collect();
        untouched.push("preflight/probe-1".to_owned());
        for key in &untouched {
            assert_eq!(tags(&fs, key).await, [], "{key} is not tagged");
        }
        for i in settled {
            assert!(tagged_at_set(&config, i).await, "job {i} is marked");
        }
        for i in [2, 11] {
            assert!(!tagged_at_set(&config, i).await, "job {i} is not marked");
        }
        assert_eq!(config.metrics.cleanup_counts(), (1, settled_keys.len() as u64, 0));
        let rendered = orchestrator_test_support::prometheus::Exposition::parse(
            &config.metrics.render_prometheus(),
        )
        .unwrap();
        assert_eq!(
            rendered.get("cleanup_artifacts_tagged_total", &[]),
            Some(settled_keys.len() as f64)
        );

        // Within the retention: nothing goes, nothing is tagged again.
        *now.lock().expect("clock") += chrono::Duration::days(13);
        event_worker::run_trigger(&config, WorkerTriggerType::StorageCleanup).await;
        for key in settled_keys.iter().chain(&untouched) {
            assert!(fs.get_data(key).await.is_ok(), "{key} is kept within the retention");
        }
        assert_eq!(config.metrics.cleanup_counts(), (2, settled_keys.len() as u64, 0));

        // Past it: the settled batches' files (and their directories) are gone, nothing else.
        *now.lock().expect("clock") += chrono::Duration::days(2);
        event_worker::run_trigger(&config, WorkerTriggerType::StorageCleanup).await;
        for key in &settled_keys {
            assert!(
                matches!(fs.get_data(key).await, Err(StorageError::NotFound(_))),
                "{key} is deleted"
            );
        }
        for gone in ["1", "10", ".tags/1", ".tags/10"] {
            assert!(!fs.root().join(gone).exists(), "{gone} is pruned");
        }
        for key in &untouched {
            assert!(fs.get_data(key).await.is_ok(), "{key} is kept");
            assert_eq!(tags(&fs, key).await, [], "{key} is still untagged");
        }
        assert_eq!(config.metrics.cleanup_counts(), (3, settled_keys.len() as u64, 0));
    }

    /// L2: aggregator batch 1 (SNOS batches 1 and 2) is settled, aggregator batches 2 (SNOS
    /// batch 3) and 10 are not. Every artifact of batch 1 — the aggregator directory, the
    /// blobs, the squashed state update and both SNOS directories, whatever the file names —
    /// is tagged; nothing of batches 2 and 10 is.
    #[tokio::test]
    async fn settled_l2_aggregator_batches_are_tagged_with_their_snos_batches() {
        let (config, fs, _dir) = config(Layer::L2, None).await;
        let db = config.database();
        for (index, start, end) in [(1, 0, 3), (2, 4, 7), (10, 40, 43)] {
            let mut batch = AggregatorBatch::new(index, start, "0.14.0");
            batch.end_block = end;
            batch.num_blocks = end - start + 1;
            db.create_aggregator_batch(batch).await.expect("aggregator batch");
        }
        for (index, aggregator, start, end) in [(1, 1, 0, 1), (2, 1, 2, 3), (3, 2, 4, 7)] {
            let mut batch =
                SnosBatch::new(index, Some(aggregator), start, "0.14.0", BouncerWeights::default());
            batch.end_block = end;
            batch.num_blocks = end - start + 1;
            batch.status = SnosBatchStatus::Closed;
            db.create_snos_batch(batch).await.expect("snos batch");
        }
        let of_batch = |i: u64| -> Vec<String> {
            vec![
                format!("artifacts/batch/{i}/cairo_pie.zip"),
                format!("artifacts/batch/{i}/da_blob.json"),
                format!("artifacts/batch/{i}/tx_attempts.json"),
                format!("artifacts/batch/{i}/an_unnamed_extra.bin"),
                format!("blob/batch/{i}/1.txt"),
                format!("blob/batch/{i}/2.txt"),
                format!("state_update/batch/{i}.json"),
            ]
        };
        let settled: Vec<String> =
            of_batch(1).into_iter().chain(snos_files(1)).chain(snos_files(2)).collect();
        let unsettled: Vec<String> =
            of_batch(2).into_iter().chain(of_batch(10)).chain(snos_files(3)).collect();
        put(&**config.storage(), &settled).await;
        put(&**config.storage(), &unsettled).await;
        settlement(&config, 1, JobStatus::Completed).await;
        settlement(&config, 2, JobStatus::LockedForProcessing).await;

        StorageCleanupTrigger::new(None).run(config.clone()).await.expect("cleanup");

        for key in &settled {
            assert!(is_tagged(&fs, key).await, "{key} is tagged");
        }
        for key in &unsettled {
            assert_eq!(tags(&fs, key).await, [], "{key} is not tagged");
        }
        assert!(tagged_at_set(&config, 1).await);
        assert_eq!(config.metrics.cleanup_counts(), (1, settled.len() as u64, 0));
    }

    /// A directory store whose tagging fails (`Unavailable`) after `budget` more tags;
    /// records the keys it tagged.
    #[derive(Debug)]
    struct FailingAfter {
        inner: FsStorage,
        budget: AtomicUsize,
        tagged: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl StorageClient for FailingAfter {
        async fn get_data(&self, key: &str) -> Result<Bytes, StorageError> {
            self.inner.get_data(key).await
        }
        async fn put_data(&self, data: Bytes, key: &str) -> Result<(), StorageError> {
            self.inner.put_data(data, key).await
        }
        async fn delete_data(&self, key: &str) -> Result<(), StorageError> {
            self.inner.delete_data(key).await
        }
        async fn list_files_in_dir(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
            self.inner.list_files_in_dir(prefix).await
        }
        async fn tag_object(
            &self,
            key: &str,
            tags: &[(String, String)],
        ) -> Result<(), StorageError> {
            let left = self.budget.load(Ordering::SeqCst);
            if left == 0 {
                return Err(StorageError::Unavailable("the store went away".into()));
            }
            self.budget.store(left - 1, Ordering::SeqCst);
            self.inner.tag_object(key, tags).await?;
            self.tagged.lock().expect("tagged").push(key.to_owned());
            Ok(())
        }
        async fn health_check(&self) -> Result<(), StorageError> {
            self.inner.health_check().await
        }
    }

    /// The store fails in the middle of the second page (batch 3 of 5, pages of 2): the run
    /// reports the failure, batches 1 and 2 are marked and never read again; the next run
    /// tags batches 3-5 only (batch 3's first file again, which leaves its tag time as it
    /// was) and completes; a third run tags nothing.
    #[tokio::test]
    async fn a_failure_mid_run_repeats_no_finished_batch_and_the_next_run_completes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = FsStorage::open(dir.path().join("store")).expect("store");
        let files = |i: u64| vec![format!("{i}/cairo_pie.zip"), format!("{i}/proof.json")];
        let failing = Arc::new(FailingAfter {
            inner: fs.clone(),
            budget: AtomicUsize::new(5),
            tagged: Mutex::default(),
        });
        let (config, _, _tier) = config(Layer::L3, Some(failing.clone())).await;
        for i in 1..=5 {
            put(&fs, &files(i)).await;
            settlement(&config, i, JobStatus::Completed).await;
        }
        let trigger = StorageCleanupTrigger::new(None).with_page_size(2);

        let err = trigger.run(config.clone()).await.expect_err("the store fails");
        let msg = err.to_string();
        assert!(msg.contains("3 failure(s)") && msg.contains("retried next run"), "{msg}");
        assert!(msg.contains("tagging 3/") && msg.contains("the store went away"), "{msg}");
        let first_run = std::mem::take(&mut *failing.tagged.lock().expect("tagged"));
        assert_eq!(first_run, [files(1), files(2), files(3)[..1].to_vec()].concat());
        for (i, marked) in [(1, true), (2, true), (3, false), (4, false), (5, false)] {
            assert_eq!(tagged_at_set(&config, i).await, marked, "job {i}");
        }
        assert_eq!(config.metrics.cleanup_counts(), (1, 5, 3));
        let first_tag_of_3 = fs.tagged_at(&files(3)[0]).await.expect("time").expect("tagged");

        failing.budget.store(usize::MAX, Ordering::SeqCst);
        trigger.run(config.clone()).await.expect("the next run completes");
        let second_run = std::mem::take(&mut *failing.tagged.lock().expect("tagged"));
        assert_eq!(second_run, [files(3), files(4), files(5)].concat());
        for i in 1..=5 {
            assert!(tagged_at_set(&config, i).await, "job {i}");
            for key in files(i) {
                assert!(is_tagged(&fs, &key).await, "{key}");
            }
        }
        assert_eq!(
            fs.tagged_at(&files(3)[0]).await.expect("time"),
            Some(first_tag_of_3),
            "tagging again keeps the tag time"
        );

        trigger.run(config.clone()).await.expect("nothing left");
        assert!(failing.tagged.lock().expect("tagged").is_empty(), "a third run tags nothing");
        assert_eq!(config.metrics.cleanup_counts(), (3, 11, 3));
    }

    /// Another worker holds the lock: the run does nothing.
    #[tokio::test]
    async fn a_held_lock_skips_the_run() {
        let (config, fs, _dir) = config(Layer::L3, None).await;
        put(&fs, &files_of_one()).await;
        settlement(&config, 1, JobStatus::Completed).await;
        config
            .lock()
            .acquire_lock(
                LOCK_KEY,
                crate::core::client::LockValue::Boolean(true),
                LOCK_TTL,
                Some("other"),
            )
            .await
            .expect("lock");
        StorageCleanupTrigger::new(None).run(config.clone()).await.expect("skipped");
        assert_eq!(tags(&fs, &files_of_one()[0]).await, []);
        assert!(!tagged_at_set(&config, 1).await);
        assert_eq!(config.metrics.cleanup_counts(), (0, 0, 0));
    }

    fn files_of_one() -> Vec<String> {
        vec!["1/cairo_pie.zip".to_owned()]
    }

    /// On S3 (moto): `setup` creates the bucket and its lifecycle rule; after a run the
    /// settled batch's objects carry exactly the tag the rule filters on, the unsettled
    /// batch's carry none.
    #[tokio::test]
    async fn on_s3_settled_artifacts_carry_the_tag_of_the_lifecycle_rule() {
        use clap::Parser as _;

        let Some(env) = crate::core::client::aws::test_support::moto_or_skip().await else {
            return;
        };
        let prefix = crate::core::client::aws::test_support::unique_prefix();
        let data_dir = tempfile::tempdir().expect("tempdir");
        let data = data_dir.path().display().to_string();
        let args = [
            "setup",
            "--layer",
            "l3",
            "--data-dir",
            &data,
            "--aws",
            "--aws-prefix",
            &prefix,
            "--aws-s3",
        ];
        let params = crate::cli::setup::SetupCmd::try_parse_from(args)
            .expect("setup flags")
            .params()
            .expect("setup params");
        crate::setup::aws::setup_aws(&params, &env).await.expect("setup");
        let bucket =
            crate::core::client::aws::s3::bucket_name("mo-bucket", Some(&prefix)).expect("bucket");
        let s3: Arc<dyn StorageClient> =
            Arc::new(crate::core::client::aws::s3::S3Storage::new(&env, bucket.clone()));
        let (config, _, _dir) = config(Layer::L3, Some(s3.clone())).await;
        put(&*s3, &snos_files(1)).await;
        put(&*s3, &snos_files(10)).await;
        settlement(&config, 1, JobStatus::Completed).await;
        settlement(&config, 10, JobStatus::PendingVerification).await;

        StorageCleanupTrigger::new(None).run(config.clone()).await.expect("cleanup");

        let rules = env
            .s3()
            .get_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .send()
            .await
            .expect("lifecycle")
            .rules
            .unwrap_or_default();
        let rule = rules
            .iter()
            .find(|r| r.id.as_deref() == Some("expire-settled-artifacts"))
            .expect("the rule setup creates");
        let filter = rule.filter.as_ref().and_then(|f| f.tag.as_ref()).expect("a tag filter");
        let rule_tag = (filter.key.clone(), filter.value.clone());
        assert_eq!(rule.expiration.as_ref().and_then(|e| e.days), Some(14));
        let object_tags = |key: String| {
            let s3 = env.s3();
            let bucket = bucket.clone();
            async move {
                s3.get_object_tagging()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("tags of {key}: {e:?}"))
                    .tag_set
                    .into_iter()
                    .map(|t| (t.key, t.value))
                    .collect::<Vec<_>>()
            }
        };
        for key in snos_files(1) {
            assert_eq!(object_tags(key.clone()).await, std::slice::from_ref(&rule_tag), "{key}");
        }
        for key in snos_files(10) {
            assert_eq!(object_tags(key.clone()).await, [], "{key} is not tagged");
        }
        assert!(tagged_at_set(&config, 1).await);
        assert!(!tagged_at_set(&config, 10).await);
    }
}
