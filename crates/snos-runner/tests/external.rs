//! The external runner against small shell scripts standing in for the SNOS command,
//! including a fake of the snos project's `generate-pie` run as is, without a wrapper.

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration, time::Instant};

use orchestrator_snos_runner::{
    stand_in::run_program, ExternalRunner, ExternalRunnerConfig, Felt, Retryable, SnosInput,
    SnosRunner, SnosRunnerError, MAINNET_ETH_FEE_TOKEN_ADDRESS, MAINNET_STRK_FEE_TOKEN_ADDRESS,
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
        is_l3: false,
        strk_fee_token_address: MAINNET_STRK_FEE_TOKEN_ADDRESS,
        eth_fee_token_address: MAINNET_ETH_FEE_TOKEN_ADDRESS,
        versioned_constants_path: None,
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

/// An executable file `name` in `dir` (run directly, not through `sh FILE`).
fn executable(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn run(
    command: String,
    timeout: Duration,
) -> Result<orchestrator_snos_runner::SnosOutput, SnosRunnerError> {
    run_with(command, timeout, &input()).await
}

async fn run_with(
    command: String,
    timeout: Duration,
    input: &SnosInput,
) -> Result<orchestrator_snos_runner::SnosOutput, SnosRunnerError> {
    ExternalRunner::new(ExternalRunnerConfig { command, timeout }).run(input).await
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
        "SNOS_NETWORK=SN_TEST",
        "SNOS_IS_L3=false",
        "SNOS_PUBLIC_KEYS=0xab",
        "SNOS_STRK_FEE_TOKEN_ADDRESS=0x4718f5a0fc34cc1af16a1cdee98ffb20c31f5cd61d6ab07201858f4287c938d",
        "SNOS_ETH_FEE_TOKEN_ADDRESS=0x49d36570d4e46f48e99674bd3fcc84644ddd6b96f7c741b1562b82f9e004dc7",
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

/// What the snos project's `generate-pie` reads from its environment (clap `env = "SNOS_…"`),
/// checked by a fake of it that fails naming the first variable whose value is wrong, then
/// writes its PIE to `$SNOS_OUTPUT` and nothing else, as the real binary does.
fn fake_generate_pie(dir: &Path, pie: &Path, vc_marker: &str) -> std::path::PathBuf {
    let body = format!(
        r#"fail() {{ echo "fake generate-pie: $*" >&2; exit 2; }}
expect() {{ eval "v=\${{$1-<unset>}}"; [ "$v" = "$2" ] || fail "$1 is '$v', expected '$2'"; }}
[ $# -eq 0 ] || fail "expected no arguments, got $*"
expect SNOS_BLOCKS 3,4,5
expect SNOS_RPC_URL http://127.0.0.1:9/rpc
expect SNOS_LAYOUT all_cairo
expect SNOS_NETWORK MADARA_L3
expect SNOS_STRK_FEE_TOKEN_ADDRESS 0x5afe
expect SNOS_ETH_FEE_TOKEN_ADDRESS 0xe7e
expect SNOS_IS_L3 true
expect SNOS_PUBLIC_KEYS 0xab,0x1234
case "$SNOS_OUTPUT" in /*.zip) ;; *) fail "SNOS_OUTPUT is '$SNOS_OUTPUT', expected an absolute .zip path" ;; esac
case "$SNOS_VERSIONED_CONSTANTS_PATH" in /*) ;; *) fail "SNOS_VERSIONED_CONSTANTS_PATH is '$SNOS_VERSIONED_CONSTANTS_PATH', expected an absolute path" ;; esac
grep -q '{vc_marker}' "$SNOS_VERSIONED_CONSTANTS_PATH" || fail "SNOS_VERSIONED_CONSTANTS_PATH does not hold the operator's file"
cp '{pie}' "$SNOS_OUTPUT""#,
        pie = pie.display(),
    );
    executable(dir, "generate-pie", &body)
}

fn l3_input(versioned_constants: &Path) -> SnosInput {
    SnosInput {
        is_l3: true,
        use_kzg_da: true,
        full_output: false,
        chain_id: Felt::from_bytes_be_slice(b"MADARA_L3"),
        strk_fee_token_address: Felt::from(0x5afeu16),
        eth_fee_token_address: Felt::from(0xe7eu16),
        da_public_keys: vec![Felt::from(0xabu8), Felt::from(0x1234u16)],
        versioned_constants_path: Some(versioned_constants.to_path_buf()),
        ..input()
    }
}

#[tokio::test]
async fn unmodified_generate_pie_gets_its_variables_and_its_pie_is_read_from_snos_output() {
    let dir = tempfile::tempdir().unwrap();
    let (pie_path, output) = pie(dir.path());
    let vc = dir.path().join("versioned_constants.json");
    std::fs::write(&vc, r#"{"marker": "vc-0.14.0-custom"}"#).unwrap();
    let fake = fake_generate_pie(dir.path(), &pie_path, "vc-0.14.0-custom");

    // `--snos-command <path to generate-pie>`: no wrapper, no arguments.
    let command = fake.display().to_string();
    let out = run_with(command.clone(), Duration::from_secs(30), &l3_input(&vc)).await.unwrap();
    assert_eq!(out.cairo_pie_zip, std::fs::read(&pie_path).unwrap());
    assert_eq!(out.os_output, output);
    assert!(out.n_steps > 0);

    // The fake is strict: one value off and the run fails, naming the variable.
    let mut l2 = l3_input(&vc);
    l2.is_l3 = false;
    let err = run_with(command.clone(), Duration::from_secs(30), &l2).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("SNOS_IS_L3 is 'false', expected 'true'"), "{err}");

    let mut mainnet = l3_input(&vc);
    mainnet.chain_id = Felt::from_bytes_be_slice(b"SN_MAIN");
    let err = run_with(command.clone(), Duration::from_secs(30), &mainnet).await.unwrap_err();
    assert!(err.to_string().contains("SNOS_NETWORK is 'mainnet', expected 'MADARA_L3'"), "{err}");

    let mut no_keys = l3_input(&vc);
    no_keys.da_public_keys.clear();
    let err = run_with(command, Duration::from_secs(30), &no_keys).await.unwrap_err();
    assert!(err.to_string().contains("SNOS_PUBLIC_KEYS is '<unset>'"), "{err}");
}

#[tokio::test]
async fn versioned_constants_path_reaches_the_command_only_when_given() {
    let dir = tempfile::tempdir().unwrap();
    let (pie_path, _) = pie(dir.path());
    let vc = dir.path().join("vc.json");
    let vc_json = r#"{"invoke_tx_max_n_steps": 12345}"#;
    std::fs::write(&vc, vc_json).unwrap();
    let seen = dir.path().join("vc_seen.json");
    let cmd = script(
        dir.path(),
        "vc.sh",
        &format!(
            "if [ -n \"${{SNOS_VERSIONED_CONSTANTS_PATH+x}}\" ]; then cp \"$SNOS_VERSIONED_CONSTANTS_PATH\" {seen}; fi\ncp {pie} \"$SNOS_OUTPUT\"",
            seen = seen.display(),
            pie = pie_path.display()
        ),
    );
    let mut with_vc = input();
    with_vc.versioned_constants_path = Some(vc.clone());
    run_with(cmd.clone(), Duration::from_secs(30), &with_vc).await.unwrap();
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), vc_json);

    // Without --versioned-constants the variable is not set at all (generate-pie then picks
    // the constants of each block's version).
    std::fs::remove_file(&seen).unwrap();
    run_with(cmd, Duration::from_secs(30), &input()).await.unwrap();
    assert!(!seen.exists(), "SNOS_VERSIONED_CONSTANTS_PATH was set without a file");

    // A file gone since start-up fails the run at once, naming it.
    with_vc.versioned_constants_path = Some(dir.path().join("gone.json"));
    let err = run_with("true".into(), Duration::from_secs(30), &with_vc).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("gone.json"), "{err}");
}
