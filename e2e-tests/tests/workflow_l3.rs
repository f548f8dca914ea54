//! The L3 workflow end to end: blocks produced on one starknet-devnet (the appchain) are
//! batched, run through the SNOS stand-in with calldata DA, proven and verified on L2 by the
//! mock Atlantic server (which registers each verification's fact in our Cairo fact registry),
//! and settled with `update_state` on our Cairo core contract deployed on a second
//! starknet-devnet (the settlement layer; it checks each fact) — by the `orchestrator` binary
//! on the embedded tier.
//!
//! `cargo test --features testing test_orchestrator_workflow_l3` (needs starknet-devnet, which
//! `make test` installs).
#![cfg(feature = "testing")]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use e2e_tests::{
    api::Api,
    l3::{L3Stack, L3_BLOCKS_PER_SNOS_BATCH},
    wait_until,
};
use serde_json::{json, Value};
use starknet::core::types::Felt;

/// SNOS batches the workflow settles.
const BATCHES: u64 = 3;
/// The last block: blocks 0..=LAST_BLOCK form exactly `BATCHES` full SNOS batches.
const LAST_BLOCK: u64 = BATCHES * L3_BLOCKS_PER_SNOS_BATCH - 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_orchestrator_workflow_l3() {
    let started = Instant::now();
    let Some(stack) = L3Stack::start().await else { return };
    assert_eq!(stack.settled_block().await.unwrap(), None, "nothing is settled before the run");
    let mut orch = stack.spawn().await;
    let api = Api::new(orch.api.clone());
    while stack.node.block_number().await < LAST_BLOCK {
        let n = stack.node.produce_blocks(1).await;
        assert_eq!(stack.node.transaction_count(n).await, 1, "block {n} holds the mint");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Settled: the core contract's block number reaches the last block.
    wait_until(
        Duration::from_secs(600),
        "the core contract to settle the last block",
        async || {
            if let Ok(jobs) = api.jobs().await {
                if let Some(failed) = jobs.iter().find(|j| j.status == "Failed") {
                    let record = api.job(&failed.id).await.unwrap_or(Value::Null);
                    panic!("{} job failed: {record:#}\n{}", failed.job_type, stack.log_tail(60));
                }
            }
            match stack.settled_block().await? {
                Some(b) if b >= LAST_BLOCK => Ok(()),
                other => Err(format!("settled {other:?}\n{}", stack.log_tail(30))),
            }
        },
    )
    .await;
    let settled_in = started.elapsed();

    // Every job of the L3 chain completed, once per SNOS batch.
    let jobs = wait_until(Duration::from_secs(120), "every job to complete", async || {
        let jobs = api.jobs().await?;
        let open: Vec<_> = jobs.iter().filter(|j| j.status != "Completed").collect();
        if open.is_empty() {
            Ok(jobs)
        } else {
            Err(format!("not completed: {open:?}"))
        }
    })
    .await;
    let mut per_type: BTreeMap<&str, usize> = BTreeMap::new();
    for j in &jobs {
        *per_type.entry(j.job_type.as_str()).or_default() += 1;
    }
    for kind in
        ["SnosRun", "ProofCreation", "ProofRegistration", "DataSubmission", "StateTransition"]
    {
        assert_eq!(per_type.get(kind), Some(&(BATCHES as usize)), "{kind}: {per_type:?}");
    }
    assert!(!per_type.contains_key("Aggregator"), "no aggregation on L3: {per_type:?}");

    // SNOS batches tile 0..=LAST_BLOCK and are all settled.
    let snos = api.snos_batches().await.expect("SNOS batches");
    let settled: Vec<_> = snos.iter().filter(|s| s.2 <= LAST_BLOCK).collect();
    let ranges: Vec<(u64, u64)> = settled.iter().map(|s| (s.1, s.2)).collect();
    let expected: Vec<(u64, u64)> = (0..BATCHES)
        .map(|i| (i * L3_BLOCKS_PER_SNOS_BATCH, (i + 1) * L3_BLOCKS_PER_SNOS_BATCH - 1))
        .collect();
    assert_eq!(ranges, expected, "SNOS batches close after {L3_BLOCKS_PER_SNOS_BATCH} blocks");
    assert!(settled.iter().all(|s| s.3 == "Completed"), "{settled:?}");

    // On the settlement layer: the contract holds the appchain's last block and its hash, and
    // every StateTransition's transaction succeeded there.
    let state = stack.settlement_client().core_contract_state().await.expect("get_state");
    assert_eq!(state.block_number, Felt::from(LAST_BLOCK));
    let block = stack
        .node
        .rpc("starknet_getBlockWithTxHashes", json!([{"block_number": LAST_BLOCK}]))
        .await;
    let hash = Felt::from_hex(block["block_hash"].as_str().expect("block hash")).unwrap();
    assert_eq!(state.block_hash, hash, "the settled hash is the appchain's block {LAST_BLOCK}");
    // The contract checked each batch's fact: its registry is the one the prover registered in.
    let selector = starknet::core::utils::get_selector_from_name("get_facts_registry").unwrap();
    let registry = stack
        .settlement
        .rpc(
            "starknet_call",
            json!([{"contract_address": format!("{:#x}", stack.deployed.core), "entry_point_selector": format!("{selector:#x}"), "calldata": []}, "latest"]),
        )
        .await;
    let registry = Felt::from_hex(registry[0].as_str().expect("registry address")).unwrap();
    assert_eq!(
        Some(registry),
        stack.deployed.fact_registry,
        "update_state checked facts in the prover's registry"
    );
    let mut hashes = Vec::new();
    for j in jobs.iter().filter(|j| j.job_type == "StateTransition") {
        let record = api.job(&j.id).await.expect("job");
        let tx = record["external_id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| record["external_id"].to_string());
        let receipt = stack
            .settlement
            .rpc("starknet_getTransactionReceipt", json!([tx.trim_matches('"')]))
            .await;
        assert_eq!(receipt["execution_status"], "SUCCEEDED", "{receipt}");
        hashes.push(tx);
    }
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), BATCHES as usize, "one update_state per SNOS batch");
    println!(
        "L3 workflow: {} blocks in {BATCHES} SNOS batches settled on the second devnet in {:.1} s",
        LAST_BLOCK + 1,
        settled_in.as_secs_f64()
    );
    assert!(orch.interrupt(Duration::from_secs(30)), "Ctrl-C stops the orchestrator cleanly");
}
