//! The fact checker and the registrar against a real Anvil (started per test, killed on drop)
//! with the project's `MockGpsVerifier` deployed: `isValid` before and after `registerFact`,
//! idempotent registration (no second transaction), a key shared with another sender, clear
//! errors for a non-contract address and a closed port, fee bumps on an underpriced
//! registration, and a base-fee spike the fee estimate has not seen yet.
//!
//! Needs Anvil (`scripts/anvil.sh`); `ORCH_SKIP_ANVIL_TESTS=1` skips.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
};
use axum::{routing::post, Json, Router};
use orchestrator_ethereum_settlement_client::testing::{
    deploy_contracts, ANVIL_KEY_0, ANVIL_KEY_1,
};
use orchestrator_gps_fact_checker::{FactCheckError, FactRegistrar, FactRegistry, GpsFactChecker};
use orchestrator_test_support::anvil::{Anvil, AnvilConfig};
use url::Url;

/// Anvil with the contracts deployed (by account 0); `None` when skipped.
async fn anvil_with_verifier(extra: &[&str]) -> Option<(Anvil, Address)> {
    let anvil = Anvil::start(AnvilConfig::new("cancun").args(extra.iter().copied())).await?;
    let deployed =
        deploy_contracts(&anvil.url(), ANVIL_KEY_0, U256::from(7), U256::ZERO, -1, false)
            .await
            .expect("deploy contracts");
    Some((anvil, deployed.verifier))
}

fn address_of(key: &str) -> Address {
    key.parse::<PrivateKeySigner>().unwrap().address()
}

fn reader(url: &Url) -> DynProvider {
    ProviderBuilder::new().connect_http(url.clone()).erased()
}

fn wallet(url: &Url, key: &str) -> DynProvider {
    let signer: PrivateKeySigner = key.parse().unwrap();
    ProviderBuilder::new().wallet(EthereumWallet::new(signer)).connect_http(url.clone()).erased()
}

async fn nonce(url: &Url, who: Address) -> u64 {
    reader(url).get_transaction_count(who).await.unwrap()
}

/// A URL on which nothing listens.
fn closed_port_url() -> Url {
    let port = orchestrator_test_support::launch::free_port();
    format!("http://127.0.0.1:{port}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_valid_and_a_second_call_sends_nothing() {
    let Some((anvil, verifier)) = anvil_with_verifier(&[]).await else {
        return;
    };
    let url = anvil.url();
    let checker = GpsFactChecker::new(url.clone(), verifier);
    let fact = B256::repeat_byte(0xab);
    let other = B256::repeat_byte(0xcd);
    assert!(!checker.is_valid(fact).await.unwrap());

    let registrar = FactRegistrar::new(url.clone(), ANVIL_KEY_1, verifier).unwrap();
    let from = address_of(ANVIL_KEY_1);
    let before = nonce(&url, from).await;
    let tx = registrar.ensure_registered(fact).await.unwrap().expect("a registration transaction");
    let receipt = reader(&url).get_transaction_receipt(tx).await.unwrap().expect("mined");
    assert!(receipt.status());
    assert_eq!(receipt.to, Some(verifier));
    assert_eq!(receipt.from, from);
    assert_eq!(nonce(&url, from).await, before + 1);
    assert!(checker.is_valid(fact).await.unwrap());
    assert!(registrar.is_valid(fact).await.unwrap());
    assert!(!checker.is_valid(other).await.unwrap(), "only that fact");

    // Already registered: no transaction at all.
    assert_eq!(registrar.ensure_registered(fact).await.unwrap(), None);
    assert_eq!(nonce(&url, from).await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_shared_with_another_sender_keeps_working() {
    let Some((anvil, verifier)) = anvil_with_verifier(&[]).await else {
        return;
    };
    let url = anvil.url();
    let registrar = FactRegistrar::new(url.clone(), ANVIL_KEY_1, verifier).unwrap();
    let from = address_of(ANVIL_KEY_1);
    registrar.ensure_registered(B256::repeat_byte(1)).await.unwrap().unwrap();
    // Someone else (e.g. the settlement client with the same operator key) sends in between.
    let tx =
        TransactionRequest::default().with_to(Address::repeat_byte(0x42)).with_value(U256::from(1));
    wallet(&url, ANVIL_KEY_1).send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    let before = nonce(&url, from).await;
    registrar
        .ensure_registered(B256::repeat_byte(2))
        .await
        .expect("the nonce is re-read, not cached")
        .unwrap();
    assert_eq!(nonce(&url, from).await, before + 1);
    let checker = GpsFactChecker::new(url, verifier);
    assert!(checker.is_valid(B256::repeat_byte(1)).await.unwrap());
    assert!(checker.is_valid(B256::repeat_byte(2)).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_contract_address_or_a_closed_port_is_a_clear_error() {
    let Some((anvil, _verifier)) = anvil_with_verifier(&[]).await else {
        return;
    };
    let url = anvil.url();
    let eoa = address_of(ANVIL_KEY_0);
    let fact = B256::repeat_byte(3);

    let err = GpsFactChecker::new(url.clone(), eoa).is_valid(fact).await.unwrap_err();
    assert!(matches!(err, FactCheckError::NotAContract(a) if a == eoa), "{err:?}");
    assert!(!err.is_retryable(), "a wrong address does not fix itself");
    let msg = err.to_string();
    assert!(msg.contains("no fact registry contract") && msg.contains(&format!("{eoa}")), "{msg}");
    // The registrar checks first, so it sends nothing to a non-contract.
    let registrar = FactRegistrar::new(url.clone(), ANVIL_KEY_1, eoa).unwrap();
    let before = nonce(&url, address_of(ANVIL_KEY_1)).await;
    assert!(matches!(
        registrar.ensure_registered(fact).await,
        Err(FactCheckError::NotAContract(_))
    ));
    assert_eq!(nonce(&url, address_of(ANVIL_KEY_1)).await, before);

    let closed = closed_port_url();
    let err = GpsFactChecker::new(closed.clone(), eoa).is_valid(fact).await.unwrap_err();
    assert!(matches!(err, FactCheckError::Rpc { operation: "isValid", .. }), "{err:?}");
    assert!(err.is_retryable(), "{err}");
    assert!(!err.to_string().contains(closed.as_str()), "no URL in errors: {err}");
    let err = FactRegistrar::new(closed, ANVIL_KEY_1, eoa)
        .unwrap()
        .ensure_registered(fact)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

/// Several registrations through one registrar at once (a mock prover closing two buckets),
/// on a node that mines every second so they all see the same pending nonce: each one is
/// mined, none replaces another (a replaced one would wait for a receipt that never comes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_through_one_registrar_all_land() {
    let Some((anvil, verifier)) = anvil_with_verifier(&["--block-time", "1"]).await else {
        return;
    };
    let url = anvil.url();
    let mut registrar = FactRegistrar::new(url.clone(), ANVIL_KEY_1, verifier).unwrap();
    registrar.receipt_timeout = Duration::from_secs(20);
    let registrar = Arc::new(registrar);
    let from = address_of(ANVIL_KEY_1);
    let before = nonce(&url, from).await;
    let facts: Vec<B256> = (0x10..0x14).map(B256::repeat_byte).collect();
    let tasks: Vec<_> = facts
        .iter()
        .map(|&fact| {
            let registrar = registrar.clone();
            tokio::spawn(async move { registrar.ensure_registered(fact).await })
        })
        .collect();
    for (fact, task) in facts.iter().zip(tasks) {
        let tx = task.await.unwrap().unwrap_or_else(|e| panic!("registering {fact}: {e}"));
        assert!(tx.is_some(), "{fact} was not registered before: a transaction was sent");
    }
    let checker = GpsFactChecker::new(url.clone(), verifier);
    for fact in &facts {
        assert!(checker.is_valid(*fact).await.unwrap(), "{fact} is registered");
    }
    assert_eq!(nonce(&url, from).await, before + facts.len() as u64, "one transaction per fact");
}

/// Sends `method(params)` to the node, panicking on an error.
async fn rpc(url: &Url, method: &'static str, params: serde_json::Value) -> serde_json::Value {
    reader(url)
        .raw_request_dyn(method.into(), &serde_json::value::to_raw_value(&params).unwrap())
        .await
        .map(|raw| serde_json::from_str(raw.get()).unwrap())
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Mines a block as soon as a transaction to `to` is pending.
fn mine_when_pending(url: Url, to: Address) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if pending_to(&url, to).await.is_some() {
                rpc(&url, "evm_mine", serde_json::json!([])).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// A JSON-RPC proxy in front of Anvil that, just before forwarding the registrar's first
/// `eth_sendRawTransaction`, lets a competitor take the same nonce: the race of two senders
/// sharing a key (or an RPC whose pending view lags). Counts the raw transactions it saw.
struct NonceRace {
    url: Url,
    raw_sends: Arc<AtomicU32>,
}

async fn nonce_race_proxy(anvil: Url, competitor: TransactionRequest) -> NonceRace {
    let raw_sends = Arc::new(AtomicU32::new(0));
    let seen = raw_sends.clone();
    let http = reqwest::Client::new();
    let competitor = Arc::new(competitor);
    let app = Router::new().route(
        "/",
        post(move |Json(req): Json<serde_json::Value>| {
            let (seen, http, anvil, competitor) =
                (seen.clone(), http.clone(), anvil.clone(), competitor.clone());
            async move {
                if req["method"] == "eth_sendRawTransaction"
                    && seen.fetch_add(1, Ordering::SeqCst) == 0
                {
                    // Anvil's accounts are unlocked: the node signs the competitor.
                    rpc(&anvil, "eth_sendTransaction", serde_json::json!([*competitor])).await;
                }
                let answer: serde_json::Value = http
                    .post(anvil.as_str())
                    .json(&req)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    NonceRace { url: format!("http://{addr}/").parse().unwrap(), raw_sends }
}

/// Anvil with mining off after deployment, a competitor at account 1's next nonce paying
/// `percent` % of the fees the registrar will estimate, and the racing proxy.
async fn underpriced_setup(
    percent: u128,
) -> Option<(Anvil, Address, NonceRace, TransactionRequest)> {
    let (anvil, verifier) = anvil_with_verifier(&[]).await?;
    let url = anvil.url();
    rpc(&url, "evm_setAutomine", serde_json::json!([false])).await;
    let from = address_of(ANVIL_KEY_1);
    let fees = reader(&url).estimate_eip1559_fees().await.unwrap();
    let competitor = TransactionRequest::default()
        .with_from(from)
        .with_to(Address::repeat_byte(0x42))
        .with_value(U256::from(1))
        .with_nonce(nonce(&url, from).await)
        .with_gas_limit(21_000)
        .with_max_fee_per_gas(fees.max_fee_per_gas * percent / 100)
        .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas * percent / 100);
    let proxy = nonce_race_proxy(url, competitor.clone()).await;
    Some((anvil, verifier, proxy, competitor))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_underpriced_registration_is_bumped_until_it_replaces_the_competitor() {
    // The competitor pays 130 %: attempts at 100 % and 125 % are "replacement transaction
    // underpriced", the one at 150 % replaces it (Anvil wants strictly higher fees).
    let Some((anvil, verifier, proxy, _competitor)) = underpriced_setup(130).await else {
        return;
    };
    let url = anvil.url();
    let from = address_of(ANVIL_KEY_1);
    let start_nonce = nonce(&url, from).await;
    let fees = reader(&url).estimate_eip1559_fees().await.unwrap();
    let miner = mine_when_pending(url.clone(), verifier);
    let registrar = FactRegistrar::new(proxy.url.clone(), ANVIL_KEY_1, verifier).unwrap();
    let fact = B256::repeat_byte(0xee);
    let tx = tokio::time::timeout(Duration::from_secs(60), registrar.ensure_registered(fact))
        .await
        .expect("registration within a minute")
        .expect("registered after fee bumps")
        .expect("a transaction");
    miner.await.unwrap();
    assert_eq!(proxy.raw_sends.load(Ordering::SeqCst), 3, "100 %, 125 %, 150 %");

    let node = reader(&url);
    let mined = node.get_transaction_by_hash(tx).await.unwrap().expect("mined");
    use alloy::consensus::Transaction as _;
    assert_eq!(mined.nonce(), start_nonce, "same nonce across bumps: a replacement");
    assert_eq!(mined.max_fee_per_gas(), fees.max_fee_per_gas * 150 / 100);
    assert_eq!(mined.max_priority_fee_per_gas(), Some(fees.max_priority_fee_per_gas * 150 / 100));
    assert!(GpsFactChecker::new(url.clone(), verifier).is_valid(fact).await.unwrap());
    // The competitor was replaced: one transaction for that nonce, nothing left pending.
    assert_eq!(nonce(&url, from).await, start_nonce + 1);
    let pool = rpc(&url, "txpool_content", serde_json::json!([])).await;
    assert_eq!(pool["pending"].as_object().map_or(0, |p| p.len()), 0, "{pool}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_still_underpriced_after_every_bump_is_a_retryable_error() {
    // The competitor pays 300 %: 100, 125, 150, 175 % are all refused.
    let Some((anvil, verifier, proxy, competitor)) = underpriced_setup(300).await else {
        return;
    };
    let url = anvil.url();
    let mut registrar = FactRegistrar::new(proxy.url.clone(), ANVIL_KEY_1, verifier).unwrap();
    // No waiting for a block that re-prices: mining is off, nothing would change.
    registrar.underpriced_patience = Duration::ZERO;
    let fact = B256::repeat_byte(0xef);
    let err = registrar.ensure_registered(fact).await.unwrap_err();
    assert!(matches!(err, FactCheckError::Underpriced { attempts: 4, .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(proxy.raw_sends.load(Ordering::SeqCst), 4);
    // The competitor is untouched; once it is mined the next try registers at the next nonce.
    let pool = rpc(&url, "txpool_content", serde_json::json!([])).await;
    let from = format!("{:#x}", address_of(ANVIL_KEY_1));
    let ours = &pool["pending"][&from];
    assert_eq!(ours.as_object().unwrap().len(), 1, "{pool}");
    assert_eq!(
        ours[competitor.nonce.unwrap().to_string()]["to"],
        format!("{:#x}", Address::repeat_byte(0x42)),
        "{pool}"
    );
    rpc(&url, "evm_setAutomine", serde_json::json!([true])).await;
    rpc(&url, "evm_mine", serde_json::json!([])).await;
    assert!(registrar.ensure_registered(fact).await.unwrap().is_some());
    assert!(GpsFactChecker::new(url, verifier).is_valid(fact).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_fee_spike_is_priced_in_once_a_block_shows_it() {
    // The node raises the next block's base fee 10x (what the chaos test's fee spikes do) while
    // the fee estimate still reads the last mined block: three bumps of 25 % stay far below.
    let Some((anvil, verifier)) = anvil_with_verifier(&[]).await else {
        return;
    };
    let url = anvil.url();
    let (_, high) = manual_mining_and_base_fee(&url).await;
    rpc(&url, "anvil_setNextBlockBaseFeePerGas", serde_json::json!([format!("{high:#x}")])).await;

    let mut registrar = FactRegistrar::new(url.clone(), ANVIL_KEY_1, verifier).unwrap();
    let fact = B256::repeat_byte(0xed);
    registrar.underpriced_patience = Duration::ZERO;
    let err = registrar.ensure_registered(fact).await.unwrap_err();
    assert!(matches!(err, FactCheckError::Underpriced { attempts: 4, .. }), "{err:?}");

    // With patience, the registrar estimates again after each pause; a block mined at the
    // spiked base fee 1.5 s from now shows the spike, and the next attempt pays for it.
    registrar.underpriced_patience = Duration::from_secs(30);
    let miner = {
        let url = url.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            rpc(&url, "evm_mine", serde_json::json!([])).await;
            mine_when_pending(url, verifier).await.unwrap();
        })
    };
    let tx = tokio::time::timeout(Duration::from_secs(60), registrar.ensure_registered(fact))
        .await
        .expect("registration within a minute")
        .expect("registered once a block showed the spike")
        .expect("a transaction");
    miner.await.unwrap();
    let mined = reader(&url).get_transaction_by_hash(tx).await.unwrap().expect("mined");
    use alloy::consensus::Transaction as _;
    assert!(mined.max_fee_per_gas() >= high, "{} < {high}", mined.max_fee_per_gas());
    assert!(GpsFactChecker::new(url, verifier).is_valid(fact).await.unwrap());
}

/// Turns Anvil's automine off and returns the latest base fee and ten times it.
async fn manual_mining_and_base_fee(url: &Url) -> (u64, u128) {
    rpc(url, "evm_setAutomine", serde_json::json!([false])).await;
    let base = reader(url)
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .base_fee_per_gas
        .unwrap();
    (base, u128::from(base) * 10)
}

/// The hash of the registration transaction to `to` waiting in Anvil's pool, if there is one.
async fn pending_to(url: &Url, to: Address) -> Option<String> {
    let to = format!("{to:#x}");
    let pool = rpc(url, "txpool_content", serde_json::json!([])).await;
    let pending = pool["pending"].as_object().cloned().unwrap_or_default();
    pending
        .values()
        .flat_map(|by_nonce| by_nonce.as_object().cloned().unwrap_or_default())
        .find_map(|(_, tx)| {
            (tx["to"].as_str().map(str::to_lowercase) == Some(to.clone()))
                .then(|| tx["hash"].as_str().unwrap_or_default().to_owned())
        })
}

#[tokio::test]
async fn a_registration_left_unmined_by_a_fee_rise_is_replaced_at_current_fees() {
    // The chaos test's fee spikes can raise the base fee right after a registration entered
    // the pool, priced for the old one: the block at the new base fee leaves it out, and Anvil
    // drops it from the pool, so its receipt never comes. Once the receipt timeout passes, the
    // registrar sends it again on the same nonce at fees estimated from the block that shows
    // the rise.
    let Some((anvil, verifier)) = anvil_with_verifier(&[]).await else {
        return;
    };
    let url = anvil.url();
    let (base, high) = manual_mining_and_base_fee(&url).await;
    let chain = {
        let url = url.clone();
        tokio::spawn(async move {
            // The first transaction enters the pool; the next block's base fee jumps 10x and
            // that block leaves it out.
            let first = loop {
                if let Some(hash) = pending_to(&url, verifier).await {
                    break hash;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            rpc(&url, "anvil_setNextBlockBaseFeePerGas", serde_json::json!([format!("{high:#x}")]))
                .await;
            rpc(&url, "evm_mine", serde_json::json!([])).await;
            // Anvil does not keep it pending either: it is gone, as the chaos test's
            // registrations were, and only a new transaction on its nonce settles the fact.
            let first_hash: B256 = first.parse().unwrap();
            assert!(reader(&url).get_transaction_receipt(first_hash).await.unwrap().is_none());
            assert_eq!(pending_to(&url, verifier).await, None, "left out of the pool");
            // Its replacement is mined.
            loop {
                match pending_to(&url, verifier).await {
                    Some(hash) if hash != first => break,
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            rpc(&url, "evm_mine", serde_json::json!([])).await;
            first
        })
    };

    let mut registrar = FactRegistrar::new(url.clone(), ANVIL_KEY_1, verifier).unwrap();
    registrar.receipt_timeout = Duration::from_secs(2);
    let fact = B256::repeat_byte(0xee);
    let tx = tokio::time::timeout(Duration::from_secs(60), registrar.ensure_registered(fact))
        .await
        .expect("registration within a minute")
        .expect("registered by the replacement")
        .expect("a transaction");
    let first = chain.await.unwrap();
    assert_ne!(format!("{tx:#x}"), first, "the replacement was mined, not the first");
    let mined = reader(&url).get_transaction_by_hash(tx).await.unwrap().expect("mined");
    use alloy::consensus::Transaction as _;
    assert!(mined.max_fee_per_gas() >= high, "{} < {high}", mined.max_fee_per_gas());
    let first_hash: B256 = first.parse().unwrap();
    assert!(
        reader(&url).get_transaction_receipt(first_hash).await.unwrap().is_none(),
        "the first transaction was replaced, never mined"
    );
    assert!(GpsFactChecker::new(url.clone(), verifier).is_valid(fact).await.unwrap());

    // Without replacements the same situation is a clear, retryable error.
    let fact = B256::repeat_byte(0xef);
    rpc(&url, "anvil_setNextBlockBaseFeePerGas", serde_json::json!([format!("{base:#x}")])).await;
    registrar.max_replacements = 0;
    registrar.receipt_timeout = Duration::from_millis(500);
    let err = registrar.ensure_registered(fact).await.unwrap_err();
    assert!(err.to_string().contains("not confirmed within the timeout"), "{err}");
    assert!(err.is_retryable(), "{err:?}");
}
