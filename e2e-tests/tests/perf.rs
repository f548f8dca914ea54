//! Benchmarks on the local stack (`scripts/bench.sh latency` and `memory`), ignored by default:
//!
//! - `bench_latency`: the L2 workflow on the embedded tier with instant externals (the mock
//!   Atlantic server answering at once, Anvil mining a block every second), one devnet block a
//!   second; prints p50/p99 of each stage hand-off (predecessor `Completed` → successor locked
//!   for processing, from the jobs' millisecond timestamps read through the API) and of last
//!   block → settled on L1. Last line:
//!   `latency: worst_handoff_p50=<ms> ms worst_handoff_p99=<ms> ms settle_p50=<s> s`.
//! - `bench_memory`: `orchestrator run` (the binary of `ORCH_BIN`, a release build from
//!   `bench.sh`) idle on the embedded tier, then settling 6-blob batches (devnet blocks filled by
//!   [`StateFiller`] until the DA segment of each aggregator batch takes 6 blobs; asserted on
//!   the L1 transactions); prints its VmRSS idle and its VmHWM (peak) at the end as
//!   `memory: idle=<MiB> MiB peak_settling=<MiB> MiB` (`PERF_MEMORY_BATCHES`: 6-blob batches,
//!   default 2; `PERF_MEMORY_RUN_ARGS`: more `orchestrator run` flags).
//!
//! `cargo test --workspace --all-features --locked --test perf -- --ignored --nocapture
//! bench_latency` (`PERF_LATENCY_BATCHES`: aggregator batches, default 10 = 20 SNOS batches).
#![cfg(feature = "testing")]

use std::{
    collections::{BTreeMap, HashSet},
    ops::RangeInclusive,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use e2e_tests::{
    api::Api,
    devnet::{Devnet, StateFiller},
    stack::{Stack, StackOptions, Tier, BLOCKS_PER_AGGREGATOR_BATCH},
    wait_until,
};
use orchestrator::types::jobs::JobItem;

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(v: &[i64], p: f64) -> i64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0)
}

/// When a job completed (ms): its verification end, else its last update.
fn completed_ms(j: &JobItem) -> i64 {
    j.metadata.common.verification_completed_at.unwrap_or(j.updated_at).timestamp_millis()
}

/// When a job was locked for processing (ms).
fn locked_ms(j: &JobItem) -> Option<i64> {
    j.metadata.common.process_started_at.map(|t| t.timestamp_millis())
}

/// Produces one block (one mint) every `every` until devnet's tip is `last`; the unix ms at
/// which each block was made.
async fn produce(stack: &Stack, last: u64, every: Duration) -> BTreeMap<u64, i64> {
    let mut produced = BTreeMap::new();
    produced.insert(0, unix_ms());
    while stack.devnet.block_number().await < last {
        let n = stack.devnet.produce_blocks(1).await;
        produced.insert(n, unix_ms());
        tokio::time::sleep(every).await;
    }
    produced
}

/// Waits until the core contract has settled block `last`, failing on a `Failed` job.
async fn wait_settled(stack: &Stack, api: &Api, last: u64, timeout: Duration) {
    wait_until(timeout, "the core contract to settle the last block", async || {
        let settled = stack.l1.state_block_number().await?;
        if let Ok(jobs) = api.jobs().await {
            if let Some(f) = jobs.iter().find(|j| j.status == "Failed") {
                panic!("{} job {} failed\n{}", f.job_type, f.id, stack.log_tail(40));
            }
        }
        if settled >= last as i64 {
            Ok(())
        } else {
            Err(format!("settled {settled} of {last}\n{}", stack.log_tail(20)))
        }
    })
    .await;
}

/// Every job, whole, through the API.
async fn all_jobs(api: &Api) -> Vec<JobItem> {
    let mut out = Vec::new();
    for row in api.jobs().await.expect("jobs") {
        let v = api.job(&row.id).await.expect("job");
        out.push(serde_json::from_value(v).expect("a job record"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: scripts/bench.sh latency"]
async fn bench_latency() {
    let batches = env_u64("PERF_LATENCY_BATCHES", 10);
    let last = batches * BLOCKS_PER_AGGREGATOR_BATCH - 1;
    let options = StackOptions { instant_prover: true, ..StackOptions::default() };
    let Some(mut stack) = Stack::start_with(Tier::Embedded, options).await else { return };
    let orch = stack.spawn().await;
    let api = Stack::api(&orch);
    let started = Instant::now();
    let produced = produce(&stack, last, Duration::from_secs(1)).await;
    wait_settled(&stack, &api, last, Duration::from_secs(120 + 30 * batches)).await;
    wait_until(Duration::from_secs(60), "every job Completed", async || {
        let jobs = api.jobs().await?;
        let open: Vec<_> = jobs.iter().filter(|j| j.status != "Completed").collect();
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("{open:?}"))
        }
    })
    .await;
    let elapsed = started.elapsed();
    let jobs = all_jobs(&api).await;
    let snos = api.snos_batches().await.expect("snos batches");
    let aggregators = api.aggregator_batches().await.expect("aggregator batches");
    let metrics = reqwest::get(orch.api.join("metrics").expect("url"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    drop(orch);

    let job =
        |t: &str, id: u64| jobs.iter().find(|j| j.job_type.to_string() == t && j.internal_id == id);
    let mut edges: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut edge = |from: &JobItem, to: Option<&JobItem>| {
        if let Some(at) = to.and_then(locked_ms) {
            let name = format!("{}→{}", from.job_type, to.expect("some").job_type);
            edges.entry(name).or_default().push(at - completed_ms(from));
        }
    };
    let mut block_to_snos = Vec::new();
    for &(index, _, end, _) in &snos {
        if let Some(run) = job("SnosRun", index) {
            edge(run, job("ProofCreation", index));
            if let (Some(made), Some(locked)) = (produced.get(&end), locked_ms(run)) {
                block_to_snos.push(locked - made);
            }
        }
    }
    let mut settle = Vec::new();
    for a in aggregators.iter().filter(|a| a.end_block <= last) {
        let proofs = snos
            .iter()
            .filter(|(_, start, end, _)| *start >= a.start_block && *end <= a.end_block)
            .filter_map(|(i, ..)| job("ProofCreation", *i));
        if let Some(last_proof) = proofs.max_by_key(|j| completed_ms(j)) {
            edge(last_proof, job("Aggregator", a.index));
        }
        let transition = job("StateTransition", a.index);
        let before = a.index.checked_sub(1).and_then(|p| job("StateTransition", p));
        let from = match (job("Aggregator", a.index), before) {
            (Some(x), Some(y)) => Some(if completed_ms(x) >= completed_ms(y) { x } else { y }),
            (x, y) => x.or(y),
        };
        if let Some(from) = from {
            edge(from, transition);
        }
        if let (Some(t), Some(made)) = (transition, produced.get(&a.end_block)) {
            settle.push(completed_ms(t) - made);
        }
    }

    println!(
        "latency bench: {} blocks, {} SNOS batches, {} aggregator batches settled in {:.1} s (embedded tier, instant prover, Anvil 1 s blocks)",
        last + 1,
        snos.len(),
        aggregators.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "  hand-off (predecessor Completed → successor locked)   n    p50 ms   p99 ms   max ms"
    );
    let (mut worst50, mut worst99) = (0, 0);
    for (name, v) in &edges {
        let (p50, p99) = (percentile(v, 0.5), percentile(v, 0.99));
        worst50 = worst50.max(p50);
        worst99 = worst99.max(p99);
        println!(
            "  {name:<52} {:>4} {p50:>8} {p99:>8} {:>8}",
            v.len(),
            v.iter().max().copied().unwrap_or(0)
        );
    }
    println!(
        "  last block of a SNOS batch made → SnosRun locked       {:>4} {:>8} {:>8}",
        block_to_snos.len(),
        percentile(&block_to_snos, 0.5),
        percentile(&block_to_snos, 0.99)
    );
    println!(
        "  last block of an aggregator batch made → settled on L1 {:>4} {:>8} {:>8}",
        settle.len(),
        percentile(&settle, 0.5),
        percentile(&settle, 0.99)
    );
    println!("  per stage, p50 ms: created→locked, processing (locked→processed), verification (processed→Completed)");
    for t in ["SnosRun", "ProofCreation", "Aggregator", "StateTransition"] {
        let of: Vec<&JobItem> = jobs.iter().filter(|j| j.job_type.to_string() == t).collect();
        let c = |j: &&JobItem| j.metadata.common.clone();
        let wait: Vec<i64> = of
            .iter()
            .filter_map(|j| {
                Some(c(j).process_started_at?.timestamp_millis() - j.created_at.timestamp_millis())
            })
            .collect();
        let work: Vec<i64> = of
            .iter()
            .filter_map(|j| Some(c(j).process_completed_at?.timestamp_millis() - locked_ms(j)?))
            .collect();
        let verify: Vec<i64> = of
            .iter()
            .filter_map(|j| Some(completed_ms(j) - c(j).process_completed_at?.timestamp_millis()))
            .collect();
        println!(
            "  {t:<16} {:>4} jobs  created→locked {:>6}  processing {:>6}  verification {:>6}",
            of.len(),
            percentile(&wait, 0.5),
            percentile(&work, 0.5),
            percentile(&verify, 0.5)
        );
    }
    for line in metrics.lines().filter(|l| {
        l.starts_with("job_handoff_seconds_sum") || l.starts_with("job_handoff_seconds_count")
    }) {
        println!("  /metrics {line}");
    }
    assert!(!edges.is_empty(), "no hand-off measured");
    assert!(!settle.is_empty(), "no settlement measured");
    println!(
        "latency: worst_handoff_p50={worst50} ms worst_handoff_p99={worst99} ms settle_p50={:.1} s",
        percentile(&settle, 0.5) as f64 / 1000.0
    );
}

/// Felts of a full blob.
const FELTS_PER_BLOB: usize = 4096;

/// The felts of the DA segment that the mock Atlantic server's aggregation (the SNOS
/// stand-in's aggregator mode) makes of blocks `blocks`: the squash of their diffs in its own
/// encoding (`orchestrator_snos_runner::aggregator`), `n_contracts, (addr, nonce, class_hash,
/// n_changes, (key, value)*)*, n_classes, (class_hash, compiled)*`: 2 felts per key written.
/// That segment is what the state update carries as blobs.
async fn da_segment_felts(devnet: &Devnet, blocks: RangeInclusive<u64>) -> usize {
    let (mut contracts, mut keys, mut classes) = (HashSet::new(), HashSet::new(), HashSet::new());
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    for n in blocks {
        let update = devnet.state_update(n).await;
        let diff = &update["state_diff"];
        let list = |field: &str| diff[field].as_array().cloned().unwrap_or_default();
        for d in list("storage_diffs") {
            contracts.insert(text(&d["address"]));
            for e in d["storage_entries"].as_array().into_iter().flatten() {
                keys.insert((text(&d["address"]), text(&e["key"])));
            }
        }
        for c in list("nonces").iter().chain(&list("replaced_classes")) {
            contracts.insert(text(&c["contract_address"]));
        }
        for c in list("deployed_contracts") {
            contracts.insert(text(&c["address"]));
        }
        for c in list("declared_classes") {
            classes.insert(text(&c["class_hash"]));
        }
    }
    2 + 4 * contracts.len() + 2 * keys.len() + 2 * classes.len()
}

/// Makes the blocks of aggregator batch `batch` (from 0; devnet closes a block on
/// `devnet_createBlock` only) so that its DA segment takes about `target` felts: each block but
/// genesis carries an equal share of the fresh writes still missing. Answers the segment's felts.
async fn fill_batch(stack: &Stack, filler: &mut StateFiller, batch: u64, target: usize) -> usize {
    let first = batch * BLOCKS_PER_AGGREGATOR_BATCH;
    let last = first + BLOCKS_PER_AGGREGATOR_BATCH - 1;
    for block in first.max(1)..=last {
        let so_far = da_segment_felts(&stack.devnet, first..=block - 1).await;
        // 2 felts per fresh key; a block's few other writes (sender, sequencer) come on top.
        let writes = target.saturating_sub(so_far) / 2 / (last - block + 1) as usize;
        filler
            .fill_state_diff(writes)
            .await
            .unwrap_or_else(|e| panic!("filling block {block}: {e}"));
        stack.devnet.create_block().await;
        assert_eq!(stack.devnet.block_number().await, block, "devnet closed block {block}");
    }
    da_segment_felts(&stack.devnet, first..=last).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: scripts/bench.sh memory"]
async fn bench_memory() {
    let batches = env_u64("PERF_MEMORY_BATCHES", 2);
    let idle_for = Duration::from_secs(env_u64("PERF_MEMORY_IDLE_SECONDS", 20));
    let last = batches * BLOCKS_PER_AGGREGATOR_BATCH - 1;
    let options = StackOptions { instant_prover: true, blocks_on_demand: true };
    let Some(mut stack) = Stack::start_with(Tier::Embedded, options).await else { return };
    // A SnosRun of a large batch takes longer than the stack's quick 20 s job timeout: the
    // orphan scanner would heal it and a second run would overlap the first. The orchestrator's
    // default timeout instead.
    stack.extra_args.extend(["--snos-job-timeout-seconds", "300"].map(String::from));
    // PERF_MEMORY_RUN_ARGS: more `orchestrator run` flags (`--max-concurrent-snos-jobs 1`, …).
    let run_args = std::env::var("PERF_MEMORY_RUN_ARGS").unwrap_or_default();
    stack.extra_args.extend(run_args.split_whitespace().map(String::from));
    let orch = stack.spawn().await;
    let api = Stack::api(&orch);
    // Idle: started, ready, nothing to do (no block beyond genesis).
    tokio::time::sleep(idle_for).await;
    let idle = proc_kib(orch.pid, "VmRSS").expect("VmRSS");
    let idle_peak = proc_kib(orch.pid, "VmHWM").expect("VmHWM");
    // PERF_MEMORY_HOLD_SECONDS: keep the idle process for a look (`/proc/<pid>/smaps`).
    let hold = env_u64("PERF_MEMORY_HOLD_SECONDS", 0);
    if hold > 0 {
        println!("holding idle orchestrator pid {} for {hold} s", orch.pid);
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    // Each batch's DA segment: 5.5 blobs, the middle of what takes exactly 6.
    let target = 11 * FELTS_PER_BLOB / 2;
    let mut filler = StateFiller::new(&stack.devnet).await.expect("a devnet account to send from");
    let started = Instant::now();
    let mut segments = Vec::new();
    for batch in 0..batches {
        segments.push(fill_batch(&stack, &mut filler, batch, target).await);
    }
    let filled = started.elapsed();
    wait_settled(&stack, &api, last, Duration::from_secs(300 + 300 * batches)).await;
    let settled = started.elapsed();
    let peak = proc_kib(orch.pid, "VmHWM").expect("VmHWM");
    let rss = proc_kib(orch.pid, "VmRSS").expect("VmRSS");
    let blobs: Vec<usize> = stack.l1.core_transactions().await.iter().map(|t| t.blobs).collect();
    let writes = filler.recipients().count();
    drop(orch);
    println!(
        "memory bench: orchestrator run{} idle {idle_for:?}: VmRSS {idle} KiB (VmHWM {idle_peak} KiB)",
        if run_args.is_empty() { String::new() } else { format!(" {run_args}") }
    );
    println!(
        "  {batches} aggregator batches of {BLOCKS_PER_AGGREGATOR_BATCH} blocks, {writes} fresh storage writes (ERC-20 transfers, {} per transaction) made in {:.1} s; DA segments {segments:?} felts; settled {:.1} s after the first block",
        e2e_tests::devnet::TRANSFERS_PER_TRANSACTION,
        filled.as_secs_f64(),
        settled.as_secs_f64()
    );
    println!(
        "  after settling (blobs per state update {blobs:?}): VmHWM {peak} KiB, VmRSS {rss} KiB"
    );
    let log = std::fs::read_to_string(stack.log()).unwrap_or_default();
    let healed = log.lines().filter(|l| l.contains("Healed an orphaned job")).count();
    assert_eq!(
        healed, 0,
        "{healed} jobs were healed as orphans and ran twice, overlapping: the peak is not that of one run each"
    );
    let six = blobs.iter().filter(|b| **b == 6).count();
    assert!(
        six as u64 >= batches,
        "{six} of the {batches} state updates carried 6 blobs (blobs per state update {blobs:?}, DA segments {segments:?} felts): the peak is not that of 6-blob batches"
    );
    println!(
        "memory: idle={:.1} MiB peak_settling={:.1} MiB",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}
