//! Shadow mode (`docs/shadow.md`) end to end with the `orchestrator` binary on real local
//! services: Anvil as the L1, starknet-devnet as the node, the mock Atlantic server as the live
//! operator's prover, the embedded tier for each orchestrator (own data dirs).
//!
//! Three orchestrators run side by side: the live one settles on Anvil; shadow A (`--shadow`,
//! the same batching) and shadow B (`--shadow --max-batch-size 2`, a setting that changes the
//! batches and so the blobs) read the same node and Anvil. Asserted:
//! - the live operator's transactions are the only ones on the core contract (the shadows
//!   send nothing, not even from the same key);
//! - shadow A reports 100 % matches on `/shadow` for every batch the live one settled, each
//!   with the live transaction, and counts them in `shadow_comparisons_total{result="match"}`;
//! - shadow B reports mismatches naming the block ranges and the differing fields.
//!
//! `cargo test --features testing test_shadow` (needs what `make test` installs: Anvil,
//! starknet-devnet).
#![cfg(feature = "testing")]

use std::{path::Path, time::Duration};

use e2e_tests::{
    api::Api,
    process::OrchestratorProcess,
    stack::{Stack, Tier, BLOCKS_PER_AGGREGATOR_BATCH},
    tail, wait_until,
};
use serde_json::Value;

/// Aggregator batches the live operator settles.
const LIVE_BATCHES: u64 = 2;

/// The live run's arguments with `extra` replacing or adding flags, and `data` as data dir.
fn shadow_args(stack: &Stack, data: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = stack.run_args();
    // Later flags of clap win only for repeatable ones: drop the replaced ones first.
    let replaced: Vec<&str> = extra.iter().copied().filter(|a| a.starts_with("--")).collect();
    let mut out = Vec::new();
    let mut words = args.drain(..).peekable();
    while let Some(w) = words.next() {
        if w == "--data-dir" || replaced.contains(&w.as_str()) {
            words.next_if(|v| !v.starts_with("--"));
        } else {
            out.push(w);
        }
    }
    out.extend(["--data-dir".to_owned(), data.display().to_string()]);
    out.extend(extra.iter().map(|s| (*s).to_owned()));
    out
}

/// `/shadow` of `api`, or an error with the log's tail.
async fn shadow_report(api: &Api, log: &Path) -> Result<Value, String> {
    api.get("shadow").await.map_err(|e| format!("{e}\n{}", tail(log, 30)))
}

/// Panics with the job and the log tail when one of `api`'s jobs failed.
async fn fail_on_failed_jobs(api: &Api, log: &Path) {
    let Ok(jobs) = api.jobs().await else { return };
    if let Some(failed) = jobs.iter().find(|j| j.status == "Failed") {
        let record = api.job(&failed.id).await.unwrap_or(Value::Null);
        panic!("{} job failed: {record:#}\n{}", failed.job_type, tail(log, 40));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_shadow_beside_the_live_operator() {
    let Some(mut stack) = Stack::start(Tier::Embedded).await else { return };
    let last = LIVE_BATCHES * BLOCKS_PER_AGGREGATOR_BATCH - 1;

    let mut live = stack.spawn().await;
    let live_api = Stack::api(&live);
    let envs = stack.envs();
    let (log_a, log_b) = (stack.dir().join("shadow-a.log"), stack.dir().join("shadow-b.log"));
    // The shadows aggregate locally (`--prover mock`: the stand-in aggregator, the mock
    // Atlantic server's own); a shadow never contacts the prover either way.
    let args_a =
        shadow_args(&stack, &stack.dir().join("shadow-a"), &["--shadow", "--prover", "mock"]);
    let args_b = shadow_args(
        &stack,
        &stack.dir().join("shadow-b"),
        &["--shadow", "--prover", "mock", "--max-batch-size", "2"],
    );
    let mut shadow_a = OrchestratorProcess::start(&args_a, &envs, &log_a).await;
    let mut shadow_b = OrchestratorProcess::start(&args_b, &envs, &log_b).await;
    let (api_a, api_b) = (Stack::api(&shadow_a), Stack::api(&shadow_b));
    assert!(tail(&log_a, 200).contains("shadow mode: no settlement transaction is sent"));
    // The live operator does not run in shadow mode: no report there.
    let e = live_api.get("shadow").await.unwrap_err();
    assert!(e.contains("404") && e.contains("does not run in shadow mode"), "{e}");

    while stack.devnet.block_number().await < last {
        stack.devnet.produce_blocks(1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_until(Duration::from_secs(600), "the live operator to settle", async || {
        fail_on_failed_jobs(&live_api, &stack.log()).await;
        let settled = stack.l1.state_block_number().await?;
        if settled >= last as i64 {
            Ok(())
        } else {
            Err(format!("settled {settled}, want {last}\n{}", stack.log_tail(20)))
        }
    })
    .await;

    // Shadow A: every settled batch compared, all matching, each naming the live transaction.
    let report =
        wait_until(Duration::from_secs(300), "shadow A to compare every batch", async || {
            fail_on_failed_jobs(&api_a, &log_a).await;
            let r = shadow_report(&api_a, &log_a).await?;
            if r["compared"].as_u64() >= Some(LIVE_BATCHES) {
                Ok(r)
            } else {
                Err(format!("{r:#}\n{}", tail(&log_a, 20)))
            }
        })
        .await;
    let txs = stack.l1.core_transactions().await;
    assert_eq!(txs.len(), LIVE_BATCHES as usize, "only the live operator settled: {txs:?}");
    let batches = report["batches"].as_array().expect("batches");
    for (i, b) in batches.iter().take(LIVE_BATCHES as usize).enumerate() {
        assert_eq!(b["matched"], true, "batch {} differs: {b:#}", i + 1);
        assert_eq!(b["differences"], Value::Array(vec![]), "{b:#}");
        let start = i as u64 * BLOCKS_PER_AGGREGATOR_BATCH;
        assert_eq!(b["start_block"].as_u64(), Some(start), "{b:#}");
        assert_eq!(b["end_block"].as_u64(), Some(start + BLOCKS_PER_AGGREGATOR_BATCH - 1));
        let live_tx = b["live_tx_hash"].as_str().expect("live tx");
        assert!(live_tx.eq_ignore_ascii_case(&txs[i].hash), "{live_tx} vs {:?}", txs[i]);
        assert!(
            b["live_fee_wei"].as_str().is_some_and(|f| f.parse::<u128>().unwrap() > 0),
            "{b:#}"
        );
    }
    assert_eq!(report["mismatched"].as_u64(), Some(0), "{report:#}");
    assert_eq!(report["match_percent"].as_f64(), Some(100.0), "{report:#}");
    let metrics = api_a.metrics().await.expect("/metrics");
    assert!(
        metrics.lines().any(|l| l.starts_with("shadow_comparisons_total{result=\"match\"} ")
            && l.ends_with(&format!(" {LIVE_BATCHES}"))),
        "{}",
        metrics.lines().filter(|l| l.contains("shadow")).collect::<Vec<_>>().join("\n")
    );

    // Shadow B: batches of 2 blocks where the live operator settled 4: mismatches that say so,
    // and the field differences of the update that ends where a live one ends.
    let report =
        wait_until(Duration::from_secs(300), "shadow B to report its differences", async || {
            fail_on_failed_jobs(&api_b, &log_b).await;
            let r = shadow_report(&api_b, &log_b).await?;
            if r["compared"].as_u64() >= Some(2) {
                Ok(r)
            } else {
                Err(format!("{r:#}\n{}", tail(&log_b, 20)))
            }
        })
        .await;
    assert_eq!(report["matched"].as_u64(), Some(0), "{report:#}");
    let batches = report["batches"].as_array().expect("batches");
    let first = &batches[0];
    assert_eq!(first["matched"], false);
    assert_eq!(first["live_tx_hash"], Value::Null, "no live update ends at block 1: {first:#}");
    let detail = first["differences"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("no live update ends at block 1"), "{first:#}");
    let second = &batches[1];
    let fields: Vec<&str> = second["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(fields.contains(&"block range"), "{second:#}");
    assert!(fields.contains(&"programOutput"), "{second:#}");
    assert!(fields.contains(&"blob_versioned_hashes"), "the blobs differ: {second:#}");
    assert!(second["live_tx_hash"].as_str().is_some_and(|h| h.eq_ignore_ascii_case(&txs[0].hash)));
    let metrics = api_b.metrics().await.expect("/metrics");
    assert!(
        metrics.lines().any(|l| l.starts_with("shadow_comparisons_total{result=\"mismatch\"} ")),
        "{metrics}"
    );
    // Still nothing but the live operator's transactions.
    assert_eq!(stack.l1.core_transactions().await.len(), LIVE_BATCHES as usize);

    for p in [&mut shadow_a, &mut shadow_b, &mut live] {
        assert!(p.interrupt(Duration::from_secs(30)), "Ctrl-C stops the orchestrator");
    }
}
