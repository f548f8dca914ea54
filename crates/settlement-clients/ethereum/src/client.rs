//! [`EthereumSettlementClient`]: the `SettlementClient` for the Starknet core contract on
//! Ethereum, with its transaction manager.
//!
//! One state update = one EIP-4844 transaction to the core contract. The manager:
//! 1. validates the update ([`prepare_blob_update`]); invalid input never reaches the node;
//! 2. returns at once if the contract already reached the update's block, or if an attempt it
//!    was given (from the job's metadata) is mined;
//! 3. picks the nonce: the signer's *latest* (mined) nonce. When the pending nonce is higher,
//!    an earlier attempt of ours is still in the pool: it is resumed (waited on, then replaced
//!    on the same nonce) rather than a second update being sent on a new nonce. An in-flight
//!    transaction that is not in the given attempts is looked up in `txpool_content` and
//!    adopted when it carries the same calldata;
//! 4. signs with the fee policy of [`crate::fees`], waits `tx_confirmation_timeout` for
//!    inclusion, then replaces the transaction on the same nonce with higher caps, at most
//!    `max_fee_bumps` times and never above the fee cap;
//! 5. reports every attempt to the caller's recorder as soon as it is sent, and waits for
//!    `confirmations` blocks once one is mined. A reverted receipt is an error;
//! 6. notices at once an attempt that left the pool unmined (evicted, or the node restarted):
//!    when for [`DROPPED_AFTER_POLLS`] polls in a row none of the attempts is mined, the mined
//!    nonce has not moved and the pending nonce equals it (nothing of ours is in the pool), the
//!    attempt is marked `Dropped` and the update sent again on the same nonce with fresh caps —
//!    not a fee bump, so it does not count against `max_fee_bumps`; after
//!    [`MAX_DROPPED_RESENDS`] such re-sends in one call it gives up with the retryable
//!    [`SettlementError::Dropped`].

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::{
    consensus::TxEnvelope,
    eips::{eip2718::Encodable2718, BlockId, BlockNumberOrTag},
    network::{
        EthereumWallet, NetworkTransactionBuilder, TransactionBuilder, TransactionBuilder4844,
    },
    primitives::{Address, Bytes, B256, I256},
    providers::{Provider, RootProvider},
    rpc::{
        client::RpcClient,
        types::{TransactionReceipt, TransactionRequest},
    },
    sol_types::SolCall,
};
use async_trait::async_trait;
use orchestrator_settlement_client_interface::{
    AttemptRecorder, BlobStateUpdate, SettledStateUpdate, SettlementClient, SettlementError,
    SettlementMetrics, SettlementResult, SettlementVerificationStatus, StateUpdateOutcome,
    StateUpdateTxError, TxAttempt, TxAttemptStatus, Word,
};
use orchestrator_utils::secret::credentials_headers;
use url::Url;

use crate::{
    calldata::{
        prepare_blob_update, update_state_calldata, PreparedBlobUpdate, StarknetValidityContract,
        MAX_BLOBS_PER_UPDATE,
    },
    fees::{
        fresh_caps, gas_limit_from_estimate, multiplier_milli, replacement_caps, worst_case_fee,
        FeeCaps, GAS_LIMIT_CAP,
    },
    signer::OperatorSigner,
};
use orchestrator_protocol::kzg::Kzg;

/// Polls in a row that must find nothing of ours in the pool (and the nonce unmoved) before an
/// attempt counts as dropped: a node may answer the pending nonce from a view a moment behind
/// its pool (a load balancer, a send still propagating).
pub const DROPPED_AFTER_POLLS: u32 = 3;

/// Re-sends of dropped attempts allowed in one `update_state_with_blobs` call.
pub const MAX_DROPPED_RESENDS: u32 = 5;

/// Settings of the Ethereum settlement client (reference §2.7 flags).
#[derive(Debug, Clone)]
pub struct EthereumSettlementConfig {
    /// Ethereum RPC endpoint (may carry an API key: never logged). Credentials in it
    /// (`http://user:password@host/`) are sent as an `Authorization: Basic` header; the client
    /// keeps and hands the transport the URL without them.
    pub rpc_url: Url,
    /// Endpoints of the same chain to fail over to when `rpc_url` fails at the transport level
    /// (see [`crate::failover`]); empty: none.
    pub fallback_rpc_urls: Vec<Url>,
    /// The Starknet core contract.
    pub core_contract: Address,
    /// Interval between receipt polls.
    pub poll_interval: Duration,
    /// How long an attempt may stay unmined before it is replaced.
    pub tx_confirmation_timeout: Duration,
    /// Most same-nonce replacements per update.
    pub max_fee_bumps: u32,
    /// Cap on the worst-case fee of one attempt, in wei.
    pub max_fee_wei: u128,
    /// EIP-7594 cell proofs (default) instead of EIP-4844 blob proofs.
    pub peerdas: bool,
    /// Blocks (the inclusion block counted) before an update counts as final.
    pub confirmations: u64,
    /// Most blobs per update.
    pub max_blobs: usize,
    /// Receipt polls of `wait_for_tx_finality`.
    pub finality_polls: u32,
}

impl EthereumSettlementConfig {
    /// The reference's defaults: 60 s polls, 300 s confirmation timeout, 2 bumps, 0.01 ETH
    /// cap, PeerDAS, 3 confirmations, 6 blobs, 30 finality polls.
    pub fn new(rpc_url: Url, core_contract: Address) -> Self {
        Self {
            rpc_url,
            fallback_rpc_urls: Vec::new(),
            core_contract,
            poll_interval: Duration::from_secs(60),
            tx_confirmation_timeout: Duration::from_secs(300),
            max_fee_bumps: 2,
            max_fee_wei: 10_000_000_000_000_000,
            peerdas: true,
            confirmations: 3,
            max_blobs: MAX_BLOBS_PER_UPDATE,
            finality_polls: 30,
        }
    }
}

/// Settles on the Starknet core contract on Ethereum.
pub struct EthereumSettlementClient {
    provider: RootProvider,
    signer: OperatorSigner,
    wallet: EthereumWallet,
    config: EthereumSettlementConfig,
    /// Read from the node on first use, so the client can be built while the node is down.
    chain_id: tokio::sync::OnceCell<u64>,
    kzg: Kzg,
    metrics: Arc<Mutex<SettlementMetrics>>,
}

impl fmt::Debug for EthereumSettlementClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EthereumSettlementClient")
            .field("rpc_host", &self.config.rpc_url.host_str())
            .field("core_contract", &self.config.core_contract)
            .field("signer", &self.signer)
            .field("chain_id", &self.chain_id)
            .finish()
    }
}

/// How waiting on the attempts of one nonce ended.
enum WaitOutcome {
    Confirmed {
        tx_hash: B256,
        block: u64,
        receipt: Box<TransactionReceipt>,
    },
    Reverted {
        tx_hash: B256,
    },
    /// The nonce was used by a transaction that is not one of the attempts.
    NonceConsumed,
    /// None of the attempts is mined or in the pool any more, and the nonce is unused.
    Dropped,
    TimedOut,
}

impl EthereumSettlementClient {
    /// A client for the node of `config` with `signer` as the operator. Nothing is sent yet:
    /// the chain id is read on first use, so the orchestrator starts (and reports itself not
    /// ready) while the L1 node is down instead of exiting.
    pub async fn new(
        mut config: EthereumSettlementConfig,
        signer: OperatorSigner,
    ) -> SettlementResult<Self> {
        let (provider, rpc_url, fallbacks) =
            http_provider(&config.rpc_url, &config.fallback_rpc_urls)?;
        config.rpc_url = rpc_url;
        config.fallback_rpc_urls = fallbacks;
        let wallet = signer.wallet();
        Ok(Self {
            provider,
            signer,
            wallet,
            config,
            chain_id: tokio::sync::OnceCell::new(),
            kzg: Kzg::ethereum(),
            metrics: Arc::default(),
        })
    }

    /// The node's chain id, read once.
    pub(crate) async fn chain_id(&self) -> SettlementResult<u64> {
        self.chain_id
            .get_or_try_init(|| async {
                self.provider.get_chain_id().await.map_err(|e| rpc_error(&self.config.rpc_url, e))
            })
            .await
            .copied()
    }

    /// The operator address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The settings.
    pub fn config(&self) -> &EthereumSettlementConfig {
        &self.config
    }

    /// The underlying provider (tests drive Anvil through it).
    pub fn provider(&self) -> &RootProvider {
        &self.provider
    }

    pub(crate) fn rpc(&self, e: impl fmt::Display) -> SettlementError {
        rpc_error(&self.config.rpc_url, e)
    }

    /// Validates `program_output` and `blobs` and builds calldata and sidecar (no RPC).
    pub fn prepare(
        &self,
        program_output: &[Word],
        blobs: &[Vec<u8>],
    ) -> SettlementResult<PreparedBlobUpdate> {
        prepare_blob_update(
            &self.kzg,
            program_output,
            blobs,
            self.config.peerdas,
            self.config.max_blobs,
        )
    }

    /// Reads base fee, blob base fee and the signer's balance into the metrics.
    pub async fn refresh_metrics(&self) -> SettlementResult<SettlementMetrics> {
        let (base, blob) = self.current_fees().await?;
        let balance = self.provider.get_balance(self.address()).await.map_err(|e| self.rpc(e))?;
        let mut m = self.lock_metrics();
        m.base_fee_wei = Some(base);
        m.blob_base_fee_wei = Some(blob);
        m.signer_balance_wei = Some(u128::try_from(balance).unwrap_or(u128::MAX));
        Ok(m.clone())
    }

    fn lock_metrics(&self) -> std::sync::MutexGuard<'_, SettlementMetrics> {
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) async fn current_fees(&self) -> SettlementResult<(u128, u128)> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| self.rpc(e))?
            .ok_or_else(|| SettlementError::Rpc("the node has no latest block".into()))?;
        let base = u128::from(block.header.base_fee_per_gas.unwrap_or(0));
        let blob = self.provider.get_blob_base_fee().await.map_err(|e| self.rpc(e))?;
        let mut m = self.lock_metrics();
        m.base_fee_wei = Some(base);
        m.blob_base_fee_wei = Some(blob);
        Ok((base, blob))
    }

    async fn nonces(&self) -> SettlementResult<(u64, u64)> {
        let latest = self
            .provider
            .get_transaction_count(self.address())
            .latest()
            .await
            .map_err(|e| self.rpc(e))?;
        let pending = self
            .provider
            .get_transaction_count(self.address())
            .pending()
            .await
            .map_err(|e| self.rpc(e))?;
        Ok((latest, pending))
    }

    pub(crate) fn blob_request(
        &self,
        prepared: &PreparedBlobUpdate,
        caps: FeeCaps,
        chain_id: u64,
    ) -> TransactionRequest {
        let mut tx = TransactionRequest::default()
            .with_from(self.address())
            .with_to(self.config.core_contract)
            .with_chain_id(chain_id)
            .with_input(Bytes::from(prepared.calldata.clone()))
            .with_max_fee_per_gas(caps.max_fee_per_gas)
            .with_max_priority_fee_per_gas(caps.max_priority_fee_per_gas)
            .with_max_fee_per_blob_gas(caps.max_fee_per_blob_gas);
        tx.blob_versioned_hashes = Some(prepared.versioned_hashes.clone());
        tx
    }

    /// Gas limit from `eth_estimateGas` (+20 %, capped at 1.5 M). A revert in the estimate is
    /// reported as [`SettlementError::Reverted`] and nothing is sent.
    async fn gas_limit(
        &self,
        prepared: &PreparedBlobUpdate,
        caps: FeeCaps,
    ) -> SettlementResult<u64> {
        let chain_id = self.chain_id().await?;
        match self.provider.estimate_gas(self.blob_request(prepared, caps, chain_id)).await {
            Ok(estimate) => Ok(gas_limit_from_estimate(estimate)),
            Err(e) => {
                let msg = scrub(&self.config.rpc_url, &e.to_string());
                if msg.contains("revert") {
                    Err(SettlementError::Reverted { tx_hash: None, reason: msg })
                } else {
                    Err(SettlementError::Rpc(msg))
                }
            }
        }
    }

    /// Signs and sends one attempt; returns its hash, or the node's error message.
    async fn send_attempt(
        &self,
        prepared: &PreparedBlobUpdate,
        nonce: u64,
        gas_limit: u64,
        caps: FeeCaps,
    ) -> Result<B256, (Option<B256>, String)> {
        let chain_id = self.chain_id().await.map_err(|e| (None, e.to_string()))?;
        let mut tx =
            self.blob_request(prepared, caps, chain_id).with_nonce(nonce).with_gas_limit(gas_limit);
        tx.sidecar = Some(prepared.sidecar.clone());
        let envelope: TxEnvelope =
            tx.build(&self.wallet).await.map_err(|e| (None, format!("signing failed: {e}")))?;
        let hash = *envelope.tx_hash();
        let raw = envelope.encoded_2718();
        match self.provider.send_raw_transaction(&raw).await {
            Ok(_) => Ok(hash),
            Err(e) => Err((Some(hash), scrub(&self.config.rpc_url, &e.to_string()))),
        }
    }

    async fn receipt(&self, hash: B256) -> SettlementResult<Option<TransactionReceipt>> {
        self.provider.get_transaction_receipt(hash).await.map_err(|e| self.rpc(e))
    }

    /// Polls the receipts of `hashes` (all on `nonce`) until one is mined with enough
    /// confirmations, the nonce is used by another transaction, none of them is in the pool
    /// any more ([`DROPPED_AFTER_POLLS`] polls in a row with the pending nonce at `nonce`), or
    /// `timeout` passes with none mined. A mined attempt is waited on past the timeout (no bump
    /// once mined).
    async fn wait_for_attempts(
        &self,
        hashes: &[B256],
        nonce: u64,
        timeout: Duration,
    ) -> SettlementResult<WaitOutcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut consumed_polls = 0u32;
        let mut empty_pool_polls = 0u32;
        loop {
            let mut mined = false;
            for hash in hashes.iter().rev() {
                let Some(receipt) = self.receipt(*hash).await? else {
                    continue;
                };
                if !receipt.status() {
                    return Ok(WaitOutcome::Reverted { tx_hash: *hash });
                }
                mined = true;
                let block = receipt.block_number.unwrap_or_default();
                let head = self.provider.get_block_number().await.map_err(|e| self.rpc(e))?;
                if head.saturating_sub(block) + 1 >= self.config.confirmations {
                    return Ok(WaitOutcome::Confirmed {
                        tx_hash: *hash,
                        block,
                        receipt: Box::new(receipt),
                    });
                }
            }
            if !mined {
                let (latest, pending) = self.nonces().await?;
                if latest > nonce {
                    // The nonce moved but none of our receipts is visible. Nodes may expose the
                    // new nonce a moment before the receipt (Anvil does), so only conclude
                    // after a few polls.
                    consumed_polls += 1;
                    if consumed_polls > 5 {
                        return Ok(WaitOutcome::NonceConsumed);
                    }
                } else {
                    // Unmined and the nonce unused: is anything of ours still pending on it?
                    if pending <= nonce {
                        empty_pool_polls += 1;
                        if empty_pool_polls >= DROPPED_AFTER_POLLS {
                            return Ok(WaitOutcome::Dropped);
                        }
                    } else {
                        empty_pool_polls = 0;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(WaitOutcome::TimedOut);
                    }
                }
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    /// Looks up our in-flight transaction at `nonce` in the node's pool (`txpool_content`);
    /// returns it as an attempt when it carries `calldata`.
    async fn adopt_in_flight(
        &self,
        nonce: u64,
        calldata: &[u8],
        attempt_no: u32,
    ) -> Option<TxAttempt> {
        let pool: serde_json::Value =
            self.provider.raw_request("txpool_content".into(), ()).await.ok()?;
        let me = self.address().to_string().to_lowercase();
        let pending = pool.get("pending")?.as_object()?;
        let (_, by_nonce) = pending.iter().find(|(a, _)| a.to_lowercase() == me)?;
        let tx = by_nonce.get(nonce.to_string())?;
        let input = tx.get("input").and_then(|v| v.as_str())?;
        if hex::decode(input.trim_start_matches("0x")).ok()? != calldata {
            return None;
        }
        let num = |k: &str| {
            tx.get(k)
                .and_then(|v| v.as_str())
                .and_then(|s| u128::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        };
        Some(TxAttempt {
            attempt_no,
            tx_hash: tx.get("hash")?.as_str()?.to_owned(),
            nonce,
            gas_multiplier_milli: 0,
            max_fee_per_gas: num("maxFeePerGas")?,
            max_priority_fee_per_gas: num("maxPriorityFeePerGas")?,
            max_fee_per_blob_gas: num("maxFeePerBlobGas").unwrap_or(0),
            status: TxAttemptStatus::Sent,
            error: None,
        })
    }

    /// The state update flow described in the module docs.
    async fn settle_blobs(
        &self,
        prepared: &PreparedBlobUpdate,
        attempts: &mut Vec<TxAttempt>,
        recorder: Option<&Arc<dyn AttemptRecorder>>,
    ) -> SettlementResult<StateUpdateOutcome> {
        let record = |attempts: &Vec<TxAttempt>| {
            let attempts = attempts.clone();
            let recorder = recorder.cloned();
            async move {
                if let Some(r) = recorder {
                    if let Err(e) = r.record(&attempts).await {
                        tracing::warn!(target: "orch::settlement", error = %e, "Could not record the state update attempts; the chain is checked again on retry");
                    }
                }
            }
        };
        let target = prepared.target_block;
        // The signer's nonces are read first: an attempt mined after this read is seen by the
        // receipt and contract checks below, so a nonce consumed by our own update can never
        // be taken for a free one (which would send a second update at the next nonce).
        let (latest, pending) = self.nonces().await?;

        // 1. Already settled, or an earlier attempt mined?
        for i in 0..attempts.len() {
            let Ok(hash) = attempts[i].tx_hash.parse::<B256>() else {
                continue;
            };
            let nonce = attempts[i].nonce;
            if let Some(r) = self.receipt(hash).await? {
                if r.status() {
                    // Mined: no timeout applies any more, only confirmations.
                    let outcome =
                        self.wait_for_attempts(&[hash], nonce, Duration::from_secs(86_400)).await?;
                    if let WaitOutcome::Confirmed { tx_hash, block, receipt } = outcome {
                        return Ok(self.finish(attempts, tx_hash, block, &receipt, &record).await);
                    }
                } else if self.last_settled().await?.is_none_or(|b| b < target) {
                    attempts[i].status = TxAttemptStatus::Reverted;
                    record(attempts).await;
                    return Err(SettlementError::Reverted {
                        tx_hash: Some(hash.to_string()),
                        reason: "receipt status 0".into(),
                    });
                }
            }
        }
        if self.last_settled().await?.is_some_and(|b| b >= target) {
            return self.settled_elsewhere(attempts, &record).await;
        }

        // 2. Nonce: the mined nonce; a higher pending nonce means one of ours is in flight.
        let nonce = latest;
        let live = |a: &TxAttempt| {
            a.nonce == nonce
                && matches!(
                    a.status,
                    TxAttemptStatus::Sent | TxAttemptStatus::TimedOut | TxAttemptStatus::Replaced
                )
        };
        let mut current: Option<TxAttempt> = None;
        if pending > latest {
            current = attempts.iter().rev().find(|a| live(a)).cloned();
            if current.is_none() {
                let next_no = attempts.len() as u32 + 1;
                match self.adopt_in_flight(nonce, &prepared.calldata, next_no).await {
                    Some(adopted) => {
                        tracing::info!(target: "orch::settlement", tx_hash = %adopted.tx_hash, nonce, "Adopted an in-flight state update of this signer found in the pool");
                        attempts.push(adopted.clone());
                        record(attempts).await;
                        current = Some(adopted);
                    }
                    None => {
                        return Err(SettlementError::Rpc(format!(
                            "the signer has an unknown in-flight transaction at nonce {nonce} (pending nonce {pending}); waiting for it to clear"
                        )))
                    }
                }
            }
        } else {
            // Nothing of ours is in the pool: earlier unmined attempts were dropped.
            for a in attempts.iter_mut().filter(|a| a.status == TxAttemptStatus::Sent) {
                a.status = TxAttemptStatus::TimedOut;
            }
        }
        // Every attempt on the nonce after the first is a bump, except the re-sends of dropped
        // attempts (one per `Dropped` attempt).
        let on_nonce = || attempts.iter().filter(|a| a.nonce == nonce && a.attempt_no > 0);
        let dropped_on_nonce = on_nonce().filter(|a| a.status == TxAttemptStatus::Dropped).count();
        let mut bumps =
            on_nonce().count().saturating_sub(dropped_on_nonce).saturating_sub(1) as u32;
        if current.is_none() {
            bumps = 0;
        }

        // 3. Send (or resume), wait, bump.
        let mut gas_limit: Option<u64> = None;
        let mut drops = 0u32;
        loop {
            if let Some(cur) = current.clone().filter(|c| c.status == TxAttemptStatus::Sent) {
                let hashes: Vec<B256> = attempts
                    .iter()
                    .filter(|a| live(a))
                    .filter_map(|a| a.tx_hash.parse().ok())
                    .collect();
                tracing::info!(target: "orch::settlement", tx_hash = %cur.tx_hash, nonce, "Waiting for the state update");
                match self
                    .wait_for_attempts(&hashes, nonce, self.config.tx_confirmation_timeout)
                    .await?
                {
                    WaitOutcome::Confirmed { tx_hash, block, receipt } => {
                        return Ok(self.finish(attempts, tx_hash, block, &receipt, &record).await)
                    }
                    WaitOutcome::Reverted { tx_hash } => {
                        if let Some(a) =
                            attempts.iter_mut().find(|a| a.tx_hash == tx_hash.to_string())
                        {
                            a.status = TxAttemptStatus::Reverted;
                        }
                        record(attempts).await;
                        return Err(SettlementError::Reverted {
                            tx_hash: Some(tx_hash.to_string()),
                            reason: "receipt status 0".into(),
                        });
                    }
                    WaitOutcome::NonceConsumed => {
                        if self.last_settled().await?.is_some_and(|b| b >= target) {
                            for a in attempts.iter_mut().filter(|a| live(a)) {
                                a.status = TxAttemptStatus::Superseded;
                            }
                            record(attempts).await;
                            return Ok(StateUpdateOutcome {
                                tx_hash: None,
                                block_number: None,
                                attempts: attempts.clone(),
                            });
                        }
                        return Err(SettlementError::Rpc(format!(
                            "nonce {nonce} was used by another transaction and the update is not settled"
                        )));
                    }
                    WaitOutcome::Dropped => {
                        drops += 1;
                        for a in attempts
                            .iter_mut()
                            .filter(|a| live(a) && a.status == TxAttemptStatus::Sent)
                        {
                            a.status = TxAttemptStatus::Dropped;
                        }
                        self.lock_metrics().txs_dropped += 1;
                        record(attempts).await;
                        if drops > MAX_DROPPED_RESENDS {
                            tracing::warn!(target: "orch::settlement", tx_hash = %cur.tx_hash, nonce, drops, "State update transaction dropped from the pool again; giving up for now");
                            return Err(SettlementError::Dropped { drops, nonce });
                        }
                        tracing::warn!(target: "orch::settlement", tx_hash = %cur.tx_hash, nonce, drops, "State update transaction dropped from the pool; sending it again");
                        // The dropped caps are no floor: nothing is left to replace.
                        current = None;
                    }
                    WaitOutcome::TimedOut => {
                        if bumps >= self.config.max_fee_bumps {
                            if let Some(a) =
                                attempts.iter_mut().rev().find(|a| a.tx_hash == cur.tx_hash)
                            {
                                a.status = TxAttemptStatus::TimedOut;
                            }
                            record(attempts).await;
                            return Err(SettlementError::NotConfirmed {
                                attempts: attempts.len(),
                                bumps,
                            });
                        }
                        bumps += 1;
                    }
                }
            }

            // Caps for this attempt.
            let (base, blob) = self.current_fees().await?;
            let fresh = fresh_caps(base, blob, bumps);
            let replaced = current.as_ref().map(|c| FeeCaps {
                max_fee_per_gas: c.max_fee_per_gas,
                max_priority_fee_per_gas: c.max_priority_fee_per_gas,
                max_fee_per_blob_gas: c.max_fee_per_blob_gas,
            });
            let caps = replaced.map_or(fresh, |r| replacement_caps(fresh, r));
            let limit = match gas_limit {
                Some(l) => l,
                None => match self.gas_limit(prepared, caps).await {
                    Ok(l) => {
                        gas_limit = Some(l);
                        l
                    }
                    Err(e @ SettlementError::Reverted { .. }) => {
                        // The update no longer applies: settled meanwhile (one of ours mined
                        // since the checks above) is success, anything else is the revert.
                        if self.last_settled().await?.is_some_and(|b| b >= target) {
                            return self.settled_elsewhere(attempts, &record).await;
                        }
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                },
            };
            // The reference's liability: the fixed 1.5 M gas ceiling, whatever the estimate.
            let needed = worst_case_fee(caps, GAS_LIMIT_CAP, prepared.versioned_hashes.len());
            if needed > self.config.max_fee_wei {
                tracing::warn!(target: "orch::settlement", needed_wei = needed, cap_wei = self.config.max_fee_wei, bumps, "Fee cap reached; the state update pauses instead of signing more");
                return Err(SettlementError::FeeCapExceeded {
                    needed_wei: needed,
                    cap_wei: self.config.max_fee_wei,
                });
            }
            if let Some(cur) =
                attempts.iter_mut().rev().find(|a| live(a) && a.status == TxAttemptStatus::Sent)
            {
                cur.status = TxAttemptStatus::Replaced;
            }
            let mut attempt = TxAttempt {
                attempt_no: attempts.len() as u32 + 1,
                tx_hash: String::new(),
                nonce,
                gas_multiplier_milli: u64::try_from(multiplier_milli(bumps)).unwrap_or(u64::MAX),
                max_fee_per_gas: caps.max_fee_per_gas,
                max_priority_fee_per_gas: caps.max_priority_fee_per_gas,
                max_fee_per_blob_gas: caps.max_fee_per_blob_gas,
                status: TxAttemptStatus::Sent,
                error: None,
            };
            let sent = self.send_attempt(prepared, nonce, limit, caps).await;
            {
                let mut m = self.lock_metrics();
                m.txs_sent += 1;
                if replaced.is_some() {
                    m.fee_bumps += 1;
                }
            }
            match sent {
                Ok(hash) => {
                    attempt.tx_hash = hash.to_string();
                    tracing::info!(target: "orch::settlement", tx_hash = %hash, nonce, bump = bumps, max_fee_per_gas = caps.max_fee_per_gas, max_fee_per_blob_gas = caps.max_fee_per_blob_gas, "State update sent");
                    attempts.push(attempt.clone());
                    record(attempts).await;
                    current = Some(attempt);
                }
                Err((hash, msg))
                    if msg.contains("already known") || msg.contains("already imported") =>
                {
                    attempt.tx_hash = hash.map(|h| h.to_string()).unwrap_or_default();
                    attempts.push(attempt.clone());
                    record(attempts).await;
                    current = Some(attempt);
                }
                Err((hash, msg)) if msg.contains("underpriced") => {
                    attempt.tx_hash = hash.map(|h| h.to_string()).unwrap_or_default();
                    attempt.status = TxAttemptStatus::RejectedUnderpriced;
                    attempt.error = Some(msg);
                    attempts.push(attempt.clone());
                    record(attempts).await;
                    if bumps >= self.config.max_fee_bumps {
                        return Err(SettlementError::NotConfirmed {
                            attempts: attempts.len(),
                            bumps,
                        });
                    }
                    bumps += 1;
                    // The rejected caps are the floor of the next attempt.
                    current = Some(attempt);
                    if let Some(prev) = attempts.iter_mut().rev().find(|a| {
                        matches!(a.status, TxAttemptStatus::Replaced | TxAttemptStatus::Dropped)
                            && a.nonce == nonce
                    }) {
                        // The replaced (or presumed dropped) attempt is still the one in the
                        // pool.
                        prev.status = TxAttemptStatus::Sent;
                    }
                }
                Err((hash, msg)) if msg.contains("nonce too low") => {
                    attempt.tx_hash = hash.map(|h| h.to_string()).unwrap_or_default();
                    attempt.status = TxAttemptStatus::SubmissionFailed;
                    attempt.error = Some(msg.clone());
                    attempts.push(attempt);
                    record(attempts).await;
                    if self.last_settled().await?.is_some_and(|b| b >= target) {
                        return Ok(StateUpdateOutcome {
                            tx_hash: None,
                            block_number: None,
                            attempts: attempts.clone(),
                        });
                    }
                    return Err(SettlementError::Rpc(msg));
                }
                Err((hash, msg)) => {
                    attempt.tx_hash = hash.map(|h| h.to_string()).unwrap_or_default();
                    attempt.status = TxAttemptStatus::SubmissionFailed;
                    attempt.error = Some(msg.clone());
                    attempts.push(attempt);
                    record(attempts).await;
                    return Err(SettlementError::Rpc(msg));
                }
            }
        }
    }

    /// The outcome when the core contract already holds the update: the attempt of ours that
    /// carried it (receipts may show up a moment after the state), or none.
    async fn settled_elsewhere<F, Fut>(
        &self,
        attempts: &mut Vec<TxAttempt>,
        record: &F,
    ) -> SettlementResult<StateUpdateOutcome>
    where
        F: Fn(&Vec<TxAttempt>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let sent: Vec<B256> = attempts.iter().filter_map(|a| a.tx_hash.parse().ok()).collect();
        for _ in 0..if sent.is_empty() { 0 } else { 5 } {
            for hash in &sent {
                if let Some(r) = self.receipt(*hash).await?.filter(|r| r.status()) {
                    let block = r.block_number.unwrap_or_default();
                    return Ok(self.finish(attempts, *hash, block, &r, record).await);
                }
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
        for a in attempts.iter_mut().filter(|a| a.status == TxAttemptStatus::Sent) {
            a.status = TxAttemptStatus::Superseded;
        }
        record(attempts).await;
        tracing::info!(target: "orch::settlement", "The core contract already settled this update; nothing sent");
        Ok(StateUpdateOutcome { tx_hash: None, block_number: None, attempts: attempts.clone() })
    }

    async fn finish<F, Fut>(
        &self,
        attempts: &mut Vec<TxAttempt>,
        tx_hash: B256,
        block: u64,
        receipt: &TransactionReceipt,
        record: &F,
    ) -> StateUpdateOutcome
    where
        F: Fn(&Vec<TxAttempt>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let hash = tx_hash.to_string();
        let nonce = attempts.iter().find(|a| a.tx_hash == hash).map(|a| a.nonce);
        // A dropped attempt re-sent with the same caps is the same transaction (same hash):
        // the re-send is the one that landed, the earlier record stays `Dropped`.
        let last = attempts.iter().rposition(|a| a.tx_hash == hash);
        for (i, a) in attempts.iter_mut().enumerate() {
            if a.tx_hash == hash && (a.status != TxAttemptStatus::Dropped || Some(i) == last) {
                a.status = TxAttemptStatus::Finalized;
            } else if Some(a.nonce) == nonce
                && matches!(a.status, TxAttemptStatus::Sent | TxAttemptStatus::TimedOut)
            {
                a.status = TxAttemptStatus::Replaced;
            }
        }
        let fee = u128::from(receipt.gas_used)
            .saturating_mul(receipt.effective_gas_price)
            .saturating_add(
                u128::from(receipt.blob_gas_used.unwrap_or(0))
                    .saturating_mul(receipt.blob_gas_price.unwrap_or(0)),
            );
        {
            let mut m = self.lock_metrics();
            m.fees_paid_wei = m.fees_paid_wei.saturating_add(fee);
            m.updates_confirmed += 1;
        }
        record(attempts).await;
        tracing::info!(target: "orch::settlement", tx_hash = %hash, block, fee_wei = fee, "State update confirmed");
        StateUpdateOutcome {
            tx_hash: Some(hash),
            block_number: Some(block),
            attempts: attempts.clone(),
        }
    }

    async fn last_settled(&self) -> SettlementResult<Option<u64>> {
        let call = StarknetValidityContract::stateBlockNumberCall {}.abi_encode();
        let tx = TransactionRequest::default()
            .with_to(self.config.core_contract)
            .with_input(Bytes::from(call));
        // Explicitly `latest`: some nodes (Anvil) answer a call without a block tag from the
        // pending state, which would count an unmined update as settled.
        let out = self.provider.call(tx).block(BlockId::latest()).await.map_err(|e| self.rpc(e))?;
        let n: I256 = StarknetValidityContract::stateBlockNumberCall::abi_decode_returns(&out)
            .map_err(|e| {
                SettlementError::Rpc(format!(
                    "stateBlockNumber() returned {} bytes: {e}",
                    out.len()
                ))
            })?;
        Ok(if n.is_negative() { None } else { u64::try_from(n.into_raw()).ok() })
    }
}

/// A provider of `url` (and `fallbacks`, see [`crate::failover`]) and the URLs it was given:
/// without their credentials, which go in an `Authorization` header of every request to their
/// endpoint instead (alloy's transport records the URL in a DEBUG span, `ReqwestTransport{url=…}`).
fn http_provider(url: &Url, fallbacks: &[Url]) -> SettlementResult<(RootProvider, Url, Vec<Url>)> {
    use alloy::transports::http::reqwest::Client;
    let client_of = |url: &Url| -> SettlementResult<(Client, Url)> {
        let (url, headers) = credentials_headers(url);
        let client = Client::builder().default_headers(headers).build().map_err(|e| {
            SettlementError::Rpc(format!("cannot build the HTTP client of the Ethereum RPC: {e}"))
        })?;
        Ok((client, url))
    };
    let (client, url) = client_of(url)?;
    if fallbacks.is_empty() {
        let provider = RootProvider::new(RpcClient::new_http_with_client(client, url.clone()));
        return Ok((provider, url, Vec::new()));
    }
    let mut endpoints = vec![(client, url.clone())];
    for fallback in fallbacks {
        endpoints.push(client_of(fallback)?);
    }
    let fallbacks = endpoints[1..].iter().map(|(_, url)| url.clone()).collect();
    let transport = crate::failover::FailoverTransport::new(endpoints);
    let is_local = transport.is_local();
    let provider = RootProvider::new(RpcClient::new(transport, is_local));
    Ok((provider, url, fallbacks))
}

/// An RPC error with the endpoint (which may carry an API key) removed from the message.
fn rpc_error(url: &Url, e: impl fmt::Display) -> SettlementError {
    SettlementError::Rpc(scrub(url, &e.to_string()))
}

fn scrub(url: &Url, msg: &str) -> String {
    let full = url.as_str();
    let trimmed = full.trim_end_matches('/');
    let shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or("node"));
    msg.replace(full, &shown).replace(trimmed, &shown)
}

#[async_trait]
impl SettlementClient for EthereumSettlementClient {
    async fn update_state_calldata(
        &self,
        _snos_output: Vec<Word>,
        program_output: Vec<Word>,
        onchain_data_hash: Word,
        onchain_data_size: Word,
    ) -> SettlementResult<String> {
        let data = update_state_calldata(&program_output, onchain_data_hash, onchain_data_size);
        let (base, _) = self.current_fees().await?;
        let caps = fresh_caps(base, 0, 0);
        let tx = TransactionRequest::default()
            .with_from(self.address())
            .with_to(self.config.core_contract)
            .with_chain_id(self.chain_id().await?)
            .with_input(Bytes::from(data))
            .with_max_fee_per_gas(caps.max_fee_per_gas)
            .with_max_priority_fee_per_gas(caps.max_priority_fee_per_gas);
        let estimate = self.provider.estimate_gas(tx.clone()).await.map_err(|e| {
            let msg = scrub(&self.config.rpc_url, &e.to_string());
            if msg.contains("revert") {
                SettlementError::Reverted { tx_hash: None, reason: msg }
            } else {
                SettlementError::Rpc(msg)
            }
        })?;
        let limit = gas_limit_from_estimate(estimate).min(GAS_LIMIT_CAP);
        if worst_case_fee(caps, limit, 0) > self.config.max_fee_wei {
            return Err(SettlementError::FeeCapExceeded {
                needed_wei: worst_case_fee(caps, limit, 0),
                cap_wei: self.config.max_fee_wei,
            });
        }
        let (nonce, _) = self.nonces().await?;
        let envelope: TxEnvelope = tx
            .with_nonce(nonce)
            .with_gas_limit(limit)
            .build(&self.wallet)
            .await
            .map_err(|e| SettlementError::Signer(e.to_string()))?;
        let hash = *envelope.tx_hash();
        let _pending = self
            .provider
            .send_raw_transaction(&envelope.encoded_2718())
            .await
            .map_err(|e| self.rpc(e))?;
        match self.wait_for_attempts(&[hash], nonce, self.config.tx_confirmation_timeout).await? {
            WaitOutcome::Confirmed { .. } => Ok(hash.to_string()),
            WaitOutcome::Reverted { tx_hash } => Err(SettlementError::Reverted {
                tx_hash: Some(tx_hash.to_string()),
                reason: "receipt status 0".into(),
            }),
            WaitOutcome::Dropped => {
                self.lock_metrics().txs_dropped += 1;
                tracing::warn!(target: "orch::settlement", tx_hash = %hash, nonce, "State update transaction dropped from the pool; the next try sends it again");
                Err(SettlementError::Dropped { drops: 1, nonce })
            }
            WaitOutcome::NonceConsumed | WaitOutcome::TimedOut => {
                Err(SettlementError::NotConfirmed { attempts: 1, bumps: 0 })
            }
        }
    }

    async fn update_state_with_blobs(
        &self,
        update: BlobStateUpdate,
    ) -> Result<StateUpdateOutcome, StateUpdateTxError> {
        let mut attempts = update.prior_attempts.clone();
        let prepared = match self.prepare(&update.program_output, &update.blobs) {
            Ok(p) => p,
            Err(error) => return Err(StateUpdateTxError { error, attempts }),
        };
        match self.settle_blobs(&prepared, &mut attempts, update.recorder.as_ref()).await {
            Ok(outcome) => Ok(outcome),
            Err(error) => Err(StateUpdateTxError { error, attempts }),
        }
    }

    async fn verify_tx_inclusion(
        &self,
        tx_hash: &str,
    ) -> SettlementResult<SettlementVerificationStatus> {
        let hash: B256 = tx_hash.parse().map_err(|_| {
            SettlementError::InvalidInput(format!("{tx_hash} is not a transaction hash"))
        })?;
        match self.receipt(hash).await? {
            Some(r) if !r.status() => {
                Ok(SettlementVerificationStatus::Rejected(format!("{tx_hash} reverted")))
            }
            Some(r) => {
                let head = self.provider.get_block_number().await.map_err(|e| self.rpc(e))?;
                let block = r.block_number.unwrap_or(head);
                Ok(if head.saturating_sub(block) + 1 >= self.config.confirmations {
                    SettlementVerificationStatus::Verified
                } else {
                    SettlementVerificationStatus::Pending
                })
            }
            None => {
                let known =
                    self.provider.get_transaction_by_hash(hash).await.map_err(|e| self.rpc(e))?;
                Ok(if known.is_some() {
                    SettlementVerificationStatus::Pending
                } else {
                    SettlementVerificationStatus::Rejected(format!(
                        "{tx_hash} is unknown to the node"
                    ))
                })
            }
        }
    }

    async fn wait_for_tx_finality(&self, tx_hash: &str) -> SettlementResult<Option<u64>> {
        let hash: B256 = tx_hash.parse().map_err(|_| {
            SettlementError::InvalidInput(format!("{tx_hash} is not a transaction hash"))
        })?;
        for _ in 0..self.config.finality_polls.max(1) {
            if let Some(r) = self.receipt(hash).await? {
                return Ok(r.block_number);
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
        Ok(None)
    }

    async fn get_last_settled_block(&self) -> SettlementResult<Option<u64>> {
        self.last_settled().await
    }

    async fn get_nonce(&self) -> SettlementResult<u64> {
        Ok(self.nonces().await?.1)
    }

    async fn settled_state_updates(
        &self,
        from_block: u64,
    ) -> SettlementResult<Vec<SettledStateUpdate>> {
        self.settled_state_updates_paged(from_block, crate::history::LOG_PAGE_BLOCKS).await
    }

    async fn preview_update_with_blobs(
        &self,
        program_output: Vec<Word>,
        blobs: Vec<Vec<u8>>,
    ) -> SettlementResult<orchestrator_settlement_client_interface::StateUpdateCall> {
        self.preview_blob_update(&program_output, &blobs).await
    }

    async fn landed_update(
        &self,
        tx_hash: &str,
    ) -> SettlementResult<orchestrator_settlement_client_interface::StateUpdateCall> {
        self.landed_state_update(tx_hash).await
    }

    fn metrics(&self) -> SettlementMetrics {
        self.lock_metrics().clone()
    }

    async fn refresh_metrics(&self) -> SettlementResult<SettlementMetrics> {
        EthereumSettlementClient::refresh_metrics(self).await
    }

    fn layer_name(&self) -> &'static str {
        "ethereum"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_errors_do_not_show_the_endpoint_path() {
        let url: Url = "https://eth.example.com/v2/SECRETKEY".parse().unwrap();
        let e =
            rpc_error(&url, "error sending request for url (https://eth.example.com/v2/SECRETKEY)");
        assert!(!e.to_string().contains("SECRETKEY"), "{e}");
        assert!(e.to_string().contains("eth.example.com"));
    }
}
