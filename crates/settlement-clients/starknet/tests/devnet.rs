//! The Starknet settlement client against a real starknet-devnet (one per test, killed on
//! drop) and the project's Cairo contracts deployed from the committed artifacts: settling and
//! continuing, the contract's checks surfacing as readable errors, a transaction reverted on
//! chain, pre-confirmed transactions, and a node that is not there. Skipped with
//! `ORCH_SKIP_DEVNET_TESTS=1`.

use std::time::Duration;

use orchestrator_settlement_client_interface::{
    Retryable, SettlementClient, SettlementError, SettlementVerificationStatus, Word,
};
use orchestrator_starknet_settlement_client::{
    calldata::{felt_to_word, update_state_calldata},
    classes::{
        compiled_class_hash, CompiledClassHashVersion, CORE_CONTRACT_CLASS_HASH,
        CORE_CONTRACT_COMPILED_CLASS_HASH, FACT_REGISTRY_CLASS_HASH,
        FACT_REGISTRY_COMPILED_CLASS_HASH,
    },
    testing::{
        account, deploy_core_contract, devnet_rpc, invoke, predeployed_accounts, register_fact,
        state_transition_fact, wait_executed, Deployed, InitialState, PredeployedAccount,
        SnosHeader, CORE_CONTRACT_CASM, CORE_CONTRACT_SIERRA, FACT_REGISTRY_CASM,
        FACT_REGISTRY_SIERRA,
    },
    StarknetSettlementClient, StarknetSettlementConfig,
};
use orchestrator_test_support::{
    devnet::{Devnet, DevnetConfig},
    proxy::TcpProxy,
};
use starknet::{
    accounts::{Account, ConnectedAccount},
    core::{
        types::{
            contract::SierraClass, BlockId, BlockTag, Call, Felt,
            MaybePreConfirmedBlockWithTxHashes,
        },
        utils::get_selector_from_name,
    },
    providers::Provider,
};

const PROGRAM_HASH: u64 = 0x5eed;

struct Chain {
    devnet: Devnet,
    accounts: Vec<PredeployedAccount>,
    deployed: Deployed,
}

async fn chain(with_fact_registry: bool, devnet_args: &[&str]) -> Option<Chain> {
    // Only the latest state: the contract tests read no history.
    let config = DevnetConfig::new().full_state_archive(false).args(devnet_args.iter().copied());
    let devnet = Devnet::start_with(config).await?;
    let accounts = predeployed_accounts(&devnet.url).await.unwrap();
    assert!(accounts.len() >= 2, "devnet --seed 0 predeploys several accounts");
    let owner = accounts[0];
    let deployed = deploy_core_contract(
        &devnet.url,
        owner.address,
        owner.private_key,
        InitialState::default(),
        Felt::from(PROGRAM_HASH),
        with_fact_registry,
    )
    .await
    .unwrap();
    Some(Chain { devnet, accounts, deployed })
}

impl Chain {
    fn client_for(&self, account: PredeployedAccount) -> StarknetSettlementClient {
        let mut config = StarknetSettlementConfig::new(
            self.devnet.url.clone(),
            account.address,
            account.private_key,
            self.deployed.core,
        );
        config.finality_retry_wait = Duration::from_millis(100);
        config.finality_polls = 50;
        StarknetSettlementClient::new(config)
    }

    fn client(&self) -> StarknetSettlementClient {
        self.client_for(self.accounts[0])
    }
}

fn felt(v: u64) -> Felt {
    Felt::from(v)
}

/// A SNOS output moving the state from (`prev_root`, `prev_block`) to (`new_root`, `new_block`).
fn snos(prev_root: u64, new_root: u64, prev_block: Felt, new_block: u64) -> Vec<Word> {
    let mut words = SnosHeader {
        initial_root: felt(prev_root),
        final_root: felt(new_root),
        prev_block_number: prev_block,
        new_block_number: felt(new_block),
        prev_block_hash: felt(0xb0 + prev_root),
        new_block_hash: felt(0xb0 + new_root),
    }
    .words();
    words.extend([felt_to_word(felt(0)), felt_to_word(felt(0))]); // no messages
    words
}

fn program_output(seed: u64) -> Vec<Word> {
    (0..4).map(|i| felt_to_word(felt(seed * 100 + i))).collect()
}

fn reverted_reason(e: &SettlementError) -> &str {
    match e {
        SettlementError::Reverted { reason, .. } => reason,
        other => panic!("expected Reverted, got {other:?}"),
    }
}

#[test]
fn committed_artifacts_parse_and_hash_to_the_crate_constants() {
    // The Poseidon hashes printed by tools/cairo-build/casm (cairo-lang-starknet-classes
    // 2.19.4) for the committed CASM: a check of this crate's hashing on real classes.
    for (name, sierra, casm, class_hash, compiled_hash, legacy_hash) in [
        (
            "CoreContract",
            CORE_CONTRACT_SIERRA,
            CORE_CONTRACT_CASM,
            CORE_CONTRACT_CLASS_HASH,
            CORE_CONTRACT_COMPILED_CLASS_HASH,
            "0x3dbd07f5547b887ecd625efff85860a3193c82859473e3e18bf6ef99759b992",
        ),
        (
            "FactRegistry",
            FACT_REGISTRY_SIERRA,
            FACT_REGISTRY_CASM,
            FACT_REGISTRY_CLASS_HASH,
            FACT_REGISTRY_COMPILED_CLASS_HASH,
            "0x2370b9fc53a8e0afe2a8b3a4e80aab8053a7ec0bbf695ad73c91b0a903aa21a",
        ),
    ] {
        let class: SierraClass =
            serde_json::from_str(sierra).unwrap_or_else(|e| panic!("{name} Sierra: {e}"));
        assert!(!class.sierra_program.is_empty(), "{name}: empty Sierra program");
        let flattened = class.flatten().unwrap();
        assert_eq!(
            flattened.class_hash(),
            class_hash,
            "{name}: the committed Sierra hashes to {:#x}; update classes.rs",
            flattened.class_hash()
        );
        let blake = compiled_class_hash(casm, CompiledClassHashVersion::Blake2s).unwrap();
        assert_eq!(
            blake, compiled_hash,
            "{name}: the committed CASM hashes to {blake:#x}; update classes.rs"
        );
        let poseidon = compiled_class_hash(casm, CompiledClassHashVersion::Poseidon).unwrap();
        assert_eq!(
            poseidon,
            Felt::from_hex(legacy_hash).unwrap(),
            "{name}: Poseidon compiled class hash"
        );
        let entry_points: serde_json::Value = serde_json::from_str(casm).unwrap();
        assert_eq!(
            entry_points["entry_points_by_type"]["EXTERNAL"].as_array().map(Vec::len),
            Some(flattened.entry_points_by_type.external.len()),
            "{name}: CASM and Sierra have the same external entry points"
        );
    }
    let core_abi =
        serde_json::from_str::<SierraClass>(CORE_CONTRACT_SIERRA).unwrap().flatten().unwrap().abi;
    for entry in [
        "update_state",
        "get_state",
        "register_operator",
        "set_program_info",
        "set_facts_registry",
        "LogStateUpdate",
    ] {
        assert!(core_abi.contains(entry), "CoreContract ABI lacks {entry}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_settled_after_deployment() {
    let Some(chain) = chain(true, &[]).await else { return };
    let client = chain.client();
    assert_eq!(client.get_last_settled_block().await.unwrap(), None);
    let state = client.core_contract_state().await.unwrap();
    assert_eq!(
        (state.state_root, state.block_number, state.block_hash),
        (Felt::ZERO, Felt::MAX, Felt::ZERO)
    );
    assert_eq!(client.layer_name(), "starknet");
    // The deployment wired the operator, the program info and the registry.
    let provider = client.provider();
    let call = |entry: &str, calldata: Vec<Felt>| starknet::core::types::FunctionCall {
        contract_address: chain.deployed.core,
        entry_point_selector: get_selector_from_name(entry).unwrap(),
        calldata,
    };
    let latest = BlockId::Tag(BlockTag::Latest);
    let is_operator =
        provider.call(call("is_operator", vec![chain.accounts[0].address]), latest).await.unwrap();
    assert_eq!(is_operator, vec![Felt::ONE]);
    let not_operator =
        provider.call(call("is_operator", vec![chain.accounts[1].address]), latest).await.unwrap();
    assert_eq!(not_operator, vec![Felt::ZERO]);
    let info = provider.call(call("get_program_info", vec![]), latest).await.unwrap();
    assert_eq!(info, vec![felt(PROGRAM_HASH), Felt::ZERO]);
    let registry = provider.call(call("get_facts_registry", vec![]), latest).await.unwrap();
    assert_eq!(registry, vec![chain.deployed.fact_registry.unwrap()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_updates_settle_and_the_next_one_continues() {
    let Some(chain) = chain(false, &[]).await else { return };
    let client = chain.client();
    let nonce0 = client.get_nonce().await.unwrap();

    let tx = client
        .update_state_calldata(snos(0, 0xa1, Felt::MAX, 5), program_output(1), [0; 32], [0; 32])
        .await
        .unwrap();
    assert!(tx.starts_with("0x"), "{tx}");
    assert_eq!(
        client.verify_tx_inclusion(&tx).await.unwrap(),
        SettlementVerificationStatus::Verified
    );
    let block = client.wait_for_tx_finality(&tx).await.unwrap().expect("included");
    let head = client.provider().block_number().await.unwrap();
    assert!(block <= head, "block {block} after head {head}");
    assert_eq!(client.get_last_settled_block().await.unwrap(), Some(5));
    assert_eq!(client.get_nonce().await.unwrap(), nonce0 + 1);

    // A batch of several blocks, continuing from block 5 and root 0xa1.
    let tx2 = client
        .update_state_calldata(snos(0xa1, 0xa2, felt(5), 9), program_output(2), [0; 32], [0; 32])
        .await
        .unwrap();
    assert_ne!(tx2, tx);
    assert_eq!(
        client.verify_tx_inclusion(&tx2).await.unwrap(),
        SettlementVerificationStatus::Verified
    );
    let block2 = client.wait_for_tx_finality(&tx2).await.unwrap().expect("included");
    assert!(block2 > block, "{block2} after {block}");
    assert_eq!(client.get_last_settled_block().await.unwrap(), Some(9));
    assert_eq!(client.get_nonce().await.unwrap(), nonce0 + 2);
    let state = client.core_contract_state().await.unwrap();
    assert_eq!((state.state_root, state.block_hash), (felt(0xa2), felt(0xb0 + 0xa2)));
}

/// Two endpoints of one chain (two proxies in front of one devnet): the update is sent through
/// the primary, then the primary is cut; verification and finality go through the fallback,
/// the update settles once, and the calls after it stay on the fallback.
#[tokio::test(flavor = "multi_thread")]
async fn the_primary_rpc_cut_mid_settlement_fails_over_to_the_fallback() {
    let Some(chain) = chain(false, &[]).await else { return };
    let primary = TcpProxy::start(&chain.devnet.url).await;
    let fallback = TcpProxy::start(&chain.devnet.url).await;
    let owner = chain.accounts[0];
    let mut config = StarknetSettlementConfig::new(
        primary.url(&chain.devnet.url),
        owner.address,
        owner.private_key,
        chain.deployed.core,
    );
    config.fallback_rpc_urls = vec![fallback.url(&chain.devnet.url)];
    config.finality_retry_wait = Duration::from_millis(100);
    config.finality_polls = 50;
    let client = StarknetSettlementClient::new(config);
    let nonce0 = client.get_nonce().await.unwrap();

    let tx = client
        .update_state_calldata(snos(0, 0xa1, Felt::MAX, 5), program_output(1), [0; 32], [0; 32])
        .await
        .unwrap();
    assert_eq!(fallback.accepted(), 0, "everything so far went to the primary");
    primary.cut();
    client.wait_for_tx_finality(&tx).await.unwrap().expect("included");
    assert_eq!(
        client.verify_tx_inclusion(&tx).await.unwrap(),
        SettlementVerificationStatus::Verified
    );
    assert_eq!(client.get_last_settled_block().await.unwrap(), Some(5));
    assert_eq!(client.get_nonce().await.unwrap(), nonce0 + 1, "one transaction");
    assert!(fallback.accepted() > 0, "the calls after the cut went to the fallback");
}

/// The signer's STRK balance is read from the token contract, and each confirmed update adds
/// the fee its receipt shows, once however often it is verified: what the watchdog prices the
/// low-balance alert with.
#[tokio::test(flavor = "multi_thread")]
async fn the_signer_balance_and_the_fees_paid_are_read_from_the_chain() {
    let Some(chain) = chain(false, &[]).await else { return };
    let client = chain.client();
    let before = client.refresh_metrics().await.unwrap();
    let balance0 = before.signer_balance_wei.expect("the balance is read");
    assert!(balance0 > 0, "devnet funds its predeployed accounts");
    assert_eq!((before.fees_paid_wei, before.updates_confirmed), (0, 0));

    let tx = client
        .update_state_calldata(snos(0, 0xa1, Felt::MAX, 5), program_output(1), [0; 32], [0; 32])
        .await
        .unwrap();
    client.wait_for_tx_finality(&tx).await.unwrap().expect("included");
    for _ in 0..2 {
        assert_eq!(
            client.verify_tx_inclusion(&tx).await.unwrap(),
            SettlementVerificationStatus::Verified
        );
    }
    let after = client.refresh_metrics().await.unwrap();
    assert_eq!(after.updates_confirmed, 1, "verified twice, counted once");
    assert!(after.fees_paid_wei > 0);
    // The balance went down by the fee the receipt names (devnet charges nothing else).
    assert_eq!(after.signer_balance_wei, Some(balance0 - after.fees_paid_wei));
    assert_eq!(client.metrics(), after);
}

#[tokio::test(flavor = "multi_thread")]
async fn contract_checks_surface_as_reverts_with_their_reason() {
    let Some(chain) = chain(false, &[]).await else { return };
    let client = chain.client();
    let nonce0 = client.get_nonce().await.unwrap();

    // Nothing settled yet (-1), the update claims to continue from block 3.
    let e = client
        .update_state_calldata(snos(0, 1, felt(3), 4), vec![], [0; 32], [0; 32])
        .await
        .unwrap_err();
    assert!(reverted_reason(&e).contains("wrong prev block number"), "{e}");
    assert!(!e.is_retryable());

    let e = client
        .update_state_calldata(snos(7, 1, Felt::MAX, 4), vec![], [0; 32], [0; 32])
        .await
        .unwrap_err();
    assert!(reverted_reason(&e).contains("wrong prev state root"), "{e}");

    // Account 1 was never registered as operator.
    let intruder = chain.client_for(chain.accounts[1]);
    let e = intruder
        .update_state_calldata(snos(0, 1, Felt::MAX, 0), vec![], [0; 32], [0; 32])
        .await
        .unwrap_err();
    assert!(reverted_reason(&e).contains("caller is not an operator"), "{e}");

    // A simulated revert sends nothing.
    assert_eq!(client.get_nonce().await.unwrap(), nonce0);
    assert_eq!(client.get_last_settled_block().await.unwrap(), None);

    // Bad input never reaches the node.
    let short = snos(0, 1, Felt::MAX, 0)[..9].to_vec();
    let e = client.update_state_calldata(short, vec![], [0; 32], [0; 32]).await.unwrap_err();
    assert!(matches!(e, SettlementError::InvalidInput(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_registry_only_a_registered_fact_settles() {
    let Some(chain) = chain(true, &[]).await else { return };
    let client = chain.client();
    let owner = chain.accounts[0];
    let output = program_output(7);

    let e = client
        .update_state_calldata(snos(0, 0xc1, Felt::MAX, 2), output.clone(), [0; 32], [0; 32])
        .await
        .unwrap_err();
    assert!(reverted_reason(&e).contains("fact not registered"), "{e}");
    assert_eq!(client.get_last_settled_block().await.unwrap(), None);

    let fact = state_transition_fact(felt(PROGRAM_HASH), &output);
    register_fact(
        &chain.devnet.url,
        owner.address,
        owner.private_key,
        chain.deployed.fact_registry.unwrap(),
        fact,
    )
    .await
    .unwrap();
    let tx = client
        .update_state_calldata(snos(0, 0xc1, Felt::MAX, 2), output, [0; 32], [0; 32])
        .await
        .unwrap();
    assert_eq!(
        client.verify_tx_inclusion(&tx).await.unwrap(),
        SettlementVerificationStatus::Verified
    );
    assert_eq!(client.get_last_settled_block().await.unwrap(), Some(2));

    // Another output has another fact.
    let e = client
        .update_state_calldata(snos(0xc1, 0xc2, felt(2), 3), program_output(8), [0; 32], [0; 32])
        .await
        .unwrap_err();
    assert!(reverted_reason(&e).contains("fact not registered"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_reverted_on_chain_is_rejected_with_the_reason() {
    let Some(chain) = chain(false, &[]).await else { return };
    let client = chain.client();
    let owner = chain.accounts[0];
    // Fixed resource bounds: starknet-rs skips the fee estimate, so the node takes the
    // transaction and it reverts in its block.
    let account = account(&chain.devnet.url, owner.address, owner.private_key).await.unwrap();
    let MaybePreConfirmedBlockWithTxHashes::Block(head) =
        account.provider().get_block_with_tx_hashes(BlockId::Tag(BlockTag::Latest)).await.unwrap()
    else {
        panic!("latest is a block")
    };
    let price = |p: Felt| u128::try_from(p).unwrap() * 2 + 1;
    let calldata = update_state_calldata(&snos(0, 1, felt(41), 42), &[]).unwrap();
    let sent = account
        .execute_v3(vec![Call {
            to: chain.deployed.core,
            selector: get_selector_from_name("update_state").unwrap(),
            calldata,
        }])
        .l1_gas(0)
        .l1_gas_price(price(head.l1_gas_price.price_in_fri))
        .l2_gas(50_000_000)
        .l2_gas_price(price(head.l2_gas_price.price_in_fri))
        .l1_data_gas(10_000)
        .l1_data_gas_price(price(head.l1_data_gas_price.price_in_fri))
        .send()
        .await
        .unwrap();
    let tx = format!("{:#x}", sent.transaction_hash);
    let err = wait_executed(account.provider(), sent.transaction_hash).await.unwrap_err();
    assert!(err.contains("reverted"), "{err}");
    match client.verify_tx_inclusion(&tx).await.unwrap() {
        SettlementVerificationStatus::Rejected(reason) => {
            assert!(reason.contains("wrong prev block number"), "{reason}")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // Final all the same: a reverted transaction is in its block.
    assert!(client.wait_for_tx_finality(&tx).await.unwrap().is_some());
    assert_eq!(client.get_last_settled_block().await.unwrap(), None);
    // An unknown hash is rejected, a malformed one is bad input.
    match client.verify_tx_inclusion("0x1234").await.unwrap() {
        SettlementVerificationStatus::Rejected(reason) => {
            assert!(reason.contains("unknown"), "{reason}")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(matches!(
        client.verify_tx_inclusion("zz").await,
        Err(SettlementError::InvalidInput(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pre_confirmed_update_is_pending_until_its_block_closes() {
    // Blocks close only on devnet_createBlock: a new transaction stays pre-confirmed.
    let Some(chain) = chain(false, &["--block-generation-on", "demand"]).await else { return };
    // Close the deployment's block: `get_state` reads `latest`.
    devnet_rpc(&chain.devnet.url, "devnet_createBlock", serde_json::json!({})).await.unwrap();
    let mut config = chain.client().config().clone();
    config.finality_polls = 3;
    config.finality_retry_wait = Duration::from_millis(50);
    let client = StarknetSettlementClient::new(config);
    let nonce0 = client.get_nonce().await.unwrap();
    let tx = client
        .update_state_calldata(snos(0, 0xd1, Felt::MAX, 1), vec![], [0; 32], [0; 32])
        .await
        .unwrap();
    assert_eq!(
        client.verify_tx_inclusion(&tx).await.unwrap(),
        SettlementVerificationStatus::Pending
    );
    assert_eq!(client.wait_for_tx_finality(&tx).await.unwrap(), None, "not in a closed block yet");
    // The nonce counts the pre-confirmed transaction, the settled block does not (latest).
    assert_eq!(client.get_nonce().await.unwrap(), nonce0 + 1);
    assert_eq!(client.get_last_settled_block().await.unwrap(), None);

    devnet_rpc(&chain.devnet.url, "devnet_createBlock", serde_json::json!({})).await.unwrap();
    assert_eq!(
        client.verify_tx_inclusion(&tx).await.unwrap(),
        SettlementVerificationStatus::Verified
    );
    assert!(client.wait_for_tx_finality(&tx).await.unwrap().is_some());
    assert_eq!(client.get_last_settled_block().await.unwrap(), Some(1));
}

#[tokio::test]
async fn a_closed_port_is_a_retryable_rpc_error_without_the_url() {
    let port = orchestrator_test_support::launch::free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let client = StarknetSettlementClient::new(StarknetSettlementConfig::new(
        url.parse().unwrap(),
        felt(0x1),
        felt(0x2),
        felt(0x3),
    ));
    let authority = format!("127.0.0.1:{port}");
    let errors = [
        client.get_last_settled_block().await.unwrap_err(),
        client.get_nonce().await.unwrap_err(),
        client
            .update_state_calldata(snos(0, 1, Felt::MAX, 0), vec![], [0; 32], [0; 32])
            .await
            .unwrap_err(),
        client.verify_tx_inclusion("0x1").await.unwrap_err(),
    ];
    for e in errors {
        assert!(matches!(e, SettlementError::Rpc(_)), "{e:?}");
        assert!(e.is_retryable());
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(&authority) && !shown.contains(&url), "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_owner_manages_operators() {
    let Some(chain) = chain(false, &[]).await else { return };
    let [owner, other] = [chain.accounts[0], chain.accounts[1]];
    let url = chain.devnet.url.clone();
    let e = invoke(
        &url,
        other.address,
        other.private_key,
        chain.deployed.core,
        "register_operator",
        vec![other.address],
    )
    .await
    .unwrap_err();
    assert!(e.contains("caller is not the owner"), "{e}");
    invoke(
        &url,
        owner.address,
        owner.private_key,
        chain.deployed.core,
        "register_operator",
        vec![other.address],
    )
    .await
    .unwrap();
    let tx = chain
        .client_for(other)
        .update_state_calldata(snos(0, 1, Felt::MAX, 0), vec![], [0; 32], [0; 32])
        .await
        .unwrap();
    assert_eq!(
        chain.client().verify_tx_inclusion(&tx).await.unwrap(),
        SettlementVerificationStatus::Verified
    );
    assert_eq!(chain.client().get_last_settled_block().await.unwrap(), Some(0));
    invoke(
        &url,
        owner.address,
        owner.private_key,
        chain.deployed.core,
        "unregister_operator",
        vec![other.address],
    )
    .await
    .unwrap();
    let e = chain
        .client_for(other)
        .update_state_calldata(snos(1, 2, felt(0), 1), vec![], [0; 32], [0; 32])
        .await
        .unwrap_err();
    assert!(reverted_reason(&e).contains("caller is not an operator"), "{e}");
}
