//! Deploys the test contracts (`contracts/artifacts`) on a running node and writes their
//! addresses as JSON (`--out`, default stdout) and as env lines `orchestrator run` reads.
//!
//! `cargo run -p orchestrator-ethereum-settlement-client --features test-utils --example deploy -- \
//!   --rpc http://127.0.0.1:8545 [--key 0x…] [--program-hash 0x…] [--out FILE] [--env FILE]`

use alloy::primitives::U256;
use orchestrator_ethereum_settlement_client::testing::{deploy_contracts, ANVIL_KEY_0};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let get =
        |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let rpc = get("--rpc").unwrap_or_else(|| "http://127.0.0.1:8545".into()).parse()?;
    let key = get("--key")
        .or_else(|| std::env::var("MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY").ok())
        .unwrap_or_else(|| ANVIL_KEY_0.into());
    let program_hash = get("--program-hash")
        .map(|h| U256::from_str_radix(h.trim_start_matches("0x"), 16))
        .transpose()?
        .unwrap_or(U256::ZERO);
    let strict = args.iter().any(|a| a == "--strict");
    let deployed = deploy_contracts(&rpc, &key, program_hash, U256::ZERO, -1, strict).await?;
    let json = serde_json::to_string_pretty(&deployed)?;
    match get("--out") {
        Some(path) => std::fs::write(path, json + "\n")?,
        None => println!("{json}"),
    }
    let env = format!(
        "MADARA_ORCHESTRATOR_L1_CORE_CONTRACT_ADDRESS={}\nMADARA_ORCHESTRATOR_MOCK_VERIFIER_ADDRESS={}\n",
        deployed.core_contract, deployed.verifier
    );
    match get("--env") {
        Some(path) => std::fs::write(path, env)?,
        None => print!("{env}"),
    }
    Ok(())
}
