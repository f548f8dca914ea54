//! The Starknet fact registry check (L3) against a real starknet-devnet with the project's
//! Cairo `FactRegistry` deployed from the committed artifacts: a registered fact is valid, an
//! unregistered one is not, the fact is the one the core contract checks, a wrong address is a
//! configuration error and an unreachable node a retryable one. Skipped with
//! `ORCH_SKIP_DEVNET_TESTS=1`.

use orchestrator_gps_fact_checker::{
    l3_fact,
    starknet_registry::{felt_to_fact, StarknetFactRegistry},
    FactCheckError, FactRegistry,
};
use orchestrator_starknet_settlement_client::{
    calldata::felt_to_word,
    testing::{
        deploy_core_contract, predeployed_accounts, register_fact, state_transition_fact,
        InitialState,
    },
};
use orchestrator_test_support::devnet::{Devnet, DevnetConfig};
use starknet::core::types::Felt;

const PROGRAM_HASH: u64 = 0x1234;

#[tokio::test]
async fn registered_facts_are_valid_and_others_are_not() {
    let Some(devnet) = Devnet::start_with(DevnetConfig::new().full_state_archive(false)).await
    else {
        return;
    };
    let accounts = predeployed_accounts(&devnet.url).await.unwrap();
    let owner = accounts[0];
    let deployed = deploy_core_contract(
        &devnet.url,
        owner.address,
        owner.private_key,
        InitialState::default(),
        Felt::from(PROGRAM_HASH),
        true,
    )
    .await
    .unwrap();
    let registry_address = deployed.fact_registry.expect("a fact registry was deployed");
    let registry = StarknetFactRegistry::new(devnet.url.clone(), registry_address);

    // The fact of an output, as the core contract computes it (test helper of the settlement
    // crate, written from the contract's `update_state`).
    let output: Vec<Felt> = (1..=4u64).map(|i| Felt::from(i * 1_000_003)).collect();
    let fact = l3_fact(Felt::from(PROGRAM_HASH), &output);
    let words: Vec<_> = output.iter().copied().map(felt_to_word).collect();
    assert_eq!(fact, state_transition_fact(Felt::from(PROGRAM_HASH), &words));

    assert!(!registry.is_valid(felt_to_fact(fact)).await.unwrap(), "not registered yet");
    register_fact(
        &devnet.url,
        accounts[1].address,
        accounts[1].private_key,
        registry_address,
        fact,
    )
    .await
    .unwrap();
    assert!(registry.is_valid(felt_to_fact(fact)).await.unwrap(), "registered");
    assert!(registry.is_registered(fact).await.unwrap());

    // Another output, another program hash: not registered.
    let other_output = l3_fact(Felt::from(PROGRAM_HASH), &output[..3]);
    assert!(!registry.is_valid(felt_to_fact(other_output)).await.unwrap());
    let other_program = l3_fact(Felt::from(PROGRAM_HASH + 1), &output);
    assert!(!registry.is_valid(felt_to_fact(other_program)).await.unwrap());

    // The core contract is no fact registry; an address without a contract is no contract at
    // all: both are configuration errors, not retried, naming the address.
    let empty = Felt::from_hex_unchecked("0x7e57");
    let err = StarknetFactRegistry::new(devnet.url.clone(), empty)
        .is_valid(felt_to_fact(fact))
        .await
        .unwrap_err();
    assert!(matches!(err, FactCheckError::Config(_)) && !err.is_retryable(), "{err}");
    assert!(err.to_string().contains("no contract at 0x7e57"), "{err}");
    let err = StarknetFactRegistry::new(devnet.url.clone(), deployed.core)
        .is_valid(felt_to_fact(fact))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains(&format!("{:#x}", deployed.core)), "{err}");

    // A keccak fact above the prime cannot be on Starknet: an invalid fact, not `false`.
    let err = registry.is_valid([0xff; 32].into()).await.unwrap_err();
    assert!(matches!(err, FactCheckError::InvalidFact(_)), "{err}");
}

#[tokio::test]
async fn an_unreachable_node_is_a_retryable_error_not_false() {
    // Nothing listens on the discard port.
    let registry = StarknetFactRegistry::new(
        "http://user:secret@127.0.0.1:9/rpc/KEY".parse().unwrap(),
        Felt::from(0x1u8),
    );
    let err = registry.is_valid(felt_to_fact(Felt::from(7u8))).await.unwrap_err();
    assert!(matches!(err, FactCheckError::Rpc { .. }) && err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(!text.contains("secret") && !text.contains("KEY"), "{text}");
}
