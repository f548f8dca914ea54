//! What the SnosBatching and AggregatorBatching triggers share: settings, the Starknet versions
//! batching accepts, the TTL lock around a run, the per-block gate (pending blocks, unsupported
//! versions, replay bounds), alert de-duplication and the clock.
//!
//! Rules and flags are described in `docs/batching.md`.

use std::{
    fmt,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};

pub mod aggregator;
pub mod snos;

use orchestrator_protocol::compression::StarknetVersion;

use crate::{
    config::{BatchingParams, RunParams},
    core::client::{
        madara::{BlockInfo, MadaraClient, MadaraError},
        Alert, AlertSeverity, LockError, LockValue,
    },
    worker::{trigger::TriggerError, Config},
};

/// Starknet versions (`major.minor.patch`) whose blocks are batched: every version the DA
/// encoder knows (0.13.2 … 0.14.2) and the later ones whose DA rules are known to be unchanged
/// (0.14.3, and 0.14.4 reported by starknet-devnet). A block of any other version halts batching
/// with an alert: its data availability encoding is not known to be right.
pub const SUPPORTED_STARKNET_VERSIONS: [(u32, u32, u32); 10] = [
    (0, 13, 2),
    (0, 13, 3),
    (0, 13, 4),
    (0, 13, 5),
    (0, 13, 6),
    (0, 14, 0),
    (0, 14, 1),
    (0, 14, 2),
    (0, 14, 3),
    (0, 14, 4),
];

/// The DA version of a block's Starknet version string if batching supports it.
pub fn supported_version(version: &str) -> Option<StarknetVersion> {
    let v = StarknetVersion::parse(version).ok()?;
    SUPPORTED_STARKNET_VERSIONS.contains(&v.triple()).then_some(v)
}

/// The supported versions as text, for messages.
pub fn supported_versions_text() -> String {
    SUPPORTED_STARKNET_VERSIONS
        .iter()
        .map(|(a, b, c)| format!("{a}.{b}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The current time; tests inject their own.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Limits and bounds of the batching triggers.
#[derive(Debug, Clone)]
pub struct BatchingSettings {
    /// The batching flags.
    pub params: BatchingParams,
    /// Lowest block batched (`--min-block-to-process`).
    pub min_block: u64,
    /// Highest block batched (`--max-block-to-process`).
    pub max_block: Option<u64>,
}

impl BatchingSettings {
    /// From the `run` parameters.
    pub fn from_params(params: &RunParams) -> Self {
        Self {
            params: params.batching.clone(),
            min_block: params.service.min_block_to_process,
            max_block: params.service.max_block_to_process,
        }
    }

    /// Whether a batch created at `created_at` has reached `--max-batch-time-seconds` at `now`.
    pub fn too_old(&self, created_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let age = (now - created_at).to_std().unwrap_or(Duration::ZERO);
        age >= self.params.max_batch_time
    }

    /// `[first, last]` to examine in one run: from `max(min_block, next)` to
    /// `min(max_block, upper)`, at most `--max-batch-processing-size` blocks; `None` if empty.
    pub fn range(&self, next: u64, upper: u64) -> Option<(u64, u64)> {
        let first = next.max(self.min_block);
        let last = self.max_block.map_or(upper, |m| m.min(upper));
        let cap = self.params.max_batch_processing_size.max(1);
        let last = last.min(first.saturating_add(cap - 1));
        (first <= last).then_some((first, last))
    }
}

/// Sends an alert once per distinct condition: a halted trigger re-runs every tick and would
/// otherwise page on each one.
#[derive(Debug, Default)]
pub struct AlertOnce {
    last: Mutex<Option<String>>,
}

impl AlertOnce {
    /// Sends `alert` unless the previous one had the same key. Failures to deliver are logged.
    pub async fn send(&self, config: &Config, key: String, alert: Alert) {
        {
            let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.as_deref() == Some(key.as_str()) {
                return;
            }
            *last = Some(key);
        }
        tracing::error!(target: "orch::batching", title = %alert.title, body = %alert.body, "Batching halted");
        if let Err(e) = config.alerts().send_alert(&alert).await {
            tracing::error!(target: "orch::batching", error = %e, "Could not deliver a batching alert");
        }
    }

    /// Forgets the last condition (batching made progress).
    pub fn clear(&self) {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// A critical batching alert.
pub fn halt_alert(title: impl Into<String>, body: impl Into<String>) -> Alert {
    Alert { severity: AlertSeverity::Critical, title: title.into(), body: body.into() }
}

/// Runs `work` holding the TTL lock `key`; returns `Ok(false)` without running it when another
/// worker holds the lock. The lock is released afterwards whatever `work` returned.
pub async fn with_lock<F>(
    config: &Config,
    key: &str,
    ttl: Duration,
    owner: &str,
    work: F,
) -> Result<bool, TriggerError>
where
    F: Future<Output = Result<(), TriggerError>>,
{
    match config.lock().acquire_lock(key, LockValue::Boolean(true), ttl, Some(owner)).await {
        Ok(_) => {}
        Err(LockError::AlreadyHeld { owner: holder, .. }) => {
            tracing::debug!(target: "orch::batching", key, ?holder, "Another worker is batching; skipping this run");
            return Ok(false);
        }
        Err(e) => return Err(TriggerError::client(format!("cannot take the {key} lock"), e)),
    }
    let result = work.await;
    if let Err(e) = config.lock().release_lock(key, Some(owner)).await {
        // The TTL frees it eventually; the work itself is done.
        tracing::warn!(target: "orch::batching", key, error = %e, "Could not release the batching lock");
    }
    result.map(|()| true)
}

/// A node error as a trigger error.
pub fn node_error(e: MadaraError) -> TriggerError {
    TriggerError::client("Madara node", e)
}

/// What the per-block gate decided.
#[derive(Debug)]
pub enum Gate {
    /// Batch the block.
    Go(BlockInfo, StarknetVersion),
    /// Stop this run quietly; a later run retries (pending block, block not yet on the
    /// reference node).
    Wait(String),
    /// The block's Starknet version is not supported: close the open batch and halt.
    Unsupported(BlockInfo),
    /// Halt with this alert without touching batches (replay-bounds mismatch).
    Halt(String, Alert),
}

/// Checks block `b` before it is batched: final on the node, a supported Starknet version, and
/// (with `--replay-bounds-rpc-url`) the same hash as on the reference node.
///
/// # Errors
/// Node errors other than "not there yet" (transport after retries, malformed answers).
pub async fn gate_block(
    node: &dyn MadaraClient,
    replay: Option<&dyn MadaraClient>,
    b: u64,
) -> Result<Gate, TriggerError> {
    let info = match node.block(b).await {
        Ok(info) => info,
        Err(e) if e.is_wait() => return Ok(Gate::Wait(format!("block {b}: {e}"))),
        Err(e) => return Err(node_error(e)),
    };
    let Some(version) = supported_version(&info.starknet_version) else {
        return Ok(Gate::Unsupported(info));
    };
    if let Some(reference) = replay {
        let theirs = match reference.block(b).await {
            Ok(r) => r,
            Err(e) if e.is_wait() => {
                return Ok(Gate::Wait(format!(
                    "block {b} is not final on the replay-bounds node yet: {e}"
                )))
            }
            Err(e) => return Err(TriggerError::client("replay-bounds node", e)),
        };
        if theirs.hash != info.hash {
            let key = format!("replay-mismatch-{b}");
            let alert = halt_alert(
                format!("Batching halted: block {b} differs from the replay-bounds node"),
                format!(
                    "Block {b} has hash {:#x} on the Madara node but {:#x} on the replay-bounds node \
                     (--replay-bounds-rpc-url). The chain was reorganised or the node replays a \
                     different chain; nothing from block {b} on is batched until the hashes agree.",
                    info.hash, theirs.hash
                ),
            );
            return Ok(Gate::Halt(key, alert));
        }
    }
    Ok(Gate::Go(info, version))
}

/// The alert for an unsupported Starknet version at block `b`.
pub fn unsupported_alert(kind: &str, info: &BlockInfo) -> (String, Alert) {
    (
        format!("unsupported-{}-{}", info.number, info.starknet_version),
        halt_alert(
            format!(
                "{kind} batching halted: block {} has unsupported Starknet version {}",
                info.number, info.starknet_version
            ),
            format!(
                "Block {} reports Starknet {}; this orchestrator batches {}. The open batch was \
                 closed so its blocks proceed; no block from {} on is batched until an \
                 orchestrator supporting the version is deployed.",
                info.number,
                info.starknet_version,
                supported_versions_text(),
                info.number
            ),
        ),
    )
}

/// A unique owner id for a trigger's lock.
pub fn lock_owner(kind: &str) -> String {
    format!("{kind}-{}-{}", std::process::id(), uuid::Uuid::new_v4())
}

/// Why a batch was closed (logged and asserted by tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// `--fixed-blocks-per-snos-batch` reached.
    FixedSize,
    /// `--max-blocks-per-snos-batch` / `--max-batch-size` reached.
    MaxBlocks,
    /// `--max-batch-time-seconds` reached.
    MaxAge,
    /// The batch was built by another orchestrator version.
    OrchestratorVersion,
    /// The next block has another Starknet version.
    StarknetVersion,
    /// Bouncer weights (or the aggregator's l1 gas / message segment) would exceed the limit.
    Weights,
    /// The compressed squashed diff would not fit in `max_num_blobs * 4096 - blob_size_buffer`.
    BlobSize,
    /// The aggregator input bound would exceed `--max-aggregator-input-size`.
    AggregatorInput,
    /// The next block belongs to another aggregator batch (L2 SNOS).
    AggregatorBatch,
    /// The SNOS batch reached the end of its closed aggregator batch (L2 SNOS).
    AggregatorClosed,
    /// The next block has an unsupported Starknet version.
    Unsupported,
    /// The next block does not follow the batch's last block.
    Gap,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("0.13.2", true)]
    #[case("0.13.2.1", true)]
    #[case("0.14.2", true)]
    #[case("0.14.4", true)]
    #[case("0.14.5", false)]
    #[case("0.15.0", false)]
    #[case("0.13.1", false)]
    #[case("garbage", false)]
    fn versions(#[case] v: &str, #[case] ok: bool) {
        assert_eq!(supported_version(v).is_some(), ok, "{v}");
    }

    fn settings(min: u64, max: Option<u64>, cap: u64) -> BatchingSettings {
        let mut params = crate::worker::batching::aggregator::tests::params();
        params.max_batch_processing_size = cap;
        BatchingSettings { params, min_block: min, max_block: max }
    }

    #[rstest]
    #[case(0, None, 10, 0, 5, Some((0, 5)))]
    #[case(0, None, 3, 0, 5, Some((0, 2)))]
    #[case(4, None, 10, 0, 5, Some((4, 5)))]
    #[case(0, Some(2), 10, 0, 5, Some((0, 2)))]
    #[case(0, None, 10, 6, 5, None)]
    #[case(0, Some(3), 10, 4, 9, None)]
    fn ranges(
        #[case] min: u64,
        #[case] max: Option<u64>,
        #[case] cap: u64,
        #[case] next: u64,
        #[case] upper: u64,
        #[case] want: Option<(u64, u64)>,
    ) {
        assert_eq!(settings(min, max, cap).range(next, upper), want);
    }
}
