//! SnosBatching and AggregatorBatching against a real starknet-devnet (and bad input: a node
//! that is down, a reorganised chain, an unsupported Starknet version).

use orchestrator::worker::Config;
use std::{sync::Arc, time::Duration};

use orchestrator::{
    config::{BatchingParams, EngineParams},
    core::client::{
        embedded,
        log_alert::LogAlert,
        madara::{
            memory::InMemoryMadara,
            rpc::{MadaraRpcClient, MadaraRpcConfig},
            MadaraClient, RetryPolicy,
        },
    },
    types::{
        batch::{AggregatorBatchStatus, BouncerWeights, SnosBatchStatus},
        Layer,
    },
    worker::{
        batching::{
            aggregator::AggregatorBatchingTrigger, snos::SnosBatchingTrigger, BatchingSettings,
        },
        handler::JobHandlers,
        trigger::{JobTrigger, Triggers},
    },
};
use orchestrator_protocol::{
    compression::{stateless, StarknetVersion},
    transform,
};
use starknet::core::types::{Felt, StateUpdate};
use tempfile::TempDir;

use crate::support::devnet::Devnet;

pub(crate) fn params() -> BatchingParams {
    BatchingParams {
        max_batch_time: Duration::from_secs(3600),
        max_batch_size: 3,
        max_num_blobs: 6,
        blob_size_buffer: 15,
        batching_worker_lock_duration: Duration::from_secs(60),
        max_blocks_per_snos_batch: 2,
        fixed_blocks_per_snos_batch: None,
        max_snos_batches_per_aggregator_batch: 50,
        max_aggregator_input_size: 750_000,
        default_empty_block_proving_gas: 1_500_000,
        max_batch_processing_size: 10,
        bouncer_weights_limit: BouncerWeights::DEFAULT_LIMITS,
        bouncer_weights_limit_file: None,
    }
}

async fn config(layer: Layer) -> (Arc<Config>, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clients = embedded::open(dir.path(), &embedded::EmbeddedOptions::default())
        .await
        .expect("embedded tier");
    (
        Arc::new(Config::new(
            layer,
            clients,
            JobHandlers::new(),
            Triggers::new(),
            EngineParams::default(),
        )),
        dir,
    )
}

fn rpc_node(url: &url::Url) -> Arc<dyn MadaraClient> {
    let mut c = MadaraRpcConfig::new(url.clone());
    c.retry = RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(50),
    };
    Arc::new(MadaraRpcClient::new(c).expect("client"))
}

async fn agg_ranges(config: &Config) -> Vec<(u64, u64, AggregatorBatchStatus)> {
    let batches =
        config.database().get_aggregator_batches(Default::default()).await.expect("batches");
    batches.into_iter().map(|b| (b.start_block, b.end_block, b.status)).collect()
}

async fn snos_ranges(config: &Config) -> Vec<(u64, u64, Option<u64>, SnosBatchStatus)> {
    let batches = config.database().get_snos_batches(Default::default()).await.expect("batches");
    batches
        .into_iter()
        .map(|b| (b.start_block, b.end_block, b.aggregator_batch_index, b.status))
        .collect()
}

/// Six minted blocks (1..=6; genesis is left out with `--min-block-to-process 1`), aggregator
/// batches of 3 blocks, SNOS batches of at most 2: exact ranges, lookups, files.
#[tokio::test]
async fn devnet_blocks_are_batched_per_the_rules() {
    let Some(devnet) = Devnet::start().await else {
        return;
    };
    for i in 0..6u64 {
        devnet.mint(&format!("{:#x}", 0x5000 + i % 2), 1_000 + u128::from(i)).await;
    }
    assert_eq!(devnet.block_number().await, 6);

    let (config, _dir) = config(Layer::L2).await;
    let node = rpc_node(&devnet.url);
    // The node has no bouncer weights: the client answers its defaults.
    assert_eq!(node.bouncer_weights(1).await.expect("weights"), BouncerWeights::ZERO);
    let info = node.block(1).await.expect("block 1");
    assert_eq!(info.starknet_version, "0.14.4");

    let settings = BatchingSettings { params: params(), min_block: 1, max_block: None };
    let agg = AggregatorBatchingTrigger::new(node.clone(), None, settings.clone());
    let snos = SnosBatchingTrigger::new(node.clone(), None, settings);
    agg.run(config.clone()).await.expect("aggregator batching");
    snos.run(config.clone()).await.expect("SNOS batching");

    use AggregatorBatchStatus as A;
    use SnosBatchStatus as S;
    assert_eq!(agg_ranges(&config).await, vec![(1, 3, A::Closed), (4, 6, A::Closed)]);
    assert_eq!(
        snos_ranges(&config).await,
        vec![
            (1, 2, Some(1), S::Closed),
            (3, 3, Some(1), S::Closed),
            (4, 5, Some(2), S::Closed),
            (6, 6, Some(2), S::Closed)
        ]
    );
    let db = config.database();
    assert!(db
        .get_block_batch_lookup(0)
        .await
        .expect("lookup")
        .is_none_or(|l| l.aggregator_batch_index.is_none()));
    for (block, snos_index, agg_index) in
        [(1, 1, 1), (2, 1, 1), (3, 2, 1), (4, 3, 2), (5, 3, 2), (6, 4, 2)]
    {
        let l = db.get_block_batch_lookup(block).await.expect("lookup").expect("a lookup row");
        assert_eq!(
            (l.snos_batch_index, l.aggregator_batch_index),
            (Some(snos_index), Some(agg_index)),
            "block {block}"
        );
    }

    // Files: the squashed diff matches the chain at the batch's last block, and the blob holds
    // the compressed felts the batch row counts.
    let storage = config.storage();
    for batch in db.get_aggregator_batches(Default::default()).await.expect("batches") {
        let squashed: StateUpdate = serde_json::from_slice(
            &storage.get_data(&batch.squashed_state_updates_path).await.expect("squashed diff"),
        )
        .expect("a state update");
        assert!(!squashed.state_diff.storage_diffs.is_empty(), "batch {}", batch.index);
        for d in &squashed.state_diff.storage_diffs {
            let keys: Vec<(Felt, Felt)> =
                d.storage_entries.iter().map(|e| (d.address, e.key)).collect();
            let values = node.storage_at(batch.end_block, &keys).await.expect("storage");
            let want: Vec<Felt> = d.storage_entries.iter().map(|e| e.value).collect();
            assert_eq!(values, want, "batch {} contract {:#x}", batch.index, d.address);
        }
        let blob = storage.get_data(&format!("{}/1.txt", batch.blob_path)).await.expect("blob 1");
        assert_eq!(blob.len(), transform::BYTES_PER_BLOB);
        assert!(storage.get_data(&format!("{}/2.txt", batch.blob_path)).await.is_err());
        let coefficients = transform::blob_to_coefficients(&blob).expect("blob decodes");
        let felts: Vec<Felt> = coefficients[..batch.blob_len as usize]
            .iter()
            .map(|c| Felt::from_bytes_be(&c.to_be_bytes()))
            .collect();
        let data = stateless::decompress(&felts).expect("the blob holds compressed felts");
        // [n_contracts, ...]: the contracts of the squashed diff (all touched by storage writes
        // or nonces here).
        assert!(
            data[0] >= Felt::from(squashed.state_diff.storage_diffs.len() as u64),
            "{:?}",
            data[0]
        );
        assert!(batch.aggregator_input_size_upper_bound > 1 + 3 * 16);
        assert_eq!(
            StarknetVersion::parse(&batch.starknet_version).expect("version").to_string(),
            "0.14.4"
        );
    }

    // More blocks later (an empty one too): the next run continues where batching stopped.
    devnet.mint("0x5000", 7).await;
    devnet.create_block().await;
    agg.run(config.clone()).await.expect("aggregator batching");
    snos.run(config.clone()).await.expect("SNOS batching");
    assert_eq!(agg_ranges(&config).await.last(), Some(&(7, 8, A::Open)));
    assert_eq!(snos_ranges(&config).await.last(), Some(&(7, 8, Some(3), S::Closed)));
}

/// The node itself as replay-bounds reference: every block hash matches, batching goes on and
/// no alert is raised. (A mismatch on devnet — a block replaced with `devnet_abortBlocks` — is
/// `snos_devnet::devnet_reorganised_block_halts_batching_with_a_critical_alert`; devnet's block
/// hash ignores the time and the transactions' content, see docs/batching.md.)
#[tokio::test]
async fn devnet_replay_bounds_with_a_matching_node_batches_without_alert() {
    let Some(devnet) = Devnet::start().await else {
        return;
    };
    devnet.mint("0x5000", 1).await;
    devnet.mint("0x5000", 2).await;
    let (config, dir) = config(Layer::L2).await;
    let node = rpc_node(&devnet.url);
    let settings = BatchingSettings { params: params(), min_block: 1, max_block: None };
    let agg = AggregatorBatchingTrigger::new(node.clone(), Some(rpc_node(&devnet.url)), settings);
    agg.run(config.clone()).await.expect("aggregator batching");
    assert_eq!(agg_ranges(&config).await, vec![(1, 2, AggregatorBatchStatus::Open)]);
    let alerts = LogAlert::read_records(&dir.path().join("alerts.jsonl")).await.unwrap_or_default();
    assert!(alerts.is_empty(), "{alerts:?}");
}

/// Nothing listens on the node's port: both triggers fail, no batch changes, locks are free.
#[tokio::test]
async fn node_down_fails_the_run_and_changes_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let node = rpc_node(&format!("http://127.0.0.1:{port}/").parse().expect("url"));
    for layer in [Layer::L2, Layer::L3] {
        let (config, _dir) = config(layer).await;
        let settings = BatchingSettings { params: params(), min_block: 0, max_block: None };
        let trigger: Arc<dyn JobTrigger> = match layer {
            Layer::L2 => Arc::new(AggregatorBatchingTrigger::new(node.clone(), None, settings)),
            Layer::L3 => Arc::new(SnosBatchingTrigger::new(node.clone(), None, settings)),
        };
        let e = trigger.run(config.clone()).await.expect_err("node down");
        assert!(e.to_string().contains("node unreachable"), "{e}");
        assert!(agg_ranges(&config).await.is_empty() && snos_ranges(&config).await.is_empty());
        for key in ["AggregatorBatchingWorker", "SnosBatchingWorker"] {
            assert!(!config.lock().is_locked(key).await.expect("lock"), "{key}");
        }
    }
}

/// A block of an unsupported Starknet version (scripted node): the open batch closes, batching
/// halts at that block and the alert lands in the alert file once.
#[tokio::test]
async fn unsupported_starknet_version_halts_with_alert() {
    let (config, dir) = config(Layer::L3).await;
    let node = Arc::new(InMemoryMadara::new());
    node.push_blocks(3, "0.14.4");
    node.push_block("0.16.0", None);
    node.push_blocks(1, "0.14.4");
    let settings = BatchingSettings { params: params(), min_block: 0, max_block: None };
    let snos = SnosBatchingTrigger::new(node.clone(), None, settings);
    for _ in 0..3 {
        snos.run(config.clone()).await.expect("a halt is not an error");
    }
    assert_eq!(
        snos_ranges(&config).await,
        vec![(0, 1, None, SnosBatchStatus::Closed), (2, 2, None, SnosBatchStatus::Closed)]
    );
    let alerts = LogAlert::read_records(&dir.path().join("alerts.jsonl")).await.expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(format!("{alerts:?}").contains("unsupported Starknet version 0.16.0"));
}
