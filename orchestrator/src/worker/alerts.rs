//! Alerts about triggers: a trigger run failing (batching and job creation) and a pipeline
//! halted by failed jobs. Each is sent once per episode — when the trigger starts failing or
//! becomes halted — not on every cron tick; the episode ends (and is logged) when a run
//! succeeds or the halt lifts. Job alerts (Failed, VerificationTimeout, dead letters) live in
//! `worker::service::alert`, except a job failure only an operator can fix outside the
//! orchestrator ([`operator_action`]: a prover account out of credits), which has its own kind.

use orchestrator_utils::OperatorAction;

use crate::worker::Config;
use crate::{
    config::FailedJobHalt,
    core::client::{Alert, AlertSeverity},
    types::{jobs::JobItem, queue::WorkerTriggerType, ORCHESTRATOR_VERSION},
    worker::{
        service::job_alert_body,
        trigger::{JobTrigger, HALTING_STATUSES},
    },
};

/// How many of the halting jobs an alert lists.
const LISTED_JOBS: u64 = 10;

async fn send(config: &Config, kind: &'static str, alert: Alert) {
    let sent = config.alerts().send_alert(&alert).await;
    config.metrics.alert(kind, sent.is_ok());
    if let Err(e) = sent {
        tracing::error!(error = %e, title = %alert.title, "Could not send alert");
    }
}

/// A job failed for a reason only an operator can fix outside the orchestrator: one critical
/// alert of the action's own kind (`action.alert`, the `kind` label of `alerts_sent`), titled
/// with the action and the job, whose body says what to do, instead of the generic
/// "Job failed".
pub async fn operator_action(config: &Config, job: &JobItem, action: OperatorAction, reason: &str) {
    let alert = Alert {
        severity: AlertSeverity::Critical,
        title: format!("{}: {} {} ({})", action.title, job.job_type, job.internal_id, job.id),
        body: format!("action: {}\n{}", action.action, job_alert_body(job, reason)),
    };
    send(config, action.alert, alert).await;
}

/// A trigger run failed: alerts at the start of a failure streak, logs every failure.
pub async fn trigger_failed(config: &Config, kind: WorkerTriggerType, error: &str) {
    tracing::warn!(trigger = %kind, %error, "Trigger run failed");
    if !config.trigger_control.set_failing(kind, true) {
        return;
    }
    let what = match kind {
        WorkerTriggerType::AggregatorBatching | WorkerTriggerType::SnosBatching => "batching",
        WorkerTriggerType::StorageCleanup => "storage cleanup",
        _ => "job creation",
    };
    let alert = Alert {
        severity: AlertSeverity::Critical,
        title: format!("Trigger {kind} failed ({what})"),
        body: format!(
            "trigger: {kind}\nstage: {what}\nerror: {error}\nnext: the trigger runs again at every tick; \
             this alert is not repeated until a run succeeds and fails again"
        ),
    };
    send(config, "trigger_failed", alert).await;
}

/// A trigger run succeeded: ends a failure streak.
pub fn trigger_succeeded(config: &Config, kind: WorkerTriggerType) {
    if config.trigger_control.set_failing(kind, false) {
        tracing::info!(trigger = %kind, "Trigger runs again without error");
    }
}

/// Failed jobs stop `trigger`: alerts once per halt episode, naming the jobs to act on.
pub async fn trigger_halted(config: &Config, kind: WorkerTriggerType, trigger: &dyn JobTrigger) {
    if !config.trigger_control.set_halted(kind, true) {
        return;
    }
    let types = match (config.engine.failed_job_halt, trigger.creates()) {
        (FailedJobHalt::Stage, Some(t)) => vec![t],
        _ => Vec::new(),
    };
    let jobs = config
        .database()
        .get_jobs_by_types_and_statuses(
            &types,
            &HALTING_STATUSES,
            Some(LISTED_JOBS),
            Some(ORCHESTRATOR_VERSION),
        )
        .await;
    let listed = match jobs {
        Ok(jobs) => jobs
            .iter()
            .map(|j| {
                format!(
                    "- {} {} internal_id {} ({}): {}",
                    j.job_type,
                    j.id,
                    j.internal_id,
                    j.status,
                    j.metadata.common.failure_reason.as_deref().unwrap_or("no reason recorded")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("(could not list them: {e})"),
    };
    let creates = trigger.creates().map_or_else(|| "nothing".to_owned(), |t| t.to_string());
    let alert = Alert {
        severity: AlertSeverity::Critical,
        title: format!("Pipeline halted: trigger {kind} creates no {creates} jobs"),
        body: format!(
            "trigger: {kind}\ncreates: {creates}\nhalt mode: {:?}\nhalting jobs (first {LISTED_JOBS}):\n{listed}\n\
             action: fix the cause, then POST /admin/jobs/retry/failed or /admin/jobs/reverify/verification-timeout \
             (or GET /jobs/<id>/retry)",
            config.engine.failed_job_halt
        ),
    };
    tracing::error!(trigger = %kind, "Pipeline halted by failed jobs; an operator must retry or fix them");
    send(config, "pipeline_halted", alert).await;
}

/// The halt check passed: ends a halt episode.
pub fn trigger_not_halted(config: &Config, kind: WorkerTriggerType) {
    if config.trigger_control.set_halted(kind, false) {
        tracing::info!(trigger = %kind, "Pipeline halt lifted; the trigger creates jobs again");
    }
}
