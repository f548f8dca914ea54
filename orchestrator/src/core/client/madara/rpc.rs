//! [`MadaraClient`] over JSON-RPC (answers read into starknet-rs types) plus plain HTTP for
//! Madara's feeder-gateway extras.
//!
//! - Every request is one upstream read (`--upstream-read-max-attempts`,
//!   `--upstream-read-timeout-secs`): no answer (connect error, reset, timeout), HTTP 429, HTTP
//!   5xx and a body that is not JSON-RPC at all (a proxy's page, a truncated answer) are retried
//!   with capped exponential backoff and jitter ([`RetryPolicy`]); the read as a whole, attempts
//!   and waits included, ends after [`MadaraRpcConfig::request_timeout`]. A JSON-RPC error is
//!   the node's answer and is returned at once: `BLOCK_NOT_FOUND` → wait for the block, any
//!   other → [`MadaraError::Rpc`].
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
use orchestrator_utils::UpstreamRetry;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use starknet::core::types::{
    Felt, MaybePreConfirmedBlockWithTxHashes, MaybePreConfirmedStateUpdate, StateUpdate,
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
    /// Attempts and backoff for transport errors, 429 and 5xx.
    pub retry: RetryPolicy,
    /// Total time of one read, attempts and waits included (`--upstream-read-timeout-secs`);
    /// each attempt connects within the shorter of this and 5 s.
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
    /// Defaults for `rpc_url`: the upstream defaults (3 attempts, 0.5 s doubling with jitter,
    /// at most 8 s apart, 30 s per read), zero default weights, batches of 100 calls, 10 in
    /// flight (as the reference).
    pub fn new(rpc_url: Url) -> Self {
        let upstream = UpstreamRetry::default();
        Self {
            rpc_url,
            feeder_gateway_url: None,
            retry: RetryPolicy::upstream(&upstream),
            request_timeout: upstream.read_timeout,
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

    /// The same settings with the attempts, backoff and read timeout of `upstream`
    /// (`--upstream-read-max-attempts`, `--upstream-read-timeout-secs`).
    pub fn with_upstream(self, upstream: &UpstreamRetry) -> Self {
        Self {
            retry: RetryPolicy::upstream(upstream),
            request_timeout: upstream.read_timeout,
            ..self
        }
    }
}

/// A Madara node over JSON-RPC and the feeder gateway.
pub struct MadaraRpcClient {
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
            .field("read_timeout", &self.config.request_timeout)
            .finish_non_exhaustive()
    }
}

impl MadaraRpcClient {
    /// A client for `config`.
    ///
    /// # Errors
    /// `Malformed` when the HTTP client cannot be built (TLS backend).
    pub fn new(config: MadaraRpcConfig) -> MadaraResult<Self> {
        let connect = config.request_timeout.min(orchestrator_utils::upstream::CONNECT_TIMEOUT);
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(connect)
            .build()
            .map_err(|e| MadaraError::Malformed {
                what: "HTTP client".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            http,
            config,
            weights_fallback_logged: AtomicBool::new(false),
            addresses_fallback_logged: AtomicBool::new(false),
            batches_unsupported: AtomicBool::new(false),
        })
    }

    /// One upstream read: `op` under the retry policy, all of it within the read timeout.
    async fn read<T, F, Fut>(&self, what: &str, op: F) -> MadaraResult<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = MadaraResult<T>> + Send,
        T: Send,
    {
        let timeout = self.config.request_timeout;
        match tokio::time::timeout(timeout, self.config.retry.run(what, op)).await {
            Ok(result) => {
                if let Err(e) = &result {
                    if e.is_transient() {
                        tracing::warn!(target: "orch::madara", what, attempts = self.config.retry.attempts, error = %e, "Node call failed; giving up for now");
                    }
                }
                result
            }
            Err(_) => {
                tracing::warn!(target: "orch::madara", what, ?timeout, "Node call got no answer within the read timeout; giving up for now");
                Err(MadaraError::Transport {
                    what: what.into(),
                    reason: format!("no answer within {timeout:?} (--upstream-read-timeout-secs)"),
                })
            }
        }
    }

    /// A single JSON-RPC call whose result is read as `T`; `block` names the block of a
    /// `BLOCK_NOT_FOUND` answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        block: Option<u64>,
        params: Value,
    ) -> MadaraResult<T> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer = self.post(method, &body).await?;
        match rpc_result(method, answer)? {
            Ok(result) => serde_json::from_value(result)
                .map_err(|e| MadaraError::Malformed { what: method.into(), reason: e.to_string() }),
            Err((BLOCK_NOT_FOUND, _)) => {
                Err(MadaraError::BlockNotFound { block: block.unwrap_or_default() })
            }
            Err((code, message)) => Err(MadaraError::Rpc { what: method.into(), code, message }),
        }
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
        self.read(what, || async {
            let response =
                self.http.get(url.clone()).send().await.map_err(|e| transport(what, e))?;
            let status = response.status();
            let body = response.text().await.map_err(|e| transport(what, e))?;
            if status.is_success() {
                // A body that is not JSON at all is a proxy's page or a cut answer.
                return serde_json::from_str(&body).map(Some).map_err(|e| MadaraError::Transport {
                    what: what.into(),
                    reason: format!("HTTP {status}, not JSON ({e}): {}", truncate(&body)),
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
                    reason: format!("HTTP {status}: {}", truncate(&body)),
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

    /// POSTs a JSON-RPC request (or batch) as one upstream read; returns the answer, which is
    /// a JSON-RPC answer object or an array of them.
    async fn post(&self, what: &str, body: &Value) -> MadaraResult<Value> {
        self.read(what, || async {
            let response = self
                .http
                .post(self.config.rpc_url.clone())
                .json(body)
                .send()
                .await
                .map_err(|e| transport(what, e))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| transport(what, e))?;
            if status.as_u16() == 429 {
                return Err(MadaraError::RateLimited(what.into()));
            }
            if status.is_server_error() {
                return Err(MadaraError::Transport {
                    what: what.into(),
                    reason: format!("HTTP {status}: {}", truncate(&text)),
                });
            }
            match serde_json::from_str::<Value>(&text) {
                Ok(answer) if is_json_rpc(&answer) => Ok(answer),
                // The answer of a proxy or a cut connection, not of the node: retried.
                Ok(_) | Err(_) if status.is_success() => Err(MadaraError::Transport {
                    what: what.into(),
                    reason: format!("HTTP {status}, not a JSON-RPC answer: {}", truncate(&text)),
                }),
                _ => Err(MadaraError::Rpc {
                    what: what.into(),
                    code: i64::from(status.as_u16()),
                    message: format!("HTTP {status}: {}", truncate(&text)),
                }),
            }
        })
        .await
    }
}

/// Whether `answer` has the shape of a JSON-RPC answer (an object with `result` or `error`) or
/// of a batch of them (an array).
fn is_json_rpc(answer: &Value) -> bool {
    match answer {
        Value::Array(_) => true,
        Value::Object(o) => o.contains_key("result") || o.contains_key("error"),
        _ => false,
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
        self.call("starknet_blockNumber", None, json!([])).await
    }

    async fn chain_id(&self) -> MadaraResult<Felt> {
        self.call("starknet_chainId", None, json!([])).await
    }

    async fn block(&self, block: u64) -> MadaraResult<BlockInfo> {
        let params = json!({ "block_id": block_param(block) });
        match self
            .call::<MaybePreConfirmedBlockWithTxHashes>(
                "starknet_getBlockWithTxHashes",
                Some(block),
                params,
            )
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
        let params = json!({ "block_id": block_param(block) });
        match self
            .call::<MaybePreConfirmedStateUpdate>("starknet_getStateUpdate", Some(block), params)
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

    /// A local node that answers each request with the next scripted `(status, body)` (the last
    /// one once the script is spent) after `delay`, and counts the requests.
    struct Scripted {
        answers: std::sync::Mutex<std::collections::VecDeque<(u16, String)>>,
        last: (u16, String),
        delay: Duration,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl Scripted {
        fn calls(&self) -> usize {
            self.calls.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    async fn scripted(answers: &[(u16, &str)], delay: Duration) -> (std::sync::Arc<Scripted>, Url) {
        let script = std::sync::Arc::new(Scripted {
            answers: std::sync::Mutex::new(
                answers.iter().map(|(s, b)| (*s, (*b).to_owned())).collect(),
            ),
            last: answers.last().map(|(s, b)| (*s, (*b).to_owned())).expect("an answer"),
            delay,
            calls: std::sync::atomic::AtomicUsize::new(0),
        });
        let s = script.clone();
        let app = axum::Router::new().fallback(move || {
            let s = s.clone();
            async move {
                s.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(s.delay).await;
                let (status, body) =
                    s.answers.lock().unwrap().pop_front().unwrap_or_else(|| s.last.clone());
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (script, format!("http://{addr}/").parse().unwrap())
    }

    /// A client of `url` with `attempts` attempts, 1 ms backoff and `timeout` per read.
    fn client(url: Url, attempts: u32, timeout: Duration) -> MadaraRpcClient {
        let upstream = UpstreamRetry::new(attempts, timeout)
            .unwrap()
            .with_backoff(Duration::from_millis(1), Duration::from_millis(5));
        MadaraRpcClient::new(MadaraRpcConfig::new(url).with_upstream(&upstream)).unwrap()
    }

    const OK_42: &str = r#"{"jsonrpc":"2.0","id":1,"result":42}"#;

    #[tokio::test]
    async fn rate_limits_server_errors_and_garbage_are_retried_until_an_answer() {
        let (node, url) = scripted(
            &[(429, "slow down"), (503, "unavailable"), (200, "<html>proxy</html>"), (200, OK_42)],
            Duration::ZERO,
        )
        .await;
        let c = client(url, 4, Duration::from_secs(10));
        assert_eq!(c.block_number().await.unwrap(), 42);
        assert_eq!(node.calls(), 4, "429, 503 and garbage each retried once");
    }

    #[tokio::test]
    async fn the_attempts_are_the_configured_number_then_a_retryable_error() {
        let (node, url) =
            scripted(&[(503, "down"), (503, "down"), (503, "down"), (200, OK_42)], Duration::ZERO)
                .await;
        let c = client(url, 3, Duration::from_secs(10));
        let e = c.block_number().await.unwrap_err();
        assert!(
            matches!(&e, MadaraError::Transport { reason, .. } if reason.contains("503")),
            "{e:?}"
        );
        assert!(e.is_retryable(), "the job level tries again later");
        assert_eq!(node.calls(), 3);
        assert_eq!(c.block_number().await.unwrap(), 42, "the next read starts afresh");
    }

    #[tokio::test]
    async fn json_rpc_errors_are_answers_and_not_retried() {
        let (node, url) = scripted(
            &[(
                200,
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}"#,
            )],
            Duration::ZERO,
        )
        .await;
        let c = client(url, 3, Duration::from_secs(10));
        let e = c.chain_id().await.unwrap_err();
        assert_eq!(
            e,
            MadaraError::Rpc {
                what: "starknet_chainId".into(),
                code: -32601,
                message: "Method not found".into()
            }
        );
        assert!(!e.is_retryable());
        assert_eq!(node.calls(), 1);

        let (node, url) = scripted(
            &[(200, r#"{"jsonrpc":"2.0","id":1,"error":{"code":24,"message":"Block not found"}}"#)],
            Duration::ZERO,
        )
        .await;
        let e = client(url, 3, Duration::from_secs(10)).block(7).await.unwrap_err();
        assert_eq!(e, MadaraError::BlockNotFound { block: 7 });
        assert_eq!(
            node.calls(),
            1,
            "a missing block is waited for by the caller, not retried here"
        );
    }

    #[tokio::test]
    async fn a_result_of_the_wrong_shape_is_malformed_and_not_retried() {
        let (node, url) = scripted(
            &[(200, r#"{"jsonrpc":"2.0","id":1,"result":"not a number"}"#)],
            Duration::ZERO,
        )
        .await;
        let e = client(url, 3, Duration::from_secs(10)).block_number().await.unwrap_err();
        assert!(matches!(e, MadaraError::Malformed { .. }), "{e:?}");
        assert_eq!(node.calls(), 1);
    }

    #[tokio::test]
    async fn the_feeder_gateway_is_retried_the_same_way() {
        let weights = r#"{"l1_gas": 5, "proving_gas": 11}"#;
        let (node, url) =
            scripted(&[(503, "down"), (429, "slow"), (200, weights)], Duration::ZERO).await;
        let w = client(url, 3, Duration::from_secs(10)).bouncer_weights(3).await.unwrap();
        assert_eq!((w.l1_gas, w.proving_gas), (5, 11));
        assert_eq!(node.calls(), 3);

        let (node, url) = scripted(&[(404, "not found")], Duration::ZERO).await;
        let w = client(url, 3, Duration::from_secs(10)).bouncer_weights(3).await.unwrap();
        assert_eq!(w, BouncerWeights::ZERO, "no endpoint: the configured defaults");
        assert_eq!(node.calls(), 1, "a 404 is an answer");
    }

    #[tokio::test]
    async fn batched_reads_are_retried() {
        let (node, url) = scripted(
            &[(502, "bad gateway"), (200, r#"[{"jsonrpc":"2.0","id":0,"result":"0x7"}]"#)],
            Duration::ZERO,
        )
        .await;
        let got = client(url, 3, Duration::from_secs(10))
            .storage_at(1, &[(Felt::ONE, Felt::TWO)])
            .await
            .unwrap();
        assert_eq!(got, vec![Felt::from(7u64)]);
        assert_eq!(node.calls(), 2);
    }

    #[tokio::test]
    async fn a_read_ends_at_its_timeout_whatever_the_attempts_left() {
        // Every answer takes 3 s; the read has 1 s in total, so one attempt and a timeout.
        let (node, url) = scripted(&[(200, OK_42)], Duration::from_secs(3)).await;
        let c = client(url, 3, Duration::from_secs(1));
        let started = std::time::Instant::now();
        let e = c.block_number().await.unwrap_err();
        assert!(matches!(e, MadaraError::Transport { .. }) && e.is_retryable(), "{e:?}");
        assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
        assert!(node.calls() <= 2, "{} attempts", node.calls());
    }
}
