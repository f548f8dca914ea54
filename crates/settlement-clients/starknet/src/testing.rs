//! Test support: a devnet's predeployed accounts, and deployment of the project's Cairo
//! contracts from the committed artifacts (`contracts/cairo/artifacts`). Compiled for tests and
//! with the `test-utils` feature. The devnet itself is started by
//! `orchestrator_test_support::devnet`, the one launcher of the workspace.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use orchestrator_starknet_settlement_client::testing::*;
//! use orchestrator_test_support::devnet::{Devnet, DevnetConfig};
//! let Some(devnet) = Devnet::start_with(DevnetConfig::new().full_state_archive(false)).await
//! else {
//!     return Ok(()); // ORCH_SKIP_DEVNET_TESTS=1
//! };
//! let operator = predeployed_accounts(&devnet.url).await?[0];
//! let deployed = deploy_core_contract(
//!     &devnet.url, operator.address, operator.private_key,
//!     InitialState::default(), 0x5eed_u64.into(), true,
//! ).await?;
//! # let _ = deployed; Ok(()) }
//! ```

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use orchestrator_settlement_client_interface::Word;
use starknet::{
    accounts::{Account, ConnectedAccount, ExecutionEncoding, SingleOwnerAccount},
    contract::{ContractFactory, UdcSelector},
    core::{
        types::{contract::SierraClass, Call, ExecutionResult, Felt, StarknetError},
        utils::get_selector_from_name,
    },
    providers::{
        jsonrpc::{HttpTransport, JsonRpcClient},
        Provider, ProviderError,
    },
    signers::{LocalWallet, SigningKey},
};
use starknet_types_core::hash::{Poseidon, StarkHash};
use url::Url;

use crate::{
    calldata::{felt_to_word, word_to_felt},
    classes::{
        CORE_CONTRACT_CLASS_HASH, CORE_CONTRACT_COMPILED_CLASS_HASH, FACT_REGISTRY_CLASS_HASH,
        FACT_REGISTRY_COMPILED_CLASS_HASH,
    },
    client::describe_execution_error,
};

/// The committed Sierra class of `CoreContract`.
pub const CORE_CONTRACT_SIERRA: &str =
    include_str!("../../../../contracts/cairo/artifacts/CoreContract.contract_class.json");
/// The committed CASM class of `CoreContract`.
pub const CORE_CONTRACT_CASM: &str =
    include_str!("../../../../contracts/cairo/artifacts/CoreContract.compiled_contract_class.json");
/// The committed Sierra class of `FactRegistry`.
pub const FACT_REGISTRY_SIERRA: &str =
    include_str!("../../../../contracts/cairo/artifacts/FactRegistry.contract_class.json");
/// The committed CASM class of `FactRegistry`.
pub const FACT_REGISTRY_CASM: &str =
    include_str!("../../../../contracts/cairo/artifacts/FactRegistry.compiled_contract_class.json");

/// How long a test transaction may take to be executed.
const TX_TIMEOUT: Duration = Duration::from_secs(60);

/// A predeployed devnet account (public test keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredeployedAccount {
    /// The account contract.
    pub address: Felt,
    /// Its private key.
    pub private_key: Felt,
    /// Its public key.
    pub public_key: Felt,
}

/// A JSON-RPC call of a devnet-only method (`devnet_createBlock`, …); the error is the
/// transport error or the node's error object.
pub async fn devnet_rpc(
    rpc: &Url,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let answer: serde_json::Value = reqwest::Client::new()
        .post(rpc.clone())
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{method}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{method}: {e}"))?;
    answer.get("result").cloned().ok_or_else(|| format!("{method}: {answer}"))
}

/// The predeployed accounts, from devnet's `devnet_getPredeployedAccounts`.
pub async fn predeployed_accounts(rpc: &Url) -> Result<Vec<PredeployedAccount>, String> {
    let answer = devnet_rpc(rpc, "devnet_getPredeployedAccounts", serde_json::json!({})).await?;
    let accounts = answer
        .as_array()
        .ok_or_else(|| format!("devnet_getPredeployedAccounts answered {answer}"))?;
    let felt = |a: &serde_json::Value, key: &str| {
        a[key]
            .as_str()
            .and_then(|s| Felt::from_hex(s).ok())
            .ok_or_else(|| format!("predeployed account without {key}: {a}"))
    };
    accounts
        .iter()
        .map(|a| {
            Ok(PredeployedAccount {
                address: felt(a, "address")?,
                private_key: felt(a, "private_key")?,
                public_key: felt(a, "public_key")?,
            })
        })
        .collect()
}

/// The core contract's constructor state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialState {
    /// Initial state root.
    pub state_root: Felt,
    /// Initial block number; `Felt::MAX` (-1) for "nothing settled yet".
    pub block_number: Felt,
    /// Initial block hash.
    pub block_hash: Felt,
}

impl Default for InitialState {
    /// Nothing settled: root 0, block -1, hash 0.
    fn default() -> Self {
        Self { state_root: Felt::ZERO, block_number: Felt::MAX, block_hash: Felt::ZERO }
    }
}

/// Addresses of the deployed contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployed {
    /// `CoreContract`.
    pub core: Felt,
    /// `FactRegistry`, when one was deployed (and set in the core contract).
    pub fact_registry: Option<Felt>,
}

/// A Starknet OS output header (the ten felts the core contract reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnosHeader {
    /// State root before the batch.
    pub initial_root: Felt,
    /// State root after it.
    pub final_root: Felt,
    /// Last block settled before the batch (`Felt::MAX` for none).
    pub prev_block_number: Felt,
    /// Last block of the batch.
    pub new_block_number: Felt,
    /// Hash of `prev_block_number`.
    pub prev_block_hash: Felt,
    /// Hash of `new_block_number`.
    pub new_block_hash: Felt,
}

impl SnosHeader {
    /// The header as SNOS output words (OS program / config hash, use_kzg_da and full_output
    /// zero).
    pub fn words(&self) -> Vec<Word> {
        [
            self.initial_root,
            self.final_root,
            self.prev_block_number,
            self.new_block_number,
            self.prev_block_hash,
            self.new_block_hash,
            Felt::ZERO,
            Felt::ZERO,
            Felt::ZERO,
            Felt::ZERO,
        ]
        .map(felt_to_word)
        .to_vec()
    }
}

/// The fact the core contract checks: `poseidon(program_hash, poseidon(program_output))`.
///
/// # Panics
/// A word of `program_output` is not a felt.
pub fn state_transition_fact(program_hash: Felt, program_output: &[Word]) -> Felt {
    let output: Vec<Felt> = program_output
        .iter()
        .enumerate()
        .map(|(i, w)| word_to_felt(w, "program_output", i).expect("program output felts"))
        .collect();
    Poseidon::hash_array(&[program_hash, Poseidon::hash_array(&output)])
}

type TestAccount = SingleOwnerAccount<JsonRpcClient<HttpTransport>, LocalWallet>;

fn provider(rpc: &Url) -> JsonRpcClient<HttpTransport> {
    JsonRpcClient::new(HttpTransport::new(rpc.clone()))
}

/// A `SingleOwnerAccount` (new execution encoding) for `address` on the node at `rpc`.
pub async fn account(rpc: &Url, address: Felt, private_key: Felt) -> Result<TestAccount, String> {
    let provider = provider(rpc);
    let chain_id = provider.chain_id().await.map_err(|e| format!("chain id: {e}"))?;
    let signer = LocalWallet::from(SigningKey::from_secret_scalar(private_key));
    Ok(SingleOwnerAccount::new(provider, signer, address, chain_id, ExecutionEncoding::New))
}

/// Declares the committed classes (`CoreContract`, and `FactRegistry` when asked), deploys
/// them from `account_address`, which becomes the owner, registers that account as operator,
/// sets program info `(program_hash, 0)`, and sets the fact registry. Every transaction is
/// waited on. Re-running against the same node deploys fresh instances (a new salt).
pub async fn deploy_core_contract(
    rpc_url: &Url,
    account_address: Felt,
    private_key: Felt,
    initial_state: InitialState,
    program_hash: Felt,
    with_fact_registry: bool,
) -> Result<Deployed, String> {
    let account = account(rpc_url, account_address, private_key).await?;
    declare(
        &account,
        CORE_CONTRACT_SIERRA,
        CORE_CONTRACT_CLASS_HASH,
        CORE_CONTRACT_COMPILED_CLASS_HASH,
    )
    .await?;
    let core = deploy(
        &account,
        CORE_CONTRACT_CLASS_HASH,
        vec![
            account_address,
            initial_state.state_root,
            initial_state.block_number,
            initial_state.block_hash,
        ],
    )
    .await?;
    invoke_with(&account, core, "register_operator", vec![account_address]).await?;
    invoke_with(&account, core, "set_program_info", vec![program_hash, Felt::ZERO]).await?;
    let fact_registry = if with_fact_registry {
        declare(
            &account,
            FACT_REGISTRY_SIERRA,
            FACT_REGISTRY_CLASS_HASH,
            FACT_REGISTRY_COMPILED_CLASS_HASH,
        )
        .await?;
        let registry = deploy(&account, FACT_REGISTRY_CLASS_HASH, vec![]).await?;
        invoke_with(&account, core, "set_facts_registry", vec![registry]).await?;
        Some(registry)
    } else {
        None
    };
    Ok(Deployed { core, fact_registry })
}

/// Registers `fact` in the fact registry `registry` from `account_address`.
pub async fn register_fact(
    rpc_url: &Url,
    account_address: Felt,
    private_key: Felt,
    registry: Felt,
    fact: Felt,
) -> Result<Felt, String> {
    invoke(rpc_url, account_address, private_key, registry, "register_fact", vec![fact]).await
}

/// Invokes `entry_point(calldata)` on `to` from `account_address`, waits until the transaction
/// is executed, and returns its hash; a revert (in the fee estimate or on chain) is
/// an error with the reason.
pub async fn invoke(
    rpc_url: &Url,
    account_address: Felt,
    private_key: Felt,
    to: Felt,
    entry_point: &str,
    calldata: Vec<Felt>,
) -> Result<Felt, String> {
    let account = account(rpc_url, account_address, private_key).await?;
    invoke_with(&account, to, entry_point, calldata).await
}

async fn invoke_with(
    account: &TestAccount,
    to: Felt,
    entry_point: &str,
    calldata: Vec<Felt>,
) -> Result<Felt, String> {
    let selector =
        get_selector_from_name(entry_point).map_err(|e| format!("{entry_point}: {e}"))?;
    let sent = account
        .execute_v3(vec![Call { to, selector, calldata }])
        .send()
        .await
        .map_err(|e| format!("{entry_point}: {}", account_error(e)))?;
    wait_executed(account.provider(), sent.transaction_hash)
        .await
        .map_err(|e| format!("{entry_point}: {e}"))?;
    Ok(sent.transaction_hash)
}

async fn declare(
    account: &TestAccount,
    sierra_json: &str,
    class_hash: Felt,
    compiled_class_hash: Felt,
) -> Result<(), String> {
    let sierra: SierraClass =
        serde_json::from_str(sierra_json).map_err(|e| format!("Sierra artifact: {e}"))?;
    let flattened = sierra.flatten().map_err(|e| format!("Sierra artifact: {e}"))?;
    if flattened.class_hash() != class_hash {
        return Err(format!(
            "the committed Sierra class hashes to {:#x}, classes.rs says {class_hash:#x}",
            flattened.class_hash()
        ));
    }
    match account.declare_v3(Arc::new(flattened), compiled_class_hash).send().await {
        Ok(sent) => wait_executed(account.provider(), sent.transaction_hash).await,
        Err(starknet::accounts::AccountError::Provider(ProviderError::StarknetError(
            StarknetError::ClassAlreadyDeclared,
        ))) => Ok(()),
        Err(e) => Err(format!("declare {class_hash:#x}: {}", account_error(e))),
    }
}

async fn deploy(account: &TestAccount, class_hash: Felt, ctor: Vec<Felt>) -> Result<Felt, String> {
    // A fresh salt per call, so a second deployment on the same node gets its own address.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let factory = ContractFactory::new_with_udc(class_hash, account, UdcSelector::New);
    let deployment = factory.deploy_v3(ctor, Felt::from(nanos), false);
    let address = deployment.deployed_address();
    let sent = deployment
        .send()
        .await
        .map_err(|e| format!("deploy {class_hash:#x}: {}", account_error(e)))?;
    wait_executed(account.provider(), sent.transaction_hash).await?;
    Ok(address)
}

fn account_error<S: std::fmt::Display>(e: starknet::accounts::AccountError<S>) -> String {
    match e {
        starknet::accounts::AccountError::Provider(ProviderError::StarknetError(
            StarknetError::TransactionExecutionError(data),
        )) => describe_execution_error(&data.execution_error),
        e => e.to_string(),
    }
}

/// Polls the receipt of `tx_hash` until the node has executed it (pre-confirmed, or in a
/// block: with `--block-generation-on demand` blocks close only on `devnet_createBlock`); a
/// reverted transaction is an error with its reason.
pub async fn wait_executed(
    provider: &JsonRpcClient<HttpTransport>,
    tx_hash: Felt,
) -> Result<(), String> {
    let deadline = Instant::now() + TX_TIMEOUT;
    loop {
        match provider.get_transaction_receipt(tx_hash).await {
            Ok(r) => {
                return match r.receipt.execution_result() {
                    ExecutionResult::Succeeded => Ok(()),
                    ExecutionResult::Reverted { reason } => {
                        Err(format!("{tx_hash:#x} reverted: {reason}"))
                    }
                };
            }
            Err(ProviderError::StarknetError(StarknetError::TransactionHashNotFound)) => {}
            Err(e) => return Err(format!("receipt of {tx_hash:#x}: {e}")),
        }
        if Instant::now() > deadline {
            return Err(format!("{tx_hash:#x} not executed within {TX_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
