//! The external clients of the pipeline, each built once from the run parameters: the node
//! (and the replay-bounds node), the prover (`--prover`), the settlement client
//! (`--settle-on-*`), the DA client (`--da-on-*`) and the SNOS runner (`--snos-runner`). The
//! stages' builders share them.
//!
//! An URL may carry credentials (`http://user:password@host/`): each client takes them out of
//! it ([`orchestrator_utils::secret::split_userinfo`]) and sends them as an
//! `Authorization: Basic` header, so the URL its HTTP transport logs has none. The Madara node
//! clients are reqwest's, which does the same itself for every request; the external SNOS
//! runner gets the whole URL in its environment (`SNOS_RPC_URL`), never on a log line.

use std::{sync::Arc, time::Duration};

use eyre::WrapErr;
use orchestrator_atlantic_service::{
    types::{AtlanticAggregatorParams, AtlanticQueryStep as WireStep},
    AtlanticConfig, AtlanticProverService, AtlanticSettlementLayer, ChainIdSource,
};
use orchestrator_da_client_interface::DaClient;
use orchestrator_ethereum_da_client::EthereumDaClient;
use orchestrator_ethereum_settlement_client::{
    signer::{KmsSigner, OperatorSigner},
    EthereumSettlementClient, EthereumSettlementConfig,
};
use orchestrator_gps_fact_checker::{
    onchain::Address, FactRegistrar, FactRegistry, GpsFactChecker, StarknetFactRegistry,
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
        let settlement: Arc<dyn SettlementClient> = match &params.settlement {
            SettlementParams::Ethereum(eth) => Arc::new(ethereum_client(eth).await?),
            SettlementParams::Starknet(sn) => Arc::new(starknet_client(sn)?),
        };
        Self::from_parts(params, node, settlement)
    }

    /// The clients `params` selects around the given node and settlement client: the
    /// replay-bounds node, the prover, the DA client and the SNOS runner are built from
    /// `params` as [`Self::new`] builds them. Tests drive the pipeline of a configuration with
    /// in-process fakes of the two clients that need a network at start-up.
    pub fn from_parts(
        params: &RunParams,
        node: Arc<dyn MadaraClient>,
        settlement: Arc<dyn SettlementClient>,
    ) -> eyre::Result<Self> {
        let replay: Option<Arc<dyn MadaraClient>> = match &params.madara.replay_bounds_rpc_url {
            Some(url) => Some(Arc::new(
                MadaraRpcClient::new(
                    MadaraRpcConfig::new(url.clone()).with_upstream(&params.upstream),
                )
                .map_err(|e| eyre::eyre!("replay-bounds node client: {e}"))?,
            )),
            None => None,
        };
        let (prover, settlement): (Arc<dyn ProverClient>, Arc<dyn SettlementClient>) =
            if params.shadow.is_some() {
                // Shadow mode: no prover is contacted and the settlement client cannot send
                // (`crate::shadow`), whatever a stage asks of them.
                (
                    Arc::new(crate::shadow::ShadowProver::new()),
                    Arc::new(crate::shadow::ShadowSettlementClient::new(settlement)),
                )
            } else {
                (
                    prover_client(
                        &node,
                        &params.prover,
                        &params.snos,
                        &params.settlement,
                        RetryPolicy::upstream(params.upstream),
                    )?,
                    settlement,
                )
            };
        Ok(Self {
            node: node.clone(),
            replay,
            prover,
            settlement,
            da: da_client(&params.da)?,
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
            // Read from the node on the first bucket (`NodeChainId`).
            chain_id_hex: None,
            // The fee token the OS runs with (`--snos-strk-fee-token-address`).
            fee_token_address: Some(format!("{:#x}", snos.strk_fee_token_address)),
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
    node: &Arc<dyn MadaraClient>,
    prover: &ProverParams,
    snos: &SnosParams,
    settlement: &SettlementParams,
    retry: RetryPolicy,
) -> eyre::Result<Arc<dyn ProverClient>> {
    Ok(match prover {
        ProverParams::Atlantic(a) => {
            let checker: Option<Arc<dyn FactRegistry>> = match (
                a.mock_fact_hash,
                a.settlement_layer,
                &a.rpc_node_url,
            ) {
                (true, _, _) => None,
                // L3: the fact of each L2 verification, in the Cairo fact registry at
                // --atlantic-verifier-contract-address on the Starknet settlement layer.
                (false, ProofSettlementLayer::Starknet, Some(rpc)) => {
                    tracing::info!(target: "orch::prover", registry = %format_args!("{:#x}", a.verifier_contract_address), "L2 verification facts are checked in the Starknet fact registry");
                    Some(Arc::new(StarknetFactRegistry::new(
                        rpc.clone(),
                        a.verifier_contract_address,
                    )))
                }
                (false, ProofSettlementLayer::Ethereum, Some(rpc)) => {
                    let bytes = a.verifier_contract_address.to_bytes_be();
                    Some(Arc::new(GpsFactChecker::new(
                        rpc.clone(),
                        Address::from_slice(&bytes[12..]),
                    )))
                }
                (false, _, None) => {
                    eyre::bail!("--atlantic-rpc-node-url is needed to check facts")
                }
            };
            Arc::new(
                AtlanticProverService::new(atlantic_config(a, snos, retry), checker)
                    .wrap_err("Atlantic client")?
                    .with_chain_id_source(Arc::new(NodeChainId(node.clone()))),
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
                (Some(address), SettlementParams::Ethereum(eth)) => {
                    // The parameters refuse --mock-verifier-address with a KMS signer.
                    let key = eth.signer.private_key().ok_or_else(|| {
                        eyre::eyre!(
                            "--mock-verifier-address needs --ethereum-private-key (not KMS)"
                        )
                    })?;
                    Some(Arc::new(
                        FactRegistrar::new(eth.rpc_url.expose().clone(), key.expose(), address)
                            .wrap_err("mock prover fact registrar")?,
                    ))
                }
                (Some(_), _) => {
                    eyre::bail!("--mock-verifier-address needs Ethereum settlement")
                }
                (None, _) => None,
            };
            Arc::new(MockProverService::new(registrar))
        }
    })
}

/// The chain id of new Atlantic buckets: `starknet_chainId` on the Madara node.
struct NodeChainId(Arc<dyn MadaraClient>);

impl std::fmt::Debug for NodeChainId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeChainId")
    }
}

#[async_trait::async_trait]
impl ChainIdSource for NodeChainId {
    async fn chain_id(&self) -> Result<Felt, String> {
        self.0.chain_id().await.map_err(|e| format!("starknet_chainId on the Madara node: {e}"))
    }
}

/// The Ethereum settlement client of `eth` (local key, or KMS with `--ethereum-kms-key-id`).
async fn ethereum_client(eth: &EthereumSettlementParams) -> eyre::Result<EthereumSettlementClient> {
    use crate::config::EthereumSignerParams;
    let signer = match &eth.signer {
        // Reads the key's public key: KMS must answer at start-up.
        EthereumSignerParams::Kms { key_id } => OperatorSigner::Kms(
            KmsSigner::from_env(key_id.clone()).await.wrap_err("--ethereum-kms-key-id")?,
        ),
        // The chain id is filled in per transaction by the client.
        EthereumSignerParams::PrivateKey(key) => {
            OperatorSigner::local(key.expose(), None).wrap_err("--ethereum-private-key")?
        }
    };
    tracing::info!(target: "orch::settlement", operator = %signer.address(), signer = ?signer, "Ethereum settlement signer");
    // --starknet-operator-address names the account the core contract accepts state updates
    // from; they are sent by the signer.
    if signer.address() != eth.starknet_operator_address {
        tracing::warn!(target: "orch::settlement", operator = %eth.starknet_operator_address, signer = %signer.address(), "--starknet-operator-address is not the signer's address: state updates are sent from the signer, and the core contract refuses them unless the signer is one of its operators");
    }
    let mut config =
        EthereumSettlementConfig::new(eth.rpc_url.expose().clone(), eth.l1_core_contract_address);
    config.fallback_rpc_urls = eth.fallback_rpc_urls.iter().map(|u| u.expose().clone()).collect();
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
    config.fallback_rpc_urls = sn.fallback_rpc_urls.iter().map(|u| u.expose().clone()).collect();
    config.finality_retry_wait = sn.finality_retry_wait;
    Ok(StarknetSettlementClient::new(config))
}

/// The DA client `--da-on-*` selects. On Ethereum the blobs travel in the settlement
/// transaction and on Starknet in its calldata: both publish as a validated no-op.
fn da_client(da: &DaParams) -> eyre::Result<Arc<dyn DaClient>> {
    Ok(match da {
        DaParams::Ethereum { rpc_url } => Arc::new(
            EthereumDaClient::new(rpc_url.expose().clone()).wrap_err("Ethereum DA client")?,
        ),
        DaParams::Starknet { .. } => Arc::new(StarknetDaClient),
    })
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
