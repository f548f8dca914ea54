//! The orchestrator's instruments (reference §12 names): one set of OpenTelemetry instruments
//! that feeds both `/metrics` and the OTLP export.
//!
//! Each [`Metrics`] owns an OpenTelemetry `SdkMeterProvider` (meter `orchestrator`) and a
//! `prometheus::Registry`; nothing is process-global, so tests build as many as they like. The
//! provider's readers are:
//! - the OpenTelemetry Prometheus exporter (`opentelemetry-prometheus`), which fills the
//!   registry at each scrape; `/metrics` is that registry rendered by `prometheus::TextEncoder`
//!   ([`Metrics::render_prometheus`]). Neither `target_info` nor the `otel_scope_*` labels are
//!   exported, so the series are exactly the instruments with their labels;
//! - when `--otel-collector-endpoint` is set, the OTLP periodic reader (every 5 s). The app
//!   builds it with [`crate::telemetry::otlp_metrics`] and hands it to [`Metrics::with_otlp`]
//!   for the one `Metrics` of the process (`crate::app`); [`crate::telemetry::init`] installs
//!   traces and logs only, and the global meter provider stays a no-op.
//!
//! Prometheus names are the OpenTelemetry names with what the exporter appends: `_total` to
//! every counter (the OpenTelemetry name of a counter never ends in `_total`: a constructor
//! given `cleanup_runs_total` names its instrument `cleanup_runs`), and `_seconds` to the
//! histograms, whose unit is `s`. Gauges have no unit, so their names are unchanged. Label
//! order in the text is alphabetical (the exporter sorts), and `le` bounds print as Rust
//! prints an `f64` (`1`, `2.5`).
//!
//! Gauges are observable: the values last set ([`Metrics::set_job_counts`], the settlement
//! copy, the watchdog) are read at each collection, and a series that a refresh no longer lists
//! (a queue whose depth could not be read) is no longer exported rather than kept stale.
//! Wei amounts are `f64` (OpenTelemetry has no `u128`): exact up to 2^53 wei, then to 16
//! significant digits.
//!
//! Only instruments this build actually records are defined. The settlement instruments
//! (fees paid, base and blob base fee, signer balance, transactions sent) mirror the values the
//! settlement client keeps ([`SettlementMetrics`]): [`Metrics::settlement`] copies them in at
//! each scrape, at each gauge push and from the settlement sampler.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use opentelemetry::{
    metrics::{Meter, MeterProvider as _, ObservableGauge},
    KeyValue,
};
use opentelemetry_sdk::metrics::{MeterProviderBuilder, SdkMeterProvider};
use orchestrator_prover_client_interface::{
    observe::{ApiCall, FactRegistration, ProverEvent, ProverObserver},
    ProverError,
};
use orchestrator_settlement_client_interface::SettlementMetrics;
use strum::IntoEnumIterator;

use crate::{
    telemetry::OtlpMetrics,
    types::{
        jobs::{JobStatus, JobType},
        queue::{QueueType, WorkerTriggerType},
    },
};

/// Buckets of the duration histograms, in seconds: from a fast handler call to a slow proof.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    14400.0,
];

/// Scrapes closer together than this reuse the gauges of the previous scrape.
pub const GAUGE_MIN_REFRESH: Duration = Duration::from_secs(1);

/// The name of the OpenTelemetry meter every instrument is created on.
const METER_NAME: &str = "orchestrator";

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

/// What the instruments are created on: the meter of one [`Metrics`]' provider and (for the
/// test getters, which read the values back as `/metrics` exports them) its registry.
struct Instruments {
    meter: Meter,
    /// `(Prometheus name, type)` of each instrument created, in creation order.
    families: RefCell<Vec<(String, &'static str)>>,
    #[cfg(test)]
    registry: prometheus::Registry,
}

impl Instruments {
    /// Records that the family `name` of type `kind` exists and returns its name.
    fn declare(&self, name: String, kind: &'static str) -> String {
        self.families.borrow_mut().push((name.clone(), kind));
        name
    }
}

/// The OpenTelemetry name of a counter whose Prometheus name is `name`: without a trailing
/// `_total`, which the Prometheus exporter appends to every counter.
fn counter_otel_name(name: &'static str) -> &'static str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// Reads one series back from the registry, as `/metrics` renders it (tests only).
#[cfg(test)]
struct Readback {
    registry: prometheus::Registry,
    /// The Prometheus family name (`_total` and `_seconds` included).
    family: String,
}

#[cfg(test)]
impl Readback {
    fn new(m: &Instruments, family: String) -> Self {
        Self { registry: m.registry.clone(), family }
    }

    /// The sample whose labels are exactly `labels` (in any order).
    fn metric(&self, labels: &[(&'static str, &str)]) -> Option<prometheus::proto::Metric> {
        let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let mut family = self.registry.gather().into_iter().find(|f| f.name() == self.family)?;
        family.take_metric().into_iter().find(|m| {
            m.get_label().iter().map(|l| (l.name(), l.value())).collect::<BTreeMap<_, _>>() == want
        })
    }
}

/// A monotonic counter. `name` is its Prometheus name; a trailing `_total` is left out of the
/// OpenTelemetry name (the exporter appends it).
struct Counter {
    otel: opentelemetry::metrics::Counter<u64>,
    #[cfg(test)]
    readback: Readback,
}

impl Counter {
    fn new(m: &Instruments, name: &'static str, help: &'static str) -> Self {
        let name = counter_otel_name(name);
        let otel = m.meter.u64_counter(name).with_description(help).build();
        let _family = m.declare(format!("{name}_total"), "counter");
        Self {
            otel,
            #[cfg(test)]
            readback: Readback::new(m, _family),
        }
    }

    /// Adds `n` (0 creates the series at 0).
    fn add(&self, labels: &[(&'static str, &str)], n: u64) {
        self.otel.add(n, &to_attributes(labels));
    }

    #[cfg(test)]
    fn get(&self, labels: &[(&'static str, &str)]) -> u64 {
        self.readback.metric(labels).map_or(0, |m| m.get_counter().get_value() as u64)
    }
}

/// A monotonic counter of wei, kept as `f64` (OpenTelemetry counters are `u64` or `f64`, and
/// `u64` overflows at ~18.4 ETH): exact up to 2^53 wei (~0.009 ETH), then to 16 significant
/// digits (at 30 ETH a step is 4096 wei), which is what Prometheus stores anyway.
struct WeiCounter {
    otel: opentelemetry::metrics::Counter<f64>,
    #[cfg(test)]
    readback: Readback,
}

impl WeiCounter {
    fn new(m: &Instruments, name: &'static str, help: &'static str) -> Self {
        let name = counter_otel_name(name);
        let otel = m.meter.f64_counter(name).with_description(help).build();
        let _family = m.declare(format!("{name}_total"), "counter");
        Self {
            otel,
            #[cfg(test)]
            readback: Readback::new(m, _family),
        }
    }

    /// Adds `n` wei (0 creates the series at 0).
    fn add(&self, labels: &[(&'static str, &str)], n: u128) {
        self.otel.add(n as f64, &to_attributes(labels));
    }

    #[cfg(test)]
    fn get(&self, labels: &[(&'static str, &str)]) -> f64 {
        self.readback.metric(labels).map_or(0.0, |m| m.get_counter().get_value())
    }
}

/// A gauge observed at each collection (a scrape of `/metrics`, an OTLP push) from the series
/// last set: a series dropped by [`Gauge::replace`] is no longer reported at all.
struct Gauge {
    values: Arc<Mutex<BTreeMap<Labels, f64>>>,
    /// Keeps the instrument (its callback lives in the provider).
    _otel: ObservableGauge<f64>,
}

impl Gauge {
    fn new(m: &Instruments, name: &'static str, help: &'static str) -> Self {
        let values: Arc<Mutex<BTreeMap<Labels, f64>>> = Arc::default();
        let source = Arc::clone(&values);
        let otel = m
            .meter
            .f64_observable_gauge(name)
            .with_description(help)
            .with_callback(move |observer| {
                for (labels, v) in lock(&source).iter() {
                    let attributes: Vec<KeyValue> =
                        labels.iter().map(|(k, v)| KeyValue::new(*k, v.clone())).collect();
                    observer.observe(*v, &attributes);
                }
            })
            .build();
        m.declare(name.to_owned(), "gauge");
        Self { values, _otel: otel }
    }

    /// Replaces the whole family: series not in `series` disappear.
    fn replace(&self, series: Vec<(Labels, f64)>) {
        *lock(&self.values) = series.into_iter().collect();
    }

    /// Sets one series, leaving the others.
    fn set(&self, labels: &[(&'static str, &str)], v: f64) {
        lock(&self.values).insert(to_labels(labels), v);
    }

    #[cfg(test)]
    fn get(&self, labels: &[(&'static str, &str)]) -> Option<f64> {
        lock(&self.values).get(&to_labels(labels)).copied()
    }
}

/// A histogram in seconds (OpenTelemetry unit `s`, so the Prometheus name ends in `_seconds`),
/// with the buckets of [`DURATION_BUCKETS`].
struct Histogram {
    otel: opentelemetry::metrics::Histogram<f64>,
    #[cfg(test)]
    readback: Readback,
}

impl Histogram {
    fn new(m: &Instruments, name: &'static str, help: &'static str) -> Self {
        let otel = m
            .meter
            .f64_histogram(name)
            .with_description(help)
            .with_unit("s")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let _family = m.declare(format!("{name}_seconds"), "histogram");
        Self {
            otel,
            #[cfg(test)]
            readback: Readback::new(m, _family),
        }
    }

    fn observe(&self, labels: &[(&'static str, &str)], seconds: f64) {
        let seconds = if seconds.is_finite() { seconds.max(0.0) } else { 0.0 };
        self.otel.record(seconds, &to_attributes(labels));
    }

    /// The count and sum (seconds) of the series.
    #[cfg(test)]
    fn observed(&self, labels: &[(&'static str, &str)]) -> (u64, f64) {
        self.readback.metric(labels).map_or((0, 0.0), |m| {
            let h = m.get_histogram();
            (h.get_sample_count(), h.get_sample_sum())
        })
    }

    #[cfg(test)]
    fn count(&self, labels: &[(&'static str, &str)]) -> u64 {
        self.observed(labels).0
    }
}

/// The meter provider of one [`Metrics`]: the Prometheus exporter filling `registry` and the
/// readers `readers` adds (the OTLP periodic reader when configured).
fn meter_provider(
    registry: &prometheus::Registry,
    readers: impl FnOnce(MeterProviderBuilder) -> MeterProviderBuilder,
) -> SdkMeterProvider {
    let prometheus = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .without_target_info()
        .scope_info_enabled(false)
        .build()
        // The exporter registers one collector; only a second one on the same registry fails.
        .expect("a fresh Prometheus registry accepts the exporter's collector");
    readers(SdkMeterProvider::builder().with_reader(prometheus)).build()
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

/// The API call instruments of one HTTP prover (`atlantic_*`, `sharp_*`).
struct ProverApiInstruments {
    calls: Counter,
    duration: Histogram,
    with_retry: Counter,
    retries: Counter,
    errors: Counter,
    bytes: Counter,
}

/// End-to-end time past which a completed job counts in `sla_breach_count` (the reference's
/// hard-coded threshold).
pub const E2E_SLA: Duration = Duration::from_secs(300);

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
    stale_dead_letters: Counter,
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
    block_state: Gauge,
    job_queue_wait_time: Gauge,
    job_scheduling_delay: Gauge,
    dependency_wait_time: Gauge,
    proof_generation_time: Gauge,
    settlement_time: Gauge,
    active_jobs_count: Gauge,
    sla_breach_count: Counter,
    batch_creation: Counter,
    snos_batch_blocks: Gauge,
    snos_job_processing_time: Histogram,
    snos_total_processing_time: Histogram,
    snos_rpc_wait_time: Histogram,
    snos_execution_time: Histogram,
    aggregator_child_count: Gauge,
    aggregator_input_size_upper_bound: Gauge,
    aggregator_program_output_bytes: Gauge,
    aggregator_da_segment_bytes: Gauge,
    aggregator_pie_zip_bytes: Gauge,
    aggregator_batching_batch_number: Gauge,
    aggregator_batching_duration: Histogram,
    aggregator_local_run_duration: Gauge,
    aggregator_local_run_total: Counter,
    shadow_comparisons: Counter,
    aggregator_local_run_failures: Counter,
    cleanup_jobs_processed: Counter,
    cleanup_jobs_attempted: Counter,
    atlantic: ProverApiInstruments,
    sharp: ProverApiInstruments,
    sharp_idempotency_hits: Counter,
    sharp_job_status: Counter,
    mock_fact_registration_duration: Histogram,
    mock_fact_already_registered: Counter,
    mock_fact_newly_registered: Counter,
    mock_fact_registration_errors: Counter,
    mock_is_valid_check_duration: Histogram,
    /// The highest block (or batch) of each job type `block_state` was set to.
    block_state_seen: Mutex<BTreeMap<JobType, u64>>,
    /// The settlement client's cumulative values last copied in, per layer label (counters
    /// add the difference).
    settlement_seen: Mutex<BTreeMap<&'static str, SettlementMetrics>>,
    refreshed_at: Mutex<Option<Instant>>,
    /// Where the Prometheus exporter puts the families `/metrics` renders.
    registry: prometheus::Registry,
    /// Feeds the registry and, when configured, the OTLP export; shut down (flushing the OTLP
    /// export) when the last reference to it goes.
    _provider: SdkMeterProvider,
    /// `(Prometheus name, type)` of every instrument.
    families: Vec<(String, &'static str)>,
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
    /// Creates the instruments on a meter provider of their own whose only reader is the
    /// Prometheus exporter (no OTLP export).
    pub fn new() -> Self {
        Self::with_otlp(None)
    }

    /// Creates the instruments on a meter provider of their own that feeds `/metrics` and, with
    /// `otlp` ([`crate::telemetry::otlp_metrics`]), the OTLP export.
    pub fn with_otlp(otlp: Option<OtlpMetrics>) -> Self {
        Self::with_readers(|builder| match otlp {
            Some(otlp) => builder.with_resource(otlp.resource).with_reader(otlp.reader),
            None => builder,
        })
    }

    /// Creates the instruments on a provider whose readers are the Prometheus exporter and
    /// those `readers` adds.
    fn with_readers(readers: impl FnOnce(MeterProviderBuilder) -> MeterProviderBuilder) -> Self {
        let registry = prometheus::Registry::new();
        let provider = meter_provider(&registry, readers);
        let m = Instruments {
            meter: provider.meter(METER_NAME),
            families: RefCell::default(),
            #[cfg(test)]
            registry: registry.clone(),
        };
        Self {
            job_state_transitions: Counter::new(&m, "job_state_transitions", "Job status changes by from_state and to_state."),
            failed_jobs: Counter::new(&m, "failed_jobs", "Jobs moved to Failed."),
            job_timeout_count: Counter::new(&m, "job_timeout_count", "Jobs moved to VerificationTimeout."),
            successful_job_operations: Counter::new(&m, "successful_job_operations", "Job operations (create, process, verify) that succeeded."),
            failed_job_operations: Counter::new(&m, "failed_job_operations", "Job operations (create, process, verify) that failed."),
            job_retry_count: Counter::new(&m, "job_retry_count", "Retries: failed processing attempts retried automatically, and operator retries."),
            healed_jobs_total: Counter::new(&m, "healed_jobs_total", "Orphaned LockedForProcessing jobs moved back to Created."),
            orphaned_jobs: Counter::new(&m, "orphaned_jobs", "Waiting jobs found without a message, whose message the orphan scanner sent again."),
            stale_dead_letters: Counter::new(&m, "stale_dead_letters", "Dead-lettered job messages dropped because their job had moved on (a duplicate message ran out of receives)."),
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
            block_state: Gauge::new(&m, "block_state", "The last block of the newest job of each type that completed (SnosRun: its batch's end block; the others: their block or batch number)."),
            job_queue_wait_time: Gauge::new(&m, "job_queue_wait_time", "Seconds from a job's last change (creation, a retry, a failed attempt put back) to a worker locking it, for the last job of each type locked."),
            job_scheduling_delay: Gauge::new(&m, "job_scheduling_delay", "Seconds from a job's creation to its first processing attempt, for the last job of each type started."),
            dependency_wait_time: Gauge::new(&m, "dependency_wait_time", "Seconds from a job's last predecessor Completed to the job locked, for the last job of each type (first pickup)."),
            proof_generation_time: Gauge::new(&m, "proof_generation_time", "Seconds from processing start to verified proof, for the last ProofCreation, ProofRegistration or Aggregator job completed."),
            settlement_time: Gauge::new(&m, "settlement_time", "Seconds from processing start to the state update verified on the settlement layer, for the last StateTransition job completed."),
            active_jobs_count: Gauge::new(&m, "active_jobs_count", "Jobs being processed now (LockedForProcessing), per type."),
            sla_breach_count: Counter::new(&m, "sla_breach_count", "Jobs whose creation-to-Completed time exceeded the 300 s end-to-end SLA."),
            batch_creation: Counter::new(&m, "batch_creation", "Batches opened by the batching triggers, per stage (snos, aggregator)."),
            snos_batch_blocks: Gauge::new(&m, "snos_batch_blocks", "Blocks in the last SNOS batch closed."),
            snos_job_processing_time: Histogram::new(&m, "snos_job_processing_time", "Duration of one successful SnosRun processing call."),
            snos_total_processing_time: Histogram::new(&m, "snos_total_processing_time", "A successful SNOS processing inside the handler: node reads, the run and the artifact writes."),
            snos_rpc_wait_time: Histogram::new(&m, "snos_rpc_wait_time", "The part of a SNOS processing spent reading the node (chain id, batch data) before the run."),
            snos_execution_time: Histogram::new(&m, "snos_execution_time", "The part of a SNOS processing spent in the SNOS runner."),
            aggregator_child_count: Gauge::new(&m, "aggregator_child_count", "SNOS batches (children) of the last aggregator batch aggregated."),
            aggregator_input_size_upper_bound: Gauge::new(&m, "aggregator_input_size_upper_bound", "Upper bound of the aggregator input, in felts, of the last aggregator batch closed."),
            aggregator_program_output_bytes: Gauge::new(&m, "aggregator_program_output_bytes", "Bytes of the aggregator's own program output stored for the last aggregator batch."),
            aggregator_da_segment_bytes: Gauge::new(&m, "aggregator_da_segment_bytes", "Bytes of the DA segment stored for the last aggregator batch."),
            aggregator_pie_zip_bytes: Gauge::new(&m, "aggregator_pie_zip_bytes", "Bytes of the aggregator Cairo PIE (zip) stored for the last aggregator batch."),
            aggregator_batching_batch_number: Gauge::new(&m, "aggregator_batching_batch_number", "Index of the aggregator batch the batching trigger last opened or closed."),
            aggregator_batching_duration: Histogram::new(&m, "aggregator_batching_duration", "Duration of one AggregatorBatching run that took the batching lock."),
            aggregator_local_run_duration: Gauge::new(&m, "aggregator_local_run_duration", "Seconds the last local aggregator run took (SHARP and mock prover)."),
            aggregator_local_run_total: Counter::new(&m, "aggregator_local_run_total", "Local aggregator runs (SHARP and mock prover)."),
            shadow_comparisons: Counter::new(&m, "shadow_comparisons_total", "Shadow mode: would-be state updates compared with the live operator's, by result (match, mismatch)."),
            aggregator_local_run_failures: Counter::new(&m, "aggregator_local_run_failures_total", "Local aggregator runs that failed."),
            cleanup_jobs_processed: Counter::new(&m, "cleanup_jobs_processed", "Settled StateTransition jobs whose artifacts StorageCleanup tagged completely."),
            cleanup_jobs_attempted: Counter::new(&m, "cleanup_jobs_attempted", "Settled StateTransition jobs StorageCleanup went through (tagged or failed)."),
            atlantic: ProverApiInstruments {
                calls: Counter::new(&m, "atlantic_api_calls_total", "Atlantic API requests by operation and outcome (retries included in one request)."),
                duration: Histogram::new(&m, "atlantic_api_duration", "Duration of one Atlantic API request, its retries and waits included."),
                with_retry: Counter::new(&m, "atlantic_calls_with_retry_total", "Atlantic API requests that needed more than one attempt."),
                retries: Counter::new(&m, "atlantic_retries_total", "Attempts of Atlantic API requests beyond the first."),
                errors: Counter::new(&m, "atlantic_api_errors_total", "Atlantic API requests that failed after their retries, by reason."),
                bytes: Counter::new(&m, "atlantic_data_transfer_bytes", "Bytes sent to and received from the Atlantic API (bodies of known size)."),
            },
            sharp: ProverApiInstruments {
                calls: Counter::new(&m, "sharp_api_calls_total", "SHARP API requests by operation and outcome (retries included in one request)."),
                duration: Histogram::new(&m, "sharp_api_duration", "Duration of one SHARP API request, its retries and waits included."),
                with_retry: Counter::new(&m, "sharp_calls_with_retry_total", "SHARP API requests that needed more than one attempt."),
                retries: Counter::new(&m, "sharp_retries_total", "Attempts of SHARP API requests beyond the first."),
                errors: Counter::new(&m, "sharp_api_errors_total", "SHARP API requests that failed after their retries, by reason."),
                bytes: Counter::new(&m, "sharp_data_transfer_bytes", "Bytes sent to and received from the SHARP API (bodies of known size)."),
            },
            sharp_idempotency_hits: Counter::new(&m, "sharp_idempotency_hits_total", "SHARP submissions whose job key was known already, so nothing was sent again."),
            sharp_job_status: Counter::new(&m, "sharp_job_status_total", "SHARP get_status answers by status."),
            mock_fact_registration_duration: Histogram::new(&m, "mock_fact_registration_duration", "Duration of one fact registration of the mock prover (isValid check and registerFact)."),
            mock_fact_already_registered: Counter::new(&m, "mock_fact_already_registered_total", "Facts the mock prover found registered already."),
            mock_fact_newly_registered: Counter::new(&m, "mock_fact_newly_registered_total", "Facts the mock prover registered."),
            mock_fact_registration_errors: Counter::new(&m, "mock_fact_registration_errors_total", "Fact registrations of the mock prover that failed."),
            mock_is_valid_check_duration: Histogram::new(&m, "mock_is_valid_check_duration", "Duration of one isValid call of the mock prover."),
            block_state_seen: Mutex::default(),
            settlement_seen: Mutex::default(),
            refreshed_at: Mutex::new(None),
            registry,
            _provider: provider,
            // Last: after every instrument above was created.
            families: m.families.take(),
        }
    }

    /// `(Prometheus name, type)` of every family `/metrics` can export (`counter`, `gauge` or
    /// `histogram`; a family shows in the text once it has a sample).
    pub fn families(&self) -> &[(String, &'static str)] {
        &self.families
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
        // Adding 0 creates a series at 0: the counters show from the first copy on.
        self.settlement_fees_paid.add(&labels, fees);
        self.settlement_tx_attempts.add(&labels, sent);
        self.settlement_tx_replacements.add(&labels, bumps);
        self.settlement_tx_dropped.add(&labels, dropped);
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
        self.job_handoff.observed(&[("from_job_type", from.as_ref()), ("to_job_type", to.as_ref())])
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

    /// A dead-lettered job message no longer applied to its job and was dropped.
    pub fn stale_dead_letter(&self, job_type: JobType) {
        self.stale_dead_letters.add(&[("operation_job_type", job_type.as_ref())], 1);
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
        self.worker_trigger_duration.observed(&[("trigger", trigger.as_ref())])
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

    /// Every instrument in the Prometheus text exposition format (version 0.0.4), rendered by
    /// `prometheus::TextEncoder` from what the OpenTelemetry Prometheus exporter collects.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)
        {
            // Only an empty or unnamed family fails, which the exporter never builds; the
            // families before it are served.
            tracing::warn!(error = %e, "Could not render every metric family for /metrics");
        }
        out
    }
}

/// Recorders of the reference's pipeline, batching, aggregator and prover instruments.
impl Metrics {
    /// A job of `job_type` covering up to `block` (a block, or a batch for the batch-keyed
    /// types) completed: `block_state` keeps the highest seen per type.
    pub fn block_state(&self, job_type: JobType, block: u64) {
        let highest = {
            let mut seen = lock(&self.block_state_seen);
            let v = seen.entry(job_type).or_insert(block);
            *v = (*v).max(block);
            *v
        };
        self.block_state.set(&[("operation_job_type", job_type.as_ref())], highest as f64);
    }

    /// A job was locked for processing `queue_wait` after its last change; `since_creation`
    /// is given on its first processing attempt only.
    pub fn job_picked_up(
        &self,
        job_type: JobType,
        queue_wait: Duration,
        since_creation: Option<Duration>,
    ) {
        let labels = [("operation_job_type", job_type.as_ref())];
        self.job_queue_wait_time.set(&labels, queue_wait.as_secs_f64());
        if let Some(d) = since_creation {
            self.job_scheduling_delay.set(&labels, d.as_secs_f64());
        }
    }

    /// A `to` job waited `elapsed` for its last predecessor (see [`Metrics::handoff`]).
    pub fn dependency_wait(&self, to: JobType, elapsed: Duration) {
        self.dependency_wait_time
            .set(&[("operation_job_type", to.as_ref())], elapsed.as_secs_f64());
    }

    /// A job completed `worked` after its processing started (proof and settlement stages
    /// only), `e2e` after its creation (`sla_breach_count` past [`E2E_SLA`]).
    pub fn job_done(&self, job_type: JobType, worked: Option<Duration>, e2e: Option<Duration>) {
        let labels = [("operation_job_type", job_type.as_ref())];
        let gauge = match job_type {
            JobType::ProofCreation | JobType::ProofRegistration | JobType::Aggregator => {
                Some(&self.proof_generation_time)
            }
            JobType::StateTransition => Some(&self.settlement_time),
            JobType::SnosRun | JobType::DataSubmission => None,
        };
        if let (Some(gauge), Some(w)) = (gauge, worked) {
            gauge.set(&labels, w.as_secs_f64());
        }
        if e2e.is_some_and(|e| e > E2E_SLA) {
            self.sla_breach_count
                .add(&[("operation_job_type", job_type.as_ref()), ("sla_type", "e2e_latency")], 1);
        }
    }

    /// Sets `active_jobs_count` (the `LockedForProcessing` jobs of every type) from the same
    /// counts as [`Metrics::set_job_counts`].
    pub fn set_active_jobs(&self, counts: &std::collections::HashMap<(JobType, JobStatus), u64>) {
        self.active_jobs_count.replace(
            JobType::iter()
                .map(|t| {
                    let n = counts.get(&(t, JobStatus::LockedForProcessing)).copied().unwrap_or(0);
                    (vec![("operation_job_type", t.to_string())], n as f64)
                })
                .collect(),
        );
    }

    /// A batching trigger opened a batch of `stage` (`snos` or `aggregator`).
    pub fn batch_created(&self, stage: &'static str) {
        self.batch_creation.add(&[("stage", stage)], 1);
    }

    /// A SNOS batch of `blocks` blocks was closed.
    pub fn snos_batch_closed(&self, blocks: u64) {
        self.snos_batch_blocks.set(&[], blocks as f64);
    }

    /// The aggregator batching opened or closed batch `index`; `input_bound` is given when
    /// it closed (its aggregator input size upper bound, in felts).
    pub fn aggregator_batch(&self, index: u64, input_bound: Option<u64>) {
        self.aggregator_batching_batch_number.set(&[], index as f64);
        if let Some(b) = input_bound {
            self.aggregator_input_size_upper_bound.set(&[], b as f64);
        }
    }

    /// An AggregatorBatching run (under its lock) took `elapsed`.
    pub fn aggregator_batching_run(&self, elapsed: Duration) {
        self.aggregator_batching_duration.observe(&[], elapsed.as_secs_f64());
    }

    /// A SnosRun processing call succeeded after `elapsed` (the engine's measure).
    pub fn snos_job_processed(&self, elapsed: Duration) {
        self.snos_job_processing_time.observe(&[], elapsed.as_secs_f64());
    }

    /// The SNOS handler's own timing of a successful processing: in total, reading the node,
    /// and in the runner.
    pub fn snos_timing(&self, total: Duration, rpc_wait: Duration, execution: Duration) {
        self.snos_total_processing_time.observe(&[], total.as_secs_f64());
        self.snos_rpc_wait_time.observe(&[], rpc_wait.as_secs_f64());
        self.snos_execution_time.observe(&[], execution.as_secs_f64());
    }

    /// The artifacts stored for an aggregator batch: `children` SNOS batches, and the sizes
    /// of what was stored (absent: not stored by this path).
    pub fn aggregator_artifacts(
        &self,
        children: Option<u64>,
        pie_zip: Option<usize>,
        da_segment: Option<usize>,
        program_output: Option<usize>,
    ) {
        for (gauge, v) in [
            (&self.aggregator_child_count, children.map(|n| n as f64)),
            (&self.aggregator_pie_zip_bytes, pie_zip.map(|n| n as f64)),
            (&self.aggregator_da_segment_bytes, da_segment.map(|n| n as f64)),
            (&self.aggregator_program_output_bytes, program_output.map(|n| n as f64)),
        ] {
            if let Some(v) = v {
                gauge.set(&[], v);
            }
        }
    }

    /// Shadow mode compared a would-be state update with the live one.
    pub fn shadow_comparison(&self, matched: bool) {
        let result = if matched { "match" } else { "mismatch" };
        self.shadow_comparisons.add(&[("result", result)], 1);
    }

    /// A local aggregator run took `elapsed` and succeeded or not.
    pub fn aggregator_local_run(&self, elapsed: Duration, ok: bool) {
        self.aggregator_local_run_duration.set(&[], elapsed.as_secs_f64());
        self.aggregator_local_run_total.add(&[], 1);
        self.aggregator_local_run_failures.add(&[], u64::from(!ok));
    }

    /// A StorageCleanup run went through `attempted` settled jobs and tagged `processed` of
    /// them completely.
    pub fn cleanup_jobs(&self, attempted: u64, processed: u64) {
        self.cleanup_jobs_attempted.add(&[], attempted);
        self.cleanup_jobs_processed.add(&[], processed);
    }
}

/// The short reason of a failed prover call (`errors_total{reason}`).
fn prover_error_reason(e: &ProverError) -> String {
    match e {
        ProverError::Http { status, .. } => format!("http_{status}"),
        ProverError::Unavailable { .. } => "unavailable".to_owned(),
        ProverError::InsufficientCredits { .. } => "insufficient_credits".to_owned(),
        ProverError::NotFound { .. } => "not_found".to_owned(),
        _ => "other".to_owned(),
    }
}

/// The prover backends report into the registry (installed by `crate::app`).
impl ProverObserver for Metrics {
    fn api_call(&self, c: &ApiCall<'_>) {
        let p = match c.prover {
            "atlantic" => &self.atlantic,
            "sharp" => &self.sharp,
            _ => return,
        };
        let op = [("operation_type", c.operation)];
        let outcome = if c.error.is_some() { Outcome::Failure } else { Outcome::Success };
        p.calls.add(&[("operation_type", c.operation), ("outcome", outcome.as_ref())], 1);
        p.duration.observe(&op, c.elapsed.as_secs_f64());
        // Created at 0 with the first call, so a rate reads 0 rather than no data.
        let retries = u64::from(c.attempts.saturating_sub(1));
        p.with_retry.add(&op, u64::from(retries > 0));
        p.retries.add(&op, retries);
        p.bytes.add(&op, c.bytes);
        if let Some(e) = c.error {
            let reason = prover_error_reason(e);
            p.errors.add(&[("operation_type", c.operation), ("reason", &reason)], 1);
        }
    }

    fn event(&self, event: &ProverEvent<'_>) {
        match event {
            ProverEvent::SharpIdempotencyHit => self.sharp_idempotency_hits.add(&[], 1),
            ProverEvent::SharpJobStatus(status) => {
                self.sharp_job_status.add(&[("status", status)], 1);
            }
            ProverEvent::MockFactRegistration { outcome, elapsed } => {
                self.mock_fact_registration_duration.observe(&[], elapsed.as_secs_f64());
                let counter = match outcome {
                    FactRegistration::AlreadyRegistered => &self.mock_fact_already_registered,
                    FactRegistration::NewlyRegistered => &self.mock_fact_newly_registered,
                    FactRegistration::Error => &self.mock_fact_registration_errors,
                };
                counter.add(&[], 1);
            }
            ProverEvent::MockIsValidCheck { elapsed } => {
                self.mock_is_valid_check_duration.observe(&[], elapsed.as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use orchestrator_test_support::prometheus::Exposition;

    fn scrape(m: &Metrics) -> Exposition {
        let text = m.render_prometheus();
        Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn counters_histograms_render_in_prometheus_text() {
        let m = Metrics::new();
        m.transition(JobType::SnosRun, None, JobStatus::Created);
        m.transition(JobType::SnosRun, Some(JobStatus::Created), JobStatus::LockedForProcessing);
        m.transition(JobType::SnosRun, Some(JobStatus::LockedForProcessing), JobStatus::Failed);
        m.handler_call(JobType::SnosRun, "process", Outcome::Success, Duration::from_millis(70));
        m.handler_call(JobType::SnosRun, "process", Outcome::Success, Duration::from_secs(2));
        let e = scrape(&m);
        assert_eq!(e.kind("job_state_transitions_total"), Some("counter"));
        let created =
            [("operation_job_type", "SnosRun"), ("from_state", "None"), ("to_state", "Created")];
        assert_eq!(e.get("job_state_transitions_total", &created), Some(1.0));
        assert_eq!(e.series("job_state_transitions_total").count(), 3);
        assert_eq!(e.get("failed_jobs_total", &[("operation_job_type", "SnosRun")]), Some(1.0));
        // Not a Failed or VerificationTimeout transition: no timeout series at all.
        assert_eq!(e.series("job_timeout_count_total").count(), 0);
        assert_eq!(
            e.get(
                "successful_job_operations_total",
                &[("operation_job_type", "SnosRun"), ("operation_type", "process")]
            ),
            Some(2.0)
        );

        // The histogram: today's buckets, cumulative, `le` as Prometheus prints it.
        assert_eq!(e.kind("jobs_response_time_seconds"), Some("histogram"));
        let labels = [
            ("operation_job_type", "SnosRun"),
            ("operation_type", "process"),
            ("outcome", "success"),
        ];
        let bucket = |le: &str| {
            let mut l = labels.to_vec();
            l.push(("le", le));
            e.get("jobs_response_time_seconds_bucket", &l)
        };
        let bounds: Vec<String> = DURATION_BUCKETS.iter().map(|b| b.to_string()).collect();
        assert_eq!(bounds[..2], ["0.005", "0.01"]);
        for (bound, le) in DURATION_BUCKETS.iter().zip(&bounds) {
            let want = [0.07, 2.0].iter().filter(|s| **s <= *bound).count() as f64;
            assert_eq!(bucket(le), Some(want), "le={le}");
        }
        assert_eq!(bucket("+Inf"), Some(2.0));
        assert_eq!(
            e.series("jobs_response_time_seconds_bucket").count(),
            DURATION_BUCKETS.len() + 1
        );
        assert_eq!(e.get("jobs_response_time_seconds_count", &labels), Some(2.0));
        let sum = e.get("jobs_response_time_seconds_sum", &labels).expect("a sum");
        assert!((sum - 2.07).abs() < 1e-9, "{sum}");

        // The test getters read the same registry back.
        assert_eq!(m.failed_jobs.get(&[("operation_job_type", "SnosRun")]), 1);
        assert_eq!(m.jobs_response_time.count(&labels), 2);
        // Neither target_info nor the otel_scope_* labels are exported.
        assert_eq!(e.series("target_info").count(), 0);
        assert!(e.samples().iter().all(|s| !s.labels.keys().any(|k| k.starts_with("otel_"))));
    }

    #[test]
    fn names_keep_the_reference_prometheus_names() {
        let m = Metrics::new();
        m.healed(JobType::SnosRun, "scanner");
        m.cleanup_run(2, 0);
        m.trigger_duration(WorkerTriggerType::SnosBatching, Duration::from_millis(3));
        m.set_stage_stalled(JobType::SnosRun, true);
        let e = scrape(&m);
        // A counter given with `_total` gets it once; one without gets it appended.
        assert_eq!(
            e.get("healed_jobs_total", &[("operation_job_type", "SnosRun"), ("source", "scanner")]),
            Some(1.0)
        );
        assert_eq!(e.get("cleanup_runs_total", &[]), Some(1.0));
        assert_eq!(e.get("cleanup_artifacts_tagged_total", &[]), Some(2.0));
        assert_eq!(e.get("cleanup_failures_total", &[]), Some(0.0));
        assert_eq!(
            e.get("worker_trigger_duration_seconds_count", &[("trigger", "SnosBatching")]),
            Some(1.0)
        );
        assert_eq!(e.get("stage_stalled", &[("operation_job_type", "SnosRun")]), Some(1.0));
        assert!(e.samples().iter().all(|s| !s.name.contains("_total_total")));
        // Every family in the text is a declared one, with the declared type.
        let declared: BTreeMap<&str, &str> =
            m.families().iter().map(|(n, k)| (n.as_str(), *k)).collect();
        for name in ["healed_jobs_total", "cleanup_runs_total", "worker_trigger_duration_seconds"] {
            assert_eq!(e.kind(name), declared.get(name).copied(), "{name}");
        }
        assert_eq!(declared.len(), m.families().len(), "a family declared twice");
    }

    #[test]
    fn refreshed_gauges_replace_their_family() {
        let m = Metrics::new();
        m.set_queue_depths(&[
            (QueueType::JobProcessing(JobType::SnosRun), 4),
            (QueueType::JobVerification(JobType::SnosRun), 1),
        ]);
        let mut counts = std::collections::HashMap::new();
        counts.insert((JobType::SnosRun, JobStatus::Created), 3);
        m.set_job_counts(&counts);
        let e = scrape(&m);
        let depth =
            |e: &Exposition, q: QueueType| e.get("job_queue_depth", &[("queue", q.as_ref())]);
        assert_eq!(depth(&e, QueueType::JobProcessing(JobType::SnosRun)), Some(4.0));
        assert_eq!(depth(&e, QueueType::JobVerification(JobType::SnosRun)), Some(1.0));
        let status = |e: &Exposition, s: &str| {
            e.get(
                "job_status_current",
                &[("operation_job_type", "SnosRun"), ("operation_job_status", s)],
            )
        };
        assert_eq!(status(&e, "Created"), Some(3.0));
        assert_eq!(status(&e, "Completed"), Some(0.0));
        assert_eq!(
            e.series("job_status_current").count(),
            JobType::iter().count() * JobStatus::iter().count()
        );

        // The next refresh: the jobs moved on, one queue could not be read.
        counts.clear();
        counts.insert((JobType::SnosRun, JobStatus::Completed), 3);
        m.set_job_counts(&counts);
        m.set_queue_depths(&[(QueueType::JobProcessing(JobType::SnosRun), 0)]);
        let e = scrape(&m);
        assert_eq!(status(&e, "Created"), Some(0.0));
        assert_eq!(status(&e, "Completed"), Some(3.0));
        assert_eq!(depth(&e, QueueType::JobProcessing(JobType::SnosRun)), Some(0.0));
        // Not read this time: gone rather than stale.
        assert_eq!(depth(&e, QueueType::JobVerification(JobType::SnosRun)), None);
    }

    /// A reader standing in for the OTLP periodic reader (which a test cannot point anywhere):
    /// a `ManualReader` the test keeps a handle on.
    #[derive(Debug, Clone)]
    struct SharedReader(Arc<opentelemetry_sdk::metrics::ManualReader>);

    impl opentelemetry_sdk::metrics::reader::MetricReader for SharedReader {
        fn register_pipeline(
            &self,
            pipeline: std::sync::Weak<opentelemetry_sdk::metrics::Pipeline>,
        ) {
            self.0.register_pipeline(pipeline)
        }
        fn collect(
            &self,
            rm: &mut opentelemetry_sdk::metrics::data::ResourceMetrics,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.collect(rm)
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.force_flush()
        }
        fn shutdown_with_timeout(
            &self,
            timeout: Duration,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.shutdown_with_timeout(timeout)
        }
        fn temporality(
            &self,
            kind: opentelemetry_sdk::metrics::InstrumentKind,
        ) -> opentelemetry_sdk::metrics::Temporality {
            self.0.temporality(kind)
        }
    }

    /// One set of instruments feeds both readers: what the second reader (where OTLP sits in
    /// production) collects carries the same values as `/metrics`, under the OpenTelemetry
    /// names (no `_total`; histograms in unit `s` with the duration buckets).
    #[test]
    fn the_otlp_reader_sees_the_same_instruments() {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};

        let reader =
            SharedReader(Arc::new(opentelemetry_sdk::metrics::ManualReader::builder().build()));
        let m = Metrics::with_readers({
            let reader = reader.clone();
            |builder| builder.with_reader(reader)
        });
        m.transition(JobType::SnosRun, Some(JobStatus::LockedForProcessing), JobStatus::Failed);
        m.cleanup_run(3, 1);
        m.completed(JobType::SnosRun, Some(Duration::from_millis(300)), None);
        m.set_queue_depths(&[(QueueType::JobProcessing(JobType::SnosRun), 5)]);

        let mut rm = ResourceMetrics::default();
        opentelemetry_sdk::metrics::reader::MetricReader::collect(&reader, &mut rm).unwrap();
        let metrics: BTreeMap<&str, &opentelemetry_sdk::metrics::data::Metric> = rm
            .scope_metrics()
            .inspect(|s| assert_eq!(s.scope().name(), METER_NAME))
            .flat_map(|s| s.metrics())
            .map(|m| (m.name(), m))
            .collect();
        let attributes = |a: &mut dyn Iterator<Item = &KeyValue>| -> Vec<(String, String)> {
            let mut v: Vec<_> = a.map(|kv| (kv.key.to_string(), kv.value.to_string())).collect();
            v.sort();
            v
        };
        let snos = vec![("operation_job_type".to_owned(), "SnosRun".to_owned())];

        let AggregatedMetrics::U64(MetricData::Sum(failed)) = metrics["failed_jobs"].data() else {
            panic!("failed_jobs is a u64 sum")
        };
        let points: Vec<_> =
            failed.data_points().map(|p| (attributes(&mut p.attributes()), p.value())).collect();
        assert_eq!(points, [(snos.clone(), 1)]);
        assert!(failed.is_monotonic());
        for (name, want) in
            [("cleanup_runs", 1), ("cleanup_artifacts_tagged", 3), ("cleanup_failures", 1)]
        {
            let AggregatedMetrics::U64(MetricData::Sum(sum)) = metrics[name].data() else {
                panic!("{name} is a u64 sum")
            };
            assert_eq!(sum.data_points().map(|p| p.value()).collect::<Vec<_>>(), [want], "{name}");
        }
        assert!(!metrics.keys().any(|n| n.ends_with("_total")), "{:?}", metrics.keys());

        let verification = metrics["verification_time"];
        assert_eq!(verification.unit(), "s");
        let AggregatedMetrics::F64(MetricData::Histogram(h)) = verification.data() else {
            panic!("verification_time is an f64 histogram")
        };
        let p = h.data_points().next().expect("one series");
        assert_eq!(attributes(&mut p.attributes()), snos);
        assert_eq!(p.bounds().collect::<Vec<_>>(), DURATION_BUCKETS);
        assert_eq!((p.count(), p.sum()), (1, 0.3));

        let AggregatedMetrics::F64(MetricData::Gauge(depth)) = metrics["job_queue_depth"].data()
        else {
            panic!("job_queue_depth is an f64 gauge")
        };
        let points: Vec<_> =
            depth.data_points().map(|p| (attributes(&mut p.attributes()), p.value())).collect();
        assert_eq!(points, [(vec![("queue".to_owned(), "snos_job_processing".to_owned())], 5.0)]);

        // And /metrics shows the same values.
        let e = scrape(&m);
        assert_eq!(e.get("failed_jobs_total", &[("operation_job_type", "SnosRun")]), Some(1.0));
        assert_eq!(e.get("cleanup_artifacts_tagged_total", &[]), Some(3.0));
        assert_eq!(
            e.get("verification_time_seconds_count", &[("operation_job_type", "SnosRun")]),
            Some(1.0)
        );
        assert_eq!(e.get("job_queue_depth", &[("queue", "snos_job_processing")]), Some(5.0));
    }

    #[test]
    fn each_metrics_has_its_own_registry() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.alert("job", true);
        a.alert("job", true);
        b.alert("job", false);
        let delivered = |m: &Metrics, d: &str| {
            scrape(m).get("alerts_sent_total", &[("kind", "job"), ("delivered", d)])
        };
        assert_eq!((delivered(&a, "true"), delivered(&a, "false")), (Some(2.0), None));
        assert_eq!((delivered(&b, "true"), delivered(&b, "false")), (None, Some(1.0)));
    }

    #[test]
    fn settlement_values_become_counters_and_gauges() {
        let m = Metrics::new();
        let labels = [("settlement_layer", "ethereum")];
        // Nothing sampled yet: counters at 0, no gauge series.
        m.settlement("ethereum", &SettlementMetrics::default());
        assert_eq!(m.settlement_fees_paid.get(&labels), 0.0);
        assert_eq!(scrape(&m).get("settlement_tx_attempts_total", &labels), Some(0.0));
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
        v.fees_paid_wei += 4_096; // one f64 step at 30 ETH
        v.txs_sent += 1;
        v.txs_dropped += 1;
        v.signer_balance_wei = Some(4_000);
        m.settlement("ethereum", &v);
        let e = scrape(&m);
        assert_eq!(e.kind("settlement_fees_paid_wei_total"), Some("counter"));
        assert_eq!(
            e.get("settlement_fees_paid_wei_total", &labels),
            Some(30_000_000_000_000_000_000_f64 + 4_096.0)
        );
        assert_eq!(e.get("settlement_tx_attempts_total", &labels), Some(4.0));
        assert_eq!(e.get("settlement_tx_replacements_total", &labels), Some(1.0));
        assert_eq!(e.get("settlement_tx_dropped_total", &labels), Some(3.0));
        assert_eq!(e.kind("settlement_signer_balance_wei"), Some("gauge"));
        assert_eq!(e.get("settlement_signer_balance_wei", &labels), Some(4_000.0));
        assert_eq!(e.get("settlement_blob_base_fee_wei", &labels), Some(1.0));
        assert_eq!(e.get("settlement_base_fee_wei", &labels), Some(7.0));
        assert_eq!(m.settlement_tx_attempts.get(&labels), 4);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        let route = "/a\"b\\c\nd";
        m.http_request(route, 200);
        let text = m.render_prometheus();
        assert!(text.contains(r#"route="/a\"b\\c\nd""#), "{text}");
        let e = Exposition::parse(&text).unwrap();
        assert_eq!(e.get("http_requests_total", &[("route", route), ("status", "200")]), Some(1.0));
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
        for (name, kind) in Metrics::new().families() {
            if *kind == "histogram" {
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

    /// The families `docs/operations.md` lists after `<!-- metrics:{part} -->`.
    fn documented(part: &str) -> Vec<String> {
        let doc = include_str!("../../../docs/operations.md");
        let names = orchestrator_test_support::prometheus::documented_families(doc, part);
        assert!(!names.is_empty(), "docs/operations.md lists no family after its {part} marker");
        names
    }

    /// The families the doc lists as recorded only under some conditions are recorded here on
    /// purpose, each through the recorder the code calls, and every one of them then has a
    /// sample (the end-to-end workflow checks the others).
    #[test]
    fn every_conditional_family_of_the_doc_is_recorded_by_its_recorder() {
        let m = Metrics::new();
        m.transition(JobType::SnosRun, Some(JobStatus::LockedForProcessing), JobStatus::Failed);
        m.transition(
            JobType::ProofCreation,
            Some(JobStatus::PendingVerification),
            JobStatus::VerificationTimeout,
        );
        m.handler_call(JobType::SnosRun, "process", Outcome::Failure, Duration::from_secs(1));
        m.retry(JobType::SnosRun, "automatic");
        m.healed(JobType::SnosRun, "scanner");
        m.orphaned(JobType::SnosRun, JobStatus::Created);
        m.stale_dead_letter(JobType::StateTransition);
        m.alert("job", true);
        m.job_done(JobType::StateTransition, None, Some(E2E_SLA + Duration::from_secs(1)));
        m.aggregator_local_run(Duration::from_millis(300), false);
        m.shadow_comparison(false);
        let unavailable =
            ProverError::Unavailable { operation: "get query".into(), reason: "reset".into() };
        for (prover, error) in [("atlantic", Some(&unavailable)), ("sharp", None)] {
            m.api_call(&ApiCall {
                prover,
                operation: "get query",
                attempts: 2,
                elapsed: Duration::from_millis(20),
                error,
                bytes: 10,
            });
        }
        m.api_call(&ApiCall {
            prover: "sharp",
            operation: "get_status",
            attempts: 1,
            elapsed: Duration::from_millis(5),
            error: Some(&ProverError::Http {
                operation: "get_status".into(),
                status: 403,
                body: String::new(),
                kind: orchestrator_prover_client_interface::HttpFailureKind::Client,
                retry_after: None,
            }),
            bytes: 0,
        });
        m.event(&ProverEvent::SharpIdempotencyHit);
        m.event(&ProverEvent::SharpJobStatus("PROCESSED"));
        for outcome in [
            FactRegistration::AlreadyRegistered,
            FactRegistration::NewlyRegistered,
            FactRegistration::Error,
        ] {
            m.event(&ProverEvent::MockFactRegistration { outcome, elapsed: Duration::ZERO });
        }
        m.event(&ProverEvent::MockIsValidCheck { elapsed: Duration::from_millis(3) });

        let conditional = documented("conditional");
        assert!(conditional.len() >= 20, "{conditional:?}");
        let text = m.render_prometheus();
        let have = orchestrator_test_support::prometheus::sampled_families(&text);
        let missing: Vec<&String> = conditional.iter().filter(|f| !have.contains(*f)).collect();
        assert!(missing.is_empty(), "no sample for {missing:?} in\n{text}");
        // The values are the recorded ones, not just present.
        for line in [
            r#"sla_breach_count_total{operation_job_type="StateTransition",sla_type="e2e_latency"} 1"#,
            "aggregator_local_run_failures_total 1",
            r#"atlantic_api_errors_total{operation_type="get query",reason="unavailable"} 1"#,
            r#"sharp_api_errors_total{operation_type="get_status",reason="http_403"} 1"#,
            r#"sharp_retries_total{operation_type="get query"} 1"#,
            r#"sharp_job_status_total{status="PROCESSED"} 1"#,
            "mock_fact_newly_registered_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // A family is never in both parts of the doc.
        let always = documented("always");
        assert!(always.len() >= 40, "{always:?}");
        let both: Vec<&String> = always.iter().filter(|f| conditional.contains(f)).collect();
        assert!(both.is_empty(), "{both:?}");
    }

    /// `docs/operations.md` lists exactly the families of the registry, each once.
    #[test]
    fn the_doc_lists_every_family_of_the_registry_once() {
        let mut doc: Vec<String> = documented("always");
        doc.extend(documented("conditional"));
        let listed: std::collections::BTreeSet<&str> = doc.iter().map(String::as_str).collect();
        assert_eq!(listed.len(), doc.len(), "a family listed twice in docs/operations.md");
        let m = Metrics::new();
        let registry: std::collections::BTreeSet<&str> =
            m.families().iter().map(|(n, _)| n.as_str()).collect();
        let undocumented: Vec<&&str> = registry.difference(&listed).collect();
        let unknown: Vec<&&str> = listed.difference(&registry).collect();
        assert!(undocumented.is_empty(), "not in docs/operations.md: {undocumented:?}");
        assert!(unknown.is_empty(), "documented but not in the registry: {unknown:?}");
    }

    #[test]
    fn pipeline_recorders_set_their_reference_families() {
        let m = Metrics::new();
        m.block_state(JobType::SnosRun, 9);
        m.block_state(JobType::SnosRun, 4); // completed out of order: the highest stays
        m.job_picked_up(
            JobType::SnosRun,
            Duration::from_millis(1500),
            Some(Duration::from_secs(3)),
        );
        m.job_picked_up(JobType::SnosRun, Duration::from_secs(2), None);
        m.job_done(
            JobType::ProofCreation,
            Some(Duration::from_secs(7)),
            Some(Duration::from_secs(8)),
        );
        m.job_done(JobType::StateTransition, Some(Duration::from_secs(12)), None);
        let counts = std::collections::HashMap::from([
            ((JobType::Aggregator, JobStatus::LockedForProcessing), 2),
            ((JobType::Aggregator, JobStatus::Completed), 5),
        ]);
        m.set_active_jobs(&counts);
        m.batch_created("snos");
        m.batch_created("snos");
        m.snos_batch_closed(3);
        m.aggregator_batch(4, None);
        m.aggregator_batch(4, Some(1234));
        m.aggregator_artifacts(Some(2), Some(1000), Some(64), None);
        m.aggregator_artifacts(None, None, None, Some(96));
        m.cleanup_jobs(3, 2);
        m.snos_timing(Duration::from_secs(3), Duration::from_secs(1), Duration::from_secs(2));
        let t = |job_type: &'static str| [("operation_job_type", job_type)];
        assert_eq!(m.block_state.get(&t("SnosRun")), Some(9.0));
        assert_eq!(m.job_queue_wait_time.get(&t("SnosRun")), Some(2.0));
        assert_eq!(m.job_scheduling_delay.get(&t("SnosRun")), Some(3.0));
        assert_eq!(m.proof_generation_time.get(&t("ProofCreation")), Some(7.0));
        assert_eq!(m.settlement_time.get(&t("StateTransition")), Some(12.0));
        assert_eq!(m.settlement_time.get(&t("ProofCreation")), None);
        assert_eq!(m.active_jobs_count.get(&t("Aggregator")), Some(2.0));
        assert_eq!(m.active_jobs_count.get(&t("SnosRun")), Some(0.0));
        assert_eq!(m.aggregator_input_size_upper_bound.get(&[]), Some(1234.0));
        assert_eq!(m.aggregator_child_count.get(&[]), Some(2.0));
        assert_eq!(m.aggregator_program_output_bytes.get(&[]), Some(96.0));
        // An 8 s job is within the SLA: no breach series.
        let text = m.render_prometheus();
        assert!(!text.contains("sla_breach_count"), "{text}");
        for line in [
            r#"batch_creation_total{stage="snos"} 2"#,
            "snos_batch_blocks 3",
            "aggregator_batching_batch_number 4",
            "aggregator_pie_zip_bytes 1000",
            "aggregator_da_segment_bytes 64",
            "cleanup_jobs_attempted_total 3",
            "cleanup_jobs_processed_total 2",
            "snos_rpc_wait_time_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
