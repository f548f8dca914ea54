//! The orphan scanner: finds jobs no message will move on (a worker died while holding them,
//! a send failed after a create) and puts them back in motion. Lazy healing on redelivery
//! still happens in `service::process_job`; this covers messages that are gone.
//!
//! Healed jobs are the sign of an instance that died holding them (SIGKILL, OOM): each scan
//! that heals any sends one `job_healed` alert listing them.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::{
    core::client::DatabaseError,
    types::{
        jobs::{JobItem, JobItemUpdates, JobStatus, JobType},
        queue::JobAction,
    },
    worker::Config,
    worker::{alerts, error::EngineError, service},
};

/// Jobs looked at per status per scan.
const SCAN_LIMIT: u64 = 200;

/// What one scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    /// Orphaned `LockedForProcessing` jobs healed and queued again.
    pub healed: usize,
    /// Waiting jobs whose message was sent again.
    pub requeued: usize,
}

/// Runs a scan every `orphan_scan_interval` until `shutdown`.
pub async fn run(config: Arc<Config>, shutdown: CancellationToken) {
    let interval = config.engine.orphan_scan_interval;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        match scan(&config).await {
            Ok(report) if report != ScanReport::default() => {
                tracing::info!(healed = report.healed, requeued = report.requeued, "Orphan scan");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Orphan scan failed; retrying next interval"),
        }
    }
}

/// One scan: heals stale `LockedForProcessing` jobs (one `job_healed` alert listing them) and
/// sends again the message of jobs that have waited longer than `stale_message_after` in a
/// status that needs one.
pub async fn scan(config: &Config) -> Result<ScanReport, EngineError> {
    let db = config.database();
    let types: Vec<_> = config.handlers.job_types().collect();
    if types.is_empty() {
        return Ok(ScanReport::default());
    }
    let mut report = ScanReport::default();

    let mut healed = Vec::new();
    let outcome = heal_stale(config, &types, &mut healed, &mut report).await;
    if !healed.is_empty() {
        alerts::jobs_healed(config, &healed, "scanner").await;
    }
    outcome?;

    let waiting = [
        (JobStatus::Created, JobAction::Process),
        (JobStatus::PendingRetry, JobAction::Process),
        (JobStatus::VerificationFailed, JobAction::Process),
        (JobStatus::PendingVerification, JobAction::Verify),
    ];
    for (status, action) in waiting {
        for job in
            db.get_jobs_by_types_and_statuses(&types, &[status], Some(SCAN_LIMIT), None).await?
        {
            if !waited_too_long(config, &job, action) {
                continue;
            }
            // Touch the job so the next scan does not send again before it is stale again;
            // losing this race means someone else moved it, which is what we wanted.
            match db.update_job(&job, JobItemUpdates::new().metadata(job.metadata.clone())).await {
                Ok(touched) => {
                    config.metrics.orphaned(touched.job_type, status);
                    service::send_job_message(config, &touched, action, Duration::ZERO).await?;
                    report.requeued += 1;
                }
                Err(DatabaseError::UpdateFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(report)
}

/// Heals the stale `LockedForProcessing` jobs of `types` and queues them; every healed job is
/// pushed to `healed` (queued or not), `report.healed` counts the queued ones.
async fn heal_stale(
    config: &Config,
    types: &[JobType],
    healed: &mut Vec<JobItem>,
    report: &mut ScanReport,
) -> Result<(), EngineError> {
    for job in config
        .database()
        .get_jobs_by_types_and_statuses(
            types,
            &[JobStatus::LockedForProcessing],
            Some(SCAN_LIMIT),
            None,
        )
        .await?
    {
        if !service::is_stale(config, &job) {
            continue;
        }
        match service::heal(config, &job).await {
            Ok(job) => {
                config.metrics.healed(job.job_type, "scanner");
                healed.push(job.clone());
                service::send_job_message(config, &job, JobAction::Process, Duration::ZERO).await?;
                report.healed += 1;
            }
            Err(EngineError::Database(DatabaseError::UpdateFailed { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn waited_too_long(config: &Config, job: &JobItem, action: JobAction) -> bool {
    let mut threshold = config.engine.stale_message_after;
    if action == JobAction::Verify {
        if let Some(handler) = config.handlers.get(job.job_type) {
            threshold = threshold.max(handler.verification_polling_delay() * 2);
        }
    }
    (Utc::now() - job.updated_at).to_std().is_ok_and(|age| age > threshold)
}
