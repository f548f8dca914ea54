//! The external runner against small shell scripts standing in for the SNOS command.

use std::{path::Path, time::Duration, time::Instant};

use orchestrator_snos_runner::{
    stand_in::run_program, ExternalRunner, ExternalRunnerConfig, Felt, Retryable, SnosInput,
    SnosRunner, SnosRunnerError,
};

fn input() -> SnosInput {
    SnosInput {
        start_block: 3,
        end_block: 5,
        rpc_url: "http://127.0.0.1:9/rpc".parse().unwrap(),
        layout: "all_cairo".into(),
        use_kzg_da: false,
        full_output: true,
        chain_id: Felt::from_bytes_be_slice(b"SN_TEST"),
        da_public_keys: vec![Felt::from(0xabu8)],
        batch: None,
    }
}

/// A PIE of the stand-in program with output `1..=12` (flags at 8, 9 are booleans: 0, 0 below).
fn pie(dir: &Path) -> (std::path::PathBuf, Vec<Felt>) {
    let mut output: Vec<Felt> = (1u64..=12).map(Felt::from).collect();
    output[8] = Felt::ZERO;
    output[9] = Felt::ONE;
    let (zip, _) =
        run_program(output.clone(), cairo_vm::types::layout_name::LayoutName::all_cairo).unwrap();
    let path = dir.join("fixture_pie.zip");
    std::fs::write(&path, zip).unwrap();
    (path, output)
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    format!("sh {}", path.display())
}

async fn run(
    command: String,
    timeout: Duration,
) -> Result<orchestrator_snos_runner::SnosOutput, SnosRunnerError> {
    ExternalRunner::new(ExternalRunnerConfig { command, timeout }).run(&input()).await
}

#[tokio::test]
async fn success_with_and_without_os_output_json() {
    let dir = tempfile::tempdir().unwrap();
    let (pie_path, output) = pie(dir.path());
    let env_log = dir.path().join("env.txt");
    let hex: Vec<String> = output.iter().map(|f| format!("\"{f:#x}\"")).collect();
    let cmd = script(
        dir.path(),
        "ok.sh",
        &format!(
            "env | grep ^SNOS_ | sort > {log}\n[ \"$(pwd)\" = \"$SNOS_OUTPUT_DIR\" ] || exit 3\ncp {pie} cairo_pie.zip\necho '[{arr}]' > \"$SNOS_OUTPUT_DIR/os_output.json\"",
            log = env_log.display(),
            pie = pie_path.display(),
            arr = hex.join(",")
        ),
    );
    let out = run(cmd, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out.os_output, output);
    assert!(out.n_steps > 0);
    assert_eq!(out.cairo_pie_zip, std::fs::read(&pie_path).unwrap());
    let env = std::fs::read_to_string(&env_log).unwrap();
    for line in [
        "SNOS_START_BLOCK=3",
        "SNOS_END_BLOCK=5",
        "SNOS_BLOCKS=3,4,5",
        "SNOS_RPC_URL=http://127.0.0.1:9/rpc",
        "SNOS_LAYOUT=all_cairo",
        "SNOS_USE_KZG_DA=0",
        "SNOS_FULL_OUTPUT=1",
        "SNOS_DA_PUBLIC_KEYS=0xab",
        "SNOS_CHAIN_ID=0x534e5f54455354",
    ] {
        assert!(env.lines().any(|l| l == line), "missing {line} in\n{env}");
    }

    // Without os_output.json the PIE's output segment is the OS output.
    let cmd = script(
        dir.path(),
        "pie_only.sh",
        &format!("cp {} \"$SNOS_OUTPUT_DIR/cairo_pie.zip\"", pie_path.display()),
    );
    assert_eq!(run(cmd, Duration::from_secs(30)).await.unwrap().os_output, output);
}

#[tokio::test]
async fn failure_carries_the_stderr_tail_and_is_classified_by_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = script(
        dir.path(),
        "fail.sh",
        "echo 'lots of noise' >&2\necho 'block 4: OS execution failed: assertion' >&2\nexit 2",
    );
    let err = run(cmd, Duration::from_secs(30)).await.unwrap_err();
    assert!(!err.is_retryable());
    let msg = err.to_string();
    assert!(
        msg.contains("exit status 2") && msg.contains("block 4: OS execution failed: assertion"),
        "{msg}"
    );

    let cmd = script(dir.path(), "tempfail.sh", "echo 'rpc down' >&2\nexit 75");
    let err = run(cmd, Duration::from_secs(30)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("rpc down"));

    let err = run("/nonexistent/generate-pie".into(), Duration::from_secs(30)).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("exit status 127"), "{err}");
}

#[tokio::test]
async fn timeout_kills_the_command_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("survived");
    // A child process that would write the marker if it outlived the kill.
    let cmd = script(
        dir.path(),
        "slow.sh",
        &format!(
            "echo 'working on block 3' >&2\n(sleep 3; touch {}) &\nsleep 30",
            marker.display()
        ),
    );
    let started = Instant::now();
    let err = run(cmd, Duration::from_millis(700)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    assert!(err.is_retryable());
    let msg = err.to_string();
    assert!(msg.contains("timed out") && msg.contains("working on block 3"), "{msg}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!marker.exists(), "a child of the command survived the timeout");
}

#[tokio::test]
async fn garbage_outputs_are_rejected_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (pie_path, _) = pie(dir.path());
    let pie = pie_path.display();
    let cases = [
        ("nothing.sh", "true".to_owned(), "did not write cairo_pie.zip"),
        ("notzip.sh", "echo hello > cairo_pie.zip".to_owned(), "not a valid Cairo PIE"),
        ("notjson.sh", format!("cp {pie} cairo_pie.zip; echo '[1, 2' > os_output.json"), "not JSON"),
        (
            "range.sh",
            format!("cp {pie} cairo_pie.zip; echo '[\"0x800000000000011000000000000000000000000000000000000000000000001\"]' > os_output.json"),
            "is not a felt",
        ),
        ("differs.sh", format!("cp {pie} cairo_pie.zip; echo '[1, 2, 3]' > os_output.json"), "differs from the PIE"),
    ];
    for (name, body, reason) in cases {
        let err = run(script(dir.path(), name, &body), Duration::from_secs(30)).await.unwrap_err();
        assert!(!err.is_retryable(), "{name}: {err}");
        assert!(err.to_string().contains(reason), "{name}: {err}");
    }
}
