//! [`StarknetSettlementClient`]: the `SettlementClient` for the project's Cairo core contract
//! on Starknet (L3 settlement).
//!
//! One state update is one invoke of `update_state(snos_output, program_output)` from a
//! `SingleOwnerAccount` (new execution encoding, V3 transactions paid in STRK). starknet-rs
//! estimates the fee first, which simulates the call: a contract-level failure (wrong previous
//! block, unregistered operator or fact) is reported as [`SettlementError::Reverted`] with the
//! contract's panic reason and nothing is sent. The transaction hash is returned as soon as
//! the node accepts the transaction; [`SettlementClient::verify_tx_inclusion`] and
//! [`SettlementClient::wait_for_tx_finality`] follow it.

use std::{
    collections::HashSet,
    fmt,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use orchestrator_settlement_client_interface::{
    SettledStateUpdate, SettlementClient, SettlementError, SettlementMetrics, SettlementResult,
    SettlementVerificationStatus, Word,
};
use orchestrator_utils::secret::credentials_headers;
use starknet::{
    accounts::{Account, AccountError, ExecutionEncoding, SingleOwnerAccount},
    core::{
        types::{
            BlockId, BlockTag, Call, ContractExecutionError, ExecutionResult, Felt, FunctionCall,
            ReceiptBlock, StarknetError, TransactionFinalityStatus, TransactionReceipt,
            TransactionStatus,
        },
        utils::get_selector_from_name,
    },
    providers::{
        jsonrpc::{HttpTransport, JsonRpcClient},
        Provider, ProviderError,
    },
    signers::{LocalWallet, SigningKey},
};
use url::Url;

use crate::{
    calldata::{settled_block, update_state_calldata, SNOS_NEW_BLOCK_NUMBER},
    failover::FailoverHttpTransport,
};

/// The transport of `url` and the URL without its credentials, which go in an `Authorization`
/// header of every request instead.
fn http_transport(url: &Url) -> (Url, HttpTransport) {
    let (url, headers) = credentials_headers(url);
    // Building fails only when the TLS backend cannot start, where the transport's own
    // default client (`HttpTransport::new`) panics as well.
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("the TLS backend starts");
    let transport = HttpTransport::new_with_client(url.clone(), http);
    (url, transport)
}

/// STRK, the token V3 transactions pay their fees in (the same address on every public
/// Starknet network and on starknet-devnet).
pub const STRK_TOKEN_ADDRESS: Felt =
    Felt::from_hex_unchecked("0x04718f5a0fc34cc1af16a1cdee98ffb20c31f5cd61d6ab07201858f4287c938d");

/// The account that signs state updates, built on first use (it needs the node's chain id).
type OperatorAccount = SingleOwnerAccount<JsonRpcClient<FailoverHttpTransport>, LocalWallet>;

/// Settings of the Starknet settlement client.
#[derive(Clone)]
pub struct StarknetSettlementConfig {
    /// Starknet JSON-RPC endpoint (may carry an API key: never logged or put in errors).
    /// Credentials in it (`http://user:password@host/`) are sent as an `Authorization: Basic`
    /// header; the transport gets the URL without them.
    pub rpc_url: Url,
    /// Endpoints of the same chain to fail over to when `rpc_url` does not answer (see
    /// [`crate::failover`]); empty: none.
    pub fallback_rpc_urls: Vec<Url>,
    /// The operator account (a deployed account contract registered as operator).
    pub account_address: Felt,
    /// The account's private key (never printed).
    pub private_key: Felt,
    /// The core contract.
    pub core_contract_address: Felt,
    /// Interval between receipt polls of `wait_for_tx_finality`.
    pub finality_retry_wait: Duration,
    /// Receipt polls of `wait_for_tx_finality` before it gives up.
    pub finality_polls: u32,
}

impl StarknetSettlementConfig {
    /// Settings with the reference's defaults: 10 s between polls, 30 polls.
    pub fn new(
        rpc_url: Url,
        account_address: Felt,
        private_key: Felt,
        core_contract_address: Felt,
    ) -> Self {
        Self {
            rpc_url,
            fallback_rpc_urls: Vec::new(),
            account_address,
            private_key,
            core_contract_address,
            finality_retry_wait: Duration::from_secs(10),
            finality_polls: 30,
        }
    }
}

impl fmt::Debug for StarknetSettlementConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StarknetSettlementConfig")
            .field("rpc_host", &self.rpc_url.host_str())
            .field("account_address", &format_args!("{:#x}", self.account_address))
            .field("private_key", &"<redacted>")
            .field("core_contract_address", &format_args!("{:#x}", self.core_contract_address))
            .field("finality_retry_wait", &self.finality_retry_wait)
            .field("finality_polls", &self.finality_polls)
            .finish()
    }
}

/// What `get_state` returns: the last settled state of the core contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreContractState {
    /// The appchain's state root after the last update.
    pub state_root: Felt,
    /// The last settled block; `Felt::MAX` (-1) before the first update.
    pub block_number: Felt,
    /// The last settled block's hash.
    pub block_hash: Felt,
}

/// Settles on the project's Cairo core contract on Starknet.
pub struct StarknetSettlementClient {
    provider: JsonRpcClient<FailoverHttpTransport>,
    account: tokio::sync::OnceCell<OperatorAccount>,
    config: StarknetSettlementConfig,
    /// Fees (in fri) and the signer's STRK balance, exported as the settlement metrics.
    metrics: Mutex<FeeBook>,
}

/// The settlement metrics and the transactions whose fee they already count (a state update
/// is verified more than once when its verification is retried).
#[derive(Debug, Default)]
struct FeeBook {
    metrics: SettlementMetrics,
    counted: HashSet<Felt>,
}

impl fmt::Debug for StarknetSettlementClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StarknetSettlementClient")
            .field("config", &self.config)
            .field("account_ready", &self.account.initialized())
            .finish()
    }
}

impl StarknetSettlementClient {
    /// A client for the node of `config`. Nothing is sent yet: the chain id is read on the first
    /// state update, so the orchestrator starts (and reports itself not ready) while the node
    /// is down.
    pub fn new(mut config: StarknetSettlementConfig) -> Self {
        let mut endpoints = Vec::with_capacity(1 + config.fallback_rpc_urls.len());
        let mut urls = Vec::with_capacity(endpoints.capacity());
        for given in std::iter::once(&config.rpc_url).chain(&config.fallback_rpc_urls) {
            let (url, transport) = http_transport(given);
            let host = format!(
                "{}:{}",
                url.host_str().unwrap_or("?"),
                url.port_or_known_default().unwrap_or(0)
            );
            endpoints.push((transport, host));
            urls.push(url);
        }
        let provider = JsonRpcClient::new(FailoverHttpTransport::new(endpoints));
        config.rpc_url = urls.remove(0);
        config.fallback_rpc_urls = urls;
        Self { provider, account: tokio::sync::OnceCell::new(), config, metrics: Mutex::default() }
    }

    fn fee_book(&self) -> std::sync::MutexGuard<'_, FeeBook> {
        self.metrics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The operator account's STRK balance, in fri.
    pub async fn signer_balance(&self) -> SettlementResult<u128> {
        let out = self
            .provider
            .call(
                FunctionCall {
                    contract_address: STRK_TOKEN_ADDRESS,
                    entry_point_selector: selector("balance_of"),
                    calldata: vec![self.config.account_address],
                },
                BlockId::Tag(BlockTag::Latest),
            )
            .await
            .map_err(|e| self.provider_error(e))?;
        match out[..] {
            // A u256 as (low, high); a balance over 2^128 fri saturates.
            [low, high] => Ok(if high == Felt::ZERO {
                u128::try_from(low).unwrap_or(u128::MAX)
            } else {
                u128::MAX
            }),
            _ => Err(SettlementError::Rpc(format!(
                "STRK balance_of returned {} felts, expected a u256 (2)",
                out.len()
            ))),
        }
    }

    /// The settings.
    pub fn config(&self) -> &StarknetSettlementConfig {
        &self.config
    }

    /// The provider (tests read the node through it).
    pub fn provider(&self) -> &JsonRpcClient<FailoverHttpTransport> {
        &self.provider
    }

    async fn account(&self) -> SettlementResult<&OperatorAccount> {
        self.account
            .get_or_try_init(|| async {
                let chain_id =
                    self.provider.chain_id().await.map_err(|e| self.provider_error(e))?;
                let signer =
                    LocalWallet::from(SigningKey::from_secret_scalar(self.config.private_key));
                Ok(SingleOwnerAccount::new(
                    self.provider.clone(),
                    signer,
                    self.config.account_address,
                    chain_id,
                    ExecutionEncoding::New,
                ))
            })
            .await
    }

    /// The core contract's `get_state()` at the latest block.
    pub async fn core_contract_state(&self) -> SettlementResult<CoreContractState> {
        let out = self
            .provider
            .call(
                FunctionCall {
                    contract_address: self.config.core_contract_address,
                    entry_point_selector: selector("get_state"),
                    calldata: vec![],
                },
                BlockId::Tag(BlockTag::Latest),
            )
            .await
            .map_err(|e| self.provider_error(e))?;
        match out[..] {
            [state_root, block_number, block_hash] => {
                Ok(CoreContractState { state_root, block_number, block_hash })
            }
            _ => Err(SettlementError::Rpc(format!(
                "get_state returned {} felts, expected 3 (is {:#x} the core contract?)",
                out.len(),
                self.config.core_contract_address
            ))),
        }
    }

    pub(crate) fn provider_error(&self, e: ProviderError) -> SettlementError {
        provider_error(&self.config.rpc_url, e)
    }

    fn account_error<S: fmt::Display>(&self, e: AccountError<S>) -> SettlementError {
        match e {
            AccountError::Provider(e) => self.provider_error(e),
            AccountError::Signing(e) => SettlementError::Signer(e.to_string()),
            e @ (AccountError::ClassHashCalculation(_) | AccountError::FeeOutOfRange) => {
                SettlementError::Rpc(scrub(&self.config.rpc_url, &e.to_string()))
            }
        }
    }
}

fn selector(name: &str) -> Felt {
    // Only called with this crate's constant ASCII entry point names, which always encode.
    get_selector_from_name(name).expect("an ASCII entry point name")
}

fn parse_tx_hash(tx_hash: &str) -> SettlementResult<Felt> {
    Felt::from_hex(tx_hash)
        .map_err(|_| SettlementError::InvalidInput(format!("{tx_hash} is not a transaction hash")))
}

/// A provider error as a settlement error: contract failures are `Reverted` (with the panic
/// reason), everything else is a retryable `Rpc` with the endpoint removed from the message.
fn provider_error(url: &Url, e: ProviderError) -> SettlementError {
    match e {
        ProviderError::StarknetError(StarknetError::TransactionExecutionError(data)) => {
            SettlementError::Reverted {
                tx_hash: None,
                reason: describe_execution_error(&data.execution_error),
            }
        }
        ProviderError::StarknetError(StarknetError::ContractError(data)) => {
            SettlementError::Reverted {
                tx_hash: None,
                reason: describe_execution_error(&data.revert_error),
            }
        }
        ProviderError::StarknetError(StarknetError::ValidationFailure(reason)) => {
            SettlementError::Reverted {
                tx_hash: None,
                reason: format!("validation failed: {reason}"),
            }
        }
        e => SettlementError::Rpc(scrub(url, &e.to_string())),
    }
}

/// A contract execution error as text: the innermost call frame (the contract that failed),
/// then the node's message, with every short string in it decoded (`0x77726f6e67…` →
/// `'wrong…'`), so the contract's panic reason is readable whichever way the node formats it.
pub fn describe_execution_error(e: &ContractExecutionError) -> String {
    let mut frame = None;
    let mut cur = e;
    loop {
        match cur {
            ContractExecutionError::Nested(inner) => {
                frame =
                    Some(format!("{:#x} (selector {:#x})", inner.contract_address, inner.selector));
                cur = &inner.error;
            }
            ContractExecutionError::Message(m) => {
                let mut out = frame.map(|f| format!("in {f}: ")).unwrap_or_default();
                out.push_str(m.trim());
                let decoded = decoded_short_strings(m);
                if !decoded.is_empty() {
                    let quoted: Vec<String> = decoded.iter().map(|d| format!("'{d}'")).collect();
                    out.push_str(&format!(" [{}]", quoted.join(", ")));
                }
                return out;
            }
        }
    }
}

/// The `0x…` words of `msg` that are printable ASCII short strings (Cairo panic reasons), not
/// already quoted in `msg`.
fn decoded_short_strings(msg: &str) -> Vec<String> {
    let mut found = Vec::new();
    for token in msg.split(|c: char| !c.is_ascii_hexdigit() && c != 'x') {
        let Some(hex) = token.strip_prefix("0x") else { continue };
        if hex.is_empty() || hex.len() > 62 {
            continue;
        }
        let padded = if hex.len() % 2 == 1 { format!("0{hex}") } else { hex.to_owned() };
        let bytes: Option<Vec<u8>> = (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).ok())
            .collect();
        let Some(bytes) = bytes else { continue };
        if bytes.len() < 3 || !bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !msg.contains(&text) && !found.contains(&text) {
            found.push(text);
        }
    }
    found
}

/// `msg` without the endpoint (which may carry an API key): the URL and its authority are
/// replaced by a placeholder.
fn scrub(url: &Url, msg: &str) -> String {
    let full = url.as_str();
    let mut out = msg.replace(full, "<rpc-url>").replace(full.trim_end_matches('/'), "<rpc-url>");
    if let Some(host) = url.host_str() {
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        out = out.replace(&authority, "<rpc-host>");
    }
    out
}

#[async_trait]
impl SettlementClient for StarknetSettlementClient {
    async fn update_state_calldata(
        &self,
        snos_output: Vec<Word>,
        program_output: Vec<Word>,
        _onchain_data_hash: Word,
        _onchain_data_size: Word,
    ) -> SettlementResult<String> {
        let calldata = update_state_calldata(&snos_output, &program_output)?;
        let new_block = Felt::from_bytes_be(&snos_output[SNOS_NEW_BLOCK_NUMBER]);
        let call = Call {
            to: self.config.core_contract_address,
            selector: selector("update_state"),
            calldata,
        };
        let account = self.account().await?;
        let sent =
            account.execute_v3(vec![call]).send().await.map_err(|e| self.account_error(e))?;
        let tx_hash = format!("{:#x}", sent.transaction_hash);
        tracing::info!(target: "orch::settlement", %tx_hash, new_block = %new_block, snos_felts = snos_output.len(), program_felts = program_output.len(), "State update sent to Starknet");
        Ok(tx_hash)
    }

    async fn verify_tx_inclusion(
        &self,
        tx_hash: &str,
    ) -> SettlementResult<SettlementVerificationStatus> {
        let hash = parse_tx_hash(tx_hash)?;
        match self.provider.get_transaction_receipt(hash).await {
            Ok(r) => Ok(match r.receipt.execution_result() {
                ExecutionResult::Reverted { reason } => {
                    SettlementVerificationStatus::Rejected(reason.clone())
                }
                ExecutionResult::Succeeded
                    if r.block.is_pre_confirmed()
                        || *r.receipt.finality_status()
                            == TransactionFinalityStatus::PreConfirmed =>
                {
                    SettlementVerificationStatus::Pending
                }
                ExecutionResult::Succeeded => {
                    // State updates are invokes; the fee of anything else is not ours to count.
                    let fee = match &r.receipt {
                        TransactionReceipt::Invoke(invoke) => {
                            u128::try_from(invoke.actual_fee.amount).unwrap_or(u128::MAX)
                        }
                        _ => 0,
                    };
                    let mut book = self.fee_book();
                    if book.counted.insert(hash) {
                        book.metrics.fees_paid_wei = book.metrics.fees_paid_wei.saturating_add(fee);
                        book.metrics.updates_confirmed += 1;
                    }
                    SettlementVerificationStatus::Verified
                }
            }),
            Err(ProviderError::StarknetError(StarknetError::TransactionHashNotFound)) => {
                // No receipt yet: still in the mempool, or unknown.
                match self.provider.get_transaction_status(hash).await {
                    Ok(TransactionStatus::Received | TransactionStatus::Candidate) => {
                        Ok(SettlementVerificationStatus::Pending)
                    }
                    Ok(status) => Err(SettlementError::Rpc(format!(
                        "{tx_hash} has status {status:?} but no receipt"
                    ))),
                    Err(ProviderError::StarknetError(StarknetError::TransactionHashNotFound)) => {
                        Ok(SettlementVerificationStatus::Rejected(format!(
                            "{tx_hash} is unknown to the node"
                        )))
                    }
                    Err(e) => Err(self.provider_error(e)),
                }
            }
            Err(e) => Err(self.provider_error(e)),
        }
    }

    async fn wait_for_tx_finality(&self, tx_hash: &str) -> SettlementResult<Option<u64>> {
        let hash = parse_tx_hash(tx_hash)?;
        let polls = self.config.finality_polls.max(1);
        for poll in 1..=polls {
            match self.provider.get_transaction_receipt(hash).await {
                Ok(r) => {
                    if let ReceiptBlock::Block { block_number, .. } = r.block {
                        if *r.receipt.finality_status() != TransactionFinalityStatus::PreConfirmed {
                            return Ok(Some(block_number));
                        }
                    }
                }
                Err(ProviderError::StarknetError(StarknetError::TransactionHashNotFound)) => {}
                Err(e) => return Err(self.provider_error(e)),
            }
            if poll < polls {
                tokio::time::sleep(self.config.finality_retry_wait).await;
            }
        }
        tracing::warn!(target: "orch::settlement", %tx_hash, polls, "State update not in an accepted block after every finality poll");
        Ok(None)
    }

    async fn get_last_settled_block(&self) -> SettlementResult<Option<u64>> {
        settled_block(self.core_contract_state().await?.block_number)
    }

    async fn settled_state_updates(
        &self,
        from_block: u64,
    ) -> SettlementResult<Vec<SettledStateUpdate>> {
        self.settled_state_updates_paged(from_block, crate::history::EVENT_PAGE_BLOCKS).await
    }

    async fn get_nonce(&self) -> SettlementResult<u64> {
        let nonce = self
            .provider
            .get_nonce(BlockId::Tag(BlockTag::PreConfirmed), self.config.account_address)
            .await
            .map_err(|e| self.provider_error(e))?;
        u64::try_from(nonce)
            .map_err(|_| SettlementError::Rpc(format!("account nonce {nonce:#x} is not a u64")))
    }

    fn metrics(&self) -> SettlementMetrics {
        self.fee_book().metrics.clone()
    }

    async fn refresh_metrics(&self) -> SettlementResult<SettlementMetrics> {
        let balance = self.signer_balance().await?;
        let mut book = self.fee_book();
        book.metrics.signer_balance_wei = Some(balance);
        Ok(book.metrics.clone())
    }

    fn layer_name(&self) -> &'static str {
        "starknet"
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_settlement_client_interface::Retryable;
    use starknet::core::types::InnerContractExecutionError;

    use super::*;

    #[test]
    fn scrub_removes_the_endpoint() {
        let url: Url = "https://node.example.com:8443/rpc/v0_9/SECRETKEY".parse().unwrap();
        let msg = "error sending request for url (https://node.example.com:8443/rpc/v0_9/SECRETKEY): connect to node.example.com:8443 failed";
        let out = scrub(&url, msg);
        assert!(!out.contains("SECRETKEY"), "{out}");
        assert!(!out.contains("node.example.com:8443"), "{out}");
        assert!(out.contains("<rpc-url>"), "{out}");
    }

    #[test]
    fn nested_execution_errors_show_frames_and_the_decoded_reason() {
        // 'wrong prev block number' as a felt, the way a node may print a Cairo panic.
        let reason = "0x77726f6e67207072657620626c6f636b206e756d626572";
        let e = ContractExecutionError::Nested(InnerContractExecutionError {
            contract_address: Felt::from(0xacc_u64),
            class_hash: Felt::ONE,
            selector: Felt::TWO,
            error: ContractExecutionError::Message(format!(
                "Execution failed. Failure reason: {reason}."
            ))
            .into(),
        });
        let text = describe_execution_error(&e);
        assert!(text.starts_with("in 0xacc (selector 0x2): Execution failed"), "{text}");
        assert!(text.ends_with(". ['wrong prev block number']"), "{text}");
    }

    #[test]
    fn an_already_quoted_reason_is_not_repeated() {
        let m = "Failure reason: 0x66616374206e6f742072656769737465726564 ('fact not registered').";
        assert_eq!(decoded_short_strings(m), Vec::<String>::new());
        // Too short or not printable: left alone.
        assert_eq!(decoded_short_strings("0x616263 and 0x12 and 0x0102ff"), vec!["abc".to_owned()]);
    }

    #[test]
    fn execution_failures_are_reverted_and_transport_failures_retryable() {
        let url: Url = "http://127.0.0.1:9/".parse().unwrap();
        let reverted = provider_error(
            &url,
            ProviderError::StarknetError(StarknetError::ValidationFailure("bad sig".into())),
        );
        assert!(matches!(reverted, SettlementError::Reverted { tx_hash: None, .. }));
        assert!(!reverted.is_retryable());
        let limited = provider_error(&url, ProviderError::RateLimited);
        assert!(limited.is_retryable());
        let nonce = provider_error(
            &url,
            ProviderError::StarknetError(StarknetError::InvalidTransactionNonce("old".into())),
        );
        assert!(nonce.is_retryable(), "{nonce}");
    }

    #[test]
    fn config_debug_hides_the_key_and_the_url_path() {
        let config = StarknetSettlementConfig::new(
            "https://node.example.com/v0_9/SECRETKEY".parse().unwrap(),
            Felt::from(0x1234_u64),
            Felt::from_hex_unchecked("0xdeadbeefcafe"),
            Felt::from(0x5678_u64),
        );
        let shown = format!("{:?}", StarknetSettlementClient::new(config));
        assert!(!shown.contains("SECRETKEY") && !shown.contains("deadbeefcafe"), "{shown}");
        assert!(shown.contains("0x1234") && shown.contains("node.example.com"), "{shown}");
    }

    #[test]
    fn tx_hashes_must_be_hex() {
        assert!(matches!(parse_tx_hash("nope"), Err(SettlementError::InvalidInput(_))));
        assert_eq!(parse_tx_hash("0x1f").unwrap(), Felt::from(31u8));
    }
}
