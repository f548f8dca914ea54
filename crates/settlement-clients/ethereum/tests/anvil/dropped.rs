//! Dropped transactions: an attempt that leaves Anvil's pool unmined (`anvil_dropTransaction`,
//! with automine off so it sits in the pool) is noticed within a few polls and sent again on
//! its nonce with fresh caps — long before the confirmation timeout, and not as a fee bump —
//! and the re-sends are bounded.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::providers::Provider;
use orchestrator_ethereum_settlement_client::{
    client::MAX_DROPPED_RESENDS, EthereumSettlementClient,
};
use orchestrator_settlement_client_interface::{
    AttemptRecorder, BlobStateUpdate, Retryable, SettlementClient, SettlementError,
    SettlementMetrics, StateUpdateOutcome, StateUpdateTxError, TxAttempt, TxAttemptStatus, Word,
};
use tokio::task::JoinHandle;

use crate::{blob, chain, nonce_of, program_output, Chain, MemRecorder};

/// Longer than either test may take: a drop must be noticed without waiting for it.
const CONFIRMATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Update outcome, and the updating client's metrics after it.
type Update = JoinHandle<(Result<StateUpdateOutcome, StateUpdateTxError>, SettlementMetrics)>;

/// Starts the update of `po` with `blobs` in a task (its own client), attempts recorded in
/// the returned recorder.
async fn start_update(chain: &Chain, po: &[Word], blobs: &[Vec<u8>]) -> (Arc<MemRecorder>, Update) {
    let mut config = chain.config();
    config.tx_confirmation_timeout = CONFIRMATION_TIMEOUT;
    let client = chain.client(config).await;
    let recorder = Arc::new(MemRecorder::default());
    let update = BlobStateUpdate {
        program_output: po.to_vec(),
        blobs: blobs.to_vec(),
        recorder: Some(recorder.clone() as Arc<dyn AttemptRecorder>),
        ..Default::default()
    };
    let task = tokio::spawn(async move {
        let outcome = client.update_state_with_blobs(update).await;
        (outcome, client.metrics())
    });
    (recorder, task)
}

/// Waits (at most 20 s) until the recorder holds `n` attempts and the last one is `Sent`.
async fn sent_attempts(recorder: &MemRecorder, n: usize) -> Vec<TxAttempt> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempts = recorder.0.lock().unwrap().clone();
        if attempts.len() == n && attempts[n - 1].status == TxAttemptStatus::Sent {
            return attempts;
        }
        assert!(Instant::now() < deadline, "no attempt #{n} sent: {attempts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn drop_from_pool(client: &EthereumSettlementClient, tx_hash: &str) {
    let dropped: serde_json::Value =
        client.provider().raw_request("anvil_dropTransaction".into(), (tx_hash,)).await.unwrap();
    assert_eq!(dropped.as_str(), Some(tx_hash), "Anvil had the attempt in its pool");
}

#[tokio::test]
async fn a_dropped_attempt_is_sent_again_at_once_on_the_same_nonce() {
    let Some(chain) = chain("prague").await else {
        return;
    };
    let client = chain.client(chain.config()).await;
    let blobs = vec![blob(60)];
    let po = program_output(&blobs, None, 2, 0, 5);
    chain.register(&po).await;
    let start_nonce = nonce_of(&client).await;

    chain.automine(&client, false).await;
    let started = Instant::now();
    let (recorder, update) = start_update(&chain, &po, &blobs).await;
    let first = sent_attempts(&recorder, 1).await;
    drop_from_pool(&client, &first[0].tx_hash).await;

    // Noticed within a few polls (100 ms each) and sent again; then it may be mined.
    let resent = sent_attempts(&recorder, 2).await;
    assert_eq!(resent[0].status, TxAttemptStatus::Dropped);
    assert_eq!(resent[1].nonce, start_nonce, "the same nonce");
    chain.automine(&client, true).await;
    chain.mine(&client).await;
    let (out, metrics) = update.await.unwrap();
    let out = out.unwrap();
    let took = started.elapsed();

    assert!(took < CONFIRMATION_TIMEOUT / 4, "took {took:?}: the drop waited for the timeout");
    let a = &out.attempts;
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[0].status, TxAttemptStatus::Dropped);
    assert_eq!(a[1].status, TxAttemptStatus::Finalized);
    assert_eq!(out.tx_hash.as_deref(), Some(a[1].tx_hash.as_str()));
    assert!(a.iter().all(|x| x.nonce == start_nonce), "{a:?}");
    assert_eq!(a[1].gas_multiplier_milli, 1100, "a re-send is not a fee bump: {a:?}");
    assert_eq!(nonce_of(&client).await, start_nonce + 1, "exactly one transaction mined");
    assert_eq!(client.get_last_settled_block().await.unwrap(), Some(2));
    assert_eq!((metrics.txs_sent, metrics.txs_dropped, metrics.fee_bumps), (2, 1, 0));
}

#[tokio::test]
async fn re_sends_of_dropped_attempts_are_bounded_and_retryable() {
    let Some(chain) = chain("prague").await else {
        return;
    };
    let client = chain.client(chain.config()).await;
    let blobs = vec![blob(61)];
    let po = program_output(&blobs, None, 2, 0, 5);
    chain.register(&po).await;
    let start_nonce = nonce_of(&client).await;

    chain.automine(&client, false).await;
    let (recorder, update) = start_update(&chain, &po, &blobs).await;
    let sends = MAX_DROPPED_RESENDS as usize + 1;
    for n in 1..=sends {
        let attempts = sent_attempts(&recorder, n).await;
        drop_from_pool(&client, &attempts[n - 1].tx_hash).await;
    }
    let (out, metrics) = update.await.unwrap();
    let err = out.unwrap_err();

    assert!(
        matches!(err.error, SettlementError::Dropped { drops, nonce } if drops as usize == sends && nonce == start_nonce),
        "{err}"
    );
    assert!(err.error.is_retryable());
    assert!(err.to_string().contains("dropped from the pool"), "{err}");
    assert_eq!(err.attempts.len(), sends);
    assert!(
        err.attempts.iter().all(|a| a.status == TxAttemptStatus::Dropped),
        "{:?}",
        err.attempts
    );
    assert!(err.attempts.iter().all(|a| a.gas_multiplier_milli == 1100), "{:?}", err.attempts);
    assert_eq!(nonce_of(&client).await, start_nonce, "nothing mined");
    assert_eq!(metrics.txs_dropped, sends as u64);
    assert_eq!(metrics.fee_bumps, 0);
}
