//! The GPS verifier on chain: is a fact registered (`isValid(bytes32)`), and registering one on
//! the `MockGpsVerifier` used with the mock prover.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

/// Addresses and 32-byte words, as the trait uses them.
pub use alloy::primitives::{Address, B256};

use alloy::{
    network::EthereumWallet,
    providers::{DynProvider, PendingTransactionError, Provider, ProviderBuilder, WatchTxError},
    signers::local::PrivateKeySigner,
    sol,
    transports::http::reqwest::Client,
};
use async_trait::async_trait;
use orchestrator_utils::secret::credentials_headers;
use url::Url;

sol! {
    /// The fact registry interface of the GPS verifier; `registerFact` exists only on the mock.
    #[sol(rpc)]
    interface IFactRegistry {
        /// Whether `fact` was registered.
        function isValid(bytes32 fact) external view returns (bool);
        /// Registers `fact` (MockGpsVerifier only; idempotent).
        function registerFact(bytes32 fact) external;
    }
}

/// Why a fact check or registration failed.
#[derive(Debug, thiserror::Error)]
pub enum FactCheckError {
    /// The fact is not 32 bytes of hex.
    #[error("invalid fact {0:?}: expected 32 bytes of hex")]
    InvalidFact(String),
    /// The RPC failed or timed out.
    #[error("RPC error during {operation}: {reason}")]
    Rpc {
        /// What was attempted.
        operation: &'static str,
        /// The RPC error (without the URL, which may carry a key).
        reason: String,
    },
    /// The registration transaction reverted.
    #[error("registerFact({fact}) reverted in {tx_hash}")]
    Reverted {
        /// The fact.
        fact: String,
        /// The transaction.
        tx_hash: String,
    },
    /// Every fee bump was rejected as underpriced, and the fees read again after each new
    /// block were still refused when the patience ran out.
    #[error("registerFact({fact}) stayed underpriced after {attempts} attempts")]
    Underpriced {
        /// The fact.
        fact: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The transaction was mined but the fact is still not valid.
    #[error("fact {0} is not valid after its registration was mined")]
    NotRegistered(String),
    /// Bad configuration (private key).
    #[error("fact registry configuration: {0}")]
    Config(String),
    /// `isValid` returned no data: nothing is deployed at the configured verifier address
    /// (wrong address or wrong chain). Not retryable.
    #[error("no fact registry contract at {0} (isValid returned no data): check the verifier address and the chain")]
    NotAContract(Address),
}

impl FactCheckError {
    /// Whether trying again later may succeed (RPC errors and fee races).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Rpc { .. } | Self::Underpriced { .. })
    }
}

/// Parses a `0x`-prefixed (or bare) 32-byte hex fact.
///
/// # Errors
/// `InvalidFact` when it is not 64 hex digits.
pub fn parse_fact(fact: &str) -> Result<B256, FactCheckError> {
    let hex = fact.trim().trim_start_matches("0x");
    if hex.len() > 64 {
        return Err(FactCheckError::InvalidFact(fact.to_owned()));
    }
    // Facts are sometimes printed without leading zeros; pad them back to 32 bytes.
    B256::from_str(&format!("{hex:0>64}")).map_err(|_| FactCheckError::InvalidFact(fact.to_owned()))
}

/// Answers whether a fact is registered on the settlement layer.
#[async_trait]
pub trait FactRegistry: Send + Sync + fmt::Debug {
    /// Whether `fact` is registered. An RPC failure is an error, never `false`.
    async fn is_valid(&self, fact: B256) -> Result<bool, FactCheckError>;
}

/// Every fact is valid: for clients that never decide a job on a fact (a connectivity probe).
/// Starknet settlement layers have their own check ([`crate::StarknetFactRegistry`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysValid;

#[async_trait]
impl FactRegistry for AlwaysValid {
    async fn is_valid(&self, _fact: B256) -> Result<bool, FactCheckError> {
        Ok(true)
    }
}

fn rpc(operation: &'static str, e: impl fmt::Display) -> FactCheckError {
    FactCheckError::Rpc { operation, reason: redact_urls(&e.to_string()) }
}

/// The HTTP client and URL an RPC at `url` is reached with: credentials in the URL
/// (`http://user:password@host/`) go in an `Authorization: Basic` header of every request, and
/// the URL handed to alloy's transport, which records it in a DEBUG span, is without them.
fn http_client(url: &Url) -> (Client, Url) {
    let (url, headers) = credentials_headers(url);
    // Building fails only when the TLS backend cannot start, where alloy's own default client
    // (`Client::new`, used by `connect_http`) panics as well.
    let client =
        Client::builder().default_headers(headers).build().expect("the TLS backend starts");
    (client, url)
}

/// Replaces every URL in a transport error (reqwest prints "error sending request for url
/// (http://…)") with `<rpc url>`: RPC URLs often carry an API key.
pub(crate) fn redact_urls(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = ["http://", "https://", "ws://", "wss://"]
        .iter()
        .filter_map(|scheme| rest.find(scheme))
        .min()
    {
        out.push_str(&rest[..start]);
        out.push_str("<rpc url>");
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | ',' | '>'))
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `isValid(bytes32)` on a GPS verifier over JSON-RPC.
#[derive(Clone)]
pub struct GpsFactChecker {
    provider: DynProvider,
    address: Address,
}

impl fmt::Debug for GpsFactChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The RPC URL may carry an API key: never print it.
        f.debug_struct("GpsFactChecker").field("address", &self.address).finish_non_exhaustive()
    }
}

impl GpsFactChecker {
    /// A checker of the verifier at `address` through the RPC at `rpc_url` (its credentials, if
    /// any, sent as an `Authorization` header).
    pub fn new(rpc_url: Url, address: Address) -> Self {
        let (client, rpc_url) = http_client(&rpc_url);
        let provider = ProviderBuilder::new().connect_reqwest(client, rpc_url).erased();
        Self { provider, address }
    }

    /// A checker over an existing provider.
    pub fn with_provider(provider: DynProvider, address: Address) -> Self {
        Self { provider, address }
    }
}

#[async_trait]
impl FactRegistry for GpsFactChecker {
    async fn is_valid(&self, fact: B256) -> Result<bool, FactCheckError> {
        let contract = IFactRegistry::new(self.address, &self.provider);
        contract.isValid(fact).call().await.map_err(|e| match e {
            alloy::contract::Error::ZeroData(..) => FactCheckError::NotAContract(self.address),
            e => rpc("isValid", e),
        })
    }
}

/// Registers facts on a `MockGpsVerifier` with a funded key, bumping fees when the node rejects
/// a transaction as underpriced, and estimating them again after a block when every bump was
/// refused (a base-fee spike).
#[derive(Clone)]
pub struct FactRegistrar {
    checker: GpsFactChecker,
    /// The sending account.
    from: Address,
    /// Fee bumps tried after the first attempt.
    pub max_fee_bumps: u32,
    /// Percent added to the estimated fees per bump.
    pub bump_percent: u32,
    /// How long a registration still refused as underpriced after every bump keeps being
    /// tried: after each [`Self::underpriced_pause`] the fees are estimated again (at the
    /// highest bump), so a base-fee spike the estimate had not seen yet (the node raised the
    /// next block's base fee, no block showing it was mined) is priced in once a block shows it.
    /// Zero: give up after the bumps.
    pub underpriced_patience: Duration,
    /// The wait before estimating again once every bump was refused: about a block.
    pub underpriced_pause: Duration,
    /// How long to wait for a receipt before the transaction is replaced (same nonce, fees
    /// estimated again).
    pub receipt_timeout: Duration,
    /// How many times a transaction not mined within [`Self::receipt_timeout`] is replaced
    /// before the registration fails.
    pub max_replacements: u32,
    /// Held from the nonce read to the receipt: two registrations through one registrar at
    /// once would otherwise read the same pending nonce, and the second one's fee bump would
    /// replace the first one's transaction, whose receipt then never comes.
    send_lock: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for FactRegistrar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The provider holds the private key: print only the contract.
        f.debug_struct("FactRegistrar")
            .field("address", &self.checker.address)
            .field("max_fee_bumps", &self.max_fee_bumps)
            .field("underpriced_patience", &self.underpriced_patience)
            .finish_non_exhaustive()
    }
}

impl FactRegistrar {
    /// A registrar sending from `private_key` (hex) through `rpc_url` (its credentials, if any,
    /// sent as an `Authorization` header) to the mock at `address`.
    ///
    /// # Errors
    /// `Config` when the key does not parse (the key itself is never printed).
    pub fn new(rpc_url: Url, private_key: &str, address: Address) -> Result<Self, FactCheckError> {
        let signer = PrivateKeySigner::from_str(private_key.trim()).map_err(|_| {
            FactCheckError::Config("the private key is not a valid secp256k1 key".into())
        })?;
        let from = signer.address();
        let (client, rpc_url) = http_client(&rpc_url);
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_reqwest(client, rpc_url)
            .erased();
        Ok(Self {
            checker: GpsFactChecker::with_provider(provider, address),
            from,
            max_fee_bumps: 3,
            bump_percent: 25,
            underpriced_patience: Duration::from_secs(60),
            underpriced_pause: Duration::from_secs(1),
            receipt_timeout: Duration::from_secs(30),
            max_replacements: 5,
            send_lock: Arc::default(),
        })
    }

    /// Makes sure `fact` is registered. Returns `None` when it already was, else the hash of
    /// the registration transaction (mined, and the fact re-checked).
    ///
    /// # Errors
    /// RPC errors, a reverted transaction, fees still underpriced after every bump.
    pub async fn ensure_registered(&self, fact: B256) -> Result<Option<B256>, FactCheckError> {
        if self.checker.is_valid(fact).await? {
            return Ok(None);
        }
        // One registration at a time per registrar (clones share the lock); the fact is
        // checked again once the lock is ours, as the one before may have registered it.
        let _sending = self.send_lock.lock().await;
        if self.checker.is_valid(fact).await? {
            return Ok(None);
        }
        let provider = &self.checker.provider;
        let contract = IFactRegistry::new(self.checker.address, provider);
        let fact_hex = fact.to_string();
        // The nonce is read from the node for every registration (never cached: the key may be
        // shared with other senders) and kept across fee bumps, so a bump replaces rather than
        // queues behind its own rejected attempt.
        let nonce = provider
            .get_transaction_count(self.from)
            .pending()
            .await
            .map_err(|e| rpc("nonce", e))?;
        let (mut attempts, mut replacements) = (0u32, 0u32);
        // The hash of a registration sent earlier on this nonce and not yet seen mined.
        let mut earlier: Option<B256> = None;
        let (tx_hash, receipt) = loop {
            let patience_ends = tokio::time::Instant::now() + self.underpriced_patience;
            let mut bump = 0u32;
            let pending = loop {
                let fees =
                    provider.estimate_eip1559_fees().await.map_err(|e| rpc("estimate fees", e))?;
                let factor = 100 + u128::from(self.bump_percent) * u128::from(bump);
                let call = contract
                    .registerFact(fact)
                    .from(self.from)
                    .nonce(nonce)
                    .max_fee_per_gas(fees.max_fee_per_gas * factor / 100)
                    .max_priority_fee_per_gas(fees.max_priority_fee_per_gas * factor / 100);
                attempts += 1;
                let e = match call.send().await {
                    Ok(pending) => break pending,
                    Err(e) if !is_underpriced(&e.to_string()) => {
                        // A replacement refused because the earlier transaction was mined
                        // meanwhile ("nonce too low"): that one registered the fact.
                        if let Some(earlier) = earlier {
                            if self.checker.is_valid(fact).await? {
                                return Ok(Some(earlier));
                            }
                        }
                        return Err(rpc("registerFact", e));
                    }
                    Err(e) => e,
                };
                if bump < self.max_fee_bumps {
                    bump += 1;
                    tracing::warn!(target: "orch::prover", fact = %fact_hex, attempt = attempts, error = %e, "registerFact underpriced; bumping fees");
                } else if tokio::time::Instant::now() + self.underpriced_pause <= patience_ends {
                    // Bumps of the same estimate cannot follow a base fee that jumped: wait
                    // for a block that shows it, then estimate again.
                    tracing::warn!(target: "orch::prover", fact = %fact_hex, attempt = attempts, error = %e, "registerFact underpriced after every bump; estimating again after a block");
                    tokio::time::sleep(self.underpriced_pause).await;
                } else {
                    return Err(FactCheckError::Underpriced { fact: fact_hex, attempts });
                }
            };
            let tx_hash = *pending.tx_hash();
            match pending.with_timeout(Some(self.receipt_timeout)).get_receipt().await {
                Ok(receipt) => break (tx_hash, receipt),
                Err(PendingTransactionError::TxWatcher(WatchTxError::Timeout))
                    if replacements < self.max_replacements =>
                {
                    if self.checker.is_valid(fact).await? {
                        return Ok(Some(tx_hash));
                    }
                    // Not mined: priced before the base fee rose, say. Sent again on the same
                    // nonce at fees estimated now, it replaces itself.
                    replacements += 1;
                    earlier = Some(tx_hash);
                    tracing::warn!(target: "orch::prover", fact = %fact_hex, tx = %tx_hash, replacement = replacements, timeout_s = self.receipt_timeout.as_secs(), "registerFact not mined within the receipt timeout; replacing it at current fees");
                }
                Err(e) => return Err(rpc("registerFact receipt", e)),
            }
        };
        if !receipt.status() {
            return Err(FactCheckError::Reverted { fact: fact_hex, tx_hash: tx_hash.to_string() });
        }
        if !self.checker.is_valid(fact).await? {
            return Err(FactCheckError::NotRegistered(fact_hex));
        }
        tracing::info!(target: "orch::prover", fact = %fact_hex, tx = %tx_hash, "Fact registered on the mock verifier");
        Ok(Some(tx_hash))
    }
}

#[async_trait]
impl FactRegistry for FactRegistrar {
    async fn is_valid(&self, fact: B256) -> Result<bool, FactCheckError> {
        self.checker.is_valid(fact).await
    }
}

/// Whether a node's error means "your fees are too low for this nonce".
fn is_underpriced(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("underpriced")
        || m.contains("fee too low")
        || m.contains("max fee per gas less than block base fee")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{routing::post, Json, Router};

    use super::*;

    #[test]
    fn facts_parse_with_or_without_prefix_and_leading_zeros() {
        let full = "0xca15503f02f8406b599cb220879e842394f5cf2cef753f3ee430647b5981b782";
        assert_eq!(parse_fact(full).unwrap(), parse_fact(&full[2..]).unwrap());
        assert_eq!(parse_fact("0x1").unwrap(), B256::with_last_byte(1));
        assert!(parse_fact("0xzz").is_err());
        assert!(parse_fact(&format!("{full}00")).is_err());
    }

    #[test]
    fn urls_are_redacted_from_rpc_errors() {
        let e = rpc(
            "isValid",
            "error sending request for url (https://eth.example/v2/SECRETKEY): connection refused",
        );
        let text = e.to_string();
        assert!(!text.contains("SECRETKEY"), "{text}");
        assert_eq!(
            text,
            "RPC error during isValid: error sending request for url (<rpc url>): connection refused"
        );
        assert_eq!(redact_urls("no url here"), "no url here");
        assert_eq!(redact_urls("a http://x/k b ws://y"), "a <rpc url> b <rpc url>");
    }

    #[test]
    fn underpriced_messages_are_recognised() {
        assert!(is_underpriced(
            "server returned an error response: replacement transaction underpriced"
        ));
        assert!(is_underpriced("transaction underpriced"));
        assert!(is_underpriced("Fee too low"));
        assert!(!is_underpriced("nonce too low"));
    }

    /// A JSON-RPC node that answers `eth_call` with an ABI-encoded bool and records the calls.
    async fn fake_node(valid: bool) -> (Url, Arc<Mutex<Vec<serde_json::Value>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let app = Router::new().route(
            "/",
            post(move |Json(req): Json<serde_json::Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(req.clone());
                    let word = format!("0x{:064x}", u8::from(valid));
                    Json(serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "result": word}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/").parse().unwrap(), calls)
    }

    #[tokio::test]
    async fn is_valid_calls_the_verifier_with_the_abi_encoded_fact() {
        let fact = parse_fact("0xca15503f02f8406b599cb220879e842394f5cf2cef753f3ee430647b5981b782")
            .unwrap();
        let verifier = Address::repeat_byte(0x11);
        for valid in [true, false] {
            let (url, calls) = fake_node(valid).await;
            assert_eq!(GpsFactChecker::new(url, verifier).is_valid(fact).await.unwrap(), valid);
            let calls = calls.lock().unwrap();
            let call = &calls[0];
            assert_eq!(call["method"], "eth_call");
            let tx = &call["params"][0];
            assert_eq!(tx["to"].as_str().unwrap().to_lowercase(), format!("{verifier:#x}"));
            let data = tx["input"].as_str().or(tx["data"].as_str()).unwrap();
            // isValid(bytes32) selector, then the fact.
            assert_eq!(data, format!("0x6a938567{}", &fact.to_string()[2..]));
        }
    }

    #[tokio::test]
    async fn an_unreachable_node_is_a_retryable_error_not_false() {
        let checker = GpsFactChecker::new("http://127.0.0.1:9/".parse().unwrap(), Address::ZERO);
        let err = checker.is_valid(B256::ZERO).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
}
