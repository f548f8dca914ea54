//! Command-line interface: `setup`, `run` and the developer tools.
//!
//! [`Cli`] is the whole command line. `run` and `setup` carry every flag and environment
//! variable of the reference orchestrator (listed in `reference_flags.txt`, checked by the
//! tests below); [`crate::config`] turns them into typed, validated parameters.

pub mod args;
pub mod dev;
pub mod params;
pub mod run;
pub mod setup;

pub use run::RunCmd;
pub use setup::SetupCmd;

use dev::{blob::BlobCommand, fact::FactArgs};

/// Variables that accept a `<VAR>_FILE` companion naming a file whose trimmed content is the
/// value. Apply with `orchestrator_utils::env::apply_file_secrets` before parsing.
pub const FILE_SECRET_VARS: &[&str] = &[
    "MADARA_ORCHESTRATOR_ATLANTIC_API_KEY",
    "MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY",
    "MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL",
    "MADARA_ORCHESTRATOR_STARKNET_SETTLEMENT_RPC_URL",
    "MADARA_ORCHESTRATOR_STARKNET_PRIVATE_KEY",
    "MADARA_ORCHESTRATOR_ETHEREUM_DA_RPC_URL",
    "MADARA_ORCHESTRATOR_STARKNET_DA_RPC_URL",
    "MADARA_ORCHESTRATOR_MONGODB_CONNECTION_URL",
    "MADARA_ORCHESTRATOR_POSTGRES_URL",
    "MADARA_ORCHESTRATOR_ADMIN_TOKEN",
];

/// The `orchestrator` command line.
#[derive(Debug, clap::Parser)]
#[command(name = "orchestrator", version, about = "Carries Madara blocks to settlement")]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Commands,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Commands {
    /// Runs the orchestrator.
    Run(Box<RunCmd>),
    /// Rebuilds the batches and jobs of every settled block from the core contract's events
    /// (an empty or lost database), then exits; takes the flags of `run` (`docs/recovery.md`).
    #[command(
        about = "Rebuilds the database's settled batches and jobs from the settlement layer"
    )]
    Recover(Box<RunCmd>),
    /// Creates the resources `run` needs (embedded tier by default, AWS with `--aws`).
    Setup(Box<SetupCmd>),
    /// Developer tools for blobs: encode, compress, decompress, decode, KZG.
    #[command(subcommand)]
    Blob(BlobCommand),
    /// Prints the fact of a Cairo PIE.
    Fact(FactArgs),
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use clap::CommandFactory;
    use rstest::rstest;

    use super::*;

    const REFERENCE_FLAGS: &str = include_str!("reference_flags.txt");
    const ENV_EXAMPLE: &str = include_str!("../../../.env.example");

    /// `(command, long flag, env var or None)` for each line of `reference_flags.txt`.
    fn reference_flags() -> Vec<(String, String, Option<String>)> {
        REFERENCE_FLAGS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let parts: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(parts.len(), 3, "malformed line {line:?}");
                let env = (parts[2] != "-").then(|| parts[2].to_owned());
                (parts[0].to_owned(), parts[1].to_owned(), env)
            })
            .collect()
    }

    fn subcommand(name: &str) -> clap::Command {
        let mut cli = Cli::command();
        cli.build();
        cli.find_subcommand(name).unwrap_or_else(|| panic!("no subcommand {name}")).clone()
    }

    /// Every env var declared on `run` and `setup`.
    fn declared_envs() -> BTreeSet<String> {
        ["run", "setup"]
            .iter()
            .flat_map(|c| {
                subcommand(c)
                    .get_arguments()
                    .filter_map(|a| a.get_env())
                    .map(|e| e.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn clap_debug_assert() {
        Cli::command().debug_assert();
    }

    #[test]
    fn reference_list_is_substantial() {
        let flags = reference_flags();
        assert!(flags.iter().filter(|(c, ..)| c == "run").count() > 100, "run list too short");
        assert!(flags.iter().filter(|(c, ..)| c == "setup").count() >= 15, "setup list too short");
    }

    #[test]
    fn every_reference_flag_exists_with_its_env_var() {
        let mut missing = Vec::new();
        for (cmd, flag, env) in reference_flags() {
            let command = subcommand(&cmd);
            let long = flag.trim_start_matches("--");
            let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(long)) else {
                missing.push(format!("{cmd} {flag}: no such flag"));
                continue;
            };
            let got = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            if got != env {
                missing.push(format!("{cmd} {flag}: env {got:?}, reference {env:?}"));
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    #[test]
    fn help_mentions_every_reference_flag() {
        let mut helps = BTreeMap::new();
        for name in ["run", "setup"] {
            helps.insert(name, subcommand(name).render_long_help().to_string());
        }
        for (cmd, flag, env) in reference_flags() {
            let help = &helps[cmd.as_str()];
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "{cmd} --help lacks {flag}"
            );
            if let Some(env) = env {
                assert!(help.contains(&env), "{cmd} --help lacks {env}");
            }
        }
    }

    #[test]
    fn env_example_lists_every_variable() {
        let listed: BTreeSet<&str> = ENV_EXAMPLE
            .lines()
            .filter_map(|l| l.trim_start_matches(['#', ' ']).split_once('='))
            .map(|(k, _)| k.trim())
            .collect();
        let mut wanted: BTreeSet<String> = declared_envs();
        wanted.extend(reference_flags().into_iter().filter_map(|(_, _, e)| e));
        wanted.extend(FILE_SECRET_VARS.iter().map(|v| format!("{v}_FILE")));
        wanted.extend(
            [
                "RUST_LOG",
                "LOG_FORMAT",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_REGION",
                "AWS_ENDPOINT_URL",
                "AWS_DEFAULT_REGION",
            ]
            .map(String::from),
        );
        let missing: Vec<_> = wanted.iter().filter(|v| !listed.contains(v.as_str())).collect();
        assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    }

    #[test]
    fn secret_env_values_never_show_in_help() {
        for name in ["run", "setup"] {
            for arg in subcommand(name).get_arguments() {
                let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
                    continue;
                };
                let secret = FILE_SECRET_VARS.contains(&env) || env.ends_with("_WEBHOOK_URL");
                if secret {
                    assert!(
                        arg.is_hide_env_values_set(),
                        "{name} {env} would print its value in --help"
                    );
                }
            }
        }
    }

    #[test]
    fn file_secret_vars_are_declared() {
        let envs = declared_envs();
        for v in FILE_SECRET_VARS {
            assert!(envs.contains(*v), "{v} is not the env var of any flag");
        }
    }

    /// Minimal valid `run` command line (required flags only).
    const RUN: &[&str] = &[
        "orchestrator",
        "run",
        "--settle-on-ethereum",
        "--da-on-ethereum",
        "--prover",
        "mock",
        "--madara-rpc-url",
        "http://localhost:9944",
        "--rpc-for-snos",
        "http://localhost:9944",
        "--max-batch-time-seconds",
        "60",
    ];

    fn raw(matches: &clap::ArgMatches, id: &str) -> Option<String> {
        matches.get_raw(id).map(|vals| {
            vals.map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(",")
        })
    }

    #[rstest]
    #[case("layer", "l2")]
    #[case("data_dir", "./orchestrator-data")]
    #[case("bucket_identifier", "mo-bucket")]
    #[case("storage_expiration_days", "14")]
    #[case("queue_identifier", "mo_{}_queue")]
    #[case("topic_identifier", "alerts")]
    #[case("interval_seconds", "60")]
    #[case("mongodb_connection_url", "mongodb://localhost:27017")]
    #[case("mongodb_database_name", "orchestrator")]
    #[case("host", "127.0.0.1")]
    #[case("port", "3000")]
    #[case("min_block_to_process", "0")]
    #[case("max_concurrent_created_snos_jobs", "200")]
    #[case("snos_job_timeout_seconds", "300")]
    #[case("snos_job_buffer_size", "50")]
    #[case("aggregator_job_buffer_size", "5")]
    #[case("max_priority_queue_size", "20")]
    #[case("graceful_shutdown_timeout", "120")]
    #[case("max_batch_size", "100")]
    #[case("max_num_blobs", "6")]
    #[case("blob_size_buffer", "15")]
    #[case("batching_worker_lock_duration", "3600")]
    #[case("max_blocks_per_snos_batch", "10")]
    #[case("max_snos_batches_per_aggregator_batch", "50")]
    #[case("max_aggregator_input_size", "750000")]
    #[case("default_empty_block_proving_gas", "1500000")]
    #[case("max_batch_processing_size", "10")]
    #[case("snos_layout_name", "all_cairo")]
    #[case("prover_layout_name", "dynamic")]
    #[case("sharp_settlement_layer", "ethereum")]
    #[case("atlantic_verifier_cairo_vm", "rust")]
    #[case("atlantic_verifier_result", "proof-generation")]
    #[case("atlantic_sharp_prover", "stone")]
    #[case("atlantic_artifacts_base_url", "https://storage.googleapis.com/hero-atlantic-bucket")]
    #[case("ethereum_finality_retry_wait_in_secs", "60")]
    #[case("ethereum_tx_confirmation_timeout_secs", "300")]
    #[case("ethereum_max_fee_bumps", "2")]
    #[case("ethereum_l2_state_update_max_fee_wei", "10000000000000000")]
    #[case("otel_service_name", "orchestrator")]
    fn run_defaults(#[case] id: &str, #[case] want: &str) {
        let m = Cli::command().try_get_matches_from(RUN).unwrap();
        let (_, run) = m.subcommand().unwrap();
        assert_eq!(raw(run, id).as_deref(), Some(want), "default of {id}");
    }

    #[rstest]
    #[case("aws_prefix")]
    #[case("max_block_to_process")]
    #[case("max_concurrent_snos_jobs")]
    #[case("fixed_blocks_per_snos_batch")]
    #[case("madara_feeder_gateway_url")]
    #[case("otel_collector_endpoint")]
    #[case("starknet_finality_retry_wait_in_secs")]
    #[case("postgres_url")]
    #[case("admin_token")]
    fn run_unset_by_default(#[case] id: &str) {
        let m = Cli::command().try_get_matches_from(RUN).unwrap();
        let (_, run) = m.subcommand().unwrap();
        assert_eq!(raw(run, id), None, "{id} should have no default");
    }

    #[rstest]
    #[case("layer", "l2")]
    #[case("timeout", "300")]
    #[case("poll_interval", "5")]
    #[case("interval_seconds", "60")]
    #[case("data_dir", "./orchestrator-data")]
    fn setup_defaults(#[case] id: &str, #[case] want: &str) {
        let m = Cli::command().try_get_matches_from(["orchestrator", "setup"]).unwrap();
        let (_, setup) = m.subcommand().unwrap();
        assert_eq!(raw(setup, id).as_deref(), Some(want), "default of {id}");
    }

    #[rstest]
    #[case::no_settlement("--settle-on-ethereum", 0)]
    #[case::no_da("--da-on-ethereum", 0)]
    #[case::no_prover("--prover", 1)]
    #[case::no_madara("--madara-rpc-url", 1)]
    #[case::no_snos_rpc("--rpc-for-snos", 1)]
    #[case::no_batch_time("--max-batch-time-seconds", 1)]
    fn run_keeps_the_reference_requirements(#[case] flag: &str, #[case] values: usize) {
        let mut args = RUN.to_vec();
        let at = args.iter().position(|a| *a == flag).unwrap();
        args.drain(at..=at + values);
        let err = Cli::command().try_get_matches_from(args).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{err}");
    }

    #[rstest]
    #[case(&["--settle-on-starknet"])]
    #[case(&["--da-on-starknet"])]
    #[case(&["--mongodb", "--postgres", "--postgres-url", "postgres://x"])]
    #[case(&["--postgres"])]
    #[case(&["--aws-s3"])]
    #[case(&["--aws", "--aws-sns", "--alert-webhook-url", "http://x"])]
    #[case(&["--prover", "nope"])]
    #[case(&["--snos-layout-name", "tiny"])]
    fn run_rejects(#[case] extra: &[&str]) {
        let mut args = RUN.to_vec();
        args.extend_from_slice(extra);
        assert!(Cli::command().try_get_matches_from(args).is_err(), "{extra:?} accepted");
    }

    #[rstest]
    #[case("--prover", "SHARP")]
    #[case("--prover", "Atlantic")]
    #[case("--atlantic-network", "testnet")]
    #[case("--atlantic-verifier-result", "proof-verification-on-l2")]
    #[case("--snos-layout-name", "starknet_with_keccak")]
    #[case("--layer", "l3")]
    fn run_accepts_value(#[case] flag: &str, #[case] value: &str) {
        let mut args = RUN.to_vec();
        match args.iter().position(|a| *a == flag) {
            Some(at) => args[at + 1] = value,
            None => args.extend_from_slice(&[flag, value]),
        }
        Cli::command().try_get_matches_from(args).unwrap();
    }

    #[test]
    fn setup_without_flags_is_valid_and_aws_services_need_aws() {
        Cli::command().try_get_matches_from(["orchestrator", "setup"]).unwrap();
        assert!(Cli::command()
            .try_get_matches_from(["orchestrator", "setup", "--aws-sqs"])
            .is_err());
        Cli::command()
            .try_get_matches_from([
                "orchestrator",
                "setup",
                "--aws",
                "--aws-s3",
                "--aws-sqs",
                "--aws-sns",
                "--aws-event-bridge",
                "--event-bridge-type",
                "schedule",
            ])
            .unwrap();
    }

    /// Runs `body` in a child process of this test binary with a clean environment plus
    /// `vars`, so env-var tests neither race other tests nor see the developer's environment.
    fn in_child_process(test: &str, vars: &[(&str, &str)], body: impl FnOnce()) {
        const MARKER: &str = "ORCHESTRATOR_CLI_TEST_CHILD";
        if std::env::var_os(MARKER).is_some() {
            body();
            return;
        }
        let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
        let name = format!("{module}::{test}");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &name, "--nocapture", "--test-threads=1"])
            .env_clear()
            .env(MARKER, "1")
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}");
    }

    #[test]
    fn env_vars_fill_flags_and_flags_win() {
        in_child_process(
            "env_vars_fill_flags_and_flags_win",
            &[
                ("MADARA_ORCHESTRATOR_PROVER", "Atlantic"),
                ("MADARA_ORCHESTRATOR_MADARA_RPC_URL", "http://madara:9944"),
                ("MADARA_ORCHESTRATOR_RPC_FOR_SNOS", "http://snos:9944"),
                ("MADARA_ORCHESTRATOR_MAX_BATCH_TIME_SECONDS", "42"),
                ("MADARA_ORCHESTRATOR_PORT", "4000"),
                ("MADARA_ORCHESTRATOR_MAX_CONCURRENT_SNOS_JOBS", "9"),
                ("MADARA_ORCHESTRATOR_DA_PUBLIC_KEYS", "0x1,0x2"),
                ("MADARA_ORCHESTRATOR_ADMIN_ENABLED", "true"),
                ("MADARA_ORCHESTRATOR_LAYER", "l3"),
            ],
            || {
                use clap::FromArgMatches;
                let args = [
                    "orchestrator",
                    "run",
                    "--settle-on-ethereum",
                    "--da-on-ethereum",
                    "--port",
                    "5000",
                ];
                let m = Cli::command().try_get_matches_from(args).unwrap();
                let Commands::Run(run) = Cli::from_arg_matches(&m).unwrap().command else {
                    panic!("not run")
                };
                assert_eq!(run.prover.prover, args::prover::ProverKind::Atlantic);
                assert_eq!(run.madara.madara_rpc_url.as_str(), "http://madara:9944/");
                assert_eq!(run.batching.max_batch_time_seconds, 42);
                assert_eq!(run.server.port, 5000, "flag beats env");
                assert!(run.server.admin_enabled);
                assert_eq!(run.service.max_concurrent_snos_jobs, Some(9));
                assert_eq!(run.snos.da_public_keys, Some(vec!["0x1".to_owned(), "0x2".to_owned()]));
                assert_eq!(run.layer, crate::types::Layer::L3);
            },
        );
    }

    #[test]
    fn file_companions_feed_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "  0xfeed  \n").unwrap();
        let key_path = key_file.to_str().unwrap().to_owned();
        in_child_process(
            "file_companions_feed_secrets",
            &[
                ("MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY_FILE", &key_path),
                ("MADARA_ORCHESTRATOR_ADMIN_TOKEN", "direct"),
            ],
            || {
                use clap::FromArgMatches;
                let set = orchestrator_utils::env::apply_file_secrets(FILE_SECRET_VARS).unwrap();
                assert_eq!(set, vec!["MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY".to_owned()]);
                let mut args = RUN.to_vec();
                args.extend_from_slice(&["--admin-token", "flag-wins"]);
                let m = Cli::command().try_get_matches_from(args).unwrap();
                let Commands::Run(run) = Cli::from_arg_matches(&m).unwrap().command else {
                    panic!("not run")
                };
                let key = run.ethereum_settlement.ethereum_private_key.unwrap();
                assert_eq!(key.expose(), "0xfeed");
                assert_eq!(run.server.admin_token.unwrap().expose(), "flag-wins");
            },
        );
    }
}
