//! The watchdog (ours; the reference has none): a task that looks at the pipeline from outside
//! the engine's own bookkeeping and alerts when
//! - **settlement lags**: the core contract's settled block (read on the settlement layer, not
//!   from the database) is far behind the node's tip: `settlement_lag_blocks` and
//!   `settlement_lag_seconds` (age of the oldest unsettled block), alert `settlement_lag` past
//!   `--settlement-lag-alert-seconds`;
//! - **the signer runs dry**: the settlement signer's balance is below
//!   `--settlement-min-balance-updates` state updates' worth, the worth of one being the average
//!   fee the confirmed updates of this process paid (alert `settlement_balance_low`; an empty
//!   balance alerts before any update was paid for);
//! - **a stage stalls**: a job has been in the same open status (`Created`,
//!   `LockedForProcessing`, `PendingVerification`, `PendingRetry`, `VerificationFailed`) for
//!   longer than `--stall-alert-seconds` (alert `stage_stalled`, gauge `stage_stalled{job_type}`).
//!
//! Each alert is sent once per episode; the end of an episode sends one more alert of the kind
//! with `_cleared` appended, so a pager that opened on the first closes on the second. A failed
//! read (node or settlement RPC down) is logged and skips that check for the tick: the lag keeps
//! its last reading, so an RPC outage neither raises nor clears an alert.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use chrono::{DateTime, Utc};
use orchestrator_settlement_client_interface::{SettlementClient, SettlementMetrics};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{
    core::client::{madara::MadaraClient, Alert, AlertSeverity},
    types::jobs::{JobItem, JobStatus, JobType},
    worker::{alerts::AlertSink, Config},
};

/// The statuses a job waits in for the engine (or an upstream) to move it on.
pub const OPEN_STATUSES: [JobStatus; 5] = [
    JobStatus::Created,
    JobStatus::LockedForProcessing,
    JobStatus::PendingVerification,
    JobStatus::PendingRetry,
    JobStatus::VerificationFailed,
];

/// How many open jobs one stall check reads at most (the oldest first).
const STALL_SCAN_LIMIT: u64 = 1000;

/// What the watchdog checks and when it alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchParams {
    /// Time between checks.
    pub interval: Duration,
    /// Alert when the oldest unsettled block is older than this; `None`: never.
    pub settlement_lag_alert: Option<Duration>,
    /// Alert when a job stays in one open status longer than this; `None`: never.
    pub stall_alert: Option<Duration>,
    /// Alert when the signer holds less than this many state updates' worth; 0: never.
    pub min_balance_updates: u32,
}

impl Default for WatchParams {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            settlement_lag_alert: Some(Duration::from_secs(3600)),
            stall_alert: Some(Duration::from_secs(3600)),
            min_balance_updates: 10,
        }
    }
}

/// One reading of the settlement lag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LagReading {
    /// The core contract's last settled block (`None`: nothing settled yet).
    pub settled_block: Option<u64>,
    /// The node's latest block.
    pub tip: u64,
    /// Blocks produced and not settled.
    pub lag_blocks: u64,
    /// Age of the oldest unsettled block, in seconds (0 when nothing is unsettled).
    pub lag_seconds: u64,
    /// When it was read.
    pub checked_at: DateTime<Utc>,
}

/// The signer's balance against what the recent state updates cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalanceReading {
    /// Balance in the settlement layer's fee unit (wei on Ethereum, fri on Starknet).
    pub balance: u128,
    /// Average fee of the state updates this process confirmed, if it confirmed any.
    pub fee_per_update: Option<u128>,
    /// The balance under which the watchdog alerts.
    pub threshold: u128,
}

/// A job that has been in one open status for too long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StalledJob {
    /// Its type.
    pub job_type: JobType,
    /// Its internal id.
    pub internal_id: u64,
    /// Its status.
    pub status: JobStatus,
    /// Seconds in that status.
    pub seconds: u64,
}

/// What one check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchReport {
    /// The lag, unless a read failed.
    pub lag: Option<LagReading>,
    /// The balance, unless unknown or the check is off.
    pub balance: Option<BalanceReading>,
    /// The oldest stalled job of each stalled stage.
    pub stalled: Vec<StalledJob>,
}

#[derive(Debug, Default)]
struct Episodes {
    lagging: bool,
    balance_low: bool,
    stalled: BTreeSet<JobType>,
    last_lag: Option<LagReading>,
}

/// Watches settlement, the signer's balance and stage progress (see the module docs).
#[derive(Debug)]
pub struct Watchdog {
    node: Arc<dyn MadaraClient>,
    settlement: Arc<dyn SettlementClient>,
    params: WatchParams,
    episodes: Mutex<Episodes>,
}

impl Watchdog {
    /// A watchdog over the node and the settlement layer the pipeline settles on.
    pub fn new(
        node: Arc<dyn MadaraClient>,
        settlement: Arc<dyn SettlementClient>,
        params: WatchParams,
    ) -> Self {
        Self { node, settlement, params, episodes: Mutex::default() }
    }

    /// Its parameters.
    pub fn params(&self) -> WatchParams {
        self.params
    }

    /// The last lag it read, for the dashboard.
    pub fn last_lag(&self) -> Option<LagReading> {
        self.episodes().last_lag.clone()
    }

    fn episodes(&self) -> std::sync::MutexGuard<'_, Episodes> {
        self.episodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks every `interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, config: Arc<Config>, shutdown: CancellationToken) {
        loop {
            self.check(&config).await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.params.interval) => {}
            }
        }
    }

    /// One check of everything: updates the gauges, sends the alerts whose episode starts or
    /// ends, and returns what it read.
    pub async fn check(&self, config: &Config) -> WatchReport {
        let sink = AlertSink::of(config);
        let lag = self.check_lag(config, &sink).await;
        let balance = self.check_balance(config, &sink).await;
        let stalled = self.check_stalls(config, &sink).await;
        WatchReport { lag, balance, stalled }
    }

    async fn read_lag(&self) -> Result<LagReading, String> {
        let settled =
            self.settlement.get_last_settled_block().await.map_err(|e| {
                format!("cannot read the settled block on the settlement layer: {e}")
            })?;
        let tip = self
            .node
            .block_number()
            .await
            .map_err(|e| format!("cannot read the node's latest block: {e}"))?;
        let first_unsettled = settled.map_or(0, |b| b.saturating_add(1));
        let now = Utc::now();
        let (lag_blocks, lag_seconds) = if first_unsettled > tip {
            (0, 0)
        } else {
            let block = self.node.block(first_unsettled).await.map_err(|e| {
                format!(
                    "cannot read block {first_unsettled} (the oldest unsettled) from the node: {e}"
                )
            })?;
            let age = u64::try_from(now.timestamp()).unwrap_or(0).saturating_sub(block.timestamp);
            (tip - first_unsettled + 1, age)
        };
        Ok(LagReading { settled_block: settled, tip, lag_blocks, lag_seconds, checked_at: now })
    }

    async fn check_lag(&self, config: &Config, sink: &AlertSink) -> Option<LagReading> {
        let reading = match self.read_lag().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: "orch::watch", error = %e, "Settlement lag not checked");
                return None;
            }
        };
        let layer = self.settlement.layer_name();
        config.metrics.settlement_lag(layer, reading.lag_blocks, reading.lag_seconds);
        let threshold = self.params.settlement_lag_alert;
        let over = threshold.is_some_and(|t| reading.lag_seconds > t.as_secs());
        let changed = {
            let mut episodes = self.episodes();
            episodes.last_lag = Some(reading.clone());
            std::mem::replace(&mut episodes.lagging, over) != over
        };
        if changed {
            let threshold = threshold.map_or(0, |t| t.as_secs());
            let settled = reading.settled_block.map_or("none".to_owned(), |b| b.to_string());
            let alert = if over {
                Alert {
                    severity: AlertSeverity::Critical,
                    title: format!(
                        "Settlement is {} s behind the node ({} blocks unsettled)",
                        reading.lag_seconds, reading.lag_blocks
                    ),
                    body: format!(
                        "settlement layer: {layer}\nsettled block (core contract): {settled}\nnode tip: {}\n\
                         oldest unsettled block age: {} s (threshold {threshold} s)\n\
                         read from the chain, not the orchestrator's database: look at the \
                         StateTransition jobs, the prover and the signer",
                        reading.tip, reading.lag_seconds
                    ),
                }
            } else {
                Alert {
                    severity: AlertSeverity::Warning,
                    title: format!("Settlement lag back under {threshold} s"),
                    body: format!(
                        "settlement layer: {layer}\nsettled block (core contract): {settled}\nnode tip: {}\n\
                         oldest unsettled block age: {} s",
                        reading.tip, reading.lag_seconds
                    ),
                }
            };
            let kind = if over { "settlement_lag" } else { "settlement_lag_cleared" };
            sink.send(kind, alert).await;
        }
        Some(reading)
    }

    async fn check_balance(&self, config: &Config, sink: &AlertSink) -> Option<BalanceReading> {
        if self.params.min_balance_updates == 0 {
            return None;
        }
        let metrics = match self.settlement.refresh_metrics().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(target: "orch::watch", error = %e, "Signer balance not checked");
                return None;
            }
        };
        let layer = self.settlement.layer_name();
        config.metrics.settlement(layer, &metrics);
        let reading = balance_reading(&metrics, self.params.min_balance_updates)?;
        let low = reading.balance < reading.threshold || reading.balance == 0;
        let changed = {
            let mut episodes = self.episodes();
            std::mem::replace(&mut episodes.balance_low, low) != low
        };
        if changed {
            let worth = match reading.fee_per_update {
                Some(fee) => format!(
                    "{} state updates at the average fee of this process's confirmed updates ({fee})",
                    self.params.min_balance_updates
                ),
                None => "anything (no state update confirmed yet to price one)".to_owned(),
            };
            let alert = if low {
                Alert {
                    severity: AlertSeverity::Critical,
                    title: format!("Settlement signer balance low: {}", reading.balance),
                    body: format!(
                        "settlement layer: {layer}\nbalance: {} (wei on Ethereum, fri on Starknet)\n\
                         threshold: {} = {worth}\nnext: fund the signer before state updates fail",
                        reading.balance, reading.threshold
                    ),
                }
            } else {
                Alert {
                    severity: AlertSeverity::Warning,
                    title: format!("Settlement signer balance back above {}", reading.threshold),
                    body: format!("settlement layer: {layer}\nbalance: {}", reading.balance),
                }
            };
            let kind =
                if low { "settlement_balance_low" } else { "settlement_balance_low_cleared" };
            sink.send(kind, alert).await;
        }
        Some(reading)
    }

    async fn check_stalls(&self, config: &Config, sink: &AlertSink) -> Vec<StalledJob> {
        let Some(limit) = self.params.stall_alert else { return Vec::new() };
        let jobs = match config
            .database()
            .get_jobs_by_types_and_statuses(&[], &OPEN_STATUSES, Some(STALL_SCAN_LIMIT), None)
            .await
        {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(target: "orch::watch", error = %e, "Stage stalls not checked");
                return Vec::new();
            }
        };
        let stalled = stalled_jobs(&jobs, Utc::now(), limit);
        let types = config.handlers.job_types().collect::<BTreeSet<_>>();
        for job_type in &types {
            config.metrics.set_stage_stalled(*job_type, stalled.contains_key(job_type));
        }
        let (started, ended): (Vec<JobType>, Vec<JobType>) = {
            let mut episodes = self.episodes();
            let now: BTreeSet<JobType> = stalled.keys().copied().collect();
            let started = now.difference(&episodes.stalled).copied().collect();
            let ended = episodes.stalled.difference(&now).copied().collect();
            episodes.stalled = now;
            (started, ended)
        };
        for job_type in started {
            let job = &stalled[&job_type];
            let alert = Alert {
                severity: AlertSeverity::Critical,
                title: format!(
                    "{job_type} stage stalled: job #{} {} for {} s",
                    job.internal_id, job.status, job.seconds
                ),
                body: format!(
                    "stage: {job_type}\njob: #{} ({})\nin its status for: {} s (threshold {} s)\n\
                     next: look at the job's logs and its upstream (node, prover, settlement); \
                     this alert is not repeated until the stage moves and stalls again",
                    job.internal_id,
                    job.status,
                    job.seconds,
                    limit.as_secs()
                ),
            };
            sink.send("stage_stalled", alert).await;
        }
        for job_type in ended {
            let alert = Alert {
                severity: AlertSeverity::Warning,
                title: format!("{job_type} stage moving again"),
                body: format!("stage: {job_type}\nno job of the stage is over the stall threshold"),
            };
            sink.send("stage_stalled_cleared", alert).await;
        }
        stalled.into_values().collect()
    }
}

/// The balance reading of `m`, or `None` when the client has not read the balance.
fn balance_reading(m: &SettlementMetrics, min_updates: u32) -> Option<BalanceReading> {
    let balance = m.signer_balance_wei?;
    let fee_per_update =
        (m.updates_confirmed > 0).then(|| m.fees_paid_wei / u128::from(m.updates_confirmed));
    let threshold = fee_per_update.map_or(0, |fee| fee.saturating_mul(u128::from(min_updates)));
    Some(BalanceReading { balance, fee_per_update, threshold })
}

/// Since when `job` has been in its status: the timestamp its status was entered at as far as
/// the job records it (polls and lock extensions touch `updated_at` without moving the job).
pub fn in_status_since(job: &JobItem) -> DateTime<Utc> {
    let common = &job.metadata.common;
    let entered = match job.status {
        JobStatus::LockedForProcessing => common.process_started_at,
        JobStatus::PendingVerification => common.process_completed_at,
        _ => None,
    };
    entered.unwrap_or(job.updated_at).max(job.created_at)
}

/// The oldest job of each stage that has been in its open status longer than `limit`.
fn stalled_jobs(
    jobs: &[JobItem],
    now: DateTime<Utc>,
    limit: Duration,
) -> BTreeMap<JobType, StalledJob> {
    let mut stalled: BTreeMap<JobType, StalledJob> = BTreeMap::new();
    for job in jobs.iter().filter(|j| OPEN_STATUSES.contains(&j.status)) {
        let seconds = u64::try_from((now - in_status_since(job)).num_seconds()).unwrap_or(0);
        if seconds <= limit.as_secs() {
            continue;
        }
        let candidate = StalledJob {
            job_type: job.job_type,
            internal_id: job.internal_id,
            status: job.status,
            seconds,
        };
        stalled
            .entry(job.job_type)
            .and_modify(|s| {
                if seconds > s.seconds {
                    *s = candidate.clone();
                }
            })
            .or_insert(candidate);
    }
    stalled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::jobs::{JobItem, JobSpecificMetadata, SnosMetadata};

    fn job(status: JobStatus, internal_id: u64, age_secs: i64, now: DateTime<Utc>) -> JobItem {
        let mut job = JobItem::new(
            JobType::SnosRun,
            internal_id,
            JobSpecificMetadata::Snos(SnosMetadata::default()),
        );
        job.status = status;
        job.created_at = now - chrono::Duration::seconds(age_secs + 100);
        job.updated_at = now - chrono::Duration::seconds(age_secs);
        job
    }

    #[test]
    fn the_oldest_job_over_the_limit_names_the_stall() {
        let now = Utc::now();
        let jobs = vec![
            job(JobStatus::Created, 1, 50, now),
            job(JobStatus::Created, 2, 700, now),
            job(JobStatus::PendingRetry, 3, 900, now),
            // Terminal and halting statuses are not stalls (Failed is alerted on its own).
            job(JobStatus::Completed, 4, 5000, now),
            job(JobStatus::Failed, 5, 5000, now),
        ];
        let stalled = stalled_jobs(&jobs, now, Duration::from_secs(600));
        assert_eq!(stalled.len(), 1);
        let s = &stalled[&JobType::SnosRun];
        assert_eq!((s.internal_id, s.status, s.seconds), (3, JobStatus::PendingRetry, 900));
        assert!(stalled_jobs(&jobs, now, Duration::from_secs(1000)).is_empty());
    }

    #[test]
    fn a_polled_job_counts_from_when_it_entered_its_status() {
        let now = Utc::now();
        // Verification polls keep touching updated_at; processing finished 2 h ago.
        let mut polled = job(JobStatus::PendingVerification, 7, 5, now);
        polled.created_at = now - chrono::Duration::hours(3);
        polled.metadata.common.process_completed_at = Some(now - chrono::Duration::hours(2));
        assert_eq!(in_status_since(&polled), now - chrono::Duration::hours(2));
        let stalled = stalled_jobs(&[polled], now, Duration::from_secs(3600));
        assert_eq!(stalled[&JobType::SnosRun].seconds, 7200);
    }

    #[test]
    fn the_balance_threshold_is_the_average_fee_times_the_updates() {
        let m = SettlementMetrics {
            fees_paid_wei: 3_000,
            updates_confirmed: 3,
            signer_balance_wei: Some(9_999),
            ..Default::default()
        };
        let r = balance_reading(&m, 10).expect("a balance was read");
        assert_eq!((r.fee_per_update, r.threshold), (Some(1_000), 10_000));
        assert!(r.balance < r.threshold);
        // Nothing paid yet: no price, the threshold is 0 (only an empty balance alerts).
        let fresh = SettlementMetrics { signer_balance_wei: Some(5), ..Default::default() };
        let r = balance_reading(&fresh, 10).expect("read");
        assert_eq!((r.fee_per_update, r.threshold), (None, 0));
        assert_eq!(balance_reading(&SettlementMetrics::default(), 10), None);
    }
}
