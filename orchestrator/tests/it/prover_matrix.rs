//! The configuration matrix of `docs/configuration.md` ("Supported configurations"): every
//! combination of `--layer` × `--prover` × `--settle-on-*` × SNOS runner is either accepted
//! by `run`'s validation or refused with the one-line reason the table quotes. The table is
//! read from the doc, so the doc and the validation cannot drift.

use clap::Parser;
use orchestrator::{
    cli::run::RunCmd,
    config::{AggregatorRunnerKind, ProverParams, RunParams, SettlementParams},
    types::Layer,
};

const ETH_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ADDR: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

/// One row of the table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) layer: String,
    pub(crate) prover: String,
    pub(crate) settle: String,
    pub(crate) snos: String,
    /// `None`: settles; `Some(reason)`: refused with it.
    pub(crate) refused: Option<String>,
}

pub(crate) fn table() -> Vec<Row> {
    let doc = std::fs::read_to_string(
        orchestrator_test_support::repo::root().join("docs/configuration.md"),
    )
    .expect("docs/configuration.md");
    let section = doc
        .split("## Supported configurations")
        .nth(1)
        .expect("docs/configuration.md has a \"Supported configurations\" section");
    let mut rows = Vec::new();
    for line in section.lines().skip_while(|l| !l.starts_with("| `--layer`")).skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 5, "row {line:?}");
        let refused = match cells[4] {
            "settles" => None,
            other => Some(
                other
                    .strip_prefix("refused: `")
                    .and_then(|r| r.strip_suffix('`'))
                    .unwrap_or_else(|| panic!("result {other:?} is neither settles nor refused"))
                    .to_owned(),
            ),
        };
        rows.push(Row {
            layer: cells[0].into(),
            prover: cells[1].into(),
            settle: cells[2].into(),
            snos: cells[3].into(),
            refused,
        });
    }
    rows
}

/// The command line of `row`, with every setting its choices need; `aggregator` adds the
/// external aggregator (the SHARP rows).
pub(crate) fn command_line(row: &Row, certs: &std::path::Path, aggregator: bool) -> Vec<String> {
    let mut a: Vec<String> =
        ["run", "--layer", &row.layer, "--prover", &row.prover].map(String::from).to_vec();
    let mut push = |v: &[&str]| a.extend(v.iter().map(|s| s.to_string()));
    push(&[
        "--madara-rpc-url",
        "http://localhost:9944",
        "--rpc-for-snos",
        "http://localhost:9944",
        "--max-batch-time-seconds",
        "60",
    ]);
    match row.settle.as_str() {
        "ethereum" => push(&[
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
        ]),
        "starknet" => push(&[
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
        ]),
        other => panic!("settlement {other:?}"),
    }
    match row.snos.as_str() {
        "stand-in" => push(&["--snos-runner", "stand-in"]),
        "external" => push(&["--snos-runner", "external", "--snos-command", "generate-pie"]),
        other => panic!("SNOS runner {other:?}"),
    }
    match row.prover.as_str() {
        "atlantic" => push(&[
            "--atlantic-api-key",
            "k",
            "--atlantic-service-url",
            "http://localhost:4001",
            "--atlantic-rpc-node-url",
            "http://localhost:8545",
            "--atlantic-settlement-layer",
            &row.settle,
            "--atlantic-verifier-contract-address",
            if row.settle == "ethereum" { ADDR } else { "0x4" },
            "--atlantic-network",
            "TESTNET",
            "--cairo-verifier-program-hash",
            "0x5",
        ]),
        "sharp" => {
            let file = |n: &str| certs.join(n).to_str().unwrap().to_owned();
            let (crt, key, srv) = (file("u.crt"), file("u.key"), file("s.crt"));
            push(&[
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
            ]);
            if aggregator {
                push(&[
                    "--aggregator-runner",
                    "external",
                    "--aggregator-command",
                    "stand-in-aggregator",
                ]);
            }
        }
        "mock" => {}
        other => panic!("prover {other:?}"),
    }
    a
}

pub(crate) fn params(args: Vec<String>) -> Result<RunParams, String> {
    RunCmd::try_parse_from(args)
        .map_err(|e| format!("clap: {e}"))?
        .params()
        .map_err(|e| e.to_string())
}

#[test]
fn every_combination_is_accepted_or_refused_as_the_doc_says() {
    let rows = table();
    assert_eq!(rows.len(), 24, "2 layers × 3 provers × 2 settlement layers × 2 SNOS runners");
    let certs = tempfile::tempdir().unwrap();
    for n in ["u.crt", "u.key", "s.crt"] {
        std::fs::write(certs.path().join(n), "PEM").unwrap();
    }
    let mut settles = 0;
    for row in &rows {
        let got = params(command_line(row, certs.path(), true));
        match (&row.refused, got) {
            (Some(reason), Err(msg)) => {
                assert!(msg.starts_with(reason.as_str()), "{row:?}: refused with {msg:?}");
                assert!(!msg.contains('\n'), "{row:?}: not one line: {msg:?}");
            }
            (Some(_), Ok(_)) => panic!("{row:?}: accepted, the doc says refused"),
            (None, Err(msg)) => panic!("{row:?}: refused with {msg:?}, the doc says it settles"),
            (None, Ok(p)) => {
                settles += 1;
                let layer = if row.layer == "l2" { Layer::L2 } else { Layer::L3 };
                assert_eq!(p.layer, layer, "{row:?}");
                assert_eq!(p.prover.kind().to_string(), row.prover, "{row:?}");
                assert_eq!(p.snos.runner.to_string(), row.snos, "{row:?}");
                let on_ethereum = matches!(p.settlement, SettlementParams::Ethereum(_));
                assert_eq!(on_ethereum, row.settle == "ethereum", "{row:?}");
                // SHARP aggregates through the external command; the others have no command.
                let external = matches!(p.prover, ProverParams::Sharp(_));
                assert_eq!(
                    p.aggregator.runner == AggregatorRunnerKind::External,
                    external,
                    "{row:?}"
                );
            }
        }
    }
    assert_eq!(settles, 14, "the settling rows of the doc");
}

#[test]
fn sharp_on_l2_without_the_external_aggregator_is_refused_naming_the_flag() {
    let certs = tempfile::tempdir().unwrap();
    for n in ["u.crt", "u.key", "s.crt"] {
        std::fs::write(certs.path().join(n), "PEM").unwrap();
    }
    for snos in ["stand-in", "external"] {
        let row = Row {
            layer: "l2".into(),
            prover: "sharp".into(),
            settle: "ethereum".into(),
            snos: snos.into(),
            refused: None,
        };
        let msg = params(command_line(&row, certs.path(), false)).unwrap_err();
        assert!(
            msg.starts_with(
                "--aggregator-runner external (with --aggregator-command) is required with \
                 --prover sharp on L2"
            ),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
        // `external` without its command names the command.
        let mut args = command_line(&row, certs.path(), false);
        args.extend(["--aggregator-runner", "external"].map(String::from));
        let msg = params(args).unwrap_err();
        assert_eq!(msg, "--aggregator-command is required with --aggregator-runner external");
    }
}

#[test]
fn aggregator_flags_outside_local_aggregation_are_refused() {
    let certs = tempfile::tempdir().unwrap();
    let row = |layer: &str, prover: &str, settle: &str| Row {
        layer: layer.into(),
        prover: prover.into(),
        settle: settle.into(),
        snos: "stand-in".into(),
        refused: None,
    };
    let with = |r: &Row, extra: &[&str]| {
        let mut args = command_line(r, certs.path(), false);
        args.extend(extra.iter().map(|s| s.to_string()));
        params(args)
    };
    let ext = ["--aggregator-runner", "external", "--aggregator-command", "agg"];
    let msg = with(&row("l2", "atlantic", "ethereum"), &ext).unwrap_err();
    assert!(msg.contains("Atlantic aggregates in its buckets"), "{msg}");
    let msg = with(&row("l3", "mock", "starknet"), &ext).unwrap_err();
    assert!(msg.contains("an L3 has no aggregation"), "{msg}");
    let msg = with(&row("l2", "mock", "ethereum"), &["--aggregator-command", "agg"]).unwrap_err();
    assert_eq!(msg, "--aggregator-command needs --aggregator-runner external");
    // The mock prover takes either runner; stand-in is its default.
    let p = with(&row("l2", "mock", "ethereum"), &[]).unwrap();
    assert_eq!(p.aggregator.runner, AggregatorRunnerKind::StandIn);
    let p = with(&row("l2", "mock", "ethereum"), &ext).unwrap();
    assert_eq!(p.aggregator.command.as_deref(), Some("agg"));
    let msg = with(
        &row("l2", "mock", "ethereum"),
        &[&ext[..], &["--aggregator-command-timeout-seconds", "0"]].concat(),
    )
    .unwrap_err();
    assert!(msg.starts_with("--aggregator-command-timeout-seconds"), "{msg}");
}
