//! The parsed `run` and `setup` command lines turned into typed, validated parameters
//! ([`RunParams`], [`SetupParams`]). Errors name the flag and the problem; they never echo a
//! secret value.

use std::time::Duration;

use alloy::primitives::Address;
use orchestrator_utils::{
    upstream::{UpstreamRetry, UpstreamRetryError},
    Secret,
};
use starknet_types_core::felt::Felt;
use url::Url;

use crate::{
    cli::{
        args::{
            batching::BatchingArgs,
            da::DaArgs,
            infra::InfraArgs,
            madara::MadaraArgs,
            otel::OtelArgs,
            prover::{AtlanticArgs, MockProverArgs, ProverArgs, SharpArgs},
            server::ServerArgs,
            service::ServiceArgs,
            settlement::{EthereumSettlementArgs, StarknetSettlementArgs},
            snos::SnosArgs,
            upstream::UpstreamArgs,
        },
        run::RunCmd,
        setup::SetupCmd,
    },
    config::{
        choices::{AtlanticNetwork, ProofSettlementLayer, ProverKind, SnosRunnerKind},
        params::*,
        ConfigError, ConfigResult,
    },
    types::{batch::BouncerWeights, jobs::JobType, queue::QueueParams, Layer},
};

impl TryFrom<RunCmd> for RunParams {
    type Error = ConfigError;

    fn try_from(cmd: RunCmd) -> ConfigResult<Self> {
        let layer = cmd.layer;
        let infra = InfraParams::build(cmd.infra, Command::Run)?;
        let service = service_params(cmd.service.clone())?;
        let queue = queue_params(&cmd.service)?;
        let settlement = settlement_params(cmd.ethereum_settlement, cmd.starknet_settlement)?;
        let prover_args = cmd.prover.clone();
        let prover = prover_params(layer, cmd.prover, &settlement)?;
        let aggregator = aggregator_params(layer, &prover_args, &settlement)?;
        let shadow = shadow_params(cmd.shadow, cmd.shadow_scan_from_block, layer, &prover)?;
        if service.store_audit_artifacts && prover.kind() == ProverKind::Mock {
            return Err(ConfigError::Conflict(
                "--store-audit-artifacts cannot be used with --prover mock (it has no proofs to store)".into(),
            ));
        }
        Ok(Self {
            layer,
            infra,
            server: server_params(cmd.server)?,
            service,
            batching: batching_params(cmd.batching)?,
            snos: snos_params(cmd.snos)?,
            prover,
            aggregator,
            settlement,
            da: da_params(cmd.da)?,
            madara: madara_params(cmd.madara),
            upstream: upstream_params(&cmd.upstream)?,
            otel: otel_params(cmd.otel)?,
            queue,
            shadow,
        })
    }
}

/// `--shadow` (see [`crate::shadow`]): L2 only (the comparison reads Ethereum transactions),
/// and not with Atlantic, whose aggregation outputs come from the prover that shadow mode
/// never contacts.
fn shadow_params(
    shadow: bool,
    scan_from_block: u64,
    layer: Layer,
    prover: &ProverParams,
) -> ConfigResult<Option<crate::shadow::ShadowParams>> {
    if !shadow {
        return Ok(None);
    }
    if layer != Layer::L2 {
        return Err(ConfigError::Conflict(
            "--shadow compares state updates on Ethereum (--layer l2); an L3 orchestrator cannot run in shadow mode".into(),
        ));
    }
    if prover.kind() == ProverKind::Atlantic {
        return Err(ConfigError::Conflict(
            "--shadow needs the aggregator's program output and DA segment computed locally \
             (--prover mock or sharp): with --prover atlantic they come from the prover, which a \
             shadow orchestrator never contacts"
                .into(),
        ));
    }
    Ok(Some(crate::shadow::ShadowParams { scan_from_block }))
}

impl TryFrom<SetupCmd> for SetupParams {
    type Error = ConfigError;

    fn try_from(cmd: SetupCmd) -> ConfigResult<Self> {
        let infra = InfraParams::build(cmd.infra, Command::Setup)?;
        Ok(Self {
            layer: cmd.layer,
            infra,
            timeout: positive_secs(cmd.timeout, "--timeout")?,
            poll_interval: positive_secs(cmd.poll_interval, "--poll-interval")?,
            dry_run: cmd.dry_run,
        })
    }
}

/// Which command the infrastructure flags came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Run,
    Setup,
}

impl InfraParams {
    fn build(a: InfraArgs, command: Command) -> ConfigResult<Self> {
        let aws = if a.provider.aws {
            Some(AwsParams {
                prefix: a.provider.aws_prefix.clone(),
                connect_timeout: a
                    .provider
                    .aws_connect_timeout_secs
                    .map(|s| positive_secs(s, "--aws-connect-timeout-secs"))
                    .transpose()?,
                identity_load_timeout: a
                    .provider
                    .aws_identity_load_timeout_secs
                    .map(|s| positive_secs(s, "--aws-identity-load-timeout-secs"))
                    .transpose()?,
            })
        } else {
            None
        };
        let prefix = || a.provider.aws_prefix.clone();

        let database = match (a.database.mongodb, a.database.postgres) {
            (true, true) => {
                return Err(ConfigError::Conflict(
                    "--mongodb and --postgres cannot be used together".into(),
                ))
            }
            (true, false) => {
                let url = a.database.mongodb_connection_url;
                let scheme_ok =
                    ["mongodb://", "mongodb+srv://"].iter().any(|s| url.expose().starts_with(s));
                if !scheme_ok {
                    return Err(ConfigError::invalid(
                        "--mongodb-connection-url",
                        "must start with mongodb:// or mongodb+srv://",
                    ));
                }
                non_empty(&a.database.mongodb_database_name, "--mongodb-database-name")?;
                DatabaseBackend::Mongo { url, name: a.database.mongodb_database_name }
            }
            (false, true) => {
                let url = a.database.postgres_url.ok_or(ConfigError::Missing {
                    flag: "--postgres-url",
                    when: "with --postgres",
                })?;
                let scheme_ok =
                    ["postgres://", "postgresql://"].iter().any(|s| url.expose().starts_with(s));
                if !scheme_ok {
                    return Err(ConfigError::invalid(
                        "--postgres-url",
                        "must start with postgres:// or postgresql://",
                    ));
                }
                DatabaseBackend::Postgres { url }
            }
            (false, false) => DatabaseBackend::Embedded,
        };

        let queue = if a.queue.aws_sqs {
            require_aws(aws.is_some(), "--aws-sqs")?;
            let id = a.queue.queue_identifier;
            if !id.starts_with("arn:") && !id.contains("{}") {
                return Err(ConfigError::invalid(
                    "--queue-identifier",
                    format!("{id:?} must contain `{{}}` (replaced by the queue type) or be an ARN"),
                ));
            }
            QueueBackend::Sqs { identifier: id, prefix: prefix() }
        } else {
            QueueBackend::Embedded
        };

        if a.storage.storage_expiration_days == 0 {
            return Err(ConfigError::invalid("--storage-expiration-days", "must be at least 1"));
        }
        let storage = if a.storage.aws_s3 {
            require_aws(aws.is_some(), "--aws-s3")?;
            non_empty(&a.storage.bucket_identifier, "--bucket-identifier")?;
            if a.storage.storage_retention_days.is_some() {
                return Err(ConfigError::Conflict(
                    "--storage-retention-days is for the directory store: on S3 the bucket's \
                     lifecycle rule deletes tagged artifacts after --storage-expiration-days"
                        .into(),
                ));
            }
            StorageBackend::S3 {
                bucket_identifier: a.storage.bucket_identifier,
                prefix: prefix(),
                expiration_days: a.storage.storage_expiration_days,
            }
        } else {
            StorageBackend::Embedded {
                expiration_days: a.storage.storage_expiration_days,
                retention_days: a
                    .storage
                    .storage_retention_days
                    .unwrap_or(a.storage.storage_expiration_days),
            }
        };

        let alerts = if a.alert.aws_sns {
            require_aws(aws.is_some(), "--aws-sns")?;
            if a.alert.alert_webhook_url.is_some() {
                return Err(ConfigError::Conflict(
                    "--alert-webhook-url is for embedded alerts and cannot be used with --aws-sns"
                        .into(),
                ));
            }
            non_empty(&a.alert.topic_identifier, "--topic-identifier")?;
            AlertBackend::Sns { topic_identifier: a.alert.topic_identifier, prefix: prefix() }
        } else {
            if let Some(url) = &a.alert.alert_webhook_url {
                http_url(url.expose(), "--alert-webhook-url")?;
            }
            AlertBackend::Embedded { webhook_url: a.alert.alert_webhook_url }
        };

        let interval = positive_secs(a.cron.interval_seconds, "--interval-seconds")?;
        let sqs = matches!(queue, QueueBackend::Sqs { .. });
        let cron = if a.cron.aws_event_bridge {
            require_aws(aws.is_some(), "--aws-event-bridge")?;
            if !sqs {
                return Err(ConfigError::Conflict(
                    "--aws-event-bridge sends triggers to the SQS worker-trigger queue: it needs --aws-sqs".into(),
                ));
            }
            if command == Command::Setup && a.cron.event_bridge_type.is_none() {
                return Err(ConfigError::Missing {
                    flag: "--event-bridge-type",
                    when: "with --aws-event-bridge (rule for LocalStack/moto, schedule on AWS)",
                });
            }
            CronBackend::EventBridge { kind: a.cron.event_bridge_type, interval, prefix: prefix() }
        } else if command == Command::Run && sqs {
            CronBackend::EventBridge { kind: a.cron.event_bridge_type, interval, prefix: prefix() }
        } else {
            CronBackend::Embedded { interval }
        };

        Ok(Self { data_dir: a.embedded.data_dir, aws, database, queue, storage, alerts, cron })
    }
}

fn require_aws(aws: bool, flag: &'static str) -> ConfigResult<()> {
    if aws {
        Ok(())
    } else {
        Err(ConfigError::Missing { flag: "--aws", when: aws_when(flag) })
    }
}

fn aws_when(flag: &'static str) -> &'static str {
    match flag {
        "--aws-sqs" => "with --aws-sqs",
        "--aws-s3" => "with --aws-s3",
        "--aws-sns" => "with --aws-sns",
        _ => "with --aws-event-bridge",
    }
}

fn server_params(a: ServerArgs) -> ConfigResult<ServerParams> {
    non_empty(&a.host, "--host")?;
    if let Some(token) = &a.admin_token {
        if token.expose().trim().is_empty() {
            return Err(ConfigError::invalid("--admin-token", "must not be empty"));
        }
    }
    Ok(ServerParams {
        host: a.host,
        port: a.port,
        admin_enabled: a.admin_enabled,
        admin_token: a.admin_token,
        open_job_actions: a.open_job_actions,
    })
}

fn service_params(a: ServiceArgs) -> ConfigResult<ServiceParams> {
    if let Some(max) = a.max_block_to_process {
        if a.min_block_to_process > max {
            return Err(ConfigError::invalid(
                "--min-block-to-process",
                format!("{} is above --max-block-to-process {max}", a.min_block_to_process),
            ));
        }
    }
    if a.max_priority_queue_size == 0 {
        return Err(ConfigError::invalid("--max-priority-queue-size", "must be greater than 0"));
    }
    positive(a.snos_job_buffer_size, "--snos-job-buffer-size")?;
    positive(a.aggregator_job_buffer_size, "--aggregator-job-buffer-size")?;
    Ok(ServiceParams {
        min_block_to_process: a.min_block_to_process,
        max_block_to_process: a.max_block_to_process,
        max_concurrent_created_snos_jobs: a.max_concurrent_created_snos_jobs,
        timeouts: [
            (JobType::SnosRun, a.snos_job_timeout_seconds, "--snos-job-timeout-seconds"),
            (
                JobType::ProofCreation,
                a.proving_job_timeout_seconds,
                "--proving-job-timeout-seconds",
            ),
            (
                JobType::ProofRegistration,
                a.proof_registration_timeout_seconds,
                "--proof-registration-timeout-seconds",
            ),
            (
                JobType::DataSubmission,
                a.data_submission_timeout_seconds,
                "--data-submission-timeout-seconds",
            ),
            (
                JobType::StateTransition,
                a.state_transition_timeout_seconds,
                "--state-transition-timeout-seconds",
            ),
            (
                JobType::Aggregator,
                a.aggregator_job_timeout_seconds,
                "--aggregator-job-timeout-seconds",
            ),
        ]
        .into_iter()
        .map(|(job_type, secs, flag)| Ok((job_type, positive_secs(secs, flag)?)))
        .collect::<Result<JobTimeouts, ConfigError>>()?,
        snos_job_buffer_size: a.snos_job_buffer_size,
        aggregator_job_buffer_size: a.aggregator_job_buffer_size,
        max_priority_queue_size: a.max_priority_queue_size,
        store_audit_artifacts: a.store_audit_artifacts,
        graceful_shutdown_timeout: Duration::from_secs(a.graceful_shutdown_timeout),
        failed_job_halt: a.failed_job_halt,
        orphan_scan_interval: Duration::from_secs(a.orphan_scan_interval_seconds.max(1)),
        stale_message_after: positive_secs(a.stale_message_seconds, "--stale-message-seconds")?,
        verification_poll: a
            .verification_poll_seconds
            .map(|s| positive_secs(s, "--verification-poll-seconds"))
            .transpose()?,
        skip_preflight: a.skip_preflight,
        preflight_wait: Duration::from_secs(a.preflight_wait_seconds),
        preflight_chain_id: a
            .preflight_chain_id
            .as_deref()
            .map(|id| {
                crate::preflight::parse_chain_id(id)
                    .map_err(|e| ConfigError::invalid("--preflight-chain-id", e))
            })
            .transpose()?,
        watch: crate::worker::watch::WatchParams {
            interval: positive_secs(a.watchdog_interval_seconds, "--watchdog-interval-seconds")?,
            settlement_lag_alert: (a.settlement_lag_alert_seconds > 0)
                .then(|| Duration::from_secs(a.settlement_lag_alert_seconds)),
            stall_alert: (a.stall_alert_seconds > 0)
                .then(|| Duration::from_secs(a.stall_alert_seconds)),
            min_balance_updates: a.settlement_min_balance_updates,
        },
    })
}

fn queue_params(a: &ServiceArgs) -> ConfigResult<QueueParams> {
    let defaults = QueueParams::default();
    let slots = |v: Option<usize>, default: usize, flag: &'static str| match v {
        Some(0) => Err(ConfigError::invalid(flag, "must be greater than 0")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    Ok(QueueParams {
        max_concurrent_snos_jobs: slots(
            a.max_concurrent_snos_jobs,
            defaults.max_concurrent_snos_jobs,
            "--max-concurrent-snos-jobs",
        )?,
        max_concurrent_proving_jobs: slots(
            a.max_concurrent_proving_jobs,
            defaults.max_concurrent_proving_jobs,
            "--max-concurrent-proving-jobs",
        )?,
        max_concurrent_aggregator_jobs: slots(
            a.max_concurrent_aggregator_jobs,
            defaults.max_concurrent_aggregator_jobs,
            "--max-concurrent-aggregator-jobs",
        )?,
        state_transition_timeout_secs: a.state_transition_timeout_seconds,
    })
}

fn batching_params(a: BatchingArgs) -> ConfigResult<BatchingParams> {
    let max_batch_time = positive_secs(a.max_batch_time_seconds, "--max-batch-time-seconds")?;
    if !(1..=MAX_BLOBS_PER_TX).contains(&a.max_num_blobs) {
        return Err(ConfigError::invalid(
            "--max-num-blobs",
            format!("{} is outside 1..={MAX_BLOBS_PER_TX}", a.max_num_blobs),
        ));
    }
    if a.blob_size_buffer >= a.max_num_blobs * FELTS_PER_BLOB {
        return Err(ConfigError::invalid(
            "--blob-size-buffer",
            format!(
                "{} leaves no room in {} blob(s) of {FELTS_PER_BLOB} felts",
                a.blob_size_buffer, a.max_num_blobs
            ),
        ));
    }
    positive(a.max_batch_size, "--max-batch-size")?;
    positive(a.max_blocks_per_snos_batch, "--max-blocks-per-snos-batch")?;
    positive(a.max_snos_batches_per_aggregator_batch, "--max-snos-batches-per-aggregator-batch")?;
    positive(a.max_aggregator_input_size, "--max-aggregator-input-size")?;
    positive(a.max_batch_processing_size, "--max-batch-processing-size")?;
    if a.fixed_blocks_per_snos_batch == Some(0) {
        return Err(ConfigError::invalid(
            "--fixed-blocks-per-snos-batch",
            "must be greater than 0",
        ));
    }
    let bouncer_weights_limit = match &a.bouncer_weights_limit_file {
        Some(path) => read_json(path, "--bouncer-weights-limit-file", "bouncer weights JSON")?,
        None => BouncerWeights::DEFAULT_LIMITS,
    };
    Ok(BatchingParams {
        max_batch_time,
        max_batch_size: a.max_batch_size,
        max_num_blobs: a.max_num_blobs,
        blob_size_buffer: a.blob_size_buffer,
        batching_worker_lock_duration: positive_secs(
            a.batching_worker_lock_duration,
            "--batching-worker-lock-duration",
        )?,
        max_blocks_per_snos_batch: a.max_blocks_per_snos_batch,
        fixed_blocks_per_snos_batch: a.fixed_blocks_per_snos_batch,
        max_snos_batches_per_aggregator_batch: a.max_snos_batches_per_aggregator_batch,
        max_aggregator_input_size: a.max_aggregator_input_size,
        default_empty_block_proving_gas: a.default_empty_block_proving_gas,
        max_batch_processing_size: a.max_batch_processing_size,
        bouncer_weights_limit,
        bouncer_weights_limit_file: a.bouncer_weights_limit_file,
    })
}

fn snos_params(a: SnosArgs) -> ConfigResult<SnosParams> {
    http_url(&a.rpc_for_snos, "--rpc-for-snos")?;
    if let Some(url) = &a.rpc_for_snos_backup {
        http_url(url, "--rpc-for-snos-backup")?;
    }
    let versioned_constants = match a.versioned_constants {
        Some(path) => {
            let json = read_json(&path, "--versioned-constants", "versioned constants JSON")?;
            // The external command runs in a directory of its own: give it an absolute path.
            let path = std::fs::canonicalize(&path).map_err(|source| ConfigError::ReadFile {
                flag: "--versioned-constants",
                path: path.clone(),
                source,
            })?;
            Some(VersionedConstants { path, json })
        }
        None => None,
    };
    let strk_fee_token_address =
        felt(&a.snos_strk_fee_token_address, "--snos-strk-fee-token-address")?;
    let eth_fee_token_address =
        felt(&a.snos_eth_fee_token_address, "--snos-eth-fee-token-address")?;
    let da_public_keys = a
        .da_public_keys
        .unwrap_or_default()
        .iter()
        .map(|k| {
            let k = k.trim();
            if k.is_empty() {
                return Err(ConfigError::invalid("--da-public-keys", "contains an empty key"));
            }
            felt(k, "--da-public-keys")
        })
        .collect::<ConfigResult<Vec<_>>>()?;
    let command = a.snos_command.filter(|c| !c.trim().is_empty());
    if a.snos_runner == SnosRunnerKind::External && command.is_none() {
        return Err(ConfigError::Missing {
            flag: "--snos-command",
            when: "with --snos-runner external",
        });
    }
    let command_timeout =
        positive_secs(a.snos_command_timeout_seconds, "--snos-command-timeout-seconds")?;
    Ok(SnosParams {
        runner: a.snos_runner,
        command,
        command_timeout,
        rpc_url: a.rpc_for_snos,
        backup_rpc_url: a.rpc_for_snos_backup,
        full_output: a.snos_full_output,
        versioned_constants,
        strk_fee_token_address,
        eth_fee_token_address,
        layout: a.snos_layout_name,
        prover_layout: a.prover_layout_name,
        da_public_keys,
    })
}

fn prover_params(
    layer: Layer,
    a: ProverArgs,
    settlement: &SettlementParams,
) -> ConfigResult<ProverParams> {
    if a.mock_atlantic_server && a.prover != ProverKind::Atlantic {
        return Err(ConfigError::Conflict(format!(
            "--mock-atlantic-server needs --prover atlantic, not --prover {}",
            a.prover
        )));
    }
    Ok(match a.prover {
        ProverKind::Sharp => ProverParams::Sharp(sharp_params(layer, a.sharp)?),
        ProverKind::Atlantic => {
            ProverParams::Atlantic(atlantic_params(layer, a.atlantic, a.mock_atlantic_server)?)
        }
        ProverKind::Mock => ProverParams::Mock(mock_params(layer, a.mock, settlement)?),
    })
}

fn sharp_params(layer: Layer, a: SharpArgs) -> ConfigResult<SharpParams> {
    const WHEN: &str = "with --prover sharp";
    if layer == Layer::L3 {
        return Err(ConfigError::Conflict(
            "--prover sharp supports L2 only; use atlantic or mock on L3".into(),
        ));
    }
    let need = |flag| ConfigError::Missing { flag, when: WHEN };
    let user_crt_file = a.sharp_user_crt_file.ok_or_else(|| need("--sharp-user-crt-file"))?;
    let user_key_file = a.sharp_user_key_file.ok_or_else(|| need("--sharp-user-key-file"))?;
    let server_crt_file = a.sharp_server_crt_file.ok_or_else(|| need("--sharp-server-crt-file"))?;
    let certificates = SharpCertificates {
        user_crt: read_text(&user_crt_file, "--sharp-user-crt-file")?,
        user_key: Secret::new(read_text(&user_key_file, "--sharp-user-key-file")?),
        server_crt: read_text(&server_crt_file, "--sharp-server-crt-file")?,
        user_crt_file,
        user_key_file,
        server_crt_file,
    };
    let url = a.sharp_url.ok_or_else(|| need("--sharp-url"))?;
    http_url(&url, "--sharp-url")?;
    let rpc_node_url = a.sharp_rpc_node_url.ok_or_else(|| need("--sharp-rpc-node-url"))?;
    http_url(&rpc_node_url, "--sharp-rpc-node-url")?;
    let customer_id = a.sharp_customer_id.ok_or_else(|| need("--sharp-customer-id"))?;
    non_empty(&customer_id, "--sharp-customer-id")?;
    let gps =
        a.gps_verifier_contract_address.ok_or_else(|| need("--gps-verifier-contract-address"))?;
    Ok(SharpParams {
        customer_id,
        url,
        certificates,
        rpc_node_url,
        gps_verifier_contract_address: eth_address(&gps, "--gps-verifier-contract-address")?,
        settlement_layer: a.sharp_settlement_layer,
    })
}

fn atlantic_params(
    layer: Layer,
    a: AtlanticArgs,
    mock_server: bool,
) -> ConfigResult<AtlanticParams> {
    const WHEN: &str = "with --prover atlantic";
    let need = |flag| ConfigError::Missing { flag, when: WHEN };
    let api_key = a.atlantic_api_key.ok_or_else(|| need("--atlantic-api-key"))?;
    if api_key.expose().trim().is_empty() {
        return Err(ConfigError::invalid("--atlantic-api-key", "must not be empty"));
    }
    let service_url = a.atlantic_service_url.ok_or_else(|| need("--atlantic-service-url"))?;
    http_url(&service_url, "--atlantic-service-url")?;
    let mock_fact_hash = match a.atlantic_mock_fact_hash.as_deref().map(str::trim) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(ConfigError::invalid(
                "--atlantic-mock-fact-hash",
                format!("{v:?} is neither true nor false"),
            ))
        }
    };
    let rpc_node_url = match a.atlantic_rpc_node_url {
        Some(url) => {
            http_url(&url, "--atlantic-rpc-node-url")?;
            Some(url)
        }
        None if mock_fact_hash => None,
        None => {
            return Err(ConfigError::Missing {
                flag: "--atlantic-rpc-node-url",
                when: "with --prover atlantic unless --atlantic-mock-fact-hash is true",
            })
        }
    };
    let settlement_layer =
        a.atlantic_settlement_layer.ok_or_else(|| need("--atlantic-settlement-layer"))?;
    let verifier = a
        .atlantic_verifier_contract_address
        .ok_or_else(|| need("--atlantic-verifier-contract-address"))?;
    let verifier_contract_address = match settlement_layer {
        ProofSettlementLayer::Ethereum => {
            let address = eth_address(&verifier, "--atlantic-verifier-contract-address")?;
            Felt::from_bytes_be_slice(address.as_slice())
        }
        ProofSettlementLayer::Starknet => felt(&verifier, "--atlantic-verifier-contract-address")?,
    };
    let cairo_verifier_program_hash = a
        .cairo_verifier_program_hash
        .as_deref()
        .map(|h| felt(h, "--cairo-verifier-program-hash"))
        .transpose()?;
    if layer == Layer::L3 && cairo_verifier_program_hash.is_none() {
        return Err(ConfigError::Missing {
            flag: "--cairo-verifier-program-hash",
            when: "with --prover atlantic on L3",
        });
    }
    let network = a.atlantic_network.ok_or_else(|| need("--atlantic-network"))?;
    if mock_server && network != AtlanticNetwork::Testnet {
        return Err(ConfigError::Conflict(
            "--mock-atlantic-server serves --atlantic-network TESTNET only".into(),
        ));
    }
    http_url(&a.atlantic_artifacts_base_url, "--atlantic-artifacts-base-url")?;
    Ok(AtlanticParams {
        api_key,
        service_url,
        rpc_node_url,
        mock_fact_hash,
        prover_type: a.atlantic_prover_type,
        settlement_layer,
        verifier_contract_address,
        cairo_verifier_program_hash,
        cairo_vm: a.atlantic_verifier_cairo_vm,
        result: a.atlantic_verifier_result,
        network,
        sharp_prover: a.atlantic_sharp_prover,
        artifacts_base_url: a.atlantic_artifacts_base_url,
        mock_server,
    })
}

fn mock_params(
    layer: Layer,
    a: MockProverArgs,
    settlement: &SettlementParams,
) -> ConfigResult<MockProverParams> {
    let verifier_address = a
        .mock_verifier_address
        .as_deref()
        .map(|v| eth_address(v, "--mock-verifier-address"))
        .transpose()?;
    if verifier_address.is_some() {
        if layer != Layer::L2 {
            return Err(ConfigError::Conflict("--mock-verifier-address is for L2 only".into()));
        }
        match settlement {
            SettlementParams::Ethereum(eth) if eth.signer.private_key().is_none() => {
                return Err(ConfigError::Conflict(
                    "--mock-verifier-address registers facts with --ethereum-private-key: it cannot be used with --ethereum-kms-key-id".into(),
                ));
            }
            SettlementParams::Ethereum(_) => {}
            SettlementParams::Starknet(_) => {
                return Err(ConfigError::Conflict(
                    "--mock-verifier-address uses the Ethereum settlement RPC and key: it needs --settle-on-ethereum".into(),
                ));
            }
        }
    }
    Ok(MockProverParams { verifier_address })
}

/// The operator's signer: exactly one of `--ethereum-private-key` and `--ethereum-kms-key-id`
/// (a blank value counts as not given, as an empty variable in `.env` does).
fn ethereum_signer(
    private_key: Option<Secret<String>>,
    kms_key_id: Option<String>,
) -> ConfigResult<EthereumSignerParams> {
    let private_key = private_key.filter(|k| !k.expose().trim().is_empty());
    let kms_key_id = kms_key_id.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty());
    match (private_key, kms_key_id) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict(
            "--ethereum-private-key and --ethereum-kms-key-id cannot be used together: state \
             updates are signed by one key, give either the private key or the KMS key id"
                .into(),
        )),
        (Some(key), None) => {
            check_hex_bytes(key.expose(), 32, "--ethereum-private-key")?;
            Ok(EthereumSignerParams::PrivateKey(key))
        }
        (None, Some(key_id)) => {
            if key_id.chars().any(char::is_whitespace) {
                return Err(ConfigError::invalid(
                    "--ethereum-kms-key-id",
                    "must be a KMS key id, key ARN, alias name or alias ARN (no whitespace)",
                ));
            }
            Ok(EthereumSignerParams::Kms { key_id })
        }
        (None, None) => Err(ConfigError::Missing {
            flag: "--ethereum-private-key or --ethereum-kms-key-id",
            when: "with --settle-on-ethereum",
        }),
    }
}

fn settlement_params(
    eth: EthereumSettlementArgs,
    sn: StarknetSettlementArgs,
) -> ConfigResult<SettlementParams> {
    match (eth.settle_on_ethereum, sn.settle_on_starknet) {
        (true, false) => {
            const WHEN: &str = "with --settle-on-ethereum";
            let need = |flag| ConfigError::Missing { flag, when: WHEN };
            let urls = eth.ethereum_rpc_url.ok_or_else(|| need("--ethereum-rpc-url"))?;
            let (rpc_url, fallback_rpc_urls) = primary_and_fallbacks(urls, "--ethereum-rpc-url")?;
            let signer = ethereum_signer(eth.ethereum_private_key, eth.ethereum_kms_key_id)?;
            let core =
                eth.l1_core_contract_address.ok_or_else(|| need("--l1-core-contract-address"))?;
            let operator =
                eth.starknet_operator_address.ok_or_else(|| need("--starknet-operator-address"))?;
            if eth.ethereum_l2_state_update_max_fee_wei == 0 {
                return Err(ConfigError::invalid(
                    "--ethereum-l2-state-update-max-fee-wei",
                    "must be greater than 0",
                ));
            }
            Ok(SettlementParams::Ethereum(EthereumSettlementParams {
                rpc_url,
                fallback_rpc_urls,
                signer,
                l1_core_contract_address: eth_address(&core, "--l1-core-contract-address")?,
                starknet_operator_address: eth_address(&operator, "--starknet-operator-address")?,
                finality_retry_wait: positive_secs(
                    eth.ethereum_finality_retry_wait_in_secs,
                    "--ethereum-finality-retry-wait-in-secs",
                )?,
                tx_confirmation_timeout: positive_secs(
                    eth.ethereum_tx_confirmation_timeout_secs,
                    "--ethereum-tx-confirmation-timeout-secs",
                )?,
                max_fee_bumps: eth.ethereum_max_fee_bumps,
                l2_state_update_max_fee_wei: eth.ethereum_l2_state_update_max_fee_wei,
                disable_peerdas: eth.disable_peerdas,
            }))
        }
        (false, true) => {
            const WHEN: &str = "with --settle-on-starknet";
            let need = |flag| ConfigError::Missing { flag, when: WHEN };
            let urls = sn.starknet_rpc_url.ok_or_else(|| need("--starknet-rpc-url"))?;
            let (rpc_url, fallback_rpc_urls) = primary_and_fallbacks(urls, "--starknet-rpc-url")?;
            let private_key =
                sn.starknet_private_key.ok_or_else(|| need("--starknet-private-key"))?;
            if Felt::from_hex(private_key.expose().trim()).is_err() {
                return Err(ConfigError::invalid("--starknet-private-key", "must be a hex felt"));
            }
            let account =
                sn.starknet_account_address.ok_or_else(|| need("--starknet-account-address"))?;
            let core = sn
                .starknet_cairo_core_contract_address
                .ok_or_else(|| need("--starknet-cairo-core-contract-address"))?;
            Ok(SettlementParams::Starknet(StarknetSettlementParams {
                rpc_url,
                fallback_rpc_urls,
                private_key,
                account_address: felt(&account, "--starknet-account-address")?,
                cairo_core_contract_address: felt(&core, "--starknet-cairo-core-contract-address")?,
                finality_retry_wait: positive_secs(
                    sn.starknet_finality_retry_wait_in_secs
                        .unwrap_or(DEFAULT_STARKNET_FINALITY_RETRY_WAIT_SECS),
                    "--starknet-finality-retry-wait-in-secs",
                )?,
            }))
        }
        // clap's `settlement_layer` group makes these unreachable from the command line; they
        // stay errors for callers building `RunCmd` by hand.
        (true, true) => Err(ConfigError::Conflict(
            "--settle-on-ethereum and --settle-on-starknet cannot be used together".into(),
        )),
        (false, false) => Err(ConfigError::Missing {
            flag: "--settle-on-ethereum or --settle-on-starknet",
            when: "to run",
        }),
    }
}

fn da_params(a: DaArgs) -> ConfigResult<DaParams> {
    match (a.da_on_ethereum, a.da_on_starknet) {
        (true, false) => {
            let rpc_url = a.ethereum_da_rpc_url.ok_or(ConfigError::Missing {
                flag: "--ethereum-da-rpc-url",
                when: "with --da-on-ethereum",
            })?;
            http_url(rpc_url.expose(), "--ethereum-da-rpc-url")?;
            Ok(DaParams::Ethereum { rpc_url })
        }
        (false, true) => {
            let rpc_url = a.starknet_da_rpc_url.ok_or(ConfigError::Missing {
                flag: "--starknet-da-rpc-url",
                when: "with --da-on-starknet",
            })?;
            http_url(rpc_url.expose(), "--starknet-da-rpc-url")?;
            Ok(DaParams::Starknet { rpc_url })
        }
        (true, true) => Err(ConfigError::Conflict(
            "--da-on-ethereum and --da-on-starknet cannot be used together".into(),
        )),
        (false, false) => Err(ConfigError::Missing {
            flag: "--da-on-ethereum or --da-on-starknet",
            when: "to run",
        }),
    }
}

fn madara_params(a: MadaraArgs) -> MadaraParams {
    MadaraParams {
        feeder_gateway_url: a.madara_feeder_gateway_url.unwrap_or_else(|| a.madara_rpc_url.clone()),
        rpc_url: a.madara_rpc_url,
        replay_bounds_rpc_url: a.replay_bounds_rpc_url,
    }
}

/// `--upstream-read-max-attempts` (at least 1) and `--upstream-read-timeout-secs` (positive).
fn upstream_params(a: &UpstreamArgs) -> ConfigResult<UpstreamRetry> {
    let timeout = Duration::from_secs(a.upstream_read_timeout_secs);
    UpstreamRetry::new(a.upstream_read_max_attempts, timeout).map_err(|e| match e {
        UpstreamRetryError::NoAttempts => ConfigError::invalid(
            "--upstream-read-max-attempts",
            "must be at least 1 (1 = no retry)",
        ),
        UpstreamRetryError::NoTime => {
            ConfigError::invalid("--upstream-read-timeout-secs", "must be greater than 0")
        }
    })
}

fn otel_params(a: OtelArgs) -> ConfigResult<OtelParams> {
    non_empty(&a.otel_service_name, "--otel-service-name")?;
    Ok(OtelParams {
        service_name: a.otel_service_name,
        collector_endpoint: a.otel_collector_endpoint,
    })
}

fn positive(v: u64, flag: &'static str) -> ConfigResult<u64> {
    if v == 0 {
        Err(ConfigError::invalid(flag, "must be greater than 0"))
    } else {
        Ok(v)
    }
}

fn positive_secs(v: u64, flag: &'static str) -> ConfigResult<Duration> {
    positive(v, flag).map(Duration::from_secs)
}

fn non_empty(v: &str, flag: &'static str) -> ConfigResult<()> {
    if v.trim().is_empty() {
        Err(ConfigError::invalid(flag, "must not be empty"))
    } else {
        Ok(())
    }
}

/// Only http(s) URLs make sense for the RPC and HTTP endpoints. The error shows the scheme
/// only: the URL may carry an API key.
/// The primary URL of a `--*-rpc-url a,b,…` list and the fallbacks, each `http`/`https`.
fn primary_and_fallbacks(
    urls: Secret<crate::cli::args::settlement::UrlList>,
    flag: &'static str,
) -> ConfigResult<(Secret<Url>, Vec<Secret<Url>>)> {
    let mut urls = urls.expose().0.clone().into_iter().map(Secret::new);
    let primary = urls.next().ok_or_else(|| ConfigError::invalid(flag, "no URL given"))?;
    let fallbacks: Vec<Secret<Url>> = urls.collect();
    for url in std::iter::once(&primary).chain(&fallbacks) {
        http_url(url.expose(), flag)?;
    }
    Ok((primary, fallbacks))
}

fn http_url(url: &Url, flag: &'static str) -> ConfigResult<()> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(ConfigError::invalid(flag, format!("scheme {other:?} is not http or https"))),
    }
}

/// An Ethereum address: `0x` followed by 40 hex digits.
fn eth_address(s: &str, flag: &'static str) -> ConfigResult<Address> {
    let s = s.trim();
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| ConfigError::invalid(flag, format!("{s:?} must start with 0x")))?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConfigError::invalid(
            flag,
            format!("{s:?} is not 0x followed by 40 hex digits"),
        ));
    }
    s.parse().map_err(|e| ConfigError::invalid(flag, format!("{s:?}: {e}")))
}

/// A felt in hex, `0x`-prefixed.
fn felt(s: &str, flag: &'static str) -> ConfigResult<Felt> {
    let s = s.trim();
    if !(s.starts_with("0x") || s.starts_with("0X")) {
        return Err(ConfigError::invalid(flag, format!("{s:?} must start with 0x")));
    }
    Felt::from_hex(s).map_err(|_| ConfigError::invalid(flag, format!("{s:?} is not a hex felt")))
}

/// Checks a secret is `bytes` bytes of hex (optionally `0x`-prefixed) without echoing it.
fn check_hex_bytes(secret: &str, bytes: usize, flag: &'static str) -> ConfigResult<()> {
    let s = secret.trim();
    let hex = s.strip_prefix("0x").unwrap_or(s);
    if hex.len() == 2 * bytes && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ConfigError::invalid(flag, format!("must be {bytes} bytes of hex (value not shown)")))
    }
}

fn read_text(path: &std::path::Path, flag: &'static str) -> ConfigResult<String> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        flag,
        path: path.to_owned(),
        source,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    flag: &'static str,
    what: &'static str,
) -> ConfigResult<T> {
    let text = read_text(path, flag)?;
    serde_json::from_str(&text).map_err(|source| ConfigError::ParseFile {
        flag,
        path: path.to_owned(),
        what,
        source,
    })
}

/// The supported matrix and the local aggregation (`--aggregator-*`): an L2 settles on
/// Ethereum (its aggregated batches go as blobs); `--prover sharp` on L2 needs the external
/// aggregator (SHARP proves the aggregation but does not run the aggregator program); the
/// local aggregator flags are for SHARP and the mock prover on L2. Each refusal is one line
/// naming the flag. The supported combinations are the table of `docs/configuration.md`.
fn aggregator_params(
    layer: Layer,
    prover: &ProverArgs,
    settlement: &SettlementParams,
) -> ConfigResult<AggregatorParams> {
    let a = &prover.aggregator;
    if layer == Layer::L2 && matches!(settlement, SettlementParams::Starknet(_)) {
        return Err(ConfigError::Conflict(
            "--settle-on-starknet needs --layer l3: an L2 settles its aggregated batches with \
             blobs on Ethereum (--settle-on-ethereum)"
                .into(),
        ));
    }
    let command = a.aggregator_command.clone().filter(|c| !c.trim().is_empty());
    let runner = a.aggregator_runner.unwrap_or_default();
    let given = a.aggregator_runner.is_some() || command.is_some();
    if given && layer == Layer::L3 {
        return Err(ConfigError::Conflict(
            "--aggregator-runner and --aggregator-command are for L2: an L3 has no aggregation"
                .into(),
        ));
    }
    if given && prover.prover == ProverKind::Atlantic {
        return Err(ConfigError::Conflict(
            "--aggregator-runner and --aggregator-command need --prover sharp or mock: Atlantic \
             aggregates in its buckets"
                .into(),
        ));
    }
    if layer == Layer::L2
        && prover.prover == ProverKind::Sharp
        && runner != AggregatorRunnerKind::External
    {
        return Err(ConfigError::Missing {
            flag: "--aggregator-runner external (with --aggregator-command)",
            when: "with --prover sharp on L2: SHARP proves the aggregation, the orchestrator \
                   runs the aggregator program",
        });
    }
    if runner == AggregatorRunnerKind::External && command.is_none() {
        return Err(ConfigError::Missing {
            flag: "--aggregator-command",
            when: "with --aggregator-runner external",
        });
    }
    if runner == AggregatorRunnerKind::StandIn && command.is_some() {
        return Err(ConfigError::Conflict(
            "--aggregator-command needs --aggregator-runner external".into(),
        ));
    }
    Ok(AggregatorParams {
        runner,
        command,
        command_timeout: positive_secs(
            a.aggregator_command_timeout_seconds,
            "--aggregator-command-timeout-seconds",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::Parser;
    use rstest::rstest;

    use super::*;
    use crate::config::choices::{
        AtlanticCairoVm, AtlanticQueryStep, AtlanticSharpProver, EventBridgeType,
    };

    const ETH_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const ADDR: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

    /// A valid L2 command line: mock prover, Ethereum settlement and DA.
    fn base() -> Vec<String> {
        [
            "run",
            "--settle-on-ethereum",
            "--ethereum-rpc-url",
            "http://localhost:8545",
            "--ethereum-private-key",
            ETH_KEY,
            "--l1-core-contract-address",
            ADDR,
            "--starknet-operator-address",
            ADDR,
            "--da-on-ethereum",
            "--ethereum-da-rpc-url",
            "http://localhost:8545",
            "--prover",
            "mock",
            "--madara-rpc-url",
            "http://localhost:9944",
            "--rpc-for-snos",
            "http://localhost:9944",
            "--max-batch-time-seconds",
            "60",
        ]
        .map(String::from)
        .to_vec()
    }

    /// `base()` with `extra` applied: a flag already in the base gets its value replaced
    /// (clap rejects repeated flags), others are appended.
    fn params<S: AsRef<str>>(extra: &[S]) -> ConfigResult<RunParams> {
        let mut args = base();
        let extra: Vec<&str> = extra.iter().map(AsRef::as_ref).collect();
        let mut i = 0;
        while i < extra.len() {
            let has_value = extra.get(i + 1).is_some_and(|v| !v.starts_with("--"));
            match args.iter().position(|a| a == extra[i]) {
                Some(at) if has_value => args[at + 1] = extra[i + 1].to_owned(),
                Some(_) => {}
                None => {
                    args.push(extra[i].to_owned());
                    if has_value {
                        args.push(extra[i + 1].to_owned());
                    }
                }
            }
            i += if has_value { 2 } else { 1 };
        }
        RunCmd::try_parse_from(args).expect("command line parses").params()
    }

    /// `--ethereum-rpc-url primary,fallback…`: the first URL is the primary, the others are
    /// the endpoints to fail over to; each must be http(s), and an unparsable one is named by
    /// its position (a URL may carry an API key).
    #[test]
    fn several_ethereum_rpc_urls_are_a_primary_and_fallbacks() {
        let p = params(&["--ethereum-rpc-url", "http://a.test:8545, https://k@b.test/v3/x"])
            .expect("two URLs");
        let SettlementParams::Ethereum(eth) = &p.settlement else { panic!("ethereum") };
        assert_eq!(eth.rpc_url.expose().as_str(), "http://a.test:8545/");
        let fallbacks: Vec<&str> =
            eth.fallback_rpc_urls.iter().map(|u| u.expose().as_str()).collect();
        assert_eq!(fallbacks, ["https://k@b.test/v3/x"]);
        let one = params::<&str>(&[]).expect("one URL");
        let SettlementParams::Ethereum(eth) = &one.settlement else { panic!("ethereum") };
        assert!(eth.fallback_rpc_urls.is_empty());

        let err = params(&["--ethereum-rpc-url", "http://a.test,ws://b.test"]).unwrap_err();
        assert!(err.to_string().contains("--ethereum-rpc-url"), "{err}");
        let parse = RunCmd::try_parse_from(base().into_iter().map(|a| {
            if a == "http://localhost:8545" {
                "http://a.test,::bad".into()
            } else {
                a
            }
        }));
        let err = parse.unwrap_err().to_string();
        assert!(err.contains("URL 2 of the list"), "{err}");
    }

    fn atlantic(extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "--prover",
            "ATLANTIC",
            "--atlantic-api-key",
            "k",
            "--atlantic-service-url",
            "http://localhost:4001",
            "--atlantic-rpc-node-url",
            "http://localhost:8545",
            "--atlantic-settlement-layer",
            "ethereum",
            "--atlantic-verifier-contract-address",
            ADDR,
            "--atlantic-network",
            "TESTNET",
        ]
        .map(String::from)
        .to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn error<S: AsRef<str>>(extra: &[S]) -> String {
        params(extra).expect_err("configuration is rejected").to_string()
    }

    #[test]
    fn snos_runner_defaults_to_the_stand_in() {
        let p = params::<&str>(&[]).unwrap();
        assert_eq!(p.snos.runner, SnosRunnerKind::StandIn);
        assert_eq!(p.snos.command, None);
        assert_eq!(p.snos.command_timeout, Duration::from_secs(3600));
        let p = params(&[
            "--snos-runner",
            "external",
            "--snos-command",
            "generate-pie --blocks \"$SNOS_BLOCKS\"",
            "--snos-command-timeout-seconds",
            "90",
        ])
        .unwrap();
        assert_eq!(p.snos.runner, SnosRunnerKind::External);
        assert_eq!(p.snos.command.as_deref(), Some("generate-pie --blocks \"$SNOS_BLOCKS\""));
        assert_eq!(p.snos.command_timeout, Duration::from_secs(90));
    }

    #[test]
    fn snos_chain_settings_for_the_external_command() {
        let p = params::<&str>(&[]).unwrap();
        // Defaults: Starknet mainnet's fee tokens, no versioned constants.
        assert_eq!(
            p.snos.strk_fee_token_address,
            Felt::from_hex_unchecked(
                "0x4718f5a0fc34cc1af16a1cdee98ffb20c31f5cd61d6ab07201858f4287c938d"
            )
        );
        assert_eq!(
            p.snos.eth_fee_token_address,
            Felt::from_hex_unchecked(
                "0x49d36570d4e46f48e99674bd3fcc84644ddd6b96f7c741b1562b82f9e004dc7"
            )
        );
        assert_eq!(p.snos.versioned_constants, None);

        // A relative --versioned-constants is kept as an absolute path next to its JSON.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vc.json");
        std::fs::write(&file, r#"{"max_recursion_depth": 50}"#).unwrap();
        let cwd = std::env::current_dir().unwrap();
        let mut relative = PathBuf::new();
        for _ in cwd.components().skip(1) {
            relative.push("..");
        }
        relative.push(file.strip_prefix("/").unwrap());
        let p = params(&[
            "--versioned-constants",
            relative.to_str().unwrap(),
            "--snos-strk-fee-token-address",
            "0x5afe",
            "--snos-eth-fee-token-address",
            "0xe7e",
        ])
        .unwrap();
        let vc = p.snos.versioned_constants.unwrap();
        assert!(vc.path.is_absolute(), "{:?}", vc.path);
        assert_eq!(vc.path, std::fs::canonicalize(&file).unwrap());
        assert_eq!(vc.json["max_recursion_depth"], 50);
        assert_eq!(p.snos.strk_fee_token_address, Felt::from(0x5afeu16));
        assert_eq!(p.snos.eth_fee_token_address, Felt::from(0xe7eu16));
    }

    #[test]
    fn minimal_command_line_is_fully_embedded_with_defaults() {
        let p = params::<&str>(&[]).unwrap();
        assert!(p.infra.is_fully_embedded());
        assert_eq!(p.infra.data_dir, PathBuf::from("./orchestrator-data"));
        assert_eq!(p.infra.cron, CronBackend::Embedded { interval: Duration::from_secs(60) });
        assert_eq!(p.queue, QueueParams::default());
        assert_eq!(p.batching.bouncer_weights_limit, BouncerWeights::DEFAULT_LIMITS);
        assert_eq!(p.batching.max_blob_size(), 6 * 4096 - 15);
        assert_eq!(p.madara.feeder_gateway_url, p.madara.rpc_url);
        assert_eq!(p.server.port, 3000);
        assert_eq!(p.service.timeouts[&JobType::SnosRun], Duration::from_secs(300));
        assert!(matches!(
            p.prover,
            ProverParams::Mock(MockProverParams { verifier_address: None })
        ));
        assert!(matches!(p.settlement, SettlementParams::Ethereum(_)));
    }

    #[test]
    fn concurrency_flags_reach_queue_params() {
        let p = params(&[
            "--max-concurrent-snos-jobs",
            "7",
            "--max-concurrent-proving-jobs",
            "3",
            "--max-concurrent-aggregator-jobs",
            "2",
            "--state-transition-timeout-seconds",
            "900",
        ])
        .unwrap();
        assert_eq!(
            p.queue,
            QueueParams {
                max_concurrent_snos_jobs: 7,
                max_concurrent_proving_jobs: 3,
                max_concurrent_aggregator_jobs: 2,
                state_transition_timeout_secs: 900
            }
        );
    }

    #[test]
    fn distributed_flags_select_distributed_backends() {
        let p = params(&[
            "--aws",
            "--aws-prefix",
            "dev",
            "--aws-s3",
            "--aws-sqs",
            "--aws-sns",
            "--mongodb",
            "--mongodb-connection-url",
            "mongodb://user:pw@db:27017",
        ])
        .unwrap();
        assert!(
            matches!(&p.infra.database, DatabaseBackend::Mongo { name, .. } if name == "orchestrator")
        );
        assert_eq!(
            p.infra.queue,
            QueueBackend::Sqs { identifier: "mo_{}_queue".into(), prefix: Some("dev".into()) }
        );
        assert!(
            matches!(&p.infra.storage, StorageBackend::S3 { bucket_identifier, expiration_days: 14, .. } if bucket_identifier == "mo-bucket")
        );
        assert!(matches!(p.infra.alerts, AlertBackend::Sns { .. }));
        // Like the reference, `run` on SQS expects EventBridge (created by `setup`) to trigger.
        assert!(matches!(p.infra.cron, CronBackend::EventBridge { .. }));
        let debug = format!("{p:?}");
        assert!(!debug.contains("user:pw"), "connection URL leaked: {debug}");
        assert!(!debug.contains(&ETH_KEY[2..]), "private key leaked");
    }

    #[test]
    fn storage_retention_defaults_to_the_expiration_days_and_is_for_the_directory_store() {
        let embedded = |extra: &[&str]| match params(extra).expect("params").infra.storage {
            StorageBackend::Embedded { expiration_days, retention_days } => {
                (expiration_days, retention_days)
            }
            other => panic!("expected the directory store, got {other:?}"),
        };
        assert_eq!(embedded(&[]), (14, 14));
        assert_eq!(embedded(&["--storage-expiration-days", "30"]), (30, 30));
        assert_eq!(embedded(&["--storage-retention-days", "3"]), (14, 3));
        assert_eq!(embedded(&["--storage-retention-days", "0"]), (14, 0));
        let msg = error(&["--aws", "--aws-s3", "--storage-retention-days", "3"]);
        assert!(
            msg.contains("--storage-retention-days") && msg.contains("lifecycle rule"),
            "{msg}"
        );
    }

    #[test]
    fn capabilities_mix() {
        let p = params(&["--postgres", "--postgres-url", "postgres://u:p@localhost/o"]).unwrap();
        assert!(matches!(p.infra.database, DatabaseBackend::Postgres { .. }));
        // The old flag name still works.
        let p = params(&["--postgres", "--postgres-connection-url", "postgres://u:p@localhost/o"])
            .unwrap();
        assert!(
            matches!(&p.infra.database, DatabaseBackend::Postgres { url } if url.expose() == "postgres://u:p@localhost/o")
        );
        assert_eq!(p.infra.queue, QueueBackend::Embedded);
        let p = params(&["--mongodb", "--alert-webhook-url", "https://hooks.example/x"]).unwrap();
        assert!(matches!(p.infra.database, DatabaseBackend::Mongo { .. }));
        assert!(matches!(p.infra.alerts, AlertBackend::Embedded { webhook_url: Some(_) }));
    }

    #[rstest]
    #[case(&["--max-priority-queue-size", "0"], "--max-priority-queue-size")]
    #[case(&["--min-block-to-process", "10", "--max-block-to-process", "9"], "--min-block-to-process")]
    #[case(&["--max-num-blobs", "7"], "--max-num-blobs")]
    #[case(&["--max-num-blobs", "0"], "--max-num-blobs")]
    #[case(&["--max-num-blobs", "1", "--blob-size-buffer", "4096"], "--blob-size-buffer")]
    #[case(&["--max-concurrent-snos-jobs", "0"], "--max-concurrent-snos-jobs")]
    #[case(&["--starknet-operator-address", "5FbDB2315678afecb367f032d93F642f64180aa3"], "--starknet-operator-address")]
    #[case(&["--starknet-operator-address", "0x123"], "--starknet-operator-address")]
    #[case(&["--ethereum-private-key", "0x1234"], "--ethereum-private-key")]
    #[case(&["--store-audit-artifacts"], "--store-audit-artifacts")]
    #[case(&["--mock-atlantic-server"], "--mock-atlantic-server")]
    #[case(&["--rpc-for-snos", "ws://localhost:9944"], "--rpc-for-snos")]
    #[case(&["--da-public-keys", "0x1,,0x2"], "--da-public-keys")]
    #[case(&["--da-public-keys", "xyz"], "--da-public-keys")]
    #[case(&["--aws", "--aws-sqs", "--queue-identifier", "fixed"], "--queue-identifier")]
    #[case(&["--mongodb", "--mongodb-connection-url", "http://x"], "--mongodb-connection-url")]
    #[case(&["--postgres", "--postgres-url", "mysql://x"], "--postgres-url")]
    #[case(&["--fixed-blocks-per-snos-batch", "0"], "--fixed-blocks-per-snos-batch")]
    #[case(&["--snos-job-timeout-seconds", "0"], "--snos-job-timeout-seconds")]
    #[case(&["--snos-runner", "external"], "--snos-command")]
    #[case(&["--snos-runner", "external", "--snos-command", " "], "--snos-command")]
    #[case(&["--snos-command-timeout-seconds", "0"], "--snos-command-timeout-seconds")]
    #[case(&["--storage-expiration-days", "0"], "--storage-expiration-days")]
    #[case(&["--layer", "l3", "--mock-verifier-address", ADDR], "--mock-verifier-address")]
    #[case(&["--bouncer-weights-limit-file", "/nonexistent/bouncer.json"], "/nonexistent/bouncer.json")]
    #[case(&["--versioned-constants", "/nonexistent/vc.json"], "--versioned-constants")]
    #[case(&["--snos-strk-fee-token-address", "4718f5a0"], "--snos-strk-fee-token-address")]
    #[case(&["--snos-eth-fee-token-address", "0xnope"], "--snos-eth-fee-token-address")]
    fn invalid_values_are_named(#[case] extra: &[&str], #[case] named: &str) {
        let msg = error(extra);
        assert!(msg.contains(named), "{msg:?} does not name {named}");
    }

    /// `base()` with `--ethereum-private-key` replaced by `--ethereum-kms-key-id key_id`, then
    /// `extra` appended.
    fn kms_params(key_id: &str, extra: &[&str]) -> ConfigResult<RunParams> {
        let mut args = base();
        let at = args.iter().position(|a| a == "--ethereum-private-key").expect("in base()");
        args.drain(at..at + 2);
        args.extend(["--ethereum-kms-key-id", key_id].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        RunCmd::try_parse_from(args).expect("command line parses").params()
    }

    #[test]
    fn a_kms_key_signs_without_a_private_key() {
        let p = kms_params(" alias/operator ", &[]).unwrap();
        let SettlementParams::Ethereum(eth) = &p.settlement else { panic!("not ethereum") };
        assert!(
            matches!(&eth.signer, EthereumSignerParams::Kms { key_id } if key_id == "alias/operator"),
            "{:?}",
            eth.signer
        );
        assert!(eth.signer.private_key().is_none());
        let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let p = kms_params(arn, &[]).unwrap();
        let SettlementParams::Ethereum(eth) = &p.settlement else { panic!("not ethereum") };
        assert!(matches!(&eth.signer, EthereumSignerParams::Kms { key_id } if key_id == arn));
        // The private key alone still works.
        let p = params::<&str>(&[]).unwrap();
        let SettlementParams::Ethereum(eth) = &p.settlement else { panic!("not ethereum") };
        assert_eq!(eth.signer.private_key().map(|k| k.expose().as_str()), Some(ETH_KEY));
    }

    #[test]
    fn the_private_key_and_a_kms_key_are_refused_together() {
        let msg = error(&["--ethereum-kms-key-id", "alias/operator"]);
        assert!(
            msg.contains("--ethereum-private-key")
                && msg.contains("--ethereum-kms-key-id")
                && msg.contains("cannot be used together"),
            "{msg}"
        );
        assert!(!msg.contains(&ETH_KEY[2..]), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn ethereum_settlement_needs_a_private_key_or_a_kms_key() {
        // A blank value counts as not given (an empty variable in `.env`).
        for blank in ["", "  "] {
            let msg = kms_params(blank, &[]).unwrap_err().to_string();
            assert_eq!(
                msg,
                "--ethereum-private-key or --ethereum-kms-key-id is required with \
                 --settle-on-ethereum"
            );
        }
        let p = params(&["--ethereum-private-key", " ", "--ethereum-kms-key-id", "alias/op"])
            .expect("a blank private key beside a KMS key is no conflict");
        let SettlementParams::Ethereum(eth) = &p.settlement else { panic!("not ethereum") };
        assert!(
            matches!(&eth.signer, EthereumSignerParams::Kms { key_id } if key_id == "alias/op")
        );
        let msg = kms_params("alias/my operator", &[]).unwrap_err().to_string();
        assert!(msg.starts_with("--ethereum-kms-key-id:"), "{msg}");
    }

    #[test]
    fn the_mock_verifier_needs_the_private_key_not_kms() {
        let msg = kms_params("alias/operator", &["--mock-verifier-address", ADDR])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("--mock-verifier-address") && msg.contains("--ethereum-kms-key-id"),
            "{msg}"
        );
        assert!(params(&["--mock-verifier-address", ADDR]).is_ok());
    }

    #[test]
    fn private_key_errors_do_not_echo_the_key() {
        let msg = error(&["--ethereum-private-key", "0xnot-a-valid-key-but-secret"]);
        assert!(!msg.contains("secret"), "{msg}");
    }

    #[test]
    fn sharp_requires_cert_files_and_rejects_l3() {
        let msg = error(&["--prover", "sharp"]);
        assert!(msg.contains("--sharp-user-crt-file") && msg.contains("--prover sharp"), "{msg}");
        let msg = error(&["--prover", "Sharp", "--layer", "l3"]);
        assert!(msg.contains("L2 only"), "{msg}");
    }

    #[test]
    fn sharp_reads_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let f = |n: &str, c: &str| {
            let p = dir.path().join(n);
            std::fs::write(&p, c).unwrap();
            p.to_str().unwrap().to_owned()
        };
        let (crt, key, srv) = (f("u.crt", "CRT"), f("u.key", "KEY-SECRET"), f("s.crt", "SRV"));
        let p = params(&[
            "--prover",
            "sharp",
            "--sharp-customer-id",
            "c",
            "--sharp-url",
            "https://sharp.example",
            "--sharp-user-crt-file",
            &crt,
            "--sharp-user-key-file",
            &key,
            "--sharp-server-crt-file",
            &srv,
            "--sharp-rpc-node-url",
            "http://localhost:8545",
            "--gps-verifier-contract-address",
            ADDR,
            "--aggregator-runner",
            "external",
            "--aggregator-command",
            "stand-in-aggregator",
        ])
        .unwrap();
        let ProverParams::Sharp(s) = &p.prover else { panic!("not sharp") };
        assert_eq!(s.certificates.user_crt, "CRT");
        assert_eq!(s.certificates.user_key.expose(), "KEY-SECRET");
        assert_eq!(s.settlement_layer, ProofSettlementLayer::Ethereum);
        assert!(!format!("{p:?}").contains("KEY-SECRET"));
    }

    #[test]
    fn atlantic_case_insensitive_and_defaults() {
        let p = params(&atlantic(&["--mock-atlantic-server"])).unwrap();
        let ProverParams::Atlantic(a) = &p.prover else { panic!("not atlantic") };
        assert!(a.mock_server && !a.mock_fact_hash);
        assert_eq!(a.cairo_vm, AtlanticCairoVm::Rust);
        assert_eq!(a.result, AtlanticQueryStep::ProofGeneration);
        assert_eq!(a.sharp_prover, AtlanticSharpProver::Stone);
        assert_eq!(
            a.artifacts_base_url.as_str(),
            "https://storage.googleapis.com/hero-atlantic-bucket"
        );
    }

    #[rstest]
    #[case(&["--layer", "l3"], "--cairo-verifier-program-hash")]
    #[case(&["--atlantic-network", "MAINNET", "--mock-atlantic-server"], "TESTNET")]
    #[case(&["--atlantic-mock-fact-hash", "maybe"], "--atlantic-mock-fact-hash")]
    fn atlantic_rules(#[case] extra: &[&str], #[case] named: &str) {
        let msg = error(&atlantic(extra));
        assert!(msg.contains(named), "{msg:?} does not name {named}");
    }

    #[test]
    fn bouncer_file_is_read_and_bad_json_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        let mut limits = BouncerWeights::DEFAULT_LIMITS;
        limits.n_txs = 7;
        std::fs::write(&good, serde_json::to_string(&limits).unwrap()).unwrap();
        let p = params(&["--bouncer-weights-limit-file", good.to_str().unwrap()]).unwrap();
        assert_eq!(p.batching.bouncer_weights_limit.n_txs, 7);

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        let msg = error(&["--bouncer-weights-limit-file", bad.to_str().unwrap()]);
        assert!(msg.contains("bad.json") && msg.contains("bouncer"), "{msg}");
    }

    #[test]
    fn starknet_settlement_and_da() {
        let mut args: Vec<String> = [
            "run",
            "--layer",
            "l3",
            "--settle-on-starknet",
            "--starknet-rpc-url",
            "http://localhost:5050",
            "--starknet-private-key",
            "0x1",
            "--starknet-account-address",
            "0x2",
            "--starknet-cairo-core-contract-address",
            "0x3",
            "--da-on-starknet",
            "--starknet-da-rpc-url",
            "http://localhost:5050",
            "--prover",
            "mock",
            "--madara-rpc-url",
            "http://localhost:9944",
            "--rpc-for-snos",
            "http://localhost:9944",
            "--max-batch-time-seconds",
            "60",
        ]
        .map(String::from)
        .to_vec();
        let p = RunCmd::try_parse_from(args.clone()).unwrap().params().unwrap();
        let SettlementParams::Starknet(s) = &p.settlement else { panic!("not starknet") };
        assert_eq!(s.finality_retry_wait, Duration::from_secs(6));
        assert!(matches!(p.da, DaParams::Starknet { .. }));
        args.retain(|a| a != "0x2" && a != "--starknet-account-address");
        let msg = RunCmd::try_parse_from(args).unwrap().params().unwrap_err().to_string();
        assert!(
            msg.contains("--starknet-account-address") && msg.contains("--settle-on-starknet"),
            "{msg}"
        );
    }

    #[test]
    fn setup_defaults_to_embedded_and_event_bridge_needs_type() {
        let p = SetupCmd::try_parse_from(["setup"]).unwrap().params().unwrap();
        assert!(p.infra.is_fully_embedded());
        assert_eq!(p.timeout, Duration::from_secs(300));
        assert_eq!(p.poll_interval, Duration::from_secs(5));

        let cmd = SetupCmd::try_parse_from(["setup", "--aws", "--aws-sqs", "--aws-event-bridge"])
            .unwrap();
        let msg = cmd.params().unwrap_err().to_string();
        assert!(msg.contains("--event-bridge-type"), "{msg}");

        let p = SetupCmd::try_parse_from([
            "setup",
            "--aws",
            "--aws-sqs",
            "--aws-event-bridge",
            "--event-bridge-type",
            "rule",
            "--interval-seconds",
            "30",
        ])
        .unwrap()
        .params()
        .unwrap();
        assert_eq!(
            p.infra.cron,
            CronBackend::EventBridge {
                kind: Some(EventBridgeType::Rule),
                interval: Duration::from_secs(30),
                prefix: None
            }
        );
    }

    #[test]
    fn upstream_retry_flags_reach_the_params_and_zero_is_refused() {
        let p = params::<&str>(&[]).unwrap();
        assert_eq!(p.upstream, UpstreamRetry::default());
        assert_eq!((p.upstream.max_attempts, p.upstream.read_timeout.as_secs()), (3, 30));
        let p =
            params(&["--upstream-read-max-attempts", "5", "--upstream-read-timeout-secs", "12"])
                .unwrap();
        assert_eq!((p.upstream.max_attempts, p.upstream.read_timeout.as_secs()), (5, 12));
        let msg = error(&["--upstream-read-max-attempts", "0"]);
        assert!(
            msg.contains("--upstream-read-max-attempts") && msg.contains("at least 1"),
            "{msg}"
        );
        let msg = error(&["--upstream-read-timeout-secs", "0"]);
        assert!(msg.contains("--upstream-read-timeout-secs"), "{msg}");
    }

    #[test]
    fn aws_timeout_flags_reach_the_params_and_zero_is_refused() {
        let p = SetupCmd::try_parse_from([
            "setup",
            "--aws",
            "--aws-sqs",
            "--aws-connect-timeout-secs",
            "8",
            "--aws-identity-load-timeout-secs",
            "21",
        ])
        .unwrap()
        .params()
        .unwrap();
        let aws = p.infra.aws.expect("--aws");
        assert_eq!(aws.connect_timeout, Some(Duration::from_secs(8)));
        assert_eq!(aws.identity_load_timeout, Some(Duration::from_secs(21)));
        let p = params::<&str>(&["--aws"]).unwrap();
        let aws = p.infra.aws.expect("--aws");
        assert_eq!((aws.connect_timeout, aws.identity_load_timeout), (None, None));
        let msg = error(&["--aws", "--aws-connect-timeout-secs", "0"]);
        assert!(msg.contains("--aws-connect-timeout-secs"), "{msg}");
    }

    #[test]
    fn preflight_flags_reach_the_params() {
        let p = params::<&str>(&[]).unwrap();
        assert!(!p.service.skip_preflight);
        assert_eq!(p.service.preflight_chain_id, None);
        let p = params(&["--skip-preflight", "--preflight-chain-id", "MADARA_DEVNET"]).unwrap();
        assert!(p.service.skip_preflight);
        let devnet = Felt::from_hex("0x4d41444152415f4445564e4554").unwrap();
        assert_eq!(p.service.preflight_chain_id, Some(devnet));
        let p = params(&["--preflight-chain-id", "0x534e5f4d41494e"]).unwrap();
        assert_eq!(p.service.preflight_chain_id, Felt::from_hex("0x534e5f4d41494e").ok());
        let msg = error(&["--preflight-chain-id", "not a chain"]);
        assert!(msg.starts_with("--preflight-chain-id:") && msg.contains("short string"), "{msg}");
    }

    /// `--shadow`: off by default; on L2 with a locally aggregating prover it carries the scan
    /// start; L3 and Atlantic are refused, saying why.
    #[test]
    fn shadow_mode_is_l2_with_a_local_aggregator_only() {
        assert_eq!(params::<&str>(&[]).unwrap().shadow, None);
        let p = params(&["--shadow", "--shadow-scan-from-block", "12"]).unwrap();
        assert_eq!(p.shadow, Some(crate::shadow::ShadowParams { scan_from_block: 12 }));
        let msg = error(&atlantic(&["--shadow"]));
        assert!(msg.contains("--shadow") && msg.contains("atlantic"), "{msg}");
        let mock = ProverParams::Mock(MockProverParams { verifier_address: None });
        let msg = shadow_params(true, 0, Layer::L3, &mock).unwrap_err().to_string();
        assert!(msg.contains("L3 orchestrator cannot run in shadow mode"), "{msg}");
    }
}
