//! Shadow mode (`run --shadow`, `docs/shadow.md`): the whole pipeline runs for real beside the
//! live operator, except that nothing leaves for the prover or the settlement layer. At the
//! settlement step the StateTransition job records what it would have sent (the decoded
//! calldata, the blobs' versioned hashes, a fee estimate), waits until the live operator has
//! settled the same blocks, fetches that transaction and compares the two field by field. The
//! reports are served on `/shadow` and counted in `shadow_comparisons_total{result}`.
//!
//! Safe by construction: in shadow mode the pipeline's settlement client is a
//! [`ShadowSettlementClient`], whose sending methods refuse without calling the wrapped
//! client, and its prover is a [`ShadowProver`], which contacts no prover at all. A stage that
//! tried to send anyway (a bug) gets an error, never a transaction.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use async_trait::async_trait;
use orchestrator_prover_client_interface::{
    AggregationArtifacts, ProverClient, ProverError, ProverResult, Task, TaskStatus, TaskType,
};
use orchestrator_settlement_client_interface::{
    BlobStateUpdate, SettledStateUpdate, SettlementClient, SettlementError, SettlementMetrics,
    SettlementResult, SettlementVerificationStatus, StateUpdateCall, StateUpdateOutcome,
    StateUpdateTxError, Word,
};
use serde::{Deserialize, Serialize};

/// The settings of `--shadow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowParams {
    /// The settlement-layer block from which the live operator's `LogStateUpdate` events are
    /// read (`--shadow-scan-from-block`; the core contract's deployment block).
    pub scan_from_block: u64,
}

/// What a shadow orchestrator never does, for the start-up line and the refusals.
pub const SHADOW_NEVER: &str = "shadow mode: no settlement transaction is sent, no proof job is \
     submitted to the prover and no fact or proof is registered; each state update is compared \
     with the live operator's (GET /shadow, metric shadow_comparisons_total)";

/// The prefix of the task ids the [`ShadowProver`] hands out.
pub const SHADOW_TASK_PREFIX: &str = "shadow-skipped:";

/// Most differing elements listed per field (the rest are counted).
pub const MAX_LISTED: usize = 5;

// -- The settlement client that cannot send --

/// Wraps the pipeline's settlement client in shadow mode: reads go through, every method that
/// would sign or send returns an error without reaching the wrapped client.
#[derive(Debug)]
pub struct ShadowSettlementClient {
    inner: Arc<dyn SettlementClient>,
}

impl ShadowSettlementClient {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn SettlementClient>) -> Self {
        Self { inner }
    }
}

fn refused(call: &'static str) -> SettlementError {
    SettlementError::Unsupported(call)
}

#[async_trait]
impl SettlementClient for ShadowSettlementClient {
    async fn register_proof(&self, _proof: Word) -> SettlementResult<String> {
        Err(refused("register_proof: a shadow orchestrator (--shadow) registers nothing"))
    }

    async fn update_state_calldata(
        &self,
        _snos_output: Vec<Word>,
        _program_output: Vec<Word>,
        _onchain_data_hash: Word,
        _onchain_data_size: Word,
    ) -> SettlementResult<String> {
        Err(refused(
            "update_state_calldata: a shadow orchestrator (--shadow) never sends a settlement transaction",
        ))
    }

    async fn update_state_with_blobs(
        &self,
        update: BlobStateUpdate,
    ) -> Result<StateUpdateOutcome, StateUpdateTxError> {
        Err(StateUpdateTxError {
            error: refused(
                "update_state_with_blobs: a shadow orchestrator (--shadow) never sends a settlement transaction",
            ),
            attempts: update.prior_attempts,
        })
    }

    async fn verify_tx_inclusion(
        &self,
        tx_hash: &str,
    ) -> SettlementResult<SettlementVerificationStatus> {
        self.inner.verify_tx_inclusion(tx_hash).await
    }

    async fn wait_for_tx_finality(&self, tx_hash: &str) -> SettlementResult<Option<u64>> {
        self.inner.wait_for_tx_finality(tx_hash).await
    }

    async fn get_last_settled_block(&self) -> SettlementResult<Option<u64>> {
        self.inner.get_last_settled_block().await
    }

    async fn get_nonce(&self) -> SettlementResult<u64> {
        self.inner.get_nonce().await
    }

    async fn settled_state_updates(
        &self,
        from_block: u64,
    ) -> SettlementResult<Vec<SettledStateUpdate>> {
        self.inner.settled_state_updates(from_block).await
    }

    async fn preview_update_with_blobs(
        &self,
        program_output: Vec<Word>,
        blobs: Vec<Vec<u8>>,
    ) -> SettlementResult<StateUpdateCall> {
        self.inner.preview_update_with_blobs(program_output, blobs).await
    }

    async fn landed_update(&self, tx_hash: &str) -> SettlementResult<StateUpdateCall> {
        self.inner.landed_update(tx_hash).await
    }

    fn metrics(&self) -> SettlementMetrics {
        self.inner.metrics()
    }

    async fn refresh_metrics(&self) -> SettlementResult<SettlementMetrics> {
        self.inner.refresh_metrics().await
    }

    fn layer_name(&self) -> &'static str {
        self.inner.layer_name()
    }
}

// -- The prover that is never contacted --

/// The prover of a shadow orchestrator: contacts no prover. A submitted task is skipped (its id
/// starts with [`SHADOW_TASK_PREFIX`]) and reported done at once, without checking any fact;
/// no proof exists, so a proof download or an L2 verification query is an error. The stages
/// downstream use what the pipeline computed locally (the SNOS run, the local aggregator's
/// program output and DA segment).
#[derive(Debug, Default)]
pub struct ShadowProver {
    skipped: AtomicU64,
}

impl ShadowProver {
    /// A prover that skips everything.
    pub fn new() -> Self {
        Self::default()
    }

    fn skip(&self, what: &str, key: &str) -> String {
        let n = self.skipped.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(target: "orch::prover", task = what, key, "Skipped in shadow mode: nothing is submitted to the prover");
        format!("{SHADOW_TASK_PREFIX}{what}:{key}:{n}")
    }
}

#[async_trait]
impl ProverClient for ShadowProver {
    async fn submit_task(&self, task: Task) -> ProverResult<String> {
        Ok(match &task {
            Task::CreateJob(info) => self.skip("proof", &info.dedup_id),
            Task::CreateBucket => self.skip("bucket", "new"),
            Task::RunAggregation(bucket) => self.skip("aggregation", bucket),
            Task::RunAggregationWithPie(info) => self.skip("aggregation", &info.fact_hash),
        })
    }

    async fn get_task_status<'s, 'i, 'f>(
        &'s self,
        _task_type: TaskType,
        task_id: &'i str,
        _fact: Option<&'f str>,
    ) -> ProverResult<TaskStatus> {
        if task_id.starts_with(SHADOW_TASK_PREFIX) {
            Ok(TaskStatus::Succeeded)
        } else {
            Err(ProverError::NotFound {
                operation: "status in shadow mode (no task is ever submitted)".into(),
                what: task_id.to_owned(),
            })
        }
    }

    async fn get_proof(&self, _task_id: &str) -> ProverResult<String> {
        Err(ProverError::Unsupported {
            prover: "shadow",
            operation: "get_proof (shadow mode submits nothing, so no proof exists)",
        })
    }

    async fn submit_l2_query(
        &self,
        _task_id: &str,
        _proof: &str,
        _n_steps: Option<usize>,
    ) -> ProverResult<String> {
        Err(ProverError::Unsupported {
            prover: "shadow",
            operation: "submit_l2_query (shadow mode submits nothing)",
        })
    }

    async fn get_aggregation_artifacts(
        &self,
        _external_id: &str,
        _include_proof: bool,
    ) -> ProverResult<AggregationArtifacts> {
        // Nothing was aggregated remotely: the local aggregator's outputs are already stored.
        Ok(AggregationArtifacts::default())
    }
}

// -- The comparison --

/// One difference between the would-be update and the live one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// What differs: `block range`, `function`, `programOutput`, `kzgProofs`,
    /// `blob_versioned_hashes`, `calldata_len`.
    pub field: String,
    /// How: the values, or the lengths and the first differing elements.
    pub detail: String,
}

impl Difference {
    fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { field: field.into(), detail: detail.into() }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.detail)
    }
}

/// The differences between two lists of values of `field`: their lengths, then the first
/// [`MAX_LISTED`] differing positions (the rest counted).
fn compare_values(field: &str, shadow: &[String], live: &[String], out: &mut Vec<Difference>) {
    if shadow.len() != live.len() {
        out.push(Difference::new(
            field,
            format!("{} element(s) in the shadow's, {} in the live one", shadow.len(), live.len()),
        ));
    }
    let differing: Vec<usize> = (0..shadow.len().min(live.len()))
        .filter(|i| !shadow[*i].eq_ignore_ascii_case(&live[*i]))
        .collect();
    if differing.is_empty() {
        return;
    }
    let listed: Vec<String> = differing
        .iter()
        .take(MAX_LISTED)
        .map(|i| format!("[{i}] shadow {} live {}", shadow[*i], live[*i]))
        .collect();
    let more = differing.len().saturating_sub(MAX_LISTED);
    let more = if more > 0 { format!("; and {more} more") } else { String::new() };
    out.push(Difference::new(
        field,
        format!("{} element(s) differ: {}{more}", differing.len(), listed.join("; ")),
    ));
}

/// Every difference between the update the shadow would have sent and the one that landed:
/// the function, each argument element by element, the blobs' versioned hashes (so the blob
/// contents), and the calldata length. Fees are not compared (they are reported side by side).
pub fn compare(shadow: &StateUpdateCall, live: &StateUpdateCall) -> Vec<Difference> {
    let mut out = Vec::new();
    if shadow.function != live.function {
        out.push(Difference::new(
            "function",
            format!("shadow {} live {}", shadow.function, live.function),
        ));
        return out;
    }
    for field in &shadow.fields {
        match live.fields.iter().find(|f| f.name == field.name) {
            Some(l) => compare_values(&field.name, &field.values, &l.values, &mut out),
            None => out.push(Difference::new(&field.name, "missing from the live call")),
        }
    }
    for l in live.fields.iter().filter(|l| !shadow.fields.iter().any(|f| f.name == l.name)) {
        out.push(Difference::new(&l.name, "missing from the shadow's call"));
    }
    compare_values(
        "blob_versioned_hashes",
        &shadow.blob_versioned_hashes,
        &live.blob_versioned_hashes,
        &mut out,
    );
    if shadow.calldata_len != live.calldata_len {
        out.push(Difference::new(
            "calldata_len",
            format!("shadow {} bytes, live {} bytes", shadow.calldata_len, live.calldata_len),
        ));
    }
    out
}

/// The live update that settled the batch of blocks `start..=end`: the one whose
/// `LogStateUpdate` reports block `end`, with a `block range` difference when the live
/// operator's update before it does not end at `start - 1`. `None` with the difference when
/// no live update ends at `end` (the live operator batched the blocks otherwise).
pub fn live_update_of(
    updates: &[SettledStateUpdate],
    start: u64,
    end: u64,
) -> (Option<&SettledStateUpdate>, Vec<Difference>) {
    let Some(pos) = updates.iter().position(|u| u.block_number == end) else {
        let before = updates.iter().filter(|u| u.block_number < end).map(|u| u.block_number).max();
        let after = updates.iter().filter(|u| u.block_number > end).map(|u| u.block_number).min();
        let show = |b: Option<u64>| b.map_or_else(|| "none".to_owned(), |b| b.to_string());
        return (
            None,
            vec![Difference::new(
                "block range",
                format!(
                    "no live update ends at block {end} (the shadow batch is blocks {start}..={end}); \
                     the live updates around it end at blocks {} and {}",
                    show(before),
                    show(after)
                ),
            )],
        );
    };
    let mut diffs = Vec::new();
    if let Some(prev) = pos.checked_sub(1).map(|p| &updates[p]) {
        let live_start = prev.block_number + 1;
        if live_start != start {
            diffs.push(Difference::new(
                "block range",
                format!(
                    "the live update settled blocks {live_start}..={end}, the shadow batch is blocks {start}..={end}"
                ),
            ));
        }
    }
    (Some(&updates[pos]), diffs)
}

/// Index of the previous block number in a Starknet OS program output.
pub const PREV_BLOCK_NUMBER_OFFSET: usize = 2;

/// The first block a state update covers, from its `programOutput`: the previous block number
/// (word 2) plus one; the core contract's initial `-1` (the felt `P - 1`) gives block 0.
pub fn first_block_of(call: &StateUpdateCall) -> Option<u64> {
    let output = call.fields.iter().find(|f| f.name == "programOutput")?;
    let prev =
        starknet::core::types::Felt::from_hex(output.values.get(PREV_BLOCK_NUMBER_OFFSET)?).ok()?;
    if prev == starknet::core::types::Felt::MAX {
        return Some(0);
    }
    u64::try_from(prev).ok()?.checked_add(1)
}

/// The comparison of one batch, as `/shadow` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowReport {
    /// The aggregator batch.
    pub batch: u64,
    /// Its first block.
    pub start_block: u64,
    /// Its last block.
    pub end_block: u64,
    /// Whether nothing differs.
    pub matched: bool,
    /// What differs (empty when matched).
    pub differences: Vec<Difference>,
    /// The live operator's transaction that settled `end_block`, when there is one.
    pub live_tx_hash: Option<String>,
    /// The shadow's fee estimate, in wei (a decimal string).
    pub would_be_fee_wei: Option<String>,
    /// How the estimate was made, or why there is none.
    pub fee_note: Option<String>,
    /// The fee the live transaction paid, in wei (a decimal string).
    pub live_fee_wei: Option<String>,
    /// When the comparison was made.
    pub compared_at: chrono::DateTime<chrono::Utc>,
}

impl ShadowReport {
    /// The report of batch `batch` (blocks `start..=end`): the range differences, then, when
    /// the live update was found, the field differences of `shadow` and `live`.
    pub fn new(
        (batch, start, end): (u64, u64, u64),
        shadow: &StateUpdateCall,
        live: Option<&StateUpdateCall>,
        mut differences: Vec<Difference>,
    ) -> Self {
        if let Some(live) = live {
            // The events give no start for the first update scanned: its program output does.
            let range_known = differences.iter().any(|d| d.field == "block range");
            match first_block_of(live) {
                Some(live_start) if !range_known && live_start != start => {
                    differences.push(Difference::new(
                        "block range",
                        format!(
                            "the live update settled blocks {live_start}..={end}, the shadow batch is blocks {start}..={end}"
                        ),
                    ));
                }
                _ => {}
            }
            differences.extend(compare(shadow, live));
        }
        Self {
            batch,
            start_block: start,
            end_block: end,
            matched: differences.is_empty(),
            differences,
            live_tx_hash: live.and_then(|l| l.tx_hash.clone()),
            would_be_fee_wei: shadow.fee_wei.map(|f| f.to_string()),
            fee_note: shadow.fee_note.clone(),
            live_fee_wei: live.and_then(|l| l.fee_wei).map(|f| f.to_string()),
            compared_at: chrono::Utc::now(),
        }
    }
}

/// Where the would-be update of aggregator batch `batch` is stored.
pub fn call_path(batch: u64) -> String {
    format!("artifacts/batch/{batch}/shadow_call.json")
}

/// Where the comparison of aggregator batch `batch` is stored.
pub fn report_path(batch: u64) -> String {
    format!("artifacts/batch/{batch}/shadow_report.json")
}

#[cfg(test)]
mod tests {
    use orchestrator_ethereum_settlement_client::{
        calldata::update_state_kzg_da_calldata, shadow::decode_state_update_call,
    };
    use orchestrator_protocol::kzg::G1;

    use super::*;

    /// A would-be or landed call built from real `updateStateKzgDA` calldata.
    fn call(program_output: &[Word], proofs: &[G1], hashes: &[&str]) -> StateUpdateCall {
        let calldata = update_state_kzg_da_calldata(program_output, proofs);
        let (function, fields) = decode_state_update_call(&calldata);
        StateUpdateCall {
            function,
            fields,
            blob_versioned_hashes: hashes.iter().map(|h| (*h).to_owned()).collect(),
            calldata_len: calldata.len(),
            fee_wei: Some(7),
            fee_note: None,
            tx_hash: Some("0xab".into()),
        }
    }

    fn output(n: usize, changed: &[usize]) -> Vec<Word> {
        (0..n)
            .map(|i| {
                let mut w = [0u8; 32];
                w[31] = i as u8;
                if changed.contains(&i) {
                    w[0] = 0x01;
                }
                w
            })
            .collect()
    }

    #[test]
    fn identical_updates_match() {
        let a = call(&output(20, &[]), &[[3u8; 48]], &["0x01aa"]);
        assert!(compare(&a, &a.clone()).is_empty());
        // Word 2 of `output` is 2: the update covers blocks 3..=5.
        let r = ShadowReport::new((1, 3, 5), &a, Some(&a), vec![]);
        assert!(r.matched);
        assert_eq!(r.live_tx_hash.as_deref(), Some("0xab"));
        assert_eq!(r.would_be_fee_wei.as_deref(), Some("7"));
    }

    #[test]
    fn a_changed_output_word_and_blob_are_named_with_both_values() {
        let shadow = call(&output(20, &[]), &[[3u8; 48]], &["0x01aa"]);
        let live = call(&output(20, &[4, 9]), &[[4u8; 48]], &["0x01bb"]);
        let d = compare(&shadow, &live);
        let fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["programOutput", "kzgProofs", "blob_versioned_hashes"], "{d:?}");
        assert!(d[0].detail.starts_with("2 element(s) differ: [4] shadow 0x"), "{}", d[0]);
        assert!(d[0].detail.contains(&format!("live 0x01{}04", "00".repeat(30))), "{}", d[0]);
        assert!(d[0].detail.contains("[9]"), "{}", d[0]);
        assert!(d[2].detail.contains("shadow 0x01aa live 0x01bb"), "{}", d[2]);
        let r = ShadowReport::new((2, 3, 7), &shadow, Some(&live), vec![]);
        assert!(!r.matched);
        assert_eq!(r.differences.len(), 3);
    }

    #[test]
    fn more_blobs_and_a_longer_output_report_lengths_and_cap_the_list() {
        let shadow = call(&output(20, &[]), &[[3u8; 48]], &["0x01aa"]);
        let live = call(
            &output(30, &(0..20).collect::<Vec<_>>()),
            &[[3u8; 48], [3u8; 48]],
            &["0x01aa", "0x01cc"],
        );
        let d = compare(&shadow, &live);
        let po: Vec<&Difference> = d.iter().filter(|d| d.field == "programOutput").collect();
        assert_eq!(po[0].detail, "20 element(s) in the shadow's, 30 in the live one");
        assert!(po[1].detail.ends_with("; and 15 more"), "{}", po[1]);
        assert!(d.iter().any(
            |d| d.field == "kzgProofs" && d.detail.contains("1 element(s) in the shadow's, 2")
        ));
        assert!(d.iter().any(|d| d.field == "blob_versioned_hashes"));
        assert!(d.iter().any(|d| d.field == "calldata_len"));
    }

    #[test]
    fn another_function_is_one_difference() {
        let shadow = call(&output(20, &[]), &[[3u8; 48]], &[]);
        let plain = orchestrator_ethereum_settlement_client::calldata::update_state_calldata(
            &output(20, &[]),
            [0; 32],
            [0; 32],
        );
        let (function, fields) = decode_state_update_call(&plain);
        let live = StateUpdateCall { function, fields, ..shadow.clone() };
        let d = compare(&shadow, &live);
        assert_eq!(
            d,
            vec![Difference::new("function", "shadow updateStateKzgDA live updateState")]
        );
    }

    #[test]
    fn the_first_block_comes_from_the_previous_block_number_of_the_output() {
        let mut po = output(20, &[]);
        po[PREV_BLOCK_NUMBER_OFFSET] = starknet::core::types::Felt::MAX.to_bytes_be();
        let genesis = call(&po, &[[3u8; 48]], &["0x01aa"]);
        assert_eq!(first_block_of(&genesis), Some(0));
        // Word 2 of `output` is 2: the update starts at block 3.
        let later = call(&output(20, &[]), &[[3u8; 48]], &["0x01aa"]);
        assert_eq!(first_block_of(&later), Some(3));
        // Matched fields but another range: the range is the one difference.
        let r = ShadowReport::new((2, 2, 3), &genesis, Some(&genesis), vec![]);
        assert_eq!(
            r.differences,
            vec![Difference::new(
                "block range",
                "the live update settled blocks 0..=3, the shadow batch is blocks 2..=3"
            )]
        );
        assert!(ShadowReport::new((1, 0, 3), &genesis, Some(&genesis), vec![]).matched);
    }

    fn settled(block_number: u64) -> SettledStateUpdate {
        SettledStateUpdate {
            block_number,
            state_root: [0; 32],
            block_hash: [0; 32],
            tx_hash: format!("0x{block_number:x}"),
            settlement_block: 1,
        }
    }

    #[test]
    fn the_live_update_is_found_by_its_last_block_and_its_range_checked() {
        let live = [settled(3), settled(7), settled(9)];
        let (u, d) = live_update_of(&live, 4, 7);
        assert_eq!(u.unwrap().tx_hash, "0x7");
        assert!(d.is_empty(), "{d:?}");
        let (u, d) = live_update_of(&live, 6, 7);
        assert_eq!(u.unwrap().block_number, 7);
        assert_eq!(
            d[0].detail,
            "the live update settled blocks 4..=7, the shadow batch is blocks 6..=7"
        );
        let (u, d) = live_update_of(&live, 4, 5);
        assert!(u.is_none());
        assert!(
            d[0].detail.contains("no live update ends at block 5")
                && d[0].detail.contains("end at blocks 3 and 7"),
            "{}",
            d[0]
        );
        // The first update scanned: its start is not known, so it is not reported.
        assert!(live_update_of(&live, 0, 3).1.is_empty());
    }

    #[tokio::test]
    async fn the_shadow_client_refuses_every_send_without_reaching_the_wrapped_client() {
        // The wrapped mock has no expectation for the sending calls: reaching it would panic.
        let mut inner = orchestrator_settlement_client_interface::MockSettlementClient::new();
        inner.expect_get_last_settled_block().returning(|| Ok(Some(4)));
        let shadow = ShadowSettlementClient::new(Arc::new(inner));
        let e = shadow
            .update_state_with_blobs(BlobStateUpdate::default())
            .await
            .unwrap_err()
            .error
            .to_string();
        assert!(e.contains("never sends a settlement transaction"), "{e}");
        let e = shadow.update_state_calldata(vec![], vec![], [0; 32], [0; 32]).await.unwrap_err();
        assert!(e.to_string().contains("--shadow"), "{e}");
        assert!(shadow.register_proof([0; 32]).await.is_err());
        assert_eq!(shadow.get_last_settled_block().await.unwrap(), Some(4));
    }

    #[tokio::test]
    async fn the_shadow_prover_skips_tasks_and_has_no_proofs() {
        let p = ShadowProver::new();
        let id = p.submit_task(Task::CreateBucket).await.unwrap();
        assert!(id.starts_with(SHADOW_TASK_PREFIX), "{id}");
        assert_eq!(
            p.get_task_status(TaskType::Job, &id, Some("0x1")).await.unwrap(),
            TaskStatus::Succeeded
        );
        assert!(p.get_task_status(TaskType::Job, "real-key", None).await.is_err());
        assert!(p.get_proof(&id).await.is_err());
        assert_eq!(
            p.get_aggregation_artifacts(&id, true).await.unwrap(),
            AggregationArtifacts::default()
        );
    }
}
