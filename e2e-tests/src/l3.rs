//! The L3 stack: one starknet-devnet as the appchain's node, a second one as the settlement
//! layer with our Cairo core contract and fact registry (`contracts/cairo`) deployed, the mock
//! Atlantic server (proofs whose public output is their input's; L2 verification queries that
//! register their fact in the registry, which the orchestrator checks before the job completes
//! and `update_state` checks again), and the
//! `orchestrator` binary on the embedded tier with `--layer l3 --settle-on-starknet`.

use std::path::{Path, PathBuf};

use orchestrator_mock_atlantic_server::{
    MockAtlanticConfig, MockAtlanticServer, StarknetFactRegistration,
};
use orchestrator_settlement_client_interface::SettlementClient;
use orchestrator_starknet_settlement_client::{
    testing::{
        deploy_core_contract, predeployed_accounts, Deployed, InitialState, PredeployedAccount,
    },
    StarknetSettlementClient, StarknetSettlementConfig,
};
use starknet::core::types::Felt;

use crate::{devnet::Devnet, process::OrchestratorProcess};

/// Blocks per SNOS batch of the L3 workflow.
pub const L3_BLOCKS_PER_SNOS_BATCH: u64 = 3;

/// The Cairo verifier's program hash: the orchestrator sends it with every L2 verification
/// query, the mock registers `poseidon([it, poseidon(output)])` for each, and the core contract
/// checks that fact against its program info.
const VERIFIER_PROGRAM_HASH: &str = "0x1234";

/// Everything an L3 workflow runs against.
#[derive(Debug)]
pub struct L3Stack {
    /// The appchain's node.
    pub node: Devnet,
    /// The settlement layer.
    pub settlement: Devnet,
    /// The core contract on `settlement`.
    pub deployed: Deployed,
    /// The operator account on `settlement` (owner and registered operator).
    pub operator: PredeployedAccount,
    /// The prover.
    pub prover: MockAtlanticServer,
    dir: tempfile::TempDir,
}

impl L3Stack {
    /// Starts both devnets, deploys the core contract (nothing settled yet) and the mock
    /// prover, runs `orchestrator setup`. `None` when devnet tests are skipped.
    pub async fn start() -> Option<Self> {
        let node = Devnet::start().await?;
        let settlement = Devnet::start().await?;
        let accounts = predeployed_accounts(&settlement.url)
            .await
            .expect("predeployed accounts of the settlement devnet");
        // The orchestrator's operator, and another account for the prover's registrations.
        let (operator, prover_account) = (accounts[0], accounts[1]);
        let deployed = deploy_core_contract(
            &settlement.url,
            operator.address,
            operator.private_key,
            InitialState::default(),
            Felt::from_hex(VERIFIER_PROGRAM_HASH).expect("program hash"),
            true,
        )
        .await
        .expect("deploy the core contract on the settlement devnet");
        let prover = MockAtlanticServer::start(MockAtlanticConfig {
            port: 0,
            processing_delay: std::time::Duration::from_millis(300),
            completion_delay: std::time::Duration::from_millis(700),
            max_concurrent_jobs: 50,
            starknet_fact_registration: Some(StarknetFactRegistration {
                rpc_url: settlement.url.clone(),
                account: prover_account.address,
                private_key: prover_account.private_key,
                registry: deployed.fact_registry.expect("the fact registry"),
            }),
            ..MockAtlanticConfig::default()
        })
        .await
        .expect("mock Atlantic server");
        let stack = Self {
            node,
            settlement,
            deployed,
            operator,
            prover,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        crate::process::setup(&stack.infra_args(), &stack.envs());
        Some(stack)
    }

    fn infra_args(&self) -> Vec<String> {
        vec!["--data-dir".to_owned(), self.dir.path().join("data").display().to_string()]
    }

    /// Environment of the orchestrator process.
    pub fn envs(&self) -> Vec<(String, String)> {
        vec![("RUST_LOG".to_owned(), "info,orch=debug".to_owned())]
    }

    /// The orchestrator's log.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("orchestrator.log")
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `orchestrator run` command line of an L3 settling on the second devnet.
    pub fn run_args(&self) -> Vec<String> {
        let node = self.node.url.to_string();
        let settlement = self.settlement.url.to_string();
        let prover = self.prover.url().to_string();
        let account = format!("{:#x}", self.operator.address);
        let key = format!("{:#x}", self.operator.private_key);
        let core = format!("{:#x}", self.deployed.core);
        let registry = format!("{:#x}", self.deployed.fact_registry.expect("the fact registry"));
        let mut args: Vec<String> = [
            "--layer",
            "l3",
            "--settle-on-starknet",
            "--starknet-rpc-url",
            &settlement,
            "--starknet-private-key",
            &key,
            "--starknet-account-address",
            &account,
            "--starknet-cairo-core-contract-address",
            &core,
            "--starknet-finality-retry-wait-in-secs",
            "1",
            "--da-on-starknet",
            "--starknet-da-rpc-url",
            &settlement,
            "--atlantic-rpc-node-url",
            &settlement,
            "--atlantic-settlement-layer",
            "starknet",
            // The fact of each L2 verification is checked in the Cairo fact registry.
            "--atlantic-verifier-contract-address",
            &registry,
            "--cairo-verifier-program-hash",
            VERIFIER_PROGRAM_HASH,
            "--madara-rpc-url",
            &node,
            "--rpc-for-snos",
            &node,
            "--max-blocks-per-snos-batch",
            &L3_BLOCKS_PER_SNOS_BATCH.to_string(),
            "--max-batch-time-seconds",
            "3600",
        ]
        .map(String::from)
        .to_vec();
        args.extend(crate::stack::atlantic_args(&prover));
        // Real fact checks: the L2 verification facts the mock registers are read back.
        if let Some(i) = args.iter().position(|a| a == "--atlantic-mock-fact-hash") {
            args[i + 1] = "false".to_owned();
        }
        args.extend(crate::stack::quick_engine_args());
        args.extend(self.infra_args());
        args
    }

    /// Starts `orchestrator run` logging to [`L3Stack::log`].
    pub async fn spawn(&self) -> OrchestratorProcess {
        OrchestratorProcess::start(&self.run_args(), &self.envs(), &self.log()).await
    }

    /// A settlement client reading the core contract (the test's view of the settlement layer).
    pub fn settlement_client(&self) -> StarknetSettlementClient {
        StarknetSettlementClient::new(StarknetSettlementConfig::new(
            self.settlement.url.clone(),
            self.operator.address,
            self.operator.private_key,
            self.deployed.core,
        ))
    }

    /// The last block the core contract settled (`None` before the first update).
    pub async fn settled_block(&self) -> Result<Option<u64>, String> {
        self.settlement_client().get_last_settled_block().await.map_err(|e| e.to_string())
    }

    /// The last lines of the orchestrator log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::tail(&self.log(), lines)
    }
}
