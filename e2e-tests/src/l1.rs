//! The settlement layer: an Anvil producing a block every second (Osaka: blobs with EIP-7594
//! cell proofs; the workspace's one launcher, `orchestrator_test_support::anvil`) with our core
//! contract and mock verifier, and what a test reads back from it.

use alloy::{
    consensus::Transaction as _,
    eips::BlockNumberOrTag,
    network::TransactionResponse as _,
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::Filter,
    sol,
    sol_types::SolEvent,
};
use orchestrator_ethereum_settlement_client::testing::{
    deploy_contracts, DeployedContracts, ANVIL_KEY_0, ANVIL_KEY_1,
};
use orchestrator_test_support::anvil::{Anvil, AnvilConfig};
use url::Url;

sol! {
    #[sol(rpc)]
    contract CoreView {
        function stateBlockNumber() external view returns (int256);
        event LogStateUpdate(uint256 globalRoot, int256 blockNumber, uint256 blockHash);
    }
}

/// The orchestrator's operator key (Anvil's account 0).
pub const OPERATOR_KEY: &str = ANVIL_KEY_0;
/// The key the mock prover registers facts with (Anvil's account 1: its own nonces).
pub const PROVER_KEY: &str = ANVIL_KEY_1;
/// Anvil's account 0.
pub const OPERATOR_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

/// A running L1 with the contracts deployed.
#[derive(Debug)]
pub struct L1 {
    anvil: Anvil,
    /// Core contract and verifier.
    pub contracts: DeployedContracts,
    provider: DynProvider,
}

/// One transaction sent to the core contract.
#[derive(Debug, Clone)]
pub struct CoreTx {
    /// Its hash.
    pub hash: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Blobs it carried.
    pub blobs: usize,
    /// The block it was mined in.
    pub block: u64,
    /// That block's timestamp (unix seconds).
    pub timestamp: u64,
}

impl L1 {
    /// Starts Anvil and deploys the contracts, the core contract accepting runs of the SNOS
    /// stand-in's program; `None` when Anvil tests are skipped.
    pub async fn start() -> Option<Self> {
        let anvil = Anvil::start(AnvilConfig::new("osaka").block_time(1)).await?;
        let program_hash =
            orchestrator_snos_runner::stand_in::program_hash().expect("stand-in program hash");
        let program_hash = U256::from_be_bytes(program_hash.to_bytes_be());
        let contracts =
            deploy_contracts(&anvil.url(), OPERATOR_KEY, program_hash, U256::ZERO, -1, false)
                .await
                .expect("deploy");
        let provider = ProviderBuilder::new().connect_http(anvil.url()).erased();
        Some(Self { anvil, contracts, provider })
    }

    /// The JSON-RPC URL.
    pub fn url(&self) -> Url {
        self.anvil.url()
    }

    /// `stateBlockNumber()` of the core contract at the latest block (−1 before any update).
    pub async fn state_block_number(&self) -> Result<i64, String> {
        let core = CoreView::new(self.contracts.core_contract, self.provider.clone());
        let n = core
            .stateBlockNumber()
            .block(BlockNumberOrTag::Latest.into())
            .call()
            .await
            .map_err(|e| format!("stateBlockNumber: {e}"))?;
        i64::try_from(n).map_err(|e| e.to_string())
    }

    /// The `blockNumber` of every `LogStateUpdate` the core contract emitted, in order.
    pub async fn settled_blocks(&self) -> Vec<i64> {
        let filter = Filter::new()
            .address(self.contracts.core_contract)
            .event_signature(CoreView::LogStateUpdate::SIGNATURE_HASH)
            .from_block(0);
        let logs = self.provider.get_logs(&filter).await.expect("core contract logs");
        logs.iter()
            .map(|log| {
                let decoded =
                    CoreView::LogStateUpdate::decode_log_data(log.data()).expect("LogStateUpdate");
                i64::try_from(decoded.blockNumber).expect("block number")
            })
            .collect()
    }

    /// Every transaction sent to the core contract (scanning every block), with its outcome.
    pub async fn core_transactions(&self) -> Vec<CoreTx> {
        let latest = self.provider.get_block_number().await.expect("block number");
        let mut out = Vec::new();
        for n in 0..=latest {
            let block = self
                .provider
                .get_block_by_number(n.into())
                .full()
                .await
                .expect("block")
                .expect("block exists");
            let timestamp = block.header.timestamp;
            for tx in block.transactions.into_transactions() {
                if tx.to() != Some(self.contracts.core_contract) {
                    continue;
                }
                let hash = tx.tx_hash();
                let receipt = self
                    .provider
                    .get_transaction_receipt(hash)
                    .await
                    .expect("receipt")
                    .expect("a mined transaction has a receipt");
                out.push(CoreTx {
                    hash: hash.to_string(),
                    success: receipt.status(),
                    blobs: tx.blob_versioned_hashes().map_or(0, <[_]>::len),
                    block: n,
                    timestamp,
                });
            }
        }
        out
    }

    /// The core contract's address.
    pub fn core(&self) -> Address {
        self.contracts.core_contract
    }
}
