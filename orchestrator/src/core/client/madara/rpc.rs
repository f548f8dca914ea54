//! [`MadaraClient`] over JSON-RPC (starknet-rs `JsonRpcClient<HttpTransport>`) plus plain HTTP
//! for Madara's feeder-gateway extras.
//!
//! - Single calls go through starknet-rs; their errors are classified into [`MadaraError`]
//!   (block not found → wait, transport → retried with backoff, JSON-RPC errors → not).
//! - State reads for the DA pipeline are sent as JSON-RPC batches (`starknet_getStorageAt`,
//!   `starknet_getClassHashAt`, `starknet_getNonce`; [`MadaraRpcConfig::batch_size`] calls per
//!   request, [`MadaraRpcConfig::batch_concurrency`] requests in flight) so that one missing
//!   contract answers zero instead of failing the whole batch. A node that rejects batches is
//!   asked one call at a time from then on.
//! - `/feeder_gateway/get_block_bouncer_weights?blockNumber=N` and
//!   `/feeder_gateway/get_contract_addresses`: a node without them (404/405, e.g.
//!   starknet-devnet) gets the configured defaults, logged once.

use std::{
    fmt,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use starknet::{
    core::types::{
        BlockId, Felt, MaybePreConfirmedBlockWithTxHashes, MaybePreConfirmedStateUpdate,
        StarknetError, StateUpdate,
    },
    providers::{
        jsonrpc::{HttpTransport, HttpTransportError, JsonRpcClientError},
        JsonRpcClient, Provider, ProviderError,
    },
};
use url::Url;

use super::{BlockInfo, ContractAddresses, MadaraClient, MadaraError, MadaraResult, RetryPolicy};
use crate::{config::MadaraParams, types::batch::BouncerWeights};

/// JSON-RPC code of `CONTRACT_NOT_FOUND`.
const CONTRACT_NOT_FOUND: i64 = 20;
/// JSON-RPC code of `BLOCK_NOT_FOUND`.
const BLOCK_NOT_FOUND: i64 = 24;

/// Settings of [`MadaraRpcClient`].
#[derive(Debug, Clone)]
pub struct MadaraRpcConfig {
    /// JSON-RPC endpoint.
    pub rpc_url: Url,
    /// Feeder gateway base URL (paths `/feeder_gateway/...` are appended); the RPC URL's origin
    /// when `None`.
    pub feeder_gateway_url: Option<Url>,
    /// Backoff for transport errors.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Weights answered when the node has no bouncer-weights endpoint.
    pub default_bouncer_weights: BouncerWeights,
    /// Addresses answered when the node has no contract-addresses endpoint.
    pub default_contract_addresses: ContractAddresses,
    /// Calls per JSON-RPC batch.
    pub batch_size: usize,
    /// Batches in flight at once.
    pub batch_concurrency: usize,
}

impl MadaraRpcConfig {
    /// Defaults for `rpc_url`: 4 attempts (0.5 s doubling, at most 8 s apart), 30 s per request,
    /// zero default weights, batches of 100 calls, 10 in flight (as the reference).
    pub fn new(rpc_url: Url) -> Self {
        Self {
            rpc_url,
            feeder_gateway_url: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            default_bouncer_weights: BouncerWeights::ZERO,
            default_contract_addresses: ContractAddresses::default(),
            batch_size: 100,
            batch_concurrency: 10,
        }
    }

    /// From the `run` parameters (`--madara-rpc-url`, `--madara-feeder-gateway-url`).
    pub fn from_params(params: &MadaraParams) -> Self {
        Self {
            feeder_gateway_url: Some(params.feeder_gateway_url.clone()),
            ..Self::new(params.rpc_url.clone())
        }
    }
}

/// A Madara node over JSON-RPC and the feeder gateway.
pub struct MadaraRpcClient {
    provider: JsonRpcClient<HttpTransport>,
    http: reqwest::Client,
    config: MadaraRpcConfig,
    weights_fallback_logged: AtomicBool,
    addresses_fallback_logged: AtomicBool,
    batches_unsupported: AtomicBool,
}

// By hand: URLs may carry API keys, so only the host is shown.
impl fmt::Debug for MadaraRpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MadaraRpcClient")
            .field("rpc_host", &self.config.rpc_url.host_str())
            .field("retry", &self.config.retry)
            .finish_non_exhaustive()
    }
}

impl MadaraRpcClient {
    /// A client for `config`.
    ///
    /// # Errors
    /// `Malformed` when the HTTP client cannot be built (TLS backend).
    pub fn new(config: MadaraRpcConfig) -> MadaraResult<Self> {
        let http =
            reqwest::Client::builder().timeout(config.request_timeout).build().map_err(|e| {
                MadaraError::Malformed { what: "HTTP client".into(), reason: e.to_string() }
            })?;
        let provider = JsonRpcClient::new(HttpTransport::new_with_client(
            config.rpc_url.clone(),
            http.clone(),
        ));
        Ok(Self {
            provider,
            http,
            config,
            weights_fallback_logged: AtomicBool::new(false),
            addresses_fallback_logged: AtomicBool::new(false),
            batches_unsupported: AtomicBool::new(false),
        })
    }

    async fn call<T, Fut>(
        &self,
        what: &str,
        block: Option<u64>,
        f: impl Fn() -> Fut + Send + Sync,
    ) -> MadaraResult<T>
    where
        Fut: std::future::Future<Output = Result<T, ProviderError>> + Send,
        T: Send,
    {
        let timeout = self.config.request_timeout;
        self.config
            .retry
            .run(what, || async {
                match tokio::time::timeout(timeout, f()).await {
                    Ok(r) => r.map_err(|e| classify(what, block, e)),
                    Err(_) => Err(MadaraError::Transport {
                        what: what.into(),
                        reason: format!("timed out after {timeout:?}"),
                    }),
                }
            })
            .await
    }

    fn feeder_url(&self, path_and_query: &str) -> MadaraResult<Url> {
        let base = self.config.feeder_gateway_url.as_ref().unwrap_or(&self.config.rpc_url);
        base.join(path_and_query).map_err(|e| MadaraError::Malformed {
            what: "feeder gateway URL".into(),
            reason: e.to_string(),
        })
    }

    /// GET a feeder-gateway path; `Ok(None)` when the node does not serve it.
    async fn feeder_get(
        &self,
        what: &str,
        path_and_query: &str,
        block: Option<u64>,
    ) -> MadaraResult<Option<Value>> {
        let url = self.feeder_url(path_and_query)?;
        self.config
            .retry
            .run(what, || async {
                let response =
                    self.http.get(url.clone()).send().await.map_err(|e| transport(what, e))?;
                let status = response.status();
                let body = response.text().await.map_err(|e| transport(what, e))?;
                if status.is_success() {
                    return serde_json::from_str(&body).map(Some).map_err(|e| {
                        MadaraError::Malformed { what: what.into(), reason: e.to_string() }
                    });
                }
                if body.contains("BLOCK_NOT_FOUND") {
                    return Err(MadaraError::BlockNotFound { block: block.unwrap_or_default() });
                }
                match status.as_u16() {
                    404 | 405 | 501 => Ok(None),
                    429 => Err(MadaraError::RateLimited(what.into())),
                    s if s >= 500 => Err(MadaraError::Transport {
                        what: what.into(),
                        reason: format!("HTTP {status}"),
                    }),
                    _ => Err(MadaraError::Rpc {
                        what: what.into(),
                        code: i64::from(status.as_u16()),
                        message: truncate(&body),
                    }),
                }
            })
            .await
    }

    /// One JSON-RPC method over many parameter sets, batched; one result per set, in order.
    /// `method` once per entry of `params` at `block` (see [`Self::batch`]), each answer read
    /// by `parse`, `missing` where the node has nothing.
    async fn batched<T: Clone>(
        &self,
        method: &'static str,
        block: u64,
        params: Vec<Value>,
        missing: T,
        parse: impl Fn(&Value) -> MadaraResult<T>,
    ) -> MadaraResult<Vec<T>> {
        self.batch(method, params)
            .await?
            .into_iter()
            .map(|r| batched_value(method, block, r, missing.clone(), &parse))
            .collect()
    }

    async fn batch(
        &self,
        method: &'static str,
        params: Vec<Value>,
    ) -> MadaraResult<Vec<Result<Value, (i64, String)>>> {
        let size = self.config.batch_size.max(1);
        let chunks: Vec<Vec<Value>> = params.chunks(size).map(<[Value]>::to_vec).collect();
        let results: Vec<Vec<Result<Value, (i64, String)>>> = stream::iter(chunks)
            .map(|chunk| async move { self.batch_chunk(method, chunk).await })
            .buffered(self.config.batch_concurrency.max(1))
            .try_collect()
            .await?;
        Ok(results.into_iter().flatten().collect())
    }

    async fn batch_chunk(
        &self,
        method: &'static str,
        chunk: Vec<Value>,
    ) -> MadaraResult<Vec<Result<Value, (i64, String)>>> {
        if !self.batches_unsupported.load(Ordering::Relaxed) {
            let body: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(id, p)| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": p}))
                .collect();
            let answer = self.post(method, &Value::Array(body)).await?;
            if let Value::Array(items) = answer {
                let mut out: Vec<Option<Result<Value, (i64, String)>>> = vec![None; chunk.len()];
                for item in items {
                    let id = item
                        .get("id")
                        .and_then(Value::as_u64)
                        .and_then(|i| usize::try_from(i).ok());
                    let Some(slot) = id.and_then(|i| out.get_mut(i)) else {
                        return Err(MadaraError::Malformed {
                            what: method.into(),
                            reason: "batch answer with an unknown id".into(),
                        });
                    };
                    *slot = Some(rpc_result(method, item)?);
                }
                return out
                    .into_iter()
                    .map(|r| {
                        r.ok_or_else(|| MadaraError::Malformed {
                            what: method.into(),
                            reason: "batch answer misses an id".into(),
                        })
                    })
                    .collect();
            }
            tracing::warn!(target: "orch::madara", method, "The node does not answer JSON-RPC batches; sending single calls");
            self.batches_unsupported.store(true, Ordering::Relaxed);
        }
        let mut out = Vec::with_capacity(chunk.len());
        for p in chunk {
            let answer = self
                .post(method, &json!({"jsonrpc": "2.0", "id": 0, "method": method, "params": p}))
                .await?;
            out.push(rpc_result(method, answer)?);
        }
        Ok(out)
    }

    async fn post(&self, what: &str, body: &Value) -> MadaraResult<Value> {
        self.config
            .retry
            .run(what, || async {
                let response = self
                    .http
                    .post(self.config.rpc_url.clone())
                    .json(body)
                    .send()
                    .await
                    .map_err(|e| transport(what, e))?;
                let status = response.status();
                if status.as_u16() == 429 {
                    return Err(MadaraError::RateLimited(what.into()));
                }
                if status.is_server_error() {
                    return Err(MadaraError::Transport {
                        what: what.into(),
                        reason: format!("HTTP {status}"),
                    });
                }
                let text = response.text().await.map_err(|e| transport(what, e))?;
                serde_json::from_str(&text).map_err(|e| MadaraError::Malformed {
                    what: what.into(),
                    reason: format!("HTTP {status}, not JSON ({e}): {}", truncate(&text)),
                })
            })
            .await
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

fn transport(what: &str, e: reqwest::Error) -> MadaraError {
    MadaraError::Transport { what: what.into(), reason: e.to_string() }
}

/// The `result` of one JSON-RPC answer, or its error code and message.
fn rpc_result(what: &str, answer: Value) -> MadaraResult<Result<Value, (i64, String)>> {
    if let Some(err) = answer.get("error") {
        let code = err.get("code").and_then(Value::as_i64).unwrap_or_default();
        let message = err.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
        return Ok(Err((code, message)));
    }
    answer.get("result").cloned().map(Ok).ok_or_else(|| MadaraError::Malformed {
        what: what.into(),
        reason: format!("no result: {}", truncate(&answer.to_string())),
    })
}

fn parse_felt(what: &str, v: &Value) -> MadaraResult<Felt> {
    v.as_str().and_then(|s| Felt::from_hex(s).ok()).ok_or_else(|| MadaraError::Malformed {
        what: what.into(),
        reason: format!("not a felt: {v}"),
    })
}

fn block_param(block: u64) -> Value {
    json!({ "block_number": block })
}

fn felt_hex(f: &Felt) -> String {
    format!("{f:#x}")
}

/// Maps one batched answer: `CONTRACT_NOT_FOUND` → `missing`, `BLOCK_NOT_FOUND` → wait.
/// The parameters of a per-contract call at `block`, one per contract.
fn contract_params(block: u64, contracts: &[Felt]) -> Vec<Value> {
    contracts
        .iter()
        .map(|c| json!({"block_id": block_param(block), "contract_address": felt_hex(c)}))
        .collect()
}

fn batched_value<T>(
    what: &str,
    block: u64,
    r: Result<Value, (i64, String)>,
    missing: T,
    parse: impl Fn(&Value) -> MadaraResult<T>,
) -> MadaraResult<T> {
    match r {
        Ok(v) => parse(&v),
        Err((CONTRACT_NOT_FOUND, _)) => Ok(missing),
        Err((BLOCK_NOT_FOUND, _)) => Err(MadaraError::BlockNotFound { block }),
        Err((code, message)) => Err(MadaraError::Rpc { what: what.into(), code, message }),
    }
}

/// Turns a starknet-rs error into a [`MadaraError`].
fn classify(what: &str, block: Option<u64>, e: ProviderError) -> MadaraError {
    let what = what.to_owned();
    match e {
        ProviderError::StarknetError(StarknetError::BlockNotFound) => {
            MadaraError::BlockNotFound { block: block.unwrap_or_default() }
        }
        ProviderError::StarknetError(se) => {
            MadaraError::Rpc { what, code: i64::from(se.code()), message: se.to_string() }
        }
        ProviderError::RateLimited => MadaraError::RateLimited(what),
        ProviderError::ArrayLengthMismatch => {
            MadaraError::Malformed { what, reason: "array length mismatch".into() }
        }
        ProviderError::Other(inner) => {
            match inner.as_any().downcast_ref::<JsonRpcClientError<HttpTransportError>>() {
                Some(JsonRpcClientError::JsonError(e)) => {
                    MadaraError::Malformed { what, reason: e.to_string() }
                }
                // A body that is not JSON-RPC at all is most often a proxy's error page.
                Some(JsonRpcClientError::TransportError(HttpTransportError::Json(e))) => {
                    MadaraError::Transport { what, reason: format!("not a JSON-RPC answer: {e}") }
                }
                Some(JsonRpcClientError::TransportError(e)) => {
                    MadaraError::Transport { what, reason: e.to_string() }
                }
                Some(JsonRpcClientError::JsonRpcError(e)) if e.code == BLOCK_NOT_FOUND => {
                    MadaraError::BlockNotFound { block: block.unwrap_or_default() }
                }
                Some(JsonRpcClientError::JsonRpcError(e)) => {
                    MadaraError::Rpc { what, code: e.code, message: e.message.clone() }
                }
                None => MadaraError::Transport { what, reason: inner.to_string() },
            }
        }
    }
}

/// Reads a number that may be a JSON number, a decimal string or a `0x` hex string.
fn weight(v: Option<&Value>) -> Result<u64, String> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("{n} is not a u64")),
        Some(Value::String(s)) => match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).map_err(|e| format!("{s}: {e}")),
            None => s.parse().map_err(|e| format!("{s}: {e}")),
        },
        // Some serialisations wrap gas amounts: {"0": n} / [n].
        Some(Value::Array(a)) if a.len() == 1 => weight(a.first()),
        Some(other) => Err(format!("{other} is not a number")),
    }
}

/// Parses Madara's bouncer weights (blockifier `BouncerWeights`); missing fields are zero.
pub fn parse_bouncer_weights(v: &Value) -> Result<BouncerWeights, String> {
    let f = |name: &str| weight(v.get(name)).map_err(|e| format!("{name}: {e}"));
    if !v.is_object() {
        return Err(format!("expected an object, got {v}"));
    }
    Ok(BouncerWeights {
        l1_gas: f("l1_gas")?,
        message_segment_length: f("message_segment_length")?,
        n_events: f("n_events")?,
        state_diff_size: f("state_diff_size")?,
        sierra_gas: f("sierra_gas")?,
        n_txs: f("n_txs")?,
        proving_gas: f("proving_gas")?,
        receipt_l2_gas: f("receipt_l2_gas")?,
    })
}

#[async_trait]
impl MadaraClient for MadaraRpcClient {
    async fn block_number(&self) -> MadaraResult<u64> {
        self.call("starknet_blockNumber", None, || self.provider.block_number()).await
    }

    async fn chain_id(&self) -> MadaraResult<Felt> {
        self.call("starknet_chainId", None, || self.provider.chain_id()).await
    }

    async fn block(&self, block: u64) -> MadaraResult<BlockInfo> {
        let id = BlockId::Number(block);
        match self
            .call("starknet_getBlockWithTxHashes", Some(block), || {
                self.provider.get_block_with_tx_hashes(id)
            })
            .await?
        {
            MaybePreConfirmedBlockWithTxHashes::Block(b) => {
                if b.block_number != block {
                    return Err(MadaraError::Malformed {
                        what: "starknet_getBlockWithTxHashes".into(),
                        reason: format!("asked for block {block}, got {}", b.block_number),
                    });
                }
                Ok(BlockInfo {
                    number: b.block_number,
                    hash: b.block_hash,
                    parent_hash: b.parent_hash,
                    starknet_version: b.starknet_version,
                    timestamp: b.timestamp,
                })
            }
            MaybePreConfirmedBlockWithTxHashes::PreConfirmedBlock(_) => {
                Err(MadaraError::Pending { block })
            }
        }
    }

    async fn state_update(&self, block: u64) -> MadaraResult<StateUpdate> {
        let id = BlockId::Number(block);
        match self
            .call("starknet_getStateUpdate", Some(block), || self.provider.get_state_update(id))
            .await?
        {
            MaybePreConfirmedStateUpdate::Update(u) => Ok(u),
            MaybePreConfirmedStateUpdate::PreConfirmedUpdate(_) => {
                Err(MadaraError::Pending { block })
            }
        }
    }

    async fn storage_at(&self, block: u64, queries: &[(Felt, Felt)]) -> MadaraResult<Vec<Felt>> {
        const M: &str = "starknet_getStorageAt";
        let params = queries
            .iter()
            .map(|(c, k)| json!({"contract_address": felt_hex(c), "key": felt_hex(k), "block_id": block_param(block)}))
            .collect();
        self.batched(M, block, params, Felt::ZERO, |v| parse_felt(M, v)).await
    }

    async fn class_hash_at(
        &self,
        block: u64,
        contracts: &[Felt],
    ) -> MadaraResult<Vec<Option<Felt>>> {
        const M: &str = "starknet_getClassHashAt";
        let params = contract_params(block, contracts);
        self.batched(M, block, params, None, |v| parse_felt(M, v).map(Some)).await
    }

    async fn nonce_at(&self, block: u64, contracts: &[Felt]) -> MadaraResult<Vec<Felt>> {
        const M: &str = "starknet_getNonce";
        let params = contract_params(block, contracts);
        self.batched(M, block, params, Felt::ZERO, |v| parse_felt(M, v)).await
    }

    async fn bouncer_weights(&self, block: u64) -> MadaraResult<BouncerWeights> {
        const WHAT: &str = "get_block_bouncer_weights";
        let path = format!("feeder_gateway/get_block_bouncer_weights?blockNumber={block}");
        match self.feeder_get(WHAT, &path, Some(block)).await? {
            Some(v) => parse_bouncer_weights(&v)
                .map_err(|reason| MadaraError::Malformed { what: WHAT.into(), reason }),
            None => {
                if !self.weights_fallback_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "orch::madara",
                        defaults = ?self.config.default_bouncer_weights,
                        "The node has no /feeder_gateway/get_block_bouncer_weights; using the default weights for every block"
                    );
                }
                Ok(self.config.default_bouncer_weights)
            }
        }
    }

    async fn contract_addresses(&self) -> MadaraResult<ContractAddresses> {
        const WHAT: &str = "get_contract_addresses";
        match self.feeder_get(WHAT, "feeder_gateway/get_contract_addresses", None).await? {
            Some(v) => serde_json::from_value(v)
                .map_err(|e| MadaraError::Malformed { what: WHAT.into(), reason: e.to_string() }),
            None => {
                if !self.addresses_fallback_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "orch::madara",
                        "The node has no /feeder_gateway/get_contract_addresses; using the configured addresses"
                    );
                }
                Ok(self.config.default_contract_addresses.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_utils::Retryable;
    use rstest::rstest;

    #[rstest]
    #[case(json!({"l1_gas": 5, "message_segment_length": 7, "n_events": 1, "state_diff_size": 3, "sierra_gas": 9, "n_txs": 1, "proving_gas": 11}), (5, 7, 11, 0))]
    #[case(json!({"l1_gas": "0x10", "proving_gas": "12", "receipt_l2_gas": 4}), (16, 0, 12, 4))]
    #[case(json!({"l1_gas": [3], "proving_gas": 0}), (3, 0, 0, 0))]
    fn parses_weights(#[case] v: Value, #[case] want: (u64, u64, u64, u64)) {
        let w = parse_bouncer_weights(&v).unwrap();
        assert_eq!((w.l1_gas, w.message_segment_length, w.proving_gas, w.receipt_l2_gas), want);
    }

    #[rstest]
    #[case(json!([]))]
    #[case(json!({"l1_gas": -1}))]
    #[case(json!({"l1_gas": "zz"}))]
    fn rejects_bad_weights(#[case] v: Value) {
        assert!(parse_bouncer_weights(&v).is_err());
    }

    #[tokio::test]
    async fn closed_port_is_a_transport_error() {
        // Bind then drop: nothing listens on the port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut config = MadaraRpcConfig::new(format!("http://127.0.0.1:{port}/").parse().unwrap());
        config.retry = RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        let client = MadaraRpcClient::new(config).unwrap();
        let e = client.block_number().await.unwrap_err();
        assert!(matches!(e, MadaraError::Transport { .. }), "{e:?}");
        assert!(e.is_retryable() && !e.is_wait());
        let e = client.storage_at(1, &[(Felt::ONE, Felt::TWO)]).await.unwrap_err();
        assert!(matches!(e, MadaraError::Transport { .. }), "{e:?}");
        let e = client.bouncer_weights(1).await.unwrap_err();
        assert!(matches!(e, MadaraError::Transport { .. }), "{e:?}");
    }
}
