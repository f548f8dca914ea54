//! The gauges of `/metrics` and OTLP that are read from the engine's state rather than counted
//! as things happen: jobs per type and status, queue depths, trigger states, and the settlement
//! client's cached fees and balance.

use std::{collections::HashMap, time::Duration};

use strum::IntoEnumIterator;

use crate::{
    types::{jobs::JobStatus, queue::QueueType, queue::WorkerTriggerType},
    worker::Config,
};

/// Recomputes the gauges unless they were refreshed less than `min_age` ago. A failing query
/// keeps the previous values of its gauge and is logged.
pub async fn refresh_gauges(config: &Config, min_age: Duration) {
    let metrics = &config.metrics;
    if let Some(client) = config.handlers.settlement_client() {
        // The client's cached values: no RPC, so done at every scrape.
        metrics.settlement(client.layer_name(), &client.metrics());
    }
    if !metrics.claim_gauge_refresh(min_age) {
        return;
    }
    let mut counts: HashMap<_, u64> = HashMap::new();
    let mut ok = true;
    for status in JobStatus::iter() {
        match config.database().get_jobs_by_status(status).await {
            Ok(jobs) => {
                for job in jobs {
                    *counts.entry((job.job_type, status)).or_default() += 1;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, %status, "Could not count jobs for /metrics");
                ok = false;
            }
        }
    }
    if ok {
        metrics.set_job_counts(&counts);
        metrics.set_active_jobs(&counts);
    }

    let mut depths = Vec::new();
    for queue in QueueType::for_layer(config.layer) {
        match config.queue().approximate_len(queue).await {
            Ok(n) => depths.push((queue, n)),
            Err(e) => {
                tracing::warn!(error = %e, %queue, "Could not read the queue depth for /metrics")
            }
        }
    }
    metrics.set_queue_depths(&depths);

    match config.database().get_trigger_pauses().await {
        Ok(pauses) => {
            let paused: Vec<WorkerTriggerType> = pauses.iter().map(|p| p.trigger).collect();
            metrics.set_trigger_states(
                WorkerTriggerType::for_layer(config.layer),
                &paused,
                &config.trigger_control.halted(),
            );
        }
        Err(e) => tracing::warn!(error = %e, "Could not read the trigger pauses for /metrics"),
    }
}
