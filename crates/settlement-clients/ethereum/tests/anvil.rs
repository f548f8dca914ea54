//! The transaction manager against a real Anvil (started per test, killed on drop): blob
//! updates accepted by the test core contract, contract-level reverts for a wrong y / blob /
//! proof, same-nonce replacement with bounded bumps, the fee cap, restarts mid-flight, and bad
//! input refused before anything is sent. [`kms`]: the AWS KMS signer against KMS emulators,
//! signing a blob update that lands on Anvil.

#[path = "anvil/dropped.rs"]
mod dropped;
#[path = "anvil/kms.rs"]
mod kms;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::{
    consensus::TxEnvelope,
    eips::eip2718::Encodable2718,
    network::{
        EthereumWallet, NetworkTransactionBuilder, TransactionBuilder, TransactionBuilder4844,
    },
    primitives::{Address, Bytes, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
};
use async_trait::async_trait;
use orchestrator_ethereum_settlement_client::{
    calldata::{build_sidecar, update_state_kzg_da_calldata},
    signer::OperatorSigner,
    testing::{
        deploy_contracts, register_fact, state_transition_fact, DeployedContracts, ANVIL_KEY_0,
        ANVIL_KEY_1,
    },
    EthereumSettlementClient, EthereumSettlementConfig,
};
use orchestrator_protocol::kzg::{Kzg, BYTES_PER_BLOB};
use orchestrator_settlement_client_interface::{
    AttemptRecorder, BlobStateUpdate, Retryable, SettlementClient, SettlementError, TxAttempt,
    TxAttemptStatus, Word,
};
use orchestrator_test_support::{
    anvil::{Anvil, AnvilConfig},
    proxy::TcpProxy,
};

const PROGRAM_HASH: u64 = 0x5eed;

fn word(v: u64) -> Word {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&v.to_be_bytes());
    w
}

/// A blob of canonical field elements derived from `seed`.
fn blob(seed: u64) -> Vec<u8> {
    let mut b = vec![0u8; BYTES_PER_BLOB];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for (i, byte) in b.iter_mut().enumerate() {
        if i % 32 == 0 {
            continue; // top byte 0: below the BLS modulus
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    b
}

/// A KZG-DA program output settling blocks `prev+1..=new` with `blobs`.
fn program_output(
    blobs: &[Vec<u8>],
    prev_block: Option<u64>,
    new_block: u64,
    prev_root: u64,
    new_root: u64,
) -> Vec<Word> {
    let kzg = Kzg::ethereum();
    let x0 = word(0x1234_5678_9abc_def1);
    let prev = prev_block.map_or_else(
        || {
            // felt -1
            let mut w = [0u8; 32];
            w[..].copy_from_slice(
                &hex::decode("0800000000000011000000000000000000000000000000000000000000000000")
                    .unwrap(),
            );
            w
        },
        word,
    );
    let mut out = vec![
        word(prev_root),
        word(new_root),
        prev,
        word(new_block),
        word(7),
        word(8),
        word(9),
        word(10),
        word(1),
        word(0),
        x0,
        word(blobs.len() as u64),
    ];
    let mut ys = Vec::new();
    for b in blobs {
        let c = kzg.commitment(b).unwrap();
        let mut low = [0u8; 32];
        low[8..].copy_from_slice(&c[24..]);
        let mut high = [0u8; 32];
        high[8..].copy_from_slice(&c[..24]);
        out.push(low);
        out.push(high);
        ys.push(kzg.point_proof(b, &x0).unwrap().y);
    }
    for y in ys {
        let mut low = [0u8; 32];
        low[16..].copy_from_slice(&y[16..]);
        let mut high = [0u8; 32];
        high[16..].copy_from_slice(&y[..16]);
        out.push(low);
        out.push(high);
    }
    out.extend([word(0), word(0)]); // no messages
    out
}

struct Chain {
    anvil: Anvil,
    contracts: DeployedContracts,
}

async fn chain(hardfork: &str) -> Option<Chain> {
    let anvil = Anvil::start(AnvilConfig::new(hardfork)).await?;
    let contracts =
        deploy_contracts(&anvil.url(), ANVIL_KEY_1, U256::from(PROGRAM_HASH), U256::ZERO, -1, true)
            .await
            .unwrap();
    Some(Chain { anvil, contracts })
}

impl Chain {
    fn config(&self) -> EthereumSettlementConfig {
        let mut c = EthereumSettlementConfig::new(self.anvil.url(), self.contracts.core_contract);
        c.poll_interval = Duration::from_millis(100);
        c.tx_confirmation_timeout = Duration::from_secs(2);
        c.confirmations = 1;
        c
    }

    async fn client(&self, config: EthereumSettlementConfig) -> EthereumSettlementClient {
        EthereumSettlementClient::new(
            config,
            OperatorSigner::local(ANVIL_KEY_0, Some(31337)).unwrap(),
        )
        .await
        .unwrap()
    }

    async fn register(&self, po: &[Word]) {
        register_fact(
            &self.anvil.url(),
            ANVIL_KEY_1,
            self.contracts.verifier,
            state_transition_fact(U256::from(PROGRAM_HASH), po),
        )
        .await
        .unwrap();
    }

    async fn automine(&self, client: &EthereumSettlementClient, on: bool) {
        let _: serde_json::Value =
            client.provider().raw_request("evm_setAutomine".into(), (on,)).await.unwrap();
    }

    async fn mine(&self, client: &EthereumSettlementClient) {
        let _: serde_json::Value =
            client.provider().raw_request("evm_mine".into(), ()).await.unwrap();
    }
}

async fn nonce_of(client: &EthereumSettlementClient) -> u64 {
    client.provider().get_transaction_count(client.address()).latest().await.unwrap()
}

#[derive(Default)]
struct MemRecorder(Mutex<Vec<TxAttempt>>);

#[async_trait]
impl AttemptRecorder for MemRecorder {
    async fn record(&self, attempts: &[TxAttempt]) -> Result<(), String> {
        *self.0.lock().unwrap() = attempts.to_vec();
        Ok(())
    }
}

#[tokio::test]
async fn blob_updates_settle_with_eip4844_and_eip7594_sidecars() {
    for (hardfork, peerdas) in [("prague", false), ("osaka", true)] {
        let Some(chain) = chain(hardfork).await else {
            return;
        };
        let mut config = chain.config();
        config.peerdas = peerdas;
        let client = chain.client(config).await;
        assert_eq!(client.get_last_settled_block().await.unwrap(), None);

        let blobs = vec![blob(1), blob(2)];
        let po = program_output(&blobs, None, 5, 0, 111);
        chain.register(&po).await;
        let out = client
            .update_state_with_blobs(BlobStateUpdate {
                program_output: po.clone(),
                blobs: blobs.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{hardfork}: {e}"));
        assert_eq!(client.get_last_settled_block().await.unwrap(), Some(5), "{hardfork}");
        let hash = out.tx_hash.clone().unwrap();
        assert_eq!(out.attempts.len(), 1);
        assert_eq!(out.attempts[0].status, TxAttemptStatus::Finalized);
        assert_eq!(
            client.verify_tx_inclusion(&hash).await.unwrap(),
            orchestrator_settlement_client_interface::SettlementVerificationStatus::Verified
        );
        assert!(client.wait_for_tx_finality(&hash).await.unwrap().is_some());
        assert!(client.metrics().fees_paid_wei > 0);

        // Same update again: already settled, nothing sent.
        let before = nonce_of(&client).await;
        let again = client
            .update_state_with_blobs(BlobStateUpdate {
                program_output: po,
                blobs,
                prior_attempts: out.attempts,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(again.tx_hash.as_deref(), Some(hash.as_str()));
        assert_eq!(nonce_of(&client).await, before);

        // Next update chains on the new root and block.
        let blobs = vec![blob(3)];
        let po = program_output(&blobs, Some(5), 9, 111, 222);
        chain.register(&po).await;
        client
            .update_state_with_blobs(BlobStateUpdate {
                program_output: po,
                blobs,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(client.get_last_settled_block().await.unwrap(), Some(9));
        // Then 6 blobs, the per-update maximum.
        let blobs: Vec<_> = (100..106).map(blob).collect();
        let po = program_output(&blobs, Some(9), 12, 222, 333);
        chain.register(&po).await;
        let out = client
            .update_state_with_blobs(BlobStateUpdate {
                program_output: po,
                blobs,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(client.get_last_settled_block().await.unwrap(), Some(12), "{hardfork}: 6 blobs");
        let hash = out.tx_hash.unwrap().parse().unwrap();
        let receipt = client.provider().get_transaction_receipt(hash).await.unwrap().unwrap();
        assert_eq!(receipt.blob_gas_used, Some(6 * 131_072));
        let m = client.refresh_metrics().await.unwrap();
        assert!(m.signer_balance_wei.is_some() && m.blob_base_fee_wei.is_some());
    }
}

/// Sends `updateStateKzgDA` built by hand (no client-side checks) and returns the node's
/// answer to `eth_estimateGas` plus the mined receipt status with a fixed gas limit.
async fn send_unchecked(
    chain: &Chain,
    po: &[Word],
    proofs: &[[u8; 48]],
    blobs: &[Vec<u8>],
) -> (Result<u64, String>, bool) {
    let kzg = Kzg::ethereum();
    let (sidecar, hashes) = build_sidecar(&kzg, blobs, false).unwrap();
    let signer: PrivateKeySigner = ANVIL_KEY_0.parse().unwrap();
    let wallet = EthereumWallet::new(signer.clone());
    let provider: alloy::providers::RootProvider =
        alloy::providers::RootProvider::new_http(chain.anvil.url());
    let nonce = provider.get_transaction_count(signer.address()).latest().await.unwrap();
    let mut tx = TransactionRequest::default()
        .with_from(signer.address())
        .with_to(chain.contracts.core_contract)
        .with_chain_id(31337)
        .with_input(Bytes::from(update_state_kzg_da_calldata(po, proofs)))
        .with_max_fee_per_gas(10_000_000_000)
        .with_max_priority_fee_per_gas(1_000_000_000)
        .with_max_fee_per_blob_gas(1_000_000_000);
    tx.blob_versioned_hashes = Some(hashes);
    let estimate = provider.estimate_gas(tx.clone()).await.map_err(|e| e.to_string());
    tx.sidecar = Some(sidecar);
    let env: TxEnvelope =
        tx.with_nonce(nonce).with_gas_limit(1_500_000).build(&wallet).await.unwrap();
    let receipt = provider
        .send_raw_transaction(&env.encoded_2718())
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    (estimate, receipt.status())
}

#[tokio::test]
async fn the_contract_really_checks_blobs_y_and_proofs() {
    let Some(chain) = chain("prague").await else {
        return;
    };
    let kzg = Kzg::ethereum();
    let blobs = vec![blob(10)];
    let good = program_output(&blobs, None, 3, 0, 1);
    let x0 = good[10];
    let proof = kzg.point_proof(&blobs[0], &x0).unwrap().proof;

    // Wrong y (fact registered for the wrong output, so only the precompile can refuse it).
    let mut wrong_y = good.clone();
    wrong_y[14][31] ^= 1;
    chain.register(&wrong_y).await;
    let (estimate, ok) = send_unchecked(&chain, &wrong_y, &[proof], &blobs).await;
    assert!(estimate.unwrap_err().contains("POINT_EVALUATION_FAILED"));
    assert!(!ok, "a wrong y must revert");

    // Wrong blob: the output commits to blob 10, the transaction carries blob 11.
    chain.register(&good).await;
    let (estimate, ok) = send_unchecked(&chain, &good, &[proof], &[blob(11)]).await;
    assert!(estimate.unwrap_err().contains("BLOB_NOT_COMMITTED_IN_OUTPUT"));
    assert!(!ok, "a wrong blob must revert");

    // Wrong proof for the right blob and y.
    let other = kzg.point_proof(&blob(12), &x0).unwrap().proof;
    let (estimate, ok) = send_unchecked(&chain, &good, &[other], &blobs).await;
    assert!(estimate.unwrap_err().contains("POINT_EVALUATION_FAILED"));
    assert!(!ok);

    // Unregistered fact.
    let unregistered = program_output(&blobs, None, 4, 0, 1);
    let (estimate, ok) = send_unchecked(&chain, &unregistered, &[proof], &blobs).await;
    assert!(estimate.unwrap_err().contains("NO_STATE_TRANSITION_PROOF"));
    assert!(!ok);

    // And the right one is accepted.
    let (estimate, ok) = send_unchecked(&chain, &good, &[proof], &blobs).await;
    assert!(estimate.is_ok() && ok);
}

#[tokio::test]
async fn unmined_updates_are_replaced_on_the_same_nonce_until_the_bump_limit() {
    let Some(chain) = chain("prague").await else {
        return;
    };
    let mut config = chain.config();
    config.tx_confirmation_timeout = Duration::from_millis(800);
    config.max_fee_bumps = 2;
    config.max_fee_wei = u128::MAX / 4;
    let client = chain.client(config.clone()).await;
    let blobs = vec![blob(20)];
    let po = program_output(&blobs, None, 2, 0, 5);
    chain.register(&po).await;
    let start_nonce = nonce_of(&client).await;

    chain.automine(&client, false).await;
    let err = client
        .update_state_with_blobs(BlobStateUpdate {
            program_output: po.clone(),
            blobs: blobs.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err.error, SettlementError::NotConfirmed { attempts: 3, bumps: 2 }), "{err}");
    assert!(err.error.is_retryable());
    let a = &err.attempts;
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|x| x.nonce == start_nonce));
    for w in a.windows(2) {
        assert!(w[1].max_fee_per_gas * 10 >= w[0].max_fee_per_gas * 21, "{a:?}");
        assert!(w[1].max_fee_per_blob_gas * 10 >= w[0].max_fee_per_blob_gas * 21, "{a:?}");
        assert!(w[1].max_priority_fee_per_gas * 10 >= w[0].max_priority_fee_per_gas * 21, "{a:?}");
    }
    assert_eq!(
        a.iter().map(|x| x.gas_multiplier_milli).collect::<Vec<_>>(),
        vec![1100, 2200, 4400]
    );
    assert_eq!(a[0].status, TxAttemptStatus::Replaced);
    assert_eq!(a[2].status, TxAttemptStatus::TimedOut);

    // Mining resumes; the retry (with the recorded attempts) finds the last replacement mined.
    chain.automine(&client, true).await;
    chain.mine(&client).await;
    let out = client
        .update_state_with_blobs(BlobStateUpdate {
            program_output: po,
            blobs,
            prior_attempts: err.attempts.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(out.tx_hash.as_deref(), Some(a[2].tx_hash.as_str()));
    assert_eq!(nonce_of(&client).await, start_nonce + 1, "exactly one transaction mined");
    assert_eq!(client.get_last_settled_block().await.unwrap(), Some(2));
    assert_eq!(out.attempts.last().unwrap().status, TxAttemptStatus::Finalized);
}

#[tokio::test]
async fn the_fee_cap_stops_bumping_and_refuses_to_sign_above_it() {
    let Some(chain) = chain("prague").await else {
        return;
    };
    let mut config = chain.config();
    config.tx_confirmation_timeout = Duration::from_millis(600);
    config.max_fee_bumps = 5;
    let client = chain.client(config.clone()).await;
    let blobs = vec![blob(30)];
    let po = program_output(&blobs, None, 2, 0, 5);
    chain.register(&po).await;

    // A cap the first attempt fits in and a 2.1× bump does not.
    let probe = client
        .update_state_with_blobs(BlobStateUpdate {
            program_output: po.clone(),
            blobs: vec![blob(31)],
            ..Default::default()
        })
        .await;
    assert!(probe.is_err()); // wrong blob: refused before sending
    let first_fee = {
        let (base, blob_fee) = {
            let b = client
                .provider()
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                .await
                .unwrap()
                .unwrap();
            (
                u128::from(b.header.base_fee_per_gas.unwrap()),
                client.provider().get_blob_base_fee().await.unwrap(),
            )
        };
        let caps = orchestrator_ethereum_settlement_client::fees::fresh_caps(base, blob_fee, 0);
        orchestrator_ethereum_settlement_client::fees::worst_case_fee(caps, 1_500_000, 1)
    };
    config.max_fee_wei = first_fee * 3 / 2;
    let client = chain.client(config.clone()).await;
    chain.automine(&client, false).await;
    let err = client
        .update_state_with_blobs(BlobStateUpdate {
            program_output: po.clone(),
            blobs: blobs.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err.error, SettlementError::FeeCapExceeded { .. }), "{err}");
    assert_eq!(err.attempts.len(), 1, "no bump above the cap: {:?}", err.attempts);
    assert_eq!(err.attempts[0].status, TxAttemptStatus::Sent);

    // A cap below even the first attempt: nothing is signed.
    config.max_fee_wei = 1;
    let low = chain.client(config).await;
    chain.automine(&client, true).await;
    chain.mine(&client).await; // the in-flight attempt lands
    let po2 = program_output(&[blob(32)], Some(2), 3, 5, 6);
    chain.register(&po2).await;
    let before = nonce_of(&low).await;
    let err = low
        .update_state_with_blobs(BlobStateUpdate {
            program_output: po2,
            blobs: vec![blob(32)],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err.error, SettlementError::FeeCapExceeded { .. }), "{err}");
    assert!(err.attempts.is_empty());
    assert_eq!(nonce_of(&low).await, before);
}

#[tokio::test]
async fn a_restart_mid_flight_neither_loses_nor_duplicates_the_update() {
    let Some(chain) = chain("prague").await else {
        return;
    };
    let mut config = chain.config();
    // B must be waiting on the in-flight transaction (not bumping it) when mining resumes.
    config.tx_confirmation_timeout = Duration::from_secs(10);
    for recorded in [true, false] {
        let client = chain.client(config.clone()).await;
        let settled = client.get_last_settled_block().await.unwrap();
        let (prev, new) = (settled, settled.map_or(1, |b| b + 3));
        let blobs = vec![blob(40 + new)];
        let root = |b: Option<u64>| b.map_or(0, |b| b * 10);
        let po = program_output(&blobs, prev, new, root(prev), root(Some(new)));
        chain.register(&po).await;
        let start_nonce = nonce_of(&client).await;

        // Process A sends, records, then dies while waiting.
        chain.automine(&client, false).await;
        let recorder = Arc::new(MemRecorder::default());
        let a = {
            let client = chain.client(config.clone()).await;
            let update = BlobStateUpdate {
                program_output: po.clone(),
                blobs: blobs.clone(),
                recorder: Some(recorder.clone() as Arc<dyn AttemptRecorder>),
                ..Default::default()
            };
            tokio::spawn(async move { client.update_state_with_blobs(update).await })
        };
        while recorder.0.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.abort();
        let _ = a.await;
        let sent = recorder.0.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);

        // Process B starts with what was recorded (or nothing, if A died before recording).
        let prior = if recorded { sent.clone() } else { Vec::new() };
        let b = {
            let client = chain.client(config.clone()).await;
            let update = BlobStateUpdate {
                program_output: po.clone(),
                blobs: blobs.clone(),
                prior_attempts: prior,
                ..Default::default()
            };
            tokio::spawn(async move { client.update_state_with_blobs(update).await })
        };
        // Let B validate, prove and look at the chain before the transaction is mined.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        chain.automine(&client, true).await;
        chain.mine(&client).await;
        let out = b.await.unwrap().unwrap();
        assert_eq!(
            out.tx_hash.as_deref(),
            Some(sent[0].tx_hash.as_str()),
            "recorded={recorded}: A's transaction is the one"
        );
        assert_eq!(
            nonce_of(&client).await,
            start_nonce + 1,
            "recorded={recorded}: exactly one transaction"
        );
        assert_eq!(client.get_last_settled_block().await.unwrap(), Some(new));
    }
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_sent() {
    let Some(chain) = chain("prague").await else {
        return;
    };
    let client = chain.client(chain.config()).await;
    let blobs = vec![blob(50)];
    let po = program_output(&blobs, None, 2, 0, 5);
    let before = nonce_of(&client).await;
    let send = |po: Vec<Word>, blobs: Vec<Vec<u8>>| {
        let client = &client;
        async move {
            client
                .update_state_with_blobs(BlobStateUpdate {
                    program_output: po,
                    blobs,
                    ..Default::default()
                })
                .await
                .unwrap_err()
        }
    };

    let e = send(po[..13].to_vec(), blobs.clone()).await;
    assert!(
        matches!(&e.error, SettlementError::InvalidInput(m) if m.contains("program output")),
        "{e}"
    );
    let e = send(po[..5].to_vec(), blobs.clone()).await;
    assert!(
        matches!(&e.error, SettlementError::InvalidInput(m) if m.contains("at least 12")),
        "{e}"
    );
    let seven: Vec<_> = (0..7).map(blob).collect();
    let e = send(program_output(&seven, None, 2, 0, 5), seven).await;
    assert!(matches!(&e.error, SettlementError::InvalidInput(m) if m.contains("at most 6")), "{e}");
    let mut wrong_y = po.clone();
    wrong_y[14][31] ^= 1;
    let e = send(wrong_y, blobs.clone()).await;
    assert!(matches!(&e.error, SettlementError::InvalidInput(m) if m.contains("y at x0")), "{e}");
    let e = send(po.clone(), vec![blob(51)]).await;
    assert!(matches!(&e.error, SettlementError::InvalidInput(_)), "{e}");
    assert!(!e.error.is_retryable());

    // Revert (fact not registered): found by the estimate, nothing sent.
    let e = send(po.clone(), blobs.clone()).await;
    assert!(
        matches!(&e.error, SettlementError::Reverted { tx_hash: None, reason } if reason.contains("NO_STATE_TRANSITION_PROOF")),
        "{e}"
    );
    assert_eq!(nonce_of(&client).await, before, "no transaction was sent");

    // RPC down.
    let url = chain.anvil.url();
    drop(chain);
    let e = send(po, blobs).await;
    assert!(matches!(e.error, SettlementError::Rpc(_)), "{e}");
    assert!(e.error.is_retryable());
    let mut cfg = EthereumSettlementConfig::new(url, Address::ZERO);
    cfg.poll_interval = Duration::from_millis(10);
    // Building the client needs no node (the orchestrator starts while L1 is down); its
    // first call fails retryably.
    let client =
        EthereumSettlementClient::new(cfg, OperatorSigner::local(ANVIL_KEY_0, None).unwrap())
            .await
            .expect("the client is built without contacting the node");
    let e = client.get_last_settled_block().await.unwrap_err();
    assert!(matches!(e, SettlementError::Rpc(_)) && e.is_retryable(), "{e}");
}

/// Two endpoints of one chain (two proxies in front of one Anvil): the primary is cut while the
/// update waits in the pool for its receipt; the client fails over to the second endpoint,
/// finds the receipt there and reports the update settled. Exactly one transaction landed, and
/// the calls after it keep going to the endpoint that answers while the primary stays down.
#[tokio::test]
async fn the_primary_rpc_cut_mid_settlement_fails_over_and_settles_once() {
    let Some(chain) = chain("prague").await else {
        return;
    };
    let anvil = chain.anvil.url();
    let primary = TcpProxy::start(&anvil).await;
    let fallback = TcpProxy::start(&anvil).await;
    let mut config = chain.config();
    config.rpc_url = primary.url(&anvil);
    config.fallback_rpc_urls = vec![fallback.url(&anvil)];
    let client = Arc::new(chain.client(config).await);
    // Anvil itself, to control mining and read the chain whatever the proxies do.
    let direct = chain.client(chain.config()).await;

    let blobs = vec![blob(40)];
    let po = program_output(&blobs, None, 2, 0, 5);
    chain.register(&po).await;
    let start_nonce = nonce_of(&direct).await;
    chain.automine(&direct, false).await;
    let update = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .update_state_with_blobs(BlobStateUpdate {
                    program_output: po,
                    blobs,
                    ..Default::default()
                })
                .await
        }
    });
    // The update is in the pool: cut the primary, then mine.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while direct.provider().get_transaction_count(direct.address()).pending().await.unwrap()
        == start_nonce
    {
        assert!(tokio::time::Instant::now() < deadline, "the update never reached the pool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fallback.accepted(), 0, "every call so far went to the primary");
    primary.cut();
    chain.automine(&direct, true).await;
    chain.mine(&direct).await;

    let out = tokio::time::timeout(Duration::from_secs(60), update)
        .await
        .expect("the update completes through the fallback")
        .unwrap()
        .unwrap();
    assert!(out.tx_hash.is_some(), "{out:?}");
    assert_eq!(nonce_of(&direct).await, start_nonce + 1, "exactly one transaction mined");
    assert_eq!(direct.get_last_settled_block().await.unwrap(), Some(2));
    // The primary is still cut: the client reads through the fallback.
    assert_eq!(client.get_last_settled_block().await.unwrap(), Some(2));
    assert!(fallback.accepted() > 0, "the calls after the cut went to the fallback");
}
