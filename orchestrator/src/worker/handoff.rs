//! `job_handoff_seconds{from_job_type,to_job_type}`: the time from the moment a job's last
//! predecessor reached `Completed` to the moment a worker locked the job for processing
//! (`LockedForProcessing`), for each edge of the stage table (`types/stage.rs`).
//!
//! A job's predecessors are the jobs of the stages whose `next` is its type:
//! - the job of the previous stage with the same internal id (SnosRun → ProofCreation,
//!   ProofCreation → ProofRegistration → DataSubmission → StateTransition on L3,
//!   Aggregator → StateTransition on L2);
//! - for an Aggregator job (internal id: the aggregator batch), the ProofCreation jobs of the
//!   SNOS batches of that aggregator batch;
//! - for a StateTransition job, also the StateTransition of the batch before (a batch settles
//!   only after the one before it).
//!
//! The hand-off is measured from the latest of them, which is the one that let the job start,
//! and labelled with its type. Only the first pickup of a job counts (a job locked again after a
//! failed attempt or a rejected verification would measure the retry, not the hand-off). The
//! times are the jobs' stored millisecond timestamps, so the figure is the same whichever
//! process completed the predecessor and whichever locked the job.

use chrono::{DateTime, Utc};

use crate::{
    core::client::DatabaseResult,
    types::{
        jobs::{JobItem, JobStatus, JobType},
        stage,
    },
    worker::Config,
};

/// Records the hand-off of `locked`, just locked for processing from status `prior`. Never
/// fails: a database error only costs the sample (logged at debug level).
pub(crate) async fn record(config: &Config, locked: &JobItem, prior: JobStatus) {
    if prior != JobStatus::Created || locked.metadata.common.process_attempt_no > 0 {
        return;
    }
    let Some(started) = locked.metadata.common.process_started_at else { return };
    match latest_predecessor(config, locked).await {
        Ok(Some((from, completed))) => {
            let elapsed = (started - completed).to_std().unwrap_or_default();
            config.metrics.handoff(from, locked.job_type, elapsed);
            config.metrics.dependency_wait(locked.job_type, elapsed);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(job_id = %locked.id, error = %e, "Hand-off not measured: predecessors unreadable");
        }
    }
}

/// The type and completion time of the predecessor of `job` that completed last, if any is
/// `Completed`.
async fn latest_predecessor(
    config: &Config,
    job: &JobItem,
) -> DatabaseResult<Option<(JobType, DateTime<Utc>)>> {
    let db = config.database();
    let mut latest: Option<(JobType, DateTime<Utc>)> = None;
    let mut consider = |pred: &JobItem| {
        if pred.status != JobStatus::Completed {
            return;
        }
        let at = pred.metadata.common.verification_completed_at.unwrap_or(pred.updated_at);
        if latest.is_none_or(|(_, t)| at > t) {
            latest = Some((pred.job_type, at));
        }
    };
    for s in stage::stages(config.layer).iter().filter(|s| s.next == job.job_type) {
        if s.job_type == job.job_type {
            // The self edge: the batch before settles first.
            if let Some(before) = job.internal_id.checked_sub(1) {
                if let Some(pred) = db.get_job_by_internal_id_and_type(before, s.job_type).await? {
                    consider(&pred);
                }
            }
        } else if job.job_type == JobType::Aggregator {
            let snos = db.get_snos_batches_by_aggregator_index(job.internal_id).await?;
            let (Some(lo), Some(hi)) =
                (snos.iter().map(|b| b.index).min(), snos.iter().map(|b| b.index).max())
            else {
                continue;
            };
            for pred in
                db.get_jobs_between_internal_ids(s.job_type, JobStatus::Completed, lo, hi).await?
            {
                consider(&pred);
            }
        } else if let Some(pred) =
            db.get_job_by_internal_id_and_type(job.internal_id, s.job_type).await?
        {
            consider(&pred);
        }
    }
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;
    use crate::{
        config::EngineParams,
        core::client::embedded,
        types::{
            batch::SnosBatch,
            jobs::{
                AggregatorMetadata, JobItemUpdates, JobSpecificMetadata, ProvingMetadata,
                SnosMetadata,
            },
            Layer,
        },
        worker::{handler::JobHandlers, trigger::Triggers},
    };

    /// Stores `job` as `Completed`, `ago` before now.
    async fn completed(config: &Config, job: JobItem, ago: Duration) {
        let db = config.database();
        let job = db.create_job(job).await.expect("create");
        let mut metadata = job.metadata.clone();
        metadata.common.verification_completed_at = Some(crate::types::jobs::now_ms() - ago);
        db.update_job(&job, JobItemUpdates::new().status(JobStatus::Completed).metadata(metadata))
            .await
            .expect("complete");
    }

    /// Stores `job` and locks it for processing now, as the engine does.
    async fn locked(config: &Config, job: JobItem) -> JobItem {
        let db = config.database();
        let job = db.create_job(job).await.expect("create");
        let mut metadata = job.metadata.clone();
        metadata.common.process_started_at = Some(crate::types::jobs::now_ms());
        let lock = JobItemUpdates::new().status(JobStatus::LockedForProcessing).metadata(metadata);
        db.update_job(&job, lock).await.expect("lock")
    }

    fn proving(i: u64) -> JobItem {
        JobItem::new(
            JobType::ProofCreation,
            i,
            JobSpecificMetadata::Proving(ProvingMetadata { block_number: i, ..Default::default() }),
        )
    }

    #[tokio::test]
    async fn records_the_time_from_the_last_predecessor_completed_to_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clients = embedded::open(dir.path(), &embedded::EmbeddedOptions::default())
            .await
            .expect("embedded tier");
        let config = Arc::new(Config::new(
            Layer::L2,
            clients,
            JobHandlers::new(),
            Triggers::new(),
            EngineParams::default(),
        ));
        let db = config.database();

        // SnosRun 3 completed 250 ms ago → ProofCreation 3 locked now.
        let snos = JobItem::new(
            JobType::SnosRun,
            3,
            JobSpecificMetadata::Snos(SnosMetadata { snos_batch_index: 3, ..Default::default() }),
        );
        completed(&config, snos, Duration::from_millis(250)).await;
        let proof = locked(&config, proving(3)).await;
        record(&config, &proof, JobStatus::Created).await;
        let (n, sum) = config.metrics.handoff_observed(JobType::SnosRun, JobType::ProofCreation);
        assert_eq!(n, 1);
        assert!((0.25..2.0).contains(&sum), "hand-off {sum} s, expected about 0.25 s");

        // Aggregator 7 over SNOS batches 1 and 2, proven 900 ms and 300 ms ago: measured from
        // the later proof.
        for (index, start) in [(1, 0), (2, 10)] {
            db.create_snos_batch(SnosBatch::new(
                index,
                Some(7),
                start,
                "0.14.2",
                Default::default(),
            ))
            .await
            .expect("snos batch");
        }
        completed(&config, proving(1), Duration::from_millis(900)).await;
        completed(&config, proving(2), Duration::from_millis(300)).await;
        let aggregator = JobItem::new(
            JobType::Aggregator,
            7,
            JobSpecificMetadata::Aggregator(AggregatorMetadata {
                batch_num: 7,
                ..Default::default()
            }),
        );
        let aggregator = locked(&config, aggregator).await;
        record(&config, &aggregator, JobStatus::Created).await;
        let (n, sum) = config.metrics.handoff_observed(JobType::ProofCreation, JobType::Aggregator);
        assert_eq!(n, 1);
        assert!((0.3..0.9).contains(&sum), "hand-off {sum} s, expected about 0.3 s");

        // A second pickup (after a failed attempt) is not a hand-off.
        record(&config, &proof, JobStatus::VerificationFailed).await;
        assert_eq!(config.metrics.handoff_observed(JobType::SnosRun, JobType::ProofCreation).0, 1);
        // A job whose predecessor is not Completed records nothing.
        let orphan = locked(&config, proving(5)).await;
        record(&config, &orphan, JobStatus::Created).await;
        assert_eq!(config.metrics.handoff_observed(JobType::SnosRun, JobType::ProofCreation).0, 1);
        let text = orchestrator_test_support::prometheus::Exposition::parse(
            &config.metrics.render_prometheus(),
        )
        .unwrap();
        let edge = [("from_job_type", "SnosRun"), ("to_job_type", "ProofCreation")];
        assert_eq!(text.get("job_handoff_seconds_count", &edge), Some(1.0));
    }
}
