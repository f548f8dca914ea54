//! Which `run` flags take effect and which are accepted but ignored.
//!
//! Every flag of `run` is in exactly one of [`USED_RUN_FLAGS`] (its value reaches the code:
//! the parameters, a client, a stage) and [`IGNORED_RUN_FLAGS`] (accepted so that the
//! reference's command lines keep working, but the reference ignores it too; one WARN line at
//! start names each one given, [`ignored_flag_warnings`]). A test walks the `run` command's
//! arguments and fails on a flag in neither list, and checks that each used flag's field is
//! read outside the argument structs (test code left out).

use super::super::run::RunCmd;

/// The `run` flags whose values are used, by argument id (the field name).
pub const USED_RUN_FLAGS: &[&str] = &[
    "admin_enabled",
    "admin_token",
    "aggregator_command",
    "aggregator_command_timeout_seconds",
    "aggregator_job_buffer_size",
    "aggregator_job_timeout_seconds",
    "aggregator_runner",
    "alert_webhook_url",
    "atlantic_api_key",
    "atlantic_artifacts_base_url",
    "atlantic_mock_fact_hash",
    "atlantic_network",
    "atlantic_rpc_node_url",
    "atlantic_service_url",
    "atlantic_settlement_layer",
    "atlantic_sharp_prover",
    "atlantic_verifier_cairo_vm",
    "atlantic_verifier_contract_address",
    "atlantic_verifier_result",
    "aws",
    "aws_connect_timeout_secs",
    "aws_event_bridge",
    "aws_identity_load_timeout_secs",
    "aws_prefix",
    "aws_s3",
    "aws_sns",
    "aws_sqs",
    "batching_worker_lock_duration",
    "blob_size_buffer",
    "bouncer_weights_limit_file",
    "bucket_identifier",
    "cairo_verifier_program_hash",
    "da_on_ethereum",
    "da_on_starknet",
    "da_public_keys",
    "data_dir",
    "data_submission_timeout_seconds",
    "default_empty_block_proving_gas",
    "disable_peerdas",
    "ethereum_da_rpc_url",
    "ethereum_finality_retry_wait_in_secs",
    "ethereum_kms_key_id",
    "ethereum_l2_state_update_max_fee_wei",
    "ethereum_max_fee_bumps",
    "ethereum_private_key",
    "ethereum_rpc_url",
    "ethereum_tx_confirmation_timeout_secs",
    "event_bridge_type",
    "failed_job_halt",
    "fixed_blocks_per_snos_batch",
    "gps_verifier_contract_address",
    "graceful_shutdown_timeout",
    "host",
    "interval_seconds",
    "l1_core_contract_address",
    "layer",
    "madara_feeder_gateway_url",
    "madara_rpc_url",
    "max_aggregator_input_size",
    "max_batch_processing_size",
    "max_batch_size",
    "max_batch_time_seconds",
    "max_block_to_process",
    "max_blocks_per_snos_batch",
    "max_concurrent_aggregator_jobs",
    "max_concurrent_proving_jobs",
    "max_concurrent_snos_jobs",
    "max_num_blobs",
    "max_priority_queue_size",
    "min_block_to_process",
    "mock_atlantic_server",
    "mock_verifier_address",
    "mongodb",
    "mongodb_connection_url",
    "mongodb_database_name",
    "open_job_actions",
    "orphan_scan_interval_seconds",
    "otel_collector_endpoint",
    "otel_service_name",
    "port",
    "postgres",
    "postgres_url",
    "preflight_chain_id",
    "proof_registration_timeout_seconds",
    "prover",
    "prover_layout_name",
    "proving_job_timeout_seconds",
    "queue_identifier",
    "recover_from_settlement",
    "recover_scan_from_block",
    "replay_bounds_rpc_url",
    "rpc_for_snos",
    "rpc_for_snos_backup",
    "settle_on_ethereum",
    "shadow",
    "shadow_scan_from_block",
    "settle_on_starknet",
    "settlement_lag_alert_seconds",
    "settlement_min_balance_updates",
    "sharp_customer_id",
    "sharp_rpc_node_url",
    "sharp_server_crt_file",
    "sharp_settlement_layer",
    "sharp_url",
    "sharp_user_crt_file",
    "sharp_user_key_file",
    "skip_preflight",
    "preflight_wait_seconds",
    "snos_command",
    "snos_command_timeout_seconds",
    "snos_eth_fee_token_address",
    "snos_job_buffer_size",
    "snos_job_timeout_seconds",
    "snos_layout_name",
    "snos_runner",
    "snos_strk_fee_token_address",
    "stale_message_seconds",
    "stall_alert_seconds",
    "starknet_account_address",
    "starknet_cairo_core_contract_address",
    "starknet_finality_retry_wait_in_secs",
    "starknet_operator_address",
    "starknet_private_key",
    "starknet_rpc_url",
    "state_transition_timeout_seconds",
    "storage_expiration_days",
    "storage_retention_days",
    "store_audit_artifacts",
    "topic_identifier",
    "upstream_read_max_attempts",
    "upstream_read_timeout_secs",
    "verification_poll_seconds",
    "versioned_constants",
    "watchdog_interval_seconds",
];

/// The `run` flags accepted but ignored, by argument id, with why.
pub const IGNORED_RUN_FLAGS: &[(&str, &str)] = &[
    (
        "max_concurrent_created_snos_jobs",
        "the reference parses it and never uses it; SNOS job creation is bounded by \
         --snos-job-buffer-size",
    ),
    (
        "max_snos_batches_per_aggregator_batch",
        "the reference parses it and never uses it; aggregator batches close on \
         --max-batch-size, --max-batch-time-seconds and the bouncer weight limits",
    ),
    (
        "atlantic_prover_type",
        "Atlantic's query has no prover-type field (the reference validates it and never sends \
         it); --atlantic-sharp-prover chooses the prover",
    ),
    (
        "snos_full_output",
        "recorded in the SnosRun job metadata only, as in the reference: the OS output mode \
         follows the layer and the DA layer",
    ),
    (
        "starknet_da_rpc_url",
        "on Starknet the state diff travels in the settlement transaction's calldata \
         (--starknet-rpc-url); no request goes to the DA RPC, as in the reference",
    ),
];

/// One WARN line per ignored flag that `cmd` sets (away from its default), naming the flag
/// and why it is ignored. `run` logs them once tracing is up.
pub fn ignored_flag_warnings(cmd: &RunCmd) -> Vec<String> {
    let defaults = <RunCmd as clap::CommandFactory>::command();
    let default_of = |id: &str| {
        defaults
            .get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_default_values().first().map(|v| v.to_string_lossy().into_owned()))
    };
    let given = |id: &str| -> bool {
        match id {
            "max_concurrent_created_snos_jobs" => {
                Some(cmd.service.max_concurrent_created_snos_jobs.to_string()) != default_of(id)
            }
            "max_snos_batches_per_aggregator_batch" => {
                Some(cmd.batching.max_snos_batches_per_aggregator_batch.to_string())
                    != default_of(id)
            }
            "atlantic_prover_type" => cmd.prover.atlantic.atlantic_prover_type.is_some(),
            "snos_full_output" => cmd.snos.snos_full_output,
            "starknet_da_rpc_url" => cmd.da.starknet_da_rpc_url.is_some(),
            _ => false,
        }
    };
    let mut lines: Vec<String> = IGNORED_RUN_FLAGS
        .iter()
        .filter(|(id, _)| given(id))
        .map(|(id, why)| format!("--{} is ignored: {why}", id.replace('_', "-")))
        .collect();
    if cmd.starknet_settlement.settle_on_starknet
        && cmd.ethereum_settlement.starknet_operator_address.is_some()
    {
        lines.push(
            "--starknet-operator-address is ignored with --settle-on-starknet: it names the \
             Ethereum operator of an L2's core contract; an L3's operator is \
             --starknet-account-address"
                .to_owned(),
        );
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, path::Path};

    use clap::{CommandFactory, Parser};

    use super::*;

    /// The `run` arguments, by id (help and version left out).
    fn run_argument_ids() -> BTreeSet<String> {
        RunCmd::command()
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| id != "help" && id != "version")
            .collect()
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Whether `.field` (not `.field_more`) is read in `source`.
    fn reads_field(source: &str, field: &str) -> bool {
        let needle = format!(".{field}");
        source.match_indices(&needle).any(|(i, _)| {
            !source[i + needle.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
    }

    #[test]
    fn every_run_flag_is_used_or_logged_as_ignored() {
        let ids = run_argument_ids();
        let used: BTreeSet<&str> = USED_RUN_FLAGS.iter().copied().collect();
        let ignored: BTreeSet<&str> = IGNORED_RUN_FLAGS.iter().map(|(id, _)| *id).collect();
        assert_eq!(used.len(), USED_RUN_FLAGS.len(), "a flag is listed twice in USED_RUN_FLAGS");
        let both: Vec<_> = used.intersection(&ignored).collect();
        assert!(both.is_empty(), "flags both used and ignored: {both:?}");
        let unlisted: Vec<_> = ids
            .iter()
            .filter(|id| !used.contains(id.as_str()) && !ignored.contains(id.as_str()))
            .collect();
        assert!(
            unlisted.is_empty(),
            "`run` flags in neither USED_RUN_FLAGS nor IGNORED_RUN_FLAGS \
             (orchestrator/src/cli/args/usage.rs): {unlisted:?}. Use the flag, or, if the \
             reference ignores it too, list it as ignored with the reason"
        );
        let stale: Vec<_> =
            used.iter().chain(ignored.iter()).filter(|id| !ids.contains(**id)).collect();
        assert!(stale.is_empty(), "listed flags that `run` does not have: {stale:?}");
    }

    #[test]
    fn every_used_flag_is_read_outside_the_argument_structs() {
        let src = orchestrator_test_support::repo::root().join("orchestrator/src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let args_dir = src.join("cli/args");
        let sources: Vec<String> = files
            .iter()
            .filter(|f| !f.starts_with(&args_dir))
            .map(|f| {
                // Tests reading a field do not make it used: their modules close the files.
                let text = std::fs::read_to_string(f).unwrap();
                match text.find("#[cfg(test)]") {
                    Some(tests) => text[..tests].to_owned(),
                    None => text,
                }
            })
            .collect();
        let unread: Vec<_> = USED_RUN_FLAGS
            .iter()
            .filter(|id| !sources.iter().any(|s| reads_field(s, id)))
            .collect();
        assert!(
            unread.is_empty(),
            "flags listed as used whose field is never read outside orchestrator/src/cli/args \
             (tests left out): {unread:?}"
        );
    }

    fn parse(extra: &[&str]) -> RunCmd {
        let mut argv = vec![
            "run",
            "--settle-on-starknet",
            "--da-on-starknet",
            "--prover",
            "atlantic",
            "--madara-rpc-url",
            "http://127.0.0.1:9944",
            "--rpc-for-snos",
            "http://127.0.0.1:9944",
            "--max-batch-time-seconds",
            "60",
        ];
        argv.extend_from_slice(extra);
        RunCmd::try_parse_from(argv).unwrap()
    }

    #[test]
    fn each_ignored_flag_given_gets_one_warning_naming_it() {
        assert!(ignored_flag_warnings(&parse(&[])).is_empty(), "no ignored flag given, no warning");
        // The defaults, given explicitly, change nothing either.
        assert!(ignored_flag_warnings(&parse(&[
            "--max-concurrent-created-snos-jobs",
            "200",
            "--max-snos-batches-per-aggregator-batch",
            "50"
        ]))
        .is_empty());
        let lines = ignored_flag_warnings(&parse(&[
            "--max-concurrent-created-snos-jobs",
            "7",
            "--max-snos-batches-per-aggregator-batch",
            "3",
            "--atlantic-prover-type",
            "herodotus",
            "--snos-full-output",
            "--starknet-da-rpc-url",
            "http://user:secret@127.0.0.1:9944/",
            "--starknet-operator-address",
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        ]));
        let expected = [
            "--max-concurrent-created-snos-jobs",
            "--max-snos-batches-per-aggregator-batch",
            "--atlantic-prover-type",
            "--snos-full-output",
            "--starknet-da-rpc-url",
            "--starknet-operator-address",
        ];
        assert_eq!(lines.len(), expected.len(), "{lines:#?}");
        for (line, flag) in lines.iter().zip(expected) {
            assert!(line.starts_with(&format!("{flag} is ignored")), "{line}");
        }
        assert!(lines.iter().all(|l| !l.contains("secret")), "{lines:#?}");
    }
}
