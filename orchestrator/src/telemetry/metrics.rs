//! The orchestrator's instruments (reference §12 names), recorded twice: into an in-process
//! registry that `/metrics` renders in the Prometheus text format, and into the OpenTelemetry
//! meter `orchestrator`, which the OTLP exporter pushes when `--otel-collector-endpoint` is set
//! (without it the global meter is a no-op and the second write costs nothing).
//!
//! Only instruments this build actually records are defined. The settlement instruments
//! (fees paid, base and blob base fee, signer balance, transactions sent) mirror the values the
//! settlement client keeps ([`SettlementMetrics`]): [`Metrics::settlement`] copies them in at
//! each scrape, at each gauge push and from the settlement sampler.
//!
//! Prometheus names: the reference's OpenTelemetry name, with `_total` appended to counters
//! that lack it and `_seconds` to histograms measured in seconds (what the OpenTelemetry
//! Prometheus exporter does).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use opentelemetry::{metrics::Meter, KeyValue};
use orchestrator_settlement_client_interface::SettlementMetrics;
use strum::IntoEnumIterator;

use crate::types::{
    jobs::{JobStatus, JobType},
    queue::{QueueType, WorkerTriggerType},
};

/// Buckets of the duration histograms, in seconds: from a fast handler call to a slow proof.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    14400.0,
];

/// Scrapes closer together than this reuse the gauges of the previous scrape.
pub const GAUGE_MIN_REFRESH: Duration = Duration::from_secs(1);

/// Label set of one series, in label order.
type Labels = Vec<(&'static str, String)>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic while holding it; the map itself stays valid.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_labels(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn to_attributes(labels: &[(&'static str, &str)]) -> Vec<KeyValue> {
    labels.iter().map(|(k, v)| KeyValue::new(*k, (*v).to_owned())).collect()
}

/// A monotonic counter.
struct Counter {
    name: &'static str,
    help: &'static str,
    otel: opentelemetry::metrics::Counter<u64>,
    values: Mutex<BTreeMap<Labels, u64>>,
}

impl Counter {
    fn new(meter: &Meter, name: &'static str, help: &'static str) -> Self {
        let otel = meter.u64_counter(name).with_description(help).build();
        Self { name, help, otel, values: Mutex::default() }
    }

    fn add(&self, labels: &[(&'static str, &str)], n: u64) {
        *lock(&self.values).entry(to_labels(labels)).or_default() += n;
        self.otel.add(n, &to_attributes(labels));
    }

    fn has(&self, labels: &[(&'static str, &str)]) -> bool {
        lock(&self.values).contains_key(&to_labels(labels))
    }

    fn render(&self, out: &mut String) {
        let name = if self.name.ends_with("_total") {
            self.name.to_owned()
        } else {
            format!("{}_total", self.name)
        };
        header(out, &name, self.help, "counter");
        for (labels, v) in lock(&self.values).iter() {
            let _ = writeln!(out, "{name}{} {v}", render_labels(labels, None));
        }
    }

    #[cfg(test)]
    fn get(&self, labels: &[(&'static str, &str)]) -> u64 {
        lock(&self.values).get(&to_labels(labels)).copied().unwrap_or(0)
    }
}

/// A monotonic counter of wei: exact in the registry (u128), `f64` in OpenTelemetry (u64
/// overflows at ~18 ETH).
struct WeiCounter {
    name: &'static str,
    help: &'static str,
    otel: opentelemetry::metrics::Counter<f64>,
    values: Mutex<BTreeMap<Labels, u128>>,
}

impl WeiCounter {
    fn new(meter: &Meter, name: &'static str, help: &'static str) -> Self {
        let otel = meter.f64_counter(name).with_description(help).build();
        Self { name, help, otel, values: Mutex::default() }
    }

    fn add(&self, labels: &[(&'static str, &str)], n: u128) {
        {
            let mut values = lock(&self.values);
            let v = values.entry(to_labels(labels)).or_default();
            *v = v.saturating_add(n);
        }
        // Precision loss above 2^53 wei is accepted: OTLP sums are f64 anyway.
        self.otel.add(n as f64, &to_attributes(labels));
    }

    fn has(&self, labels: &[(&'static str, &str)]) -> bool {
        lock(&self.values).contains_key(&to_labels(labels))
    }

    fn render(&self, out: &mut String) {
        let name = format!("{}_total", self.name);
        header(out, &name, self.help, "counter");
        for (labels, v) in lock(&self.values).iter() {
            let _ = writeln!(out, "{name}{} {v}", render_labels(labels, None));
        }
    }

    #[cfg(test)]
    fn get(&self, labels: &[(&'static str, &str)]) -> u128 {
        lock(&self.values).get(&to_labels(labels)).copied().unwrap_or(0)
    }
}

/// A gauge whose whole family is replaced at each refresh.
struct Gauge {
    name: &'static str,
    help: &'static str,
    otel: opentelemetry::metrics::Gauge<f64>,
    values: Mutex<BTreeMap<Labels, f64>>,
}

impl Gauge {
    fn new(meter: &Meter, name: &'static str, help: &'static str) -> Self {
        let otel = meter.f64_gauge(name).with_description(help).build();
        Self { name, help, otel, values: Mutex::default() }
    }

    fn replace(&self, series: Vec<(Labels, f64)>) {
        let mut map = BTreeMap::new();
        for (labels, v) in series {
            let attributes: Vec<KeyValue> =
                labels.iter().map(|(k, v)| KeyValue::new(*k, v.clone())).collect();
            self.otel.record(v, &attributes);
            map.insert(labels, v);
        }
        *lock(&self.values) = map;
    }

    /// Sets one series, leaving the others.
    fn set(&self, labels: &[(&'static str, &str)], v: f64) {
        self.otel.record(v, &to_attributes(labels));
        lock(&self.values).insert(to_labels(labels), v);
    }

    #[cfg(test)]
    fn get(&self, labels: &[(&'static str, &str)]) -> Option<f64> {
        lock(&self.values).get(&to_labels(labels)).copied()
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "gauge");
        for (labels, v) in lock(&self.values).iter() {
            let _ = writeln!(out, "{}{} {}", self.name, render_labels(labels, None), fmt_f64(*v));
        }
    }
}

/// Cumulative buckets, sum and count of one series.
#[derive(Default)]
struct Series {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// A histogram in seconds.
struct Histogram {
    name: &'static str,
    help: &'static str,
    otel: opentelemetry::metrics::Histogram<f64>,
    values: Mutex<BTreeMap<Labels, Series>>,
}

impl Histogram {
    fn new(meter: &Meter, name: &'static str, help: &'static str) -> Self {
        let otel = meter
            .f64_histogram(name)
            .with_description(help)
            .with_unit("s")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        Self { name, help, otel, values: Mutex::default() }
    }

    fn observe(&self, labels: &[(&'static str, &str)], seconds: f64) {
        let seconds = if seconds.is_finite() { seconds.max(0.0) } else { 0.0 };
        {
            let mut values = lock(&self.values);
            let series = values.entry(to_labels(labels)).or_default();
            if series.buckets.is_empty() {
                series.buckets = vec![0; DURATION_BUCKETS.len()];
            }
            for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    series.buckets[i] += 1;
                }
            }
            series.sum += seconds;
            series.count += 1;
        }
        self.otel.record(seconds, &to_attributes(labels));
    }

    fn render(&self, out: &mut String) {
        let name = format!("{}_seconds", self.name);
        header(out, &name, self.help, "histogram");
        for (labels, s) in lock(&self.values).iter() {
            for (bound, n) in DURATION_BUCKETS.iter().zip(&s.buckets) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {n}",
                    render_labels(labels, Some(&fmt_f64(*bound)))
                );
            }
            let _ =
                writeln!(out, "{name}_bucket{} {}", render_labels(labels, Some("+Inf")), s.count);
            let _ = writeln!(out, "{name}_sum{} {}", render_labels(labels, None), fmt_f64(s.sum));
            let _ = writeln!(out, "{name}_count{} {}", render_labels(labels, None), s.count);
        }
    }

    #[cfg(test)]
    fn count(&self, labels: &[(&'static str, &str)]) -> u64 {
        lock(&self.values).get(&to_labels(labels)).map_or(0, |s| s.count)
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn fmt_f64(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> =
        labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What a processing or verification call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::AsRefStr)]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    /// The handler succeeded (processing returned an external id; verification answered).
    Success,
    /// The handler failed or panicked.
    Failure,
}

/// How a trigger run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::AsRefStr)]
#[strum(serialize_all = "snake_case")]
pub enum TriggerOutcome {
    /// It ran without error.
    Ok,
    /// It ran and failed.
    Error,
    /// Failed jobs stopped it from creating jobs.
    Halted,
    /// An operator paused it.
    Paused,
}

/// Every instrument of the orchestrator.
pub struct Metrics {
    job_state_transitions: Counter,
    failed_jobs: Counter,
    job_timeout_count: Counter,
    successful_job_operations: Counter,
    failed_job_operations: Counter,
    job_retry_count: Counter,
    healed_jobs_total: Counter,
    orphaned_jobs: Counter,
    worker_trigger_runs: Counter,
    worker_trigger_duration: Histogram,
    alerts_sent: Counter,
    http_requests: Counter,
    jobs_response_time: Histogram,
    verification_time: Histogram,
    job_e2e_latency: Histogram,
    job_handoff: Histogram,
    job_status_current: Gauge,
    job_queue_depth: Gauge,
    worker_trigger_state: Gauge,
    settlement_fees_paid: WeiCounter,
    settlement_tx_attempts: Counter,
    settlement_tx_replacements: Counter,
    settlement_tx_dropped: Counter,
    cleanup_runs: Counter,
    cleanup_artifacts_tagged: Counter,
    cleanup_failures: Counter,
    settlement_base_fee: Gauge,
    settlement_blob_base_fee: Gauge,
    settlement_signer_balance: Gauge,
    settlement_lag_blocks: Gauge,
    settlement_lag_seconds: Gauge,
    stage_stalled: Gauge,
    /// The settlement client's cumulative values last copied in, per layer label (counters
    /// add the difference).
    settlement_seen: Mutex<BTreeMap<&'static str, SettlementMetrics>>,
    refreshed_at: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the instruments on the global meter `orchestrator` (a no-op meter unless the
    /// OTLP exporter was installed first by [`crate::telemetry::init`]).
    pub fn new() -> Self {
        let m = opentelemetry::global::meter("orchestrator");
        Self {
            job_state_transitions: Counter::new(&m, "job_state_transitions", "Job status changes by from_state and to_state."),
            failed_jobs: Counter::new(&m, "failed_jobs", "Jobs moved to Failed."),
            job_timeout_count: Counter::new(&m, "job_timeout_count", "Jobs moved to VerificationTimeout."),
            successful_job_operations: Counter::new(&m, "successful_job_operations", "Job operations (create, process, verify) that succeeded."),
            failed_job_operations: Counter::new(&m, "failed_job_operations", "Job operations (create, process, verify) that failed."),
            job_retry_count: Counter::new(&m, "job_retry_count", "Retries: failed processing attempts retried automatically, and operator retries."),
            healed_jobs_total: Counter::new(&m, "healed_jobs_total", "Orphaned LockedForProcessing jobs moved back to Created."),
            orphaned_jobs: Counter::new(&m, "orphaned_jobs", "Waiting jobs found without a message, whose message the orphan scanner sent again."),
            worker_trigger_runs: Counter::new(&m, "worker_trigger_runs", "Trigger runs by outcome (ok, error, halted, paused)."),
            worker_trigger_duration: Histogram::new(&m, "worker_trigger_duration", "Duration of one trigger run (its work, after the pause and failed-job checks)."),
            alerts_sent: Counter::new(&m, "alerts_sent", "Alerts handed to the alert client, by kind and whether delivery worked."),
            http_requests: Counter::new(&m, "http_requests", "HTTP requests by route and status code."),
            jobs_response_time: Histogram::new(&m, "jobs_response_time", "Duration of one handler call (process or verify)."),
            verification_time: Histogram::new(&m, "verification_time", "Time from processing done to verification done (polling included)."),
            job_e2e_latency: Histogram::new(&m, "job_e2e_latency", "Time from job creation to Completed."),
            job_handoff: Histogram::new(&m, "job_handoff", "Time from a job's last predecessor Completed to the job locked for processing, by stage edge."),
            job_status_current: Gauge::new(&m, "job_status_current", "Jobs per type and status now."),
            job_queue_depth: Gauge::new(&m, "job_queue_depth", "Approximate visible messages per queue."),
            worker_trigger_state: Gauge::new(&m, "worker_trigger_state", "1 when a trigger is paused by an operator or halted by failed jobs."),
            settlement_fees_paid: WeiCounter::new(&m, "settlement_fees_paid_wei", "Fees paid by confirmed state update transactions (gas and blob gas), in wei."),
            settlement_tx_attempts: Counter::new(&m, "settlement_tx_attempts", "State update transactions sent, replacements included."),
            settlement_tx_replacements: Counter::new(&m, "settlement_tx_replacements", "State update transactions sent to replace a stuck one with higher fees."),
            settlement_tx_dropped: Counter::new(&m, "settlement_tx_dropped", "State update transactions found dropped from the pool unmined, each sent again on its nonce."),
            cleanup_runs: Counter::new(&m, "cleanup_runs_total", "StorageCleanup runs that took the lock and went through the settled jobs."),
            cleanup_artifacts_tagged: Counter::new(&m, "cleanup_artifacts_tagged", "Artifacts of settled batches tagged for expiry by StorageCleanup."),
            cleanup_failures: Counter::new(&m, "cleanup_failures_total", "Settled jobs whose artifacts StorageCleanup could not all tag (retried next run), and failed expiry passes of the directory store."),
            settlement_base_fee: Gauge::new(&m, "settlement_base_fee_wei", "Base fee per gas of the settlement layer's latest block, in wei."),
            settlement_blob_base_fee: Gauge::new(&m, "settlement_blob_base_fee_wei", "Blob base fee of the settlement layer, in wei."),
            settlement_signer_balance: Gauge::new(&m, "settlement_signer_balance_wei", "Balance of the account that signs state updates, in wei."),
            settlement_lag_blocks: Gauge::new(&m, "settlement_lag_blocks", "Blocks the node produced that the core contract has not settled (read on chain by the watchdog)."),
            settlement_lag_seconds: Gauge::new(&m, "settlement_lag_seconds", "Age of the oldest block the core contract has not settled, in seconds (0 when none)."),
            stage_stalled: Gauge::new(&m, "stage_stalled", "1 when a job of the stage has been in one open status longer than --stall-alert-seconds."),
            settlement_seen: Mutex::default(),
            refreshed_at: Mutex::new(None),
        }
    }

    /// Copies the settlement client's values in: counters grow by what was added since the
    /// last call, gauges take the sampled values (a value never sampled stays absent).
    pub fn settlement(&self, layer: &'static str, m: &SettlementMetrics) {
        let labels = [("settlement_layer", layer)];
        // The client's totals only grow; a smaller value is an older snapshot (the sampler and
        // a scrape raced) and adds nothing. The high-water marks are kept.
        let (fees, sent, bumps, dropped) = {
            let mut seen = lock(&self.settlement_seen);
            let prev = seen.entry(layer).or_default();
            let d = (
                m.fees_paid_wei.saturating_sub(prev.fees_paid_wei),
                m.txs_sent.saturating_sub(prev.txs_sent),
                m.fee_bumps.saturating_sub(prev.fee_bumps),
                m.txs_dropped.saturating_sub(prev.txs_dropped),
            );
            prev.fees_paid_wei = prev.fees_paid_wei.max(m.fees_paid_wei);
            prev.txs_sent = prev.txs_sent.max(m.txs_sent);
            prev.fee_bumps = prev.fee_bumps.max(m.fee_bumps);
            prev.txs_dropped = prev.txs_dropped.max(m.txs_dropped);
            d
        };
        if fees > 0 || !self.settlement_fees_paid.has(&labels) {
            self.settlement_fees_paid.add(&labels, fees);
        }
        if sent > 0 || !self.settlement_tx_attempts.has(&labels) {
            self.settlement_tx_attempts.add(&labels, sent);
        }
        if bumps > 0 || !self.settlement_tx_replacements.has(&labels) {
            self.settlement_tx_replacements.add(&labels, bumps);
        }
        if dropped > 0 || !self.settlement_tx_dropped.has(&labels) {
            self.settlement_tx_dropped.add(&labels, dropped);
        }
        for (gauge, v) in [
            (&self.settlement_base_fee, m.base_fee_wei),
            (&self.settlement_blob_base_fee, m.blob_base_fee_wei),
            (&self.settlement_signer_balance, m.signer_balance_wei),
        ] {
            if let Some(v) = v {
                gauge.set(&labels, v as f64);
            }
        }
    }

    /// A job changed status (`from = None`: it was created).
    pub fn transition(&self, job_type: JobType, from: Option<JobStatus>, to: JobStatus) {
        let from = from.map(|s| s.to_string());
        let from = from.as_deref().unwrap_or("None");
        let labels = [
            ("operation_job_type", job_type.as_ref()),
            ("from_state", from),
            ("to_state", to.as_ref()),
        ];
        self.job_state_transitions.add(&labels, 1);
        match to {
            JobStatus::Failed => {
                self.failed_jobs.add(&[("operation_job_type", job_type.as_ref())], 1)
            }
            JobStatus::VerificationTimeout => {
                self.job_timeout_count.add(&[("operation_job_type", job_type.as_ref())], 1)
            }
            _ => {}
        }
    }

    /// A handler call (`operation` = `process` or `verify`) took `elapsed`.
    pub fn handler_call(
        &self,
        job_type: JobType,
        operation: &'static str,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        let labels = [
            ("operation_job_type", job_type.as_ref()),
            ("operation_type", operation),
            ("outcome", outcome.as_ref()),
        ];
        self.jobs_response_time.observe(&labels, elapsed.as_secs_f64());
        let counter = match outcome {
            Outcome::Success => &self.successful_job_operations,
            Outcome::Failure => &self.failed_job_operations,
        };
        counter.add(&[("operation_job_type", job_type.as_ref()), ("operation_type", operation)], 1);
    }

    /// Job creation succeeded or failed.
    pub fn created(&self, job_type: JobType, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Success => &self.successful_job_operations,
            Outcome::Failure => &self.failed_job_operations,
        };
        counter.add(&[("operation_job_type", job_type.as_ref()), ("operation_type", "create")], 1);
    }

    /// A job completed: verification took `verification`, the whole job `e2e`.
    pub fn completed(
        &self,
        job_type: JobType,
        verification: Option<Duration>,
        e2e: Option<Duration>,
    ) {
        let labels = [("operation_job_type", job_type.as_ref())];
        if let Some(v) = verification {
            self.verification_time.observe(&labels, v.as_secs_f64());
        }
        if let Some(e) = e2e {
            self.job_e2e_latency.observe(&labels, e.as_secs_f64());
        }
    }

    /// A `to` job was locked for processing `elapsed` after its last `from` predecessor
    /// completed (`worker::handoff`).
    pub fn handoff(&self, from: JobType, to: JobType, elapsed: Duration) {
        let labels = [("from_job_type", from.as_ref()), ("to_job_type", to.as_ref())];
        self.job_handoff.observe(&labels, elapsed.as_secs_f64());
    }

    /// The count and sum (seconds) of the `from` → `to` hand-offs recorded.
    #[cfg(test)]
    pub(crate) fn handoff_observed(&self, from: JobType, to: JobType) -> (u64, f64) {
        let labels = to_labels(&[("from_job_type", from.as_ref()), ("to_job_type", to.as_ref())]);
        lock(&self.job_handoff.values).get(&labels).map_or((0, 0.0), |s| (s.count, s.sum))
    }

    /// A job is retried: `kind` is `automatic` (a failed processing attempt) or `operator`.
    pub fn retry(&self, job_type: JobType, kind: &'static str) {
        self.job_retry_count
            .add(&[("operation_job_type", job_type.as_ref()), ("operation_type", kind)], 1);
    }

    /// An orphaned job was healed; `source` is `redelivery` or `scanner`.
    pub fn healed(&self, job_type: JobType, source: &'static str) {
        self.healed_jobs_total
            .add(&[("operation_job_type", job_type.as_ref()), ("source", source)], 1);
    }

    /// The orphan scanner sent the message of a waiting job again.
    pub fn orphaned(&self, job_type: JobType, status: JobStatus) {
        self.orphaned_jobs.add(
            &[("operation_job_type", job_type.as_ref()), ("operation_job_status", status.as_ref())],
            1,
        );
    }

    /// A trigger run ended with `outcome`.
    pub fn trigger_run(&self, trigger: WorkerTriggerType, outcome: TriggerOutcome) {
        self.worker_trigger_runs
            .add(&[("trigger", trigger.as_ref()), ("outcome", outcome.as_ref())], 1);
    }

    /// A trigger run (its `JobTrigger::run`) took `elapsed`.
    pub fn trigger_duration(&self, trigger: WorkerTriggerType, elapsed: Duration) {
        self.worker_trigger_duration
            .observe(&[("trigger", trigger.as_ref())], elapsed.as_secs_f64());
    }

    /// The count and sum (seconds) of the runs of `trigger` recorded.
    #[cfg(test)]
    pub(crate) fn trigger_duration_observed(&self, trigger: WorkerTriggerType) -> (u64, f64) {
        let labels = to_labels(&[("trigger", trigger.as_ref())]);
        let values = lock(&self.worker_trigger_duration.values);
        values.get(&labels).map_or((0, 0.0), |s| (s.count, s.sum))
    }

    /// A StorageCleanup run went through the settled jobs: it tagged `tagged` artifacts and
    /// failed on `failures` jobs (or expiry passes).
    pub fn cleanup_run(&self, tagged: u64, failures: u64) {
        self.cleanup_runs.add(&[], 1);
        self.cleanup_artifacts_tagged.add(&[], tagged);
        self.cleanup_failures.add(&[], failures);
    }

    /// `(runs, artifacts tagged, failures)` recorded by [`Metrics::cleanup_run`].
    #[cfg(test)]
    pub(crate) fn cleanup_counts(&self) -> (u64, u64, u64) {
        let get = |c: &Counter| c.get(&[]);
        (get(&self.cleanup_runs), get(&self.cleanup_artifacts_tagged), get(&self.cleanup_failures))
    }

    /// An alert of `kind` was handed to the alert client.
    pub fn alert(&self, kind: &'static str, delivered: bool) {
        self.alerts_sent
            .add(&[("kind", kind), ("delivered", if delivered { "true" } else { "false" })], 1);
    }

    /// An HTTP request to `route` (the matched pattern) answered `status`.
    pub fn http_request(&self, route: &str, status: u16) {
        self.http_requests.add(&[("route", route), ("status", &status.to_string())], 1);
    }

    /// Whether the gauges are older than `min_age` (or were never set); when they are, the
    /// refresh is claimed: a concurrent caller gets `false` until `min_age` has passed again.
    pub fn claim_gauge_refresh(&self, min_age: Duration) -> bool {
        let mut at = lock(&self.refreshed_at);
        if at.is_some_and(|t| t.elapsed() < min_age) {
            return false;
        }
        *at = Some(Instant::now());
        true
    }

    /// Sets `job_status_current` from the count of jobs per type and status (pairs not in
    /// `counts` are zero).
    pub fn set_job_counts(&self, counts: &std::collections::HashMap<(JobType, JobStatus), u64>) {
        let mut series = Vec::new();
        for job_type in JobType::iter() {
            for status in JobStatus::iter() {
                let n = counts.get(&(job_type, status)).copied().unwrap_or(0);
                let labels = vec![
                    ("operation_job_type", job_type.to_string()),
                    ("operation_job_status", status.to_string()),
                ];
                series.push((labels, n as f64));
            }
        }
        self.job_status_current.replace(series);
    }

    /// Sets `job_queue_depth` to the given depths (queues not listed disappear).
    pub fn set_queue_depths(&self, depths: &[(QueueType, u64)]) {
        self.job_queue_depth.replace(
            depths.iter().map(|(q, n)| (vec![("queue", q.to_string())], *n as f64)).collect(),
        );
    }

    /// Sets `settlement_lag_blocks` and `settlement_lag_seconds` of the settlement layer.
    pub fn settlement_lag(&self, layer: &'static str, blocks: u64, seconds: u64) {
        let labels = [("settlement_layer", layer)];
        self.settlement_lag_blocks.set(&labels, blocks as f64);
        self.settlement_lag_seconds.set(&labels, seconds as f64);
    }

    /// Sets `stage_stalled{operation_job_type}`.
    pub fn set_stage_stalled(&self, job_type: JobType, stalled: bool) {
        self.stage_stalled
            .set(&[("operation_job_type", job_type.as_ref())], f64::from(u8::from(stalled)));
    }

    /// Sets `worker_trigger_state` for each of `triggers`: paused and halted, 1 or 0.
    pub fn set_trigger_states(
        &self,
        triggers: &[WorkerTriggerType],
        paused: &[WorkerTriggerType],
        halted: &[WorkerTriggerType],
    ) {
        let mut states = Vec::new();
        for t in triggers {
            for (state, on) in [("paused", paused.contains(t)), ("halted", halted.contains(t))] {
                states.push((
                    vec![("trigger", t.to_string()), ("state", state.to_owned())],
                    f64::from(u8::from(on)),
                ));
            }
        }
        self.worker_trigger_state.replace(states);
    }

    /// Every instrument in the Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        self.job_status_current.render(&mut out);
        self.job_queue_depth.render(&mut out);
        self.worker_trigger_state.render(&mut out);
        self.settlement_base_fee.render(&mut out);
        self.settlement_blob_base_fee.render(&mut out);
        self.settlement_signer_balance.render(&mut out);
        self.settlement_lag_blocks.render(&mut out);
        self.settlement_lag_seconds.render(&mut out);
        self.stage_stalled.render(&mut out);
        self.settlement_fees_paid.render(&mut out);
        for c in [
            &self.job_state_transitions,
            &self.failed_jobs,
            &self.job_timeout_count,
            &self.successful_job_operations,
            &self.failed_job_operations,
            &self.job_retry_count,
            &self.healed_jobs_total,
            &self.orphaned_jobs,
            &self.worker_trigger_runs,
            &self.alerts_sent,
            &self.http_requests,
            &self.settlement_tx_attempts,
            &self.settlement_tx_replacements,
            &self.settlement_tx_dropped,
            &self.cleanup_runs,
            &self.cleanup_artifacts_tagged,
            &self.cleanup_failures,
        ] {
            c.render(&mut out);
        }
        for h in [
            &self.jobs_response_time,
            &self.verification_time,
            &self.job_e2e_latency,
            &self.job_handoff,
            &self.worker_trigger_duration,
        ] {
            h.render(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_render_in_prometheus_text() {
        let m = Metrics::new();
        m.transition(JobType::SnosRun, None, JobStatus::Created);
        m.transition(JobType::SnosRun, Some(JobStatus::Created), JobStatus::LockedForProcessing);
        m.transition(JobType::SnosRun, Some(JobStatus::LockedForProcessing), JobStatus::Failed);
        m.handler_call(JobType::SnosRun, "process", Outcome::Success, Duration::from_millis(70));
        let text = m.render_prometheus();
        assert!(text.contains("# TYPE job_state_transitions_total counter"), "{text}");
        assert!(text.contains(
            "job_state_transitions_total{operation_job_type=\"SnosRun\",from_state=\"None\",to_state=\"Created\"} 1"
        ));
        assert!(text.contains("failed_jobs_total{operation_job_type=\"SnosRun\"} 1"));
        assert!(text.contains("# TYPE jobs_response_time_seconds histogram"));
        assert!(text.contains(
            "jobs_response_time_seconds_bucket{operation_job_type=\"SnosRun\",operation_type=\"process\",outcome=\"success\",le=\"0.05\"} 0"
        ));
        assert!(text.contains(
            "jobs_response_time_seconds_bucket{operation_job_type=\"SnosRun\",operation_type=\"process\",outcome=\"success\",le=\"0.1\"} 1"
        ));
        assert!(text.contains(
            "jobs_response_time_seconds_count{operation_job_type=\"SnosRun\",operation_type=\"process\",outcome=\"success\"} 1"
        ));
        assert_eq!(m.failed_jobs.get(&[("operation_job_type", "SnosRun")]), 1);
        assert_eq!(
            m.jobs_response_time.count(&[
                ("operation_job_type", "SnosRun"),
                ("operation_type", "process"),
                ("outcome", "success")
            ]),
            1
        );
    }

    #[test]
    fn settlement_values_become_counters_and_gauges() {
        let m = Metrics::new();
        let labels = [("settlement_layer", "ethereum")];
        // Nothing sampled yet: counters at 0, no gauge series.
        m.settlement("ethereum", &SettlementMetrics::default());
        assert_eq!(m.settlement_fees_paid.get(&labels), 0);
        assert_eq!(m.settlement_signer_balance.get(&labels), None);
        let mut v = SettlementMetrics {
            fees_paid_wei: 30_000_000_000_000_000_000, // 30 ETH: above u64
            blob_base_fee_wei: Some(1),
            base_fee_wei: Some(7),
            signer_balance_wei: Some(5_000),
            txs_sent: 3,
            fee_bumps: 1,
            txs_dropped: 2,
            updates_confirmed: 2,
        };
        m.settlement("ethereum", &v);
        // The same cumulative values again, or an older snapshot, add nothing.
        m.settlement("ethereum", &v);
        m.settlement("ethereum", &SettlementMetrics { fees_paid_wei: 1, txs_sent: 1, ..v.clone() });
        v.fees_paid_wei += 5;
        v.txs_sent += 1;
        v.txs_dropped += 1;
        v.signer_balance_wei = Some(4_000);
        m.settlement("ethereum", &v);
        assert_eq!(m.settlement_fees_paid.get(&labels), 30_000_000_000_000_000_005);
        assert_eq!(m.settlement_tx_attempts.get(&labels), 4);
        assert_eq!(m.settlement_tx_replacements.get(&labels), 1);
        assert_eq!(m.settlement_tx_dropped.get(&labels), 3);
        assert_eq!(m.settlement_signer_balance.get(&labels), Some(4_000.0));
        let text = m.render_prometheus();
        for line in [
            "# TYPE settlement_fees_paid_wei_total counter",
            "settlement_fees_paid_wei_total{settlement_layer=\"ethereum\"} 30000000000000000005",
            "settlement_tx_attempts_total{settlement_layer=\"ethereum\"} 4",
            "settlement_tx_replacements_total{settlement_layer=\"ethereum\"} 1",
            "settlement_tx_dropped_total{settlement_layer=\"ethereum\"} 3",
            "# TYPE settlement_signer_balance_wei gauge",
            "settlement_signer_balance_wei{settlement_layer=\"ethereum\"} 4000",
            "settlement_blob_base_fee_wei{settlement_layer=\"ethereum\"} 1",
            "settlement_base_fee_wei{settlement_layer=\"ethereum\"} 7",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().expect("value");
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.http_request("/a\"b\\c\nd", 200);
        let text = m.render_prometheus();
        assert!(
            text.contains(r#"http_requests_total{route="/a\"b\\c\nd",status="200"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn every_sample_line_parses() {
        let m = Metrics::new();
        m.retry(JobType::ProofCreation, "operator");
        m.completed(
            JobType::ProofCreation,
            Some(Duration::from_secs(3)),
            Some(Duration::from_secs(9)),
        );
        for line in m.render_prometheus().lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().expect("value");
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }

    /// The Grafana dashboard of `docs/grafana/orchestrator.json` only queries series that
    /// `/metrics` exports: every name in front of a selector (`name{…}` or `name[…]`) is a
    /// family of the registry (with `_bucket`, `_sum` and `_count` for histograms), and every
    /// panel queries at least one.
    #[test]
    fn the_grafana_dashboard_queries_only_exported_metrics() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/grafana/orchestrator.json"))
                .expect("the dashboard is JSON");
        let mut exported = std::collections::BTreeSet::new();
        for line in Metrics::new().render_prometheus().lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exported.insert(format!("{name}{suffix}"));
                }
            } else {
                exported.insert(name.to_owned());
            }
        }
        let panels = dashboard["panels"].as_array().expect("panels");
        let mut queried = std::collections::BTreeSet::new();
        for panel in panels.iter().filter(|p| p["type"] != "row") {
            let title = panel["title"].as_str().expect("a title");
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{title}: no query");
            for target in targets {
                let expr = target["expr"].as_str().expect("expr");
                let names = selector_names(expr);
                assert!(!names.is_empty(), "{title}: {expr} names no metric");
                for name in names {
                    assert!(exported.contains(&name), "{title}: {name} is not exported ({expr})");
                    queried.insert(name);
                }
            }
        }
        // The dashboard covers the watchdog, the hand-offs and the settlement series.
        for name in ["settlement_lag_seconds", "job_handoff_seconds_bucket", "stage_stalled"] {
            assert!(queried.contains(name), "the dashboard lacks {name}");
        }
    }

    /// The identifiers directly followed by `{` or `[` in a PromQL expression.
    fn selector_names(expr: &str) -> Vec<String> {
        let bytes = expr.as_bytes();
        let mut names = Vec::new();
        let mut start = None;
        for (i, &b) in bytes.iter().enumerate() {
            let ident = b.is_ascii_alphanumeric() || b == b'_' || b == b':';
            match (ident, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    if matches!(b, b'{' | b'[') && !bytes[s].is_ascii_digit() {
                        names.push(expr[s..i].to_owned());
                    }
                    start = None;
                }
                _ => {}
            }
        }
        names
    }
}
