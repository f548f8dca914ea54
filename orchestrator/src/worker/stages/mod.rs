//! Builds the job handlers and triggers of the layer from the run parameters. Each stage adds
//! its handlers and triggers in its own section below; handlers hold the clients they need.

use crate::core::client::Clients;
use std::sync::Arc;

use orchestrator_snos_runner::{ExternalRunner, ExternalRunnerConfig, SnosRunner, StandInRunner};

use crate::{
    config::choices::SnosRunnerKind,
    config::{RunParams, SnosParams},
    worker::{
        event_handler::jobs::{snos::SnosJobHandler, JobHandlers},
        triggers::{snos::SnosTrigger, Triggers},
    },
};

/// The proving stage: the prover client from `--prover`, its handlers and triggers.
pub mod proving {
    use std::{sync::Arc, time::Duration};

    use eyre::WrapErr;
    use orchestrator_atlantic_service::{
        types::{AtlanticAggregatorParams, AtlanticQueryStep as WireStep},
        AtlanticConfig, AtlanticProverService, AtlanticSettlementLayer,
    };
    use orchestrator_gps_fact_checker::{
        onchain::Address, AlwaysValid, FactRegistrar, FactRegistry, GpsFactChecker,
    };
    use orchestrator_mock_service::MockProverService;
    use orchestrator_prover_client_interface::{ProverClient, RetryPolicy};
    use orchestrator_sharp_service::{SharpConfig, SharpProverService};

    use crate::{
        config::choices::{AtlanticQueryStep, ProofSettlementLayer},
        config::{AtlanticParams, ProverParams, RunParams, SettlementParams},
        core::client::Clients,
        types::Layer,
        worker::{
            event_handler::jobs::{
                aggregator::{AggregatorHandler, UnavailableAggregator},
                proof_registration::ProofRegistrationHandler,
                proving::{ProofCreationHandler, ProverContext},
                JobHandlers,
            },
            triggers::{
                aggregator::AggregatorTrigger, proof_registration::ProofRegistrationTrigger,
                proving::ProvingTrigger, Triggers,
            },
        },
    };

    /// Timeout of one prover HTTP request.
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

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

    /// The Atlantic client config from the run parameters.
    pub fn atlantic_config(params: &RunParams, a: &AtlanticParams) -> AtlanticConfig {
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
            proof_layout: params.snos.prover_layout.to_string(),
            cairo_verifier_program_hash: a.cairo_verifier_program_hash.map(|h| format!("{h:#x}")),
            aggregator_params: AtlanticAggregatorParams {
                use_kzg_da: true,
                full_output: false,
                chain_id_hex: None,
                fee_token_address: None,
                public_keys: (!params.snos.da_public_keys.is_empty()).then(|| {
                    params.snos.da_public_keys.iter().map(|k| format!("{k:#x}")).collect()
                }),
            },
            retry: RetryPolicy::default(),
            request_timeout: REQUEST_TIMEOUT,
        }
    }

    /// The prover client `--prover` selects.
    pub fn prover_client(params: &RunParams) -> eyre::Result<Arc<dyn ProverClient>> {
        Ok(match &params.prover {
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
                    AtlanticProverService::new(atlantic_config(params, a), checker)
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
                    retry: RetryPolicy::default(),
                    request_timeout: REQUEST_TIMEOUT,
                };
                Arc::new(SharpProverService::new(config, checker).wrap_err("SHARP client")?)
            }
            ProverParams::Mock(m) => {
                let registrar = match (m.verifier_address, &params.settlement) {
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

    /// Adds the proving handlers and triggers of the layer.
    pub fn stage(
        params: &RunParams,
        clients: &Clients,
        prover: Arc<dyn ProverClient>,
        handlers: JobHandlers,
        triggers: Triggers,
    ) -> (JobHandlers, Triggers) {
        let ctx = ProverContext {
            prover,
            kind: params.prover.kind(),
            layer: params.layer,
            storage: clients.storage.clone(),
            database: clients.database.clone(),
            polling_override: params.service.verification_poll,
        };
        with_stage(
            ctx,
            params.service.aggregator_job_buffer_size,
            params.service.store_audit_artifacts,
            handlers,
            triggers,
        )
    }

    /// Adds the proving handlers and triggers over an existing prover context (tests use
    /// this with their own prover and polling delay).
    pub fn with_stage(
        ctx: ProverContext,
        aggregator_buffer: u64,
        store_audit_artifacts: bool,
        mut handlers: JobHandlers,
        mut triggers: Triggers,
    ) -> (JobHandlers, Triggers) {
        handlers = handlers.with(Arc::new(ProofCreationHandler::new(ctx.clone())));
        triggers =
            triggers.with(Arc::new(ProvingTrigger { prover: ctx.kind, store_audit_artifacts }));
        match ctx.layer {
            Layer::L2 => {
                handlers = handlers
                    .with(Arc::new(AggregatorHandler::new(ctx, Arc::new(UnavailableAggregator))));
                triggers = triggers.with(Arc::new(AggregatorTrigger {
                    buffer: aggregator_buffer,
                    store_audit_artifacts,
                }));
            }
            Layer::L3 => {
                handlers = handlers.with(Arc::new(ProofRegistrationHandler::new(ctx)));
                triggers = triggers.with(Arc::new(ProofRegistrationTrigger));
            }
        }
        (handlers, triggers)
    }
}

/// The settlement stage: the settlement client from `--settle-on-*`, the StateTransition
/// handler and the UpdateState trigger.
pub mod settlement {
    use std::{sync::Arc, time::Duration};

    use eyre::WrapErr;
    use orchestrator_ethereum_settlement_client::{
        signer::{KmsSigner, OperatorSigner},
        EthereumSettlementClient, EthereumSettlementConfig,
    };
    use orchestrator_settlement_client_interface::SettlementClient;
    use orchestrator_starknet_settlement_client::{
        StarknetSettlementClient, StarknetSettlementConfig,
    };
    use starknet::core::types::Felt;

    use orchestrator_da_client_interface::DaClient;
    use orchestrator_ethereum_da_client::EthereumDaClient;
    use orchestrator_starknet_da_client::StarknetDaClient;

    use crate::{
        config::{
            DaParams, EthereumSettlementParams, RunParams, SettlementParams,
            StarknetSettlementParams,
        },
        core::client::{
            madara::{
                rpc::{MadaraRpcClient, MadaraRpcConfig},
                MadaraClient,
            },
            Clients,
        },
        types::Layer,
        worker::{
            event_handler::jobs::{
                data_submission::{DataSubmissionContext, DataSubmissionHandler},
                state_transition::{SettlementJobContext, StateTransitionHandler},
                JobHandlers,
            },
            triggers::{
                data_submission::DataSubmissionTrigger, update_state::UpdateStateTrigger, Triggers,
            },
        },
    };

    /// The Ethereum settlement client of `eth` (local key, or KMS with `--ethereum-kms-key-id`).
    pub async fn ethereum_client(
        eth: &EthereumSettlementParams,
    ) -> eyre::Result<EthereumSettlementClient> {
        let signer = match &eth.kms_key_id {
            Some(key_id) => OperatorSigner::Kms(
                KmsSigner::from_env(key_id.clone()).await.wrap_err("KMS signer")?,
            ),
            // The chain id is filled in per transaction by the client.
            None => OperatorSigner::local(eth.private_key.expose(), None)
                .wrap_err("--ethereum-private-key")?,
        };
        let mut config = EthereumSettlementConfig::new(
            eth.rpc_url.expose().clone(),
            eth.l1_core_contract_address,
        );
        config.poll_interval = eth.finality_retry_wait;
        config.tx_confirmation_timeout = eth.tx_confirmation_timeout;
        config.max_fee_bumps = eth.max_fee_bumps;
        config.max_fee_wei = eth.l2_state_update_max_fee_wei;
        config.peerdas = !eth.disable_peerdas;
        EthereumSettlementClient::new(config, signer).await.wrap_err("Ethereum settlement client")
    }

    /// The Starknet settlement client of `sn` (an L3's Cairo core contract).
    pub fn starknet_client(
        sn: &StarknetSettlementParams,
    ) -> eyre::Result<StarknetSettlementClient> {
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

    /// Adds the settlement handlers and triggers of the layer: DataSubmission on L3 (node
    /// client from `--madara-rpc-url`, DA client from `--da-on-*`), then StateTransition and
    /// UpdateState (on Ethereum or on Starknet).
    pub async fn stage(
        params: &RunParams,
        clients: &Clients,
        handlers: JobHandlers,
        triggers: Triggers,
    ) -> eyre::Result<(JobHandlers, Triggers)> {
        let (handlers, triggers) = match params.layer {
            Layer::L3 => {
                let node: Arc<dyn MadaraClient> = Arc::new(
                    MadaraRpcClient::new(MadaraRpcConfig::from_params(&params.madara))
                        .map_err(|e| eyre::eyre!("Madara node client: {e}"))?,
                );
                let mut ctx = DataSubmissionContext::new(
                    node,
                    da_client(&params.da),
                    clients.storage.clone(),
                    clients.database.clone(),
                );
                ctx.max_num_blobs = params.batching.max_num_blobs;
                ctx.calldata_da = matches!(params.settlement, SettlementParams::Starknet(_));
                with_data_submission(ctx, params.service.verification_poll, handlers, triggers)
            }
            Layer::L2 => (handlers, triggers),
        };
        let client: Arc<dyn SettlementClient> = match &params.settlement {
            SettlementParams::Ethereum(eth) => Arc::new(ethereum_client(eth).await?),
            SettlementParams::Starknet(sn) => Arc::new(starknet_client(sn)?),
        };
        let mut ctx = SettlementJobContext::new(
            client,
            clients.storage.clone(),
            clients.database.clone(),
            params.layer,
        );
        ctx.max_num_blobs = params.batching.max_num_blobs;
        Ok(with_stage(ctx, params.service.verification_poll, handlers, triggers))
    }

    /// The DA client `--da-on-*` selects. On Ethereum the blobs travel in the settlement
    /// transaction and on Starknet in its calldata: both publish as a validated no-op.
    pub fn da_client(da: &DaParams) -> Arc<dyn DaClient> {
        match da {
            DaParams::Ethereum { rpc_url } => {
                Arc::new(EthereumDaClient::new(rpc_url.expose().clone()))
            }
            DaParams::Starknet { .. } => Arc::new(StarknetDaClient),
        }
    }

    /// Adds the DataSubmission handler and trigger (L3) over an existing context.
    pub fn with_data_submission(
        mut ctx: DataSubmissionContext,
        polling: Option<Duration>,
        handlers: JobHandlers,
        triggers: Triggers,
    ) -> (JobHandlers, Triggers) {
        if polling.is_some() {
            ctx.polling_override = polling;
        }
        (
            handlers.with(Arc::new(DataSubmissionHandler::new(ctx))),
            triggers.with(Arc::new(DataSubmissionTrigger)),
        )
    }

    /// Adds the settlement handlers and triggers over an existing context (tests use this with
    /// their own client and polling delay).
    pub fn with_stage(
        mut ctx: SettlementJobContext,
        polling: Option<Duration>,
        handlers: JobHandlers,
        triggers: Triggers,
    ) -> (JobHandlers, Triggers) {
        if polling.is_some() {
            ctx.polling_override = polling;
        }
        (
            handlers.with(Arc::new(StateTransitionHandler::new(ctx))),
            triggers.with(Arc::new(UpdateStateTrigger)),
        )
    }
}

/// The handlers and triggers `params` selects, over `clients`.
pub async fn build(params: &RunParams, clients: &Clients) -> eyre::Result<(JobHandlers, Triggers)> {
    let handlers = JobHandlers::new();
    let triggers = Triggers::new();

    // -- Batching and SNOS (SnosBatching, AggregatorBatching, Snos; SnosRun) --
    let snos_runner = snos_runner(&params.snos);
    let handlers = handlers.with(Arc::new(
        SnosJobHandler::new(params.layer, params.snos.clone(), clients.clone(), snos_runner)
            .with_max_num_blobs(params.batching.max_num_blobs)
            .with_calldata_da(matches!(
                params.settlement,
                crate::config::SettlementParams::Starknet(_)
            )),
    ));
    let triggers = triggers.with(Arc::new(SnosTrigger {
        buffer: params.service.snos_job_buffer_size,
        full_output: params.snos.full_output,
    }));

    let prover = proving::prover_client(params)?;
    let triggers = batching_triggers(params, triggers, &prover)?;

    // -- Proving (Proving, ProofRegistration, Aggregator; ProofCreation, ProofRegistration, Aggregator) --
    let (handlers, triggers) = proving::stage(params, clients, prover, handlers, triggers);

    // -- Settlement (DataSubmission, UpdateState; DataSubmission, StateTransition) --
    let (handlers, triggers) = settlement::stage(params, clients, handlers, triggers).await?;

    Ok((handlers, triggers))
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

/// SnosBatching (L2, L3) and AggregatorBatching (L2) over the node of `--madara-rpc-url`, with
/// `--replay-bounds-rpc-url` as the reference node when given.
fn batching_triggers(
    params: &RunParams,
    triggers: Triggers,
    prover: &Arc<dyn orchestrator_prover_client_interface::ProverClient>,
) -> eyre::Result<Triggers> {
    use std::sync::Arc;

    use crate::{
        core::client::madara::{
            rpc::{MadaraRpcClient, MadaraRpcConfig},
            MadaraClient,
        },
        types::Layer,
        worker::triggers::{
            aggregator_batching::AggregatorBatchingTrigger, batching::BatchingSettings,
            snos_batching::SnosBatchingTrigger,
        },
    };

    let node: Arc<dyn MadaraClient> = Arc::new(
        MadaraRpcClient::new(MadaraRpcConfig::from_params(&params.madara))
            .map_err(|e| eyre::eyre!("Madara node client: {e}"))?,
    );
    let replay: Option<Arc<dyn MadaraClient>> = match &params.madara.replay_bounds_rpc_url {
        Some(url) => Some(Arc::new(
            MadaraRpcClient::new(MadaraRpcConfig::new(url.clone()))
                .map_err(|e| eyre::eyre!("replay-bounds node client: {e}"))?,
        )),
        None => None,
    };
    let settings = BatchingSettings::from_params(params);
    let mut triggers = triggers.with(Arc::new(SnosBatchingTrigger::new(
        node.clone(),
        replay.clone(),
        settings.clone(),
    )));
    if params.layer == Layer::L2 {
        let mut aggregator = AggregatorBatchingTrigger::new(node, replay, settings);
        // Atlantic aggregates in buckets: each new aggregator batch opens one.
        if matches!(params.prover, crate::config::ProverParams::Atlantic(_)) {
            aggregator = aggregator.with_bucket_creator(Arc::new(ProverBuckets(prover.clone())));
        }
        triggers = triggers.with(Arc::new(aggregator));
    }
    Ok(triggers)
}

/// Opens an Atlantic bucket for each new aggregator batch through the prover client.
#[derive(Debug)]
struct ProverBuckets(Arc<dyn orchestrator_prover_client_interface::ProverClient>);

#[async_trait::async_trait]
impl crate::worker::triggers::aggregator_batching::BucketCreator for ProverBuckets {
    async fn create_bucket(&self, index: u64, start_block: u64) -> Result<String, String> {
        self.0
            .submit_task(orchestrator_prover_client_interface::Task::CreateBucket)
            .await
            .map_err(|e| format!("cannot open a prover bucket for aggregator batch {index} (block {start_block}): {e}"))
    }
}
