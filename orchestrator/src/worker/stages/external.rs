//! The external clients of the pipeline, each built once from the run parameters: the node
//! (and the replay-bounds node), the prover (`--prover`), the settlement client
//! (`--settle-on-*`), the DA client (`--da-on-*`) and the SNOS runner (`--snos-runner`). The
//! stages' builders share them.

use std::{sync::Arc, time::Duration};

use eyre::WrapErr;
use orchestrator_atlantic_service::{
    types::{AtlanticAggregatorParams, AtlanticQueryStep as WireStep},
    AtlanticConfig, AtlanticProverService, AtlanticSettlementLayer,
};
use orchestrator_da_client_interface::DaClient;
use orchestrator_ethereum_da_client::EthereumDaClient;
use orchestrator_ethereum_settlement_client::{
    signer::{KmsSigner, OperatorSigner},
    EthereumSettlementClient, EthereumSettlementConfig,
};
use orchestrator_gps_fact_checker::{
    onchain::Address, AlwaysValid, FactRegistrar, FactRegistry, GpsFactChecker,
};
use orchestrator_mock_service::MockProverService;
use orchestrator_prover_client_interface::{ProverClient, RetryPolicy};
use orchestrator_settlement_client_interface::SettlementClient;
use orchestrator_sharp_service::{SharpConfig, SharpProverService};
use orchestrator_snos_runner::{ExternalRunner, ExternalRunnerConfig, SnosRunner, StandInRunner};
use orchestrator_starknet_da_client::StarknetDaClient;
use orchestrator_starknet_settlement_client::{StarknetSettlementClient, StarknetSettlementConfig};
use starknet::core::types::Felt;

use crate::{
    config::{
        choices::{AtlanticQueryStep, ProofSettlementLayer, SnosRunnerKind},
        AtlanticParams, DaParams, EthereumSettlementParams, ProverParams, RunParams,
        SettlementParams, SnosParams, StarknetSettlementParams,
    },
    core::client::madara::{
        rpc::{MadaraRpcClient, MadaraRpcConfig},
        MadaraClient,
    },
};

/// Timeout of one prover HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The external clients of the pipeline, built once.
#[derive(Clone)]
pub struct ExternalClients {
    /// The node of `--madara-rpc-url`.
    pub node: Arc<dyn MadaraClient>,
    /// The reference node of `--replay-bounds-rpc-url`, when given.
    pub replay: Option<Arc<dyn MadaraClient>>,
    /// The prover of `--prover`.
    pub prover: Arc<dyn ProverClient>,
    /// The settlement client of `--settle-on-*`.
    pub settlement: Arc<dyn SettlementClient>,
    /// The DA client of `--da-on-*`.
    pub da: Arc<dyn DaClient>,
    /// The SNOS runner of `--snos-runner`.
    pub snos_runner: Arc<dyn SnosRunner>,
}

impl std::fmt::Debug for ExternalClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalClients").finish_non_exhaustive()
    }
}

impl ExternalClients {
    /// Builds every client `params` selects, once.
    pub async fn new(params: &RunParams) -> eyre::Result<Self> {
        let node: Arc<dyn MadaraClient> = Arc::new(
            MadaraRpcClient::new(
                MadaraRpcConfig::from_params(&params.madara).with_upstream(&params.upstream),
            )
            .map_err(|e| eyre::eyre!("Madara node client: {e}"))?,
        );
        let replay: Option<Arc<dyn MadaraClient>> = match &params.madara.replay_bounds_rpc_url {
            Some(url) => Some(Arc::new(
                MadaraRpcClient::new(
                    MadaraRpcConfig::new(url.clone()).with_upstream(&params.upstream),
                )
                .map_err(|e| eyre::eyre!("replay-bounds node client: {e}"))?,
            )),
            None => None,
        };
        let settlement: Arc<dyn SettlementClient> = match &params.settlement {
            SettlementParams::Ethereum(eth) => Arc::new(ethereum_client(eth).await?),
            SettlementParams::Starknet(sn) => Arc::new(starknet_client(sn)?),
        };
        Ok(Self {
            node,
            replay,
            prover: prover_client(
                &params.prover,
                &params.snos,
                &params.settlement,
                RetryPolicy::upstream(params.upstream),
            )?,
            settlement,
            da: da_client(&params.da),
            snos_runner: snos_runner(&params.snos),
        })
    }
}

fn wire_step(step: AtlanticQueryStep) -> WireStep {
    match step {
        AtlanticQueryStep::TraceGeneration => WireStep::TraceGeneration,
        AtlanticQueryStep::ProofGeneration => WireStep::ProofGeneration,
        AtlanticQueryStep::ProofVerification => WireStep::ProofVerification,
        AtlanticQueryStep::ProofVerificationOnL1 => WireStep::ProofVerificationOnL1,
        AtlanticQueryStep::ProofVerificationOnL2 => WireStep::ProofVerificationOnL2,
        AtlanticQueryStep::ProofGenerationAndVerification => {
            WireStep::ProofGenerationAndVerification
        }
        AtlanticQueryStep::FactHashRegistration => WireStep::FactHashRegistration,
        AtlanticQueryStep::TraceAndMetadataGeneration => WireStep::TraceAndMetadataGeneration,
    }
}

/// The Atlantic client config from the run parameters, retrying under `retry`.
fn atlantic_config(a: &AtlanticParams, snos: &SnosParams, retry: RetryPolicy) -> AtlanticConfig {
    AtlanticConfig {
        service_url: a.service_url.clone(),
        api_key: a.api_key.clone(),
        artifacts_base_url: a.artifacts_base_url.clone(),
        mock_fact_hash: a.mock_fact_hash,
        network: a.network.to_string(),
        cairo_vm: a.cairo_vm.to_string(),
        result: wire_step(a.result),
        sharp_prover: a.sharp_prover.to_string(),
        settlement_layer: match a.settlement_layer {
            ProofSettlementLayer::Ethereum => AtlanticSettlementLayer::Ethereum,
            ProofSettlementLayer::Starknet => AtlanticSettlementLayer::Starknet,
        },
        proof_layout: snos.prover_layout.to_string(),
        cairo_verifier_program_hash: a.cairo_verifier_program_hash.map(|h| format!("{h:#x}")),
        aggregator_params: AtlanticAggregatorParams {
            use_kzg_da: true,
            full_output: false,
            chain_id_hex: None,
            fee_token_address: None,
            public_keys: (!snos.da_public_keys.is_empty())
                .then(|| snos.da_public_keys.iter().map(|k| format!("{k:#x}")).collect()),
        },
        retry,
        request_timeout: REQUEST_TIMEOUT,
    }
}

/// The prover client `--prover` selects, its HTTP calls retried under `retry`
/// (`--upstream-read-*`); Atlantic also takes the OS layout and DA keys, the mock prover the
/// settlement RPC and key it registers facts with.
fn prover_client(
    prover: &ProverParams,
    snos: &SnosParams,
    settlement: &SettlementParams,
    retry: RetryPolicy,
) -> eyre::Result<Arc<dyn ProverClient>> {
    Ok(match prover {
        ProverParams::Atlantic(a) => {
            let checker: Option<Arc<dyn FactRegistry>> =
                match (a.mock_fact_hash, a.settlement_layer, &a.rpc_node_url) {
                    (true, _, _) => None,
                    (false, ProofSettlementLayer::Starknet, _) => Some(Arc::new(AlwaysValid)),
                    (false, ProofSettlementLayer::Ethereum, Some(rpc)) => {
                        let bytes = a.verifier_contract_address.to_bytes_be();
                        Some(Arc::new(GpsFactChecker::new(
                            rpc.clone(),
                            Address::from_slice(&bytes[12..]),
                        )))
                    }
                    (false, ProofSettlementLayer::Ethereum, None) => {
                        eyre::bail!("--atlantic-rpc-node-url is needed to check facts")
                    }
                };
            Arc::new(
                AtlanticProverService::new(atlantic_config(a, snos, retry), checker)
                    .wrap_err("Atlantic client")?,
            )
        }
        ProverParams::Sharp(s) => {
            let checker = Arc::new(GpsFactChecker::new(
                s.rpc_node_url.clone(),
                s.gps_verifier_contract_address,
            ));
            let config = SharpConfig {
                url: s.url.clone(),
                customer_id: s.customer_id.clone(),
                user_crt_pem: s.certificates.user_crt.clone(),
                user_key_pem: s.certificates.user_key.clone(),
                server_crt_pem: s.certificates.server_crt.clone(),
                retry,
                request_timeout: REQUEST_TIMEOUT,
            };
            Arc::new(SharpProverService::new(config, checker).wrap_err("SHARP client")?)
        }
        ProverParams::Mock(m) => {
            let registrar = match (m.verifier_address, settlement) {
                (Some(address), SettlementParams::Ethereum(eth)) => Some(Arc::new(
                    FactRegistrar::new(
                        eth.rpc_url.expose().clone(),
                        eth.private_key.expose(),
                        address,
                    )
                    .wrap_err("mock prover fact registrar")?,
                )),
                (Some(_), _) => {
                    eyre::bail!("--mock-verifier-address needs Ethereum settlement")
                }
                (None, _) => None,
            };
            Arc::new(MockProverService::new(registrar))
        }
    })
}

/// The Ethereum settlement client of `eth` (local key, or KMS with `--ethereum-kms-key-id`).
async fn ethereum_client(eth: &EthereumSettlementParams) -> eyre::Result<EthereumSettlementClient> {
    let signer = match &eth.kms_key_id {
        Some(key_id) => {
            OperatorSigner::Kms(KmsSigner::from_env(key_id.clone()).await.wrap_err("KMS signer")?)
        }
        // The chain id is filled in per transaction by the client.
        None => OperatorSigner::local(eth.private_key.expose(), None)
            .wrap_err("--ethereum-private-key")?,
    };
    let mut config =
        EthereumSettlementConfig::new(eth.rpc_url.expose().clone(), eth.l1_core_contract_address);
    config.poll_interval = eth.finality_retry_wait;
    config.tx_confirmation_timeout = eth.tx_confirmation_timeout;
    config.max_fee_bumps = eth.max_fee_bumps;
    config.max_fee_wei = eth.l2_state_update_max_fee_wei;
    config.peerdas = !eth.disable_peerdas;
    EthereumSettlementClient::new(config, signer).await.wrap_err("Ethereum settlement client")
}

/// The Starknet settlement client of `sn` (an L3's Cairo core contract).
fn starknet_client(sn: &StarknetSettlementParams) -> eyre::Result<StarknetSettlementClient> {
    let key = Felt::from_hex(sn.private_key.expose().trim())
        .map_err(|_| eyre::eyre!("--starknet-private-key is not a hex felt"))?;
    let mut config = StarknetSettlementConfig::new(
        sn.rpc_url.expose().clone(),
        sn.account_address,
        key,
        sn.cairo_core_contract_address,
    );
    config.finality_retry_wait = sn.finality_retry_wait;
    Ok(StarknetSettlementClient::new(config))
}

/// The DA client `--da-on-*` selects. On Ethereum the blobs travel in the settlement
/// transaction and on Starknet in its calldata: both publish as a validated no-op.
fn da_client(da: &DaParams) -> Arc<dyn DaClient> {
    match da {
        DaParams::Ethereum { rpc_url } => Arc::new(EthereumDaClient::new(rpc_url.expose().clone())),
        DaParams::Starknet { .. } => Arc::new(StarknetDaClient),
    }
}

/// The SNOS runner `params` selects; the stand-in is announced loudly.
fn snos_runner(params: &SnosParams) -> Arc<dyn SnosRunner> {
    match (params.runner, &params.command) {
        (SnosRunnerKind::External, Some(command)) => {
            tracing::info!(command = %command, timeout_s = params.command_timeout.as_secs(), "SNOS runner: external command");
            Arc::new(ExternalRunner::new(ExternalRunnerConfig {
                command: command.clone(),
                timeout: params.command_timeout,
            }))
        }
        // Validation requires a command with `external`; without one the stand-in is the only
        // runner there is.
        _ => {
            tracing::warn!(
                "SNOS runner: STAND-IN. SnosRun jobs run a small Cairo program of ours that writes an \
                 OS-shaped output (roots, block hashes, KZG values of the batch's blobs); the PIEs and \
                 facts PROVE NOTHING about the execution of the blocks. Use --snos-runner external with \
                 --snos-command for real Starknet OS runs."
            );
            Arc::new(StandInRunner::new())
        }
    }
}
