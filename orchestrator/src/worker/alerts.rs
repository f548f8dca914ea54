//! Alerts raised by the engine outside a job's own failure, each once per episode rather than
//! on every tick or attempt:
//! - about triggers: a trigger run failing (batching and job creation) and a pipeline halted by
//!   failed jobs — sent when the trigger starts failing or becomes halted; the episode ends (and
//!   is logged) when a run succeeds or the halt lifts;
//! - about jobs that recover by themselves: a retried failure ([`job_retrying`], once per
//!   streak per job type, the upstream named when the error says which) and jobs healed after
//!   their worker died ([`jobs_healed`], one per orphan scan, throttled on redelivery);
//! - from inside a handler run by the engine ([`from_handler`]: the settlement handler's
//!   `settlement_resent`).
//!
//! Job alerts (Failed, VerificationTimeout, dead letters) live in `worker::service::alert`,
//! except a job failure only an operator can fix outside the orchestrator
//! ([`operator_action`]: a prover account out of credits), which has its own kind.
//!
//! The episode state is in memory, per process ([`JobAlertState`], in the [`Config`]): two
//! instances each alert once for the same streak.

use std::{
    collections::HashMap,
    error::Error as StdError,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use orchestrator_da_client_interface::DaError;
use orchestrator_prover_client_interface::ProverError;
use orchestrator_settlement_client_interface::SettlementError;
use orchestrator_snos_runner::SnosRunnerError;
use orchestrator_utils::OperatorAction;
use uuid::Uuid;

use crate::worker::Config;
use crate::{
    config::FailedJobHalt,
    core::client::{
        madara::MadaraError, Alert, AlertClient, AlertSeverity, DatabaseError, LockError,
        QueueError, StorageError,
    },
    telemetry::metrics::Metrics,
    types::{
        jobs::{JobItem, JobType},
        queue::{JobAction, WorkerTriggerType},
        ORCHESTRATOR_VERSION,
    },
    worker::{
        error::EngineError,
        service::job_alert_body,
        stages::snos::RpcError as SnosRpcError,
        trigger::{JobTrigger, HALTING_STATUSES},
    },
};

/// Sends alerts and counts them in `alerts_sent{kind, delivered}`.
#[derive(Debug, Clone)]
pub struct AlertSink {
    client: Arc<dyn AlertClient>,
    metrics: Arc<Metrics>,
}

impl AlertSink {
    /// The alert client and metrics of `config`.
    pub fn of(config: &Config) -> Self {
        Self { client: config.alerts().clone(), metrics: config.metrics.clone() }
    }

    /// Sends `alert` as `kind`; a delivery failure is logged (and counted), never returned.
    pub async fn send(&self, kind: &'static str, alert: Alert) {
        let sent = self.client.send_alert(&alert).await;
        self.metrics.alert(kind, sent.is_ok());
        if let Err(e) = sent {
            tracing::error!(error = %e, kind, title = %alert.title, "Could not send alert");
        }
    }
}

tokio::task_local! {
    /// The engine's alert path, while it runs a handler (see [`with_handler_alerts`]).
    static HANDLER_ALERTS: AlertSink;
}

/// Runs `fut` (a handler call) with the engine's alert path available to [`from_handler`].
pub async fn with_handler_alerts<F: Future>(sink: AlertSink, fut: F) -> F::Output {
    HANDLER_ALERTS.scope(sink, fut).await
}

/// Sends an alert of `kind` from inside a job handler: through the engine's alert client and
/// counted like the engine's own alerts when the engine runs the handler; logged at WARN only
/// when the handler is called outside the engine (a test calling it directly).
pub async fn from_handler(kind: &'static str, alert: Alert) {
    match HANDLER_ALERTS.try_with(Clone::clone) {
        Ok(sink) => sink.send(kind, alert).await,
        Err(_) => {
            tracing::warn!(kind, title = %alert.title, body = %alert.body, "Alert raised outside the job engine; logged only")
        }
    }
}

/// Records into the engine's metrics from inside a job handler; nothing when the handler is
/// called outside the engine (a test calling it directly).
pub fn handler_metrics(record: impl FnOnce(&Metrics)) {
    let _ = HANDLER_ALERTS.try_with(|sink| record(&sink.metrics));
}

/// Episode state of the job alerts, per process: the job types whose last attempt failed
/// retryably (a retry streak), and when each job type's healed jobs were last alerted.
#[derive(Debug, Default)]
pub struct JobAlertState {
    retrying: Mutex<HashMap<JobType, RetryStreak>>,
    healed_alerted_at: Mutex<HashMap<JobType, Instant>>,
}

#[derive(Debug, Clone, Copy)]
struct RetryStreak {
    since: Instant,
    failures: u64,
}

impl JobAlertState {
    /// Records a retried failure of a `job_type` job; returns whether it starts a streak.
    fn retry_failed(&self, job_type: JobType) -> bool {
        let mut streaks = self.retrying.lock().unwrap_or_else(PoisonError::into_inner);
        match streaks.get_mut(&job_type) {
            Some(streak) => {
                streak.failures += 1;
                false
            }
            None => {
                streaks.insert(job_type, RetryStreak { since: Instant::now(), failures: 1 });
                true
            }
        }
    }

    /// Ends the retry streak of `job_type`, if one is running.
    fn retry_ended(&self, job_type: JobType) -> Option<RetryStreak> {
        self.retrying.lock().unwrap_or_else(PoisonError::into_inner).remove(&job_type)
    }

    /// Whether healed `job_type` jobs may be alerted now (none was within `HEALED_THROTTLE`);
    /// records the alert when they may.
    fn may_alert_healed(&self, job_type: JobType, throttled: bool) -> bool {
        let mut at = self.healed_alerted_at.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if throttled && at.get(&job_type).is_some_and(|t| now.duration_since(*t) < HEALED_THROTTLE)
        {
            return false;
        }
        at.insert(job_type, now);
        true
    }
}

/// At most one healed-job alert per job type in this time, for heals on redelivery.
pub const HEALED_THROTTLE: Duration = Duration::from_secs(60);

/// The upstream a failure comes from, named from the types in its error chain: `prover`,
/// `node`, `settlement` (`settlement fee cap` when the fee cap stopped a state update), `DA
/// layer`, `SNOS runner`, `database`, `queue`, `storage`, `lock`; `handler panic` for a panic;
/// `None` when no typed client error is in the chain.
pub fn upstream(error: &(dyn StdError + 'static)) -> Option<&'static str> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(s) = e.downcast_ref::<SettlementError>() {
            return Some(match s {
                SettlementError::FeeCapExceeded { .. } => "settlement fee cap",
                _ => "settlement",
            });
        }
        // `EngineError`'s database and queue variants are transparent: their `source()` skips
        // the client error itself.
        let engine = e.downcast_ref::<EngineError>();
        let name = if matches!(engine, Some(EngineError::Panicked { .. })) {
            "handler panic"
        } else if matches!(engine, Some(EngineError::Database(_))) {
            "database"
        } else if matches!(engine, Some(EngineError::Queue(_))) {
            "queue"
        } else if e.is::<ProverError>() {
            "prover"
        } else if e.is::<MadaraError>()
            || e.is::<SnosRpcError>()
            || e.is::<orchestrator_protocol::compression::StateReadError>()
            || e.is::<orchestrator_protocol::compression::squash::SquashError>()
        {
            "node"
        } else if e.is::<DaError>() {
            "DA layer"
        } else if e.is::<SnosRunnerError>() {
            "SNOS runner"
        } else if e.is::<DatabaseError>() {
            "database"
        } else if e.is::<QueueError>() {
            "queue"
        } else if e.is::<StorageError>() {
            "storage"
        } else if e.is::<LockError>() {
            "lock"
        } else {
            cause = e.source();
            continue;
        };
        return Some(name);
    }
    None
}

/// Where a retried failure happened.
#[derive(Debug, Clone, Copy)]
pub struct RetriedJob {
    /// The job's type.
    pub job_type: JobType,
    /// The job.
    pub id: Uuid,
    /// Its internal id, when the job could be read.
    pub internal_id: Option<u64>,
    /// Processing or verification.
    pub action: JobAction,
    /// Which attempt of that operation failed (1 for the first).
    pub attempt: u64,
}

/// A job's processing or verification failed with a retryable error (it is tried again after
/// a backoff): logs nothing (the engine does), alerts (Warning, kind `job_retrying`) at the
/// start of a retry streak of the job type, naming the upstream when the error says which.
pub async fn job_retrying(
    config: &Config,
    job: RetriedJob,
    error: &(dyn StdError + Send + Sync + 'static),
) {
    if !config.job_alerts.retry_failed(job.job_type) {
        return;
    }
    let job_type = job.job_type;
    let upstream = upstream(error);
    let title = match upstream {
        Some(u) => format!("{job_type} jobs retrying: {u}"),
        None => format!("{job_type} jobs retrying"),
    };
    let operation = match job.action {
        JobAction::Process => "processing",
        JobAction::Verify => "verification",
    };
    let internal_id = job.internal_id.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
    let alert = Alert {
        severity: AlertSeverity::Warning,
        title,
        body: format!(
            "job_type: {job_type}\nupstream: {}\njob_id: {}\ninternal_id: {internal_id}\n\
             operation: {operation}\nattempt: {}\nerror: {error}\n\
             next: the job is tried again after a backoff; this alert is not repeated until a \
             {job_type} job succeeds and one fails again. If it does not recover, check the \
             upstream (its health and the orchestrator's warnings)",
            upstream.unwrap_or("not named by the error"),
            job.id,
            job.attempt,
        ),
    };
    AlertSink::of(config).send("job_retrying", alert).await;
}

/// A handler call of a `job_type` job succeeded: ends its retry streak (logged at INFO).
pub fn job_succeeded(config: &Config, job_type: JobType) {
    if let Some(streak) = config.job_alerts.retry_ended(job_type) {
        tracing::info!(%job_type, failures = streak.failures, duration_s = streak.since.elapsed().as_secs(), "Jobs succeed again after retried failures");
    }
}

/// Orphaned jobs were healed (their lock expired: the instance processing them died): one
/// alert (Warning, kind `job_healed`) listing them. `source` is `scanner` (one alert per scan)
/// or `redelivery` (at most one per job type per [`HEALED_THROTTLE`]).
pub async fn jobs_healed(config: &Config, healed: &[JobItem], source: &'static str) {
    let throttled = source != "scanner";
    let mut types: Vec<JobType> = healed.iter().map(|j| j.job_type).collect();
    types.sort();
    types.dedup();
    let allowed: Vec<JobType> =
        types.into_iter().filter(|t| config.job_alerts.may_alert_healed(*t, throttled)).collect();
    if allowed.is_empty() {
        return;
    }
    let listed: Vec<String> = healed
        .iter()
        .filter(|j| allowed.contains(&j.job_type))
        .map(|j| {
            let why = j.metadata.common.failure_reason.as_deref().unwrap_or("healed");
            format!("- {} {} internal_id {}: {why}", j.job_type, j.id, j.internal_id)
        })
        .collect();
    let names: Vec<String> = allowed.iter().map(ToString::to_string).collect();
    let alert = Alert {
        severity: AlertSeverity::Warning,
        title: format!("Healed {} orphaned job(s): {}", listed.len(), names.join(", ")),
        body: format!(
            "found by: {source}\nwhat: the jobs were LockedForProcessing past their lock \
             timeout: the instance processing them died (killed, out of memory, crashed) or lost \
             the database; they are back in Created and processed again\njobs:\n{}\n\
             action: none for a one-off; repeated, find why instances die (restarts, OOM kills \
             in the platform's events) or raise the job timeout if the jobs are only slow",
            listed.join("\n")
        ),
    };
    AlertSink::of(config).send("job_healed", alert).await;
}

async fn send(config: &Config, kind: &'static str, alert: Alert) {
    AlertSink::of(config).send(kind, alert).await;
}

/// How many of the halting jobs an alert lists.
const LISTED_JOBS: u64 = 10;

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

#[cfg(test)]
mod tests {
    use orchestrator_settlement_client_interface::StateUpdateTxError;
    use rstest::rstest;

    use super::*;
    use crate::worker::handler::JobError;

    fn handler(source: JobError) -> EngineError {
        EngineError::Handler { id: Uuid::nil(), job_type: JobType::ProofCreation, source }
    }

    fn io() -> crate::core::client::BoxError {
        "connection refused".into()
    }

    #[rstest]
    #[case::prover(
        handler(JobError::client("submitting", ProverError::other("503"))),
        Some("prover")
    )]
    #[case::node(handler(JobError::client("block 3", MadaraError::RateLimited("getBlock".into()))), Some("node"))]
    #[case::snos_rpc(handler(JobError::client("", SnosRpcError { message: "reset".into() })), Some("node"))]
    #[case::settlement(handler(JobError::client("", SettlementError::Rpc("down".into()))), Some("settlement"))]
    #[case::fee_cap(handler(JobError::client("settling", SettlementError::FeeCapExceeded { needed_wei: 2, cap_wei: 1 })), Some("settlement fee cap"))]
    #[case::fee_cap_with_attempts(handler(JobError::retryable_with("", StateUpdateTxError { error: SettlementError::FeeCapExceeded { needed_wei: 2, cap_wei: 1 }, attempts: Vec::new() })), Some("settlement fee cap"))]
    #[case::da(handler(JobError::client("", DaError::Rpc("timed out".into()))), Some("DA layer"))]
    #[case::storage(
        handler(JobError::client("reading", StorageError::Unavailable(io()))),
        Some("storage")
    )]
    #[case::database_in_handler(handler(JobError::client("", DatabaseError::Conflict("x".into()))), Some("database"))]
    #[case::database_in_engine(EngineError::Database(DatabaseError::Conflict("x".into())), Some("database"))]
    #[case::queue_in_engine(EngineError::Queue(QueueError::Unavailable(io())), Some("queue"))]
    #[case::panic(EngineError::Panicked { id: Uuid::nil(), job_type: JobType::SnosRun, message: "bug".into() }, Some("handler panic"))]
    #[case::own_failure(handler(JobError::retryable("not ready")), None)]
    fn the_upstream_is_named_from_the_error_chain(
        #[case] error: EngineError,
        #[case] want: Option<&str>,
    ) {
        assert_eq!(upstream(&error), want, "{error}");
    }
}
