//! Recovery from the settlement layer after losing the database (`docs/recovery.md`), end to
//! end with the `orchestrator` binary on real local services, for both layers:
//!
//! - L2 (Anvil as the L1, starknet-devnet as the node, the mock Atlantic server): two aggregator
//!   batches settle, the orchestrator stops and its whole data dir is deleted; `orchestrator
//!   recover` rebuilds the settled batches and jobs from the core contract's `LogStateUpdate`
//!   events (a second run finds nothing missing); `run --recover-from-settlement` then carries
//!   one more batch to settlement;
//! - L3 (a second starknet-devnet as the settlement layer, our Cairo core contract): the same
//!   with SNOS batches, recovering through `run --recover-from-settlement` alone.
//!
//! Both assert that every block was settled exactly once: the events' block numbers strictly
//! increase, with no duplicate, up to the last block produced; one successful transaction per
//! batch, the ones sent before the loss never sent again; the recovered batches and jobs are
//! `Completed` with the events' boundaries and transactions.
//!
//! `cargo test --features testing test_recover` (needs what `make test` installs: Anvil,
//! starknet-devnet).
#![cfg(feature = "testing")]

use std::{path::Path, process::Command, time::Duration};

use e2e_tests::{
    api::Api,
    l1::OPERATOR_KEY,
    l3::{L3Stack, L3_BLOCKS_PER_SNOS_BATCH},
    process::{binary, OrchestratorProcess},
    stack::{Stack, Tier, BLOCKS_PER_AGGREGATOR_BATCH},
    wait_until,
};
use orchestrator_ethereum_settlement_client::{
    signer::OperatorSigner, EthereumSettlementClient, EthereumSettlementConfig,
};
use serde_json::Value;

/// Batches settled before the database is lost.
const BEFORE: u64 = 2;
/// Batches settled in all.
const TOTAL: u64 = 3;

/// Panics with the job's record and the log tail when a job failed.
async fn fail_on_failed_jobs(api: &Api, log_tail: impl Fn() -> String) {
    let Ok(jobs) = api.jobs().await else { return };
    if let Some(failed) = jobs.iter().find(|j| j.status == "Failed") {
        let record = api.job(&failed.id).await.unwrap_or(Value::Null);
        panic!("{} job failed: {record:#}\n{}", failed.job_type, log_tail());
    }
}

/// Waits until every job is `Completed` (nothing in flight).
async fn wait_all_completed(api: &Api) {
    wait_until(Duration::from_secs(180), "every job to complete", async || {
        let jobs = api.jobs().await?;
        let open: Vec<_> = jobs.iter().filter(|j| j.status != "Completed").collect();
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("not completed: {open:?}"))
        }
    })
    .await;
}

/// Runs `orchestrator recover <args>` to completion; its stdout.
fn recover(args: &[String], envs: &[(String, String)], log: &Path) -> String {
    let out = Command::new(binary())
        .arg("recover")
        .args(args)
        .envs(envs.iter().cloned())
        .output()
        .expect("run orchestrator recover");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    std::fs::write(log, format!("{stdout}\n{stderr}")).expect("recover log");
    assert!(out.status.success(), "orchestrator recover failed:\n{stdout}\n{stderr}");
    stdout
}

/// The external id of job `id` (a transaction hash for a StateTransition).
async fn external_id(api: &Api, id: &str) -> String {
    let record = api.job(id).await.expect("job");
    record["external_id"].as_str().map_or_else(|| record["external_id"].to_string(), str::to_owned)
}

/// The StateTransition transactions by batch index (`internal_id`).
async fn settling_txs(api: &Api) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for j in api.jobs().await.expect("jobs").iter().filter(|j| j.job_type == "StateTransition") {
        let record = api.job(&j.id).await.expect("job");
        let index = record["internal_id"].as_u64().expect("internal id");
        out.push((index, external_id(api, &j.id).await));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_recover_l2_after_losing_the_data_dir() {
    let Some(mut stack) = Stack::start(Tier::Embedded).await else { return };
    let produce_until = async |stack: &Stack, last: u64| {
        while stack.devnet.block_number().await < last {
            stack.devnet.produce_blocks(1).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let wait_settled = async |stack: &Stack, api: &Api, last: u64| {
        wait_until(Duration::from_secs(900), "the core contract to settle", async || {
            fail_on_failed_jobs(api, || stack.log_tail(40)).await;
            let settled = stack.l1.state_block_number().await?;
            if settled >= last as i64 {
                Ok(())
            } else {
                Err(format!("settled {settled}, want {last}\n{}", stack.log_tail(30)))
            }
        })
        .await;
    };
    let first_last = BEFORE * BLOCKS_PER_AGGREGATOR_BATCH - 1;
    let last = TOTAL * BLOCKS_PER_AGGREGATOR_BATCH - 1;

    // Settle two batches, then lose the whole data dir (database, queues, artifacts).
    let mut orch = stack.spawn().await;
    let api = Stack::api(&orch);
    produce_until(&stack, first_last).await;
    wait_settled(&stack, &api, first_last).await;
    wait_all_completed(&api).await;
    let before = settling_txs(&api).await;
    assert_eq!(before.len(), BEFORE as usize, "{before:?}");
    assert!(orch.interrupt(Duration::from_secs(30)), "Ctrl-C stops the orchestrator");
    std::fs::remove_dir_all(stack.dir().join("data")).expect("delete the data dir");

    // `recover` rebuilds what was settled; a second one finds nothing missing.
    let (args, envs) = (stack.run_args(), stack.envs());
    let out = recover(&args, &envs, &stack.dir().join("recover-1.log"));
    assert!(
        out.contains(&format!(
            "recovered {BEFORE} settlement(s) (batches 1..={BEFORE}, blocks 0..={first_last})"
        )),
        "{out}"
    );
    let out = recover(&args, &envs, &stack.dir().join("recover-2.log"));
    assert!(out.contains("nothing to recover"), "{out}");
    // A database that disagrees with the chain is refused, naming the batch, and left as it is.
    let mut shifted = args.clone();
    shifted.extend(["--min-block-to-process".to_owned(), "1".to_owned()]);
    let out = Command::new(binary())
        .arg("recover")
        .args(&shifted)
        .envs(envs.iter().cloned())
        .output()
        .expect("run orchestrator recover");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a disagreeing database is refused: {stderr}");
    assert!(
        stderr.contains("the database disagrees with the core contract")
            && stderr.contains("aggregator batch 1 covers blocks 0..=3 in the database"),
        "{stderr}"
    );

    // `run --recover-from-settlement` (kept set, as an operator would) goes on from there.
    stack.extra_args.push("--recover-from-settlement".to_owned());
    let mut orch = stack.spawn().await;
    let api = Stack::api(&orch);
    let batches = api.aggregator_batches().await.expect("aggregator batches");
    let recovered: Vec<_> = batches
        .iter()
        .filter(|b| b.index <= BEFORE)
        .map(|b| (b.index, b.start_block, b.end_block, b.status.as_str()))
        .collect();
    let expected: Vec<_> = (0..BEFORE)
        .map(|i| {
            let start = i * BLOCKS_PER_AGGREGATOR_BATCH;
            (i + 1, start, start + BLOCKS_PER_AGGREGATOR_BATCH - 1, "Completed")
        })
        .collect();
    assert_eq!(recovered, expected, "the recovered batches have the events' boundaries");
    let recovered_txs = settling_txs(&api).await;
    assert_eq!(recovered_txs, before, "the recovered StateTransitions carry the same transactions");
    produce_until(&stack, last).await;
    wait_settled(&stack, &api, last).await;
    wait_all_completed(&api).await;

    // Every block settled exactly once.
    let settled = stack.l1.settled_blocks().await;
    let ends: Vec<i64> =
        (1..=TOTAL).map(|i| (i * BLOCKS_PER_AGGREGATOR_BATCH - 1) as i64).collect();
    assert_eq!(settled, ends, "one LogStateUpdate per batch, strictly increasing, none twice");
    // The settlement client reads the same history page by page (2 L1 blocks per query).
    let client = EthereumSettlementClient::new(
        EthereumSettlementConfig::new(stack.l1.url(), stack.l1.core()),
        OperatorSigner::local(OPERATOR_KEY, None).expect("signer"),
    )
    .await
    .expect("settlement client");
    let paged = client.settled_state_updates_paged(0, 2).await.expect("LogStateUpdate events");
    let paged_ends: Vec<i64> = paged.iter().map(|u| u.block_number as i64).collect();
    assert_eq!(paged_ends, ends, "paged reading finds every event once");
    let txs = stack.l1.core_transactions().await;
    assert_eq!(txs.len(), TOTAL as usize, "one transaction per batch: {txs:?}");
    let event_txs: Vec<&str> = paged.iter().map(|u| u.tx_hash.as_str()).collect();
    let core_txs: Vec<&str> = txs.iter().map(|t| t.hash.as_str()).collect();
    assert_eq!(event_txs, core_txs, "each event is the one transaction of its batch");
    assert!(txs.iter().all(|t| t.success), "{txs:?}");
    let sent: Vec<&str> = txs.iter().map(|t| t.hash.as_str()).collect();
    for (i, (_, hash)) in before.iter().enumerate() {
        assert!(hash.eq_ignore_ascii_case(sent[i]), "batch {} was settled by {}", i + 1, sent[i]);
    }
    let batches = api.aggregator_batches().await.expect("aggregator batches");
    let all: Vec<_> = batches
        .iter()
        .filter(|b| b.end_block <= last)
        .map(|b| (b.index, b.start_block, b.end_block, b.status.as_str()))
        .collect();
    let expected: Vec<_> = (0..TOTAL)
        .map(|i| {
            let start = i * BLOCKS_PER_AGGREGATOR_BATCH;
            (i + 1, start, start + BLOCKS_PER_AGGREGATOR_BATCH - 1, "Completed")
        })
        .collect();
    assert_eq!(
        all, expected,
        "the batch after the recovered ones starts at the first unsettled block"
    );
    let txs_by_batch = settling_txs(&api).await;
    assert_eq!(txs_by_batch.len(), TOTAL as usize, "{txs_by_batch:?}");
    assert!(orch.interrupt(Duration::from_secs(30)), "Ctrl-C stops the orchestrator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_recover_l3_after_losing_the_data_dir() {
    let Some(stack) = L3Stack::start().await else { return };
    let produce_until = async |last: u64| {
        while stack.node.block_number().await < last {
            stack.node.produce_blocks(1).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let wait_settled = async |api: &Api, last: u64| {
        wait_until(Duration::from_secs(600), "the core contract to settle", async || {
            fail_on_failed_jobs(api, || stack.log_tail(40)).await;
            match stack.settled_block().await? {
                Some(b) if b >= last => Ok(()),
                other => Err(format!("settled {other:?}, want {last}\n{}", stack.log_tail(30))),
            }
        })
        .await;
    };
    let first_last = BEFORE * L3_BLOCKS_PER_SNOS_BATCH - 1;
    let last = TOTAL * L3_BLOCKS_PER_SNOS_BATCH - 1;

    let mut orch = stack.spawn().await;
    let api = Api::new(orch.api.clone());
    produce_until(first_last).await;
    wait_settled(&api, first_last).await;
    wait_all_completed(&api).await;
    let before = settling_txs(&api).await;
    assert_eq!(before.len(), BEFORE as usize, "{before:?}");
    assert!(orch.interrupt(Duration::from_secs(30)), "Ctrl-C stops the orchestrator");
    std::fs::remove_dir_all(stack.dir().join("data")).expect("delete the data dir");

    let mut args = stack.run_args();
    args.push("--recover-from-settlement".to_owned());
    let mut orch = OrchestratorProcess::start(&args, &stack.envs(), &stack.log()).await;
    let api = Api::new(orch.api.clone());
    let log = std::fs::read_to_string(stack.log()).unwrap_or_default();
    assert!(
        log.contains(&format!(
            "recover: recovered {BEFORE} settlement(s) (batches 1..={BEFORE}, blocks 0..={first_last})"
        )),
        "{}",
        stack.log_tail(40)
    );
    let snos = api.snos_batches().await.expect("SNOS batches");
    let recovered: Vec<_> = snos.iter().filter(|s| s.0 <= BEFORE).cloned().collect();
    let expected: Vec<_> = (0..BEFORE)
        .map(|i| {
            let start = i * L3_BLOCKS_PER_SNOS_BATCH;
            (i + 1, start, start + L3_BLOCKS_PER_SNOS_BATCH - 1, "Completed".to_owned())
        })
        .collect();
    assert_eq!(recovered, expected, "the recovered SNOS batches have the events' boundaries");
    assert_eq!(
        settling_txs(&api).await,
        before,
        "the recovered StateTransitions carry the same transactions"
    );
    produce_until(last).await;
    wait_settled(&api, last).await;
    wait_all_completed(&api).await;

    // Every block settled exactly once: the Cairo core contract's events.
    let events = stack
        .settlement_client()
        .settled_state_updates_paged(0, 5)
        .await
        .expect("LogStateUpdate events");
    let ends: Vec<u64> = events.iter().map(|e| e.block_number).collect();
    let expected_ends: Vec<u64> = (1..=TOTAL).map(|i| i * L3_BLOCKS_PER_SNOS_BATCH - 1).collect();
    assert_eq!(
        ends, expected_ends,
        "one LogStateUpdate per batch, strictly increasing, none twice"
    );
    let after = settling_txs(&api).await;
    assert_eq!(after.len(), TOTAL as usize, "{after:?}");
    for ((index, hash), event) in after.iter().zip(&events) {
        let (h, e) = (
            hash.trim_start_matches("0x").trim_start_matches('0'),
            event.tx_hash.trim_start_matches("0x").trim_start_matches('0'),
        );
        assert!(h.eq_ignore_ascii_case(e), "batch {index}: job {hash}, event {}", event.tx_hash);
    }
    let snos = api.snos_batches().await.expect("SNOS batches");
    let all: Vec<_> = snos.iter().filter(|s| s.2 <= last).cloned().collect();
    let expected: Vec<_> = (0..TOTAL)
        .map(|i| {
            let start = i * L3_BLOCKS_PER_SNOS_BATCH;
            (i + 1, start, start + L3_BLOCKS_PER_SNOS_BATCH - 1, "Completed".to_owned())
        })
        .collect();
    assert_eq!(
        all, expected,
        "the batch after the recovered ones starts at the first unsettled block"
    );
    assert!(orch.interrupt(Duration::from_secs(30)), "Ctrl-C stops the orchestrator");
}
