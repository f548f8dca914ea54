//! Test support: an Anvil node started on a free port and killed on drop, and deployment of
//! the project's test contracts (`contracts/artifacts`). Compiled for tests and with the
//! `test-utils` feature.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

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

/// Where `scripts/anvil.sh` installs Anvil, or `$ORCH_ANVIL_BIN`.
pub fn anvil_path() -> PathBuf {
    if let Ok(p) = std::env::var("ORCH_ANVIL_BIN") {
        return PathBuf::from(p);
    }
    let cache = std::env::var("ORCH_CACHE").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into()))
            .join(".cache/orchestrator")
    });
    cache.join("node/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

/// Whether Anvil tests should run. Panics with the install hint when the binary is missing,
/// unless `ORCH_SKIP_ANVIL_TESTS=1` (then prints "skipped: no anvil" and returns false).
pub fn anvil_available() -> bool {
    if anvil_path().is_file() {
        return true;
    }
    if std::env::var("ORCH_SKIP_ANVIL_TESTS").as_deref() == Ok("1") {
        eprintln!("skipped: no anvil");
        return false;
    }
    panic!(
        "anvil not found at {}: run scripts/anvil.sh (or set ORCH_SKIP_ANVIL_TESTS=1)",
        anvil_path().display()
    );
}

/// A running Anvil, killed when dropped.
#[derive(Debug)]
pub struct AnvilGuard {
    child: Child,
    port: u16,
}

impl AnvilGuard {
    /// Starts Anvil (`--hardfork <hardfork>`, 127.0.0.1, a free port) with `extra` arguments
    /// and waits until it answers.
    pub fn start(hardfork: &str, extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = Command::new(anvil_path())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--hardfork",
                hardfork,
                "--silent",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start anvil");
        let guard = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "anvil did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        guard
    }

    /// Its HTTP endpoint.
    pub fn url(&self) -> Url {
        format!("http://127.0.0.1:{}", self.port).parse().expect("valid url")
    }
}

impl Drop for AnvilGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
