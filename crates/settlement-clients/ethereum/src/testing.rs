//! Test support: Anvil's test keys, and deployment of the project's test contracts
//! (`contracts/artifacts`) on a node. Compiled for tests and with the `test-utils` feature. Anvil
//! itself is started by `orchestrator_test_support::anvil`, the one launcher of the workspace.

use std::path::PathBuf;

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{keccak256, Address, Bytes, B256, U256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol,
    sol_types::{SolCall, SolConstructor, SolValue},
};
use url::Url;

/// The private key of Anvil's account 0 (public test key).
pub const ANVIL_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// The private key of Anvil's account 1 (public test key).
pub const ANVIL_KEY_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

sol! {
    /// The test core contract (constructor + views used by tests).
    #[derive(Debug)]
    contract StarknetCoreTest {
        constructor(uint256 programHash_, address verifier_, uint256 initialRoot, int256 initialBlockNumber, bool strictContinuity_);
        function stateRoot() external view returns (uint256);
        function stateBlockHash() external view returns (uint256);
    }
    /// The mock fact registry.
    #[derive(Debug)]
    contract MockGpsVerifier {
        function registerFact(bytes32 fact) external;
        function isValid(bytes32 fact) external view returns (bool);
    }
}

/// Addresses of the deployed test contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeployedContracts {
    /// `StarknetCoreTest`.
    pub core_contract: Address,
    /// `MockGpsVerifier`.
    pub verifier: Address,
}

fn artifact_bytecode(name: &str) -> Vec<u8> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../contracts/artifacts"))
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/compile-contracts.sh)", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("artifact json");
    let code = json["bytecode"].as_str().expect("bytecode");
    hex::decode(code.trim_start_matches("0x")).expect("bytecode hex")
}

/// Deploys `MockGpsVerifier` and `StarknetCoreTest(program_hash, verifier, initial_root,
/// initial_block, strict)` with `key`.
pub async fn deploy_contracts(
    rpc: &Url,
    key: &str,
    program_hash: U256,
    initial_root: U256,
    initial_block: i64,
    strict: bool,
) -> Result<DeployedContracts, String> {
    let signer: PrivateKeySigner = key.parse().map_err(|e| format!("key: {e}"))?;
    let provider =
        ProviderBuilder::new().wallet(EthereumWallet::new(signer)).connect_http(rpc.clone());
    let deploy = |code: Vec<u8>| {
        let provider = provider.clone();
        async move {
            let tx = TransactionRequest::default().with_deploy_code(Bytes::from(code));
            let receipt = provider
                .send_transaction(tx)
                .await
                .map_err(|e| e.to_string())?
                .get_receipt()
                .await
                .map_err(|e| e.to_string())?;
            receipt.contract_address.ok_or_else(|| "no contract address".to_owned())
        }
    };
    let verifier = deploy(artifact_bytecode("MockGpsVerifier")).await?;
    let mut code = artifact_bytecode("StarknetCoreTest");
    code.extend(
        StarknetCoreTest::constructorCall {
            programHash_: program_hash,
            verifier_: verifier,
            initialRoot: initial_root,
            initialBlockNumber: alloy::primitives::I256::try_from(initial_block)
                .map_err(|e| e.to_string())?,
            strictContinuity_: strict,
        }
        .abi_encode(),
    );
    let core_contract = deploy(code).await?;
    Ok(DeployedContracts { core_contract, verifier })
}

/// The fact the core contract checks: keccak(programHash ‖ keccak(programOutput)).
pub fn state_transition_fact(program_hash: U256, program_output: &[[u8; 32]]) -> B256 {
    let output_hash = keccak256(program_output.concat());
    keccak256((program_hash, output_hash).abi_encode())
}

/// Registers `fact` in the mock verifier with `key` and waits for the receipt.
pub async fn register_fact(
    rpc: &Url,
    key: &str,
    verifier: Address,
    fact: B256,
) -> Result<(), String> {
    let signer: PrivateKeySigner = key.parse().map_err(|e| format!("key: {e}"))?;
    let provider =
        ProviderBuilder::new().wallet(EthereumWallet::new(signer)).connect_http(rpc.clone());
    let tx = TransactionRequest::default()
        .with_to(verifier)
        .with_input(Bytes::from(MockGpsVerifier::registerFactCall { fact }.abi_encode()));
    let receipt = provider
        .send_transaction(tx)
        .await
        .map_err(|e| e.to_string())?
        .get_receipt()
        .await
        .map_err(|e| e.to_string())?;
    if receipt.status() {
        Ok(())
    } else {
        Err("registerFact reverted".into())
    }
}
