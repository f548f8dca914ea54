//! Runs the Starknet OS through an external command, for example the snos project's
//! `generate-pie` binary, unmodified: it reads its settings from the `SNOS_*` variables below.
//!
//! # Contract
//! The command line is run with `sh -c`, in a fresh empty directory that is also its output
//! directory, with stdin closed and these environment variables:
//!
//! | Variable | Value |
//! |---|---|
//! | `SNOS_START_BLOCK`, `SNOS_END_BLOCK` | the block range (inclusive) |
//! | `SNOS_BLOCKS` | the blocks, comma-separated (`5,6,7`) |
//! | `SNOS_RPC_URL` | the RPC to read them from |
//! | `SNOS_LAYOUT` | the Cairo layout (`all_cairo`, ...) |
//! | `SNOS_CHAIN_ID` | the chain id, `0x` hex |
//! | `SNOS_NETWORK` | the chain for generate-pie's `--chain`: see [`network_name`] |
//! | `SNOS_IS_L3` | `true` on an L3, `false` on an L2 |
//! | `SNOS_STRK_FEE_TOKEN_ADDRESS`, `SNOS_ETH_FEE_TOKEN_ADDRESS` | the fee tokens, `0x` hex |
//! | `SNOS_USE_KZG_DA`, `SNOS_FULL_OUTPUT` | the OS flags, `0` or `1` |
//! | `SNOS_DA_PUBLIC_KEYS` | DA public keys, comma-separated `0x` hex (may be empty) |
//! | `SNOS_PUBLIC_KEYS` | the same keys; unset when there are none |
//! | `SNOS_VERSIONED_CONSTANTS_PATH` | absolute path of the versioned constants JSON; unset without one |
//! | `SNOS_OUTPUT_DIR` | the output directory (also the working directory) |
//! | `SNOS_OUTPUT` | `$SNOS_OUTPUT_DIR/cairo_pie.zip`, where the PIE goes |
//!
//! On success (exit status 0) it must have written the PIE zip at `$SNOS_OUTPUT`
//! (`cairo_pie.zip` in the output directory), and may write `os_output.json` there, a JSON
//! array of felts (`"0x…"` hex strings, decimal strings or non-negative integers below the
//! Stark prime). Without `os_output.json` the OS output is the PIE's output segment; with it,
//! it must equal that segment.
//!
//! Exit status 75 (`EX_TEMPFAIL`) means "transient, retry later" (for example the RPC is down);
//! any other failure status is deterministic. A command still running after the timeout is
//! killed with its whole process group and the run is retryable. Errors carry the tail of the
//! command's stderr; stdout is discarded.

use std::{ffi::OsString, path::Path, time::Duration};

use async_trait::async_trait;
use tokio::process::Command;

pub use crate::command::{EXIT_RETRYABLE, STDERR_TAIL};
use crate::{command::run_command, Felt, SnosInput, SnosOutput, SnosRunner, SnosRunnerError};

/// The PIE the command must write.
pub const PIE_FILE: &str = "cairo_pie.zip";
/// The optional OS output the command may write.
pub const OS_OUTPUT_FILE: &str = "os_output.json";

/// Settings of the external runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRunnerConfig {
    /// The command line, run with `sh -c`.
    pub command: String,
    /// Longest run before the command is killed.
    pub timeout: Duration,
}

/// Spawns the configured command; see the module docs for the contract. Name: `external`.
#[derive(Debug, Clone)]
pub struct ExternalRunner {
    config: ExternalRunnerConfig,
}

impl ExternalRunner {
    /// A runner of `config.command`.
    pub fn new(config: ExternalRunnerConfig) -> Self {
        Self { config }
    }
}

/// Parses a decimal string into a canonical felt.
fn parse_decimal(s: &str) -> Option<Felt> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut bytes = [0u8; 32];
    for d in s.bytes() {
        let mut carry = u16::from(d - b'0');
        for b in bytes.iter_mut().rev() {
            let v = u16::from(*b) * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    canonical(bytes)
}

fn parse_hex(s: &str) -> Option<Felt> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{digits:0>64}");
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&padded[2 * i..2 * i + 2], 16).ok()?;
    }
    canonical(bytes)
}

/// The felt of 32 big-endian bytes, if they are below the Stark prime.
fn canonical(bytes: [u8; 32]) -> Option<Felt> {
    let f = Felt::from_bytes_be(&bytes);
    (f.to_bytes_be() == bytes).then_some(f)
}

/// Parses `os_output.json`: a JSON array of felts.
pub fn parse_os_output_json(text: &str) -> Result<Vec<Felt>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{OS_OUTPUT_FILE} is not JSON: {e}"))?;
    let items = value.as_array().ok_or_else(|| format!("{OS_OUTPUT_FILE} is not a JSON array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let felt = match v {
                serde_json::Value::String(s) if s.starts_with("0x") || s.starts_with("0X") => {
                    parse_hex(s)
                }
                serde_json::Value::String(s) => parse_decimal(s),
                serde_json::Value::Number(n) => n.as_u64().map(Felt::from),
                _ => None,
            };
            felt.ok_or_else(|| {
                format!("{OS_OUTPUT_FILE}[{i}] = {v} is not a felt (below the Stark prime)")
            })
        })
        .collect()
}

/// The `SNOS_NETWORK` of `chain_id`, as generate-pie's `--chain` takes it: `mainnet` for
/// `SN_MAIN`, `sepolia` for `SN_SEPOLIA`, otherwise the chain id as the short string it encodes
/// (`0x4d4144415241` → `MADARA`), which generate-pie turns back into the same felt. A
/// chain id that is not a printable ASCII short string is given as `0x` hex (generate-pie
/// cannot represent it; a wrapper can read `SNOS_CHAIN_ID`).
pub fn network_name(chain_id: Felt) -> String {
    let bytes = chain_id.to_bytes_be();
    let text: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    match std::str::from_utf8(&text) {
        Ok("SN_MAIN") => "mainnet".into(),
        Ok("SN_SEPOLIA") => "sepolia".into(),
        Ok(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) => s.to_owned(),
        _ => format!("{chain_id:#x}"),
    }
}

/// The environment of a run writing into `dir`: `(name, Some(value))` to set, `(name, None)`
/// to remove (an optional variable without a value must not leak in from the orchestrator's
/// own environment).
///
/// # Errors
/// `Deterministic` when the versioned constants file is not there: every run would fail.
pub fn command_env(
    input: &SnosInput,
    dir: &Path,
) -> Result<Vec<(&'static str, Option<OsString>)>, SnosRunnerError> {
    let blocks: Vec<String> =
        (input.start_block..=input.end_block).map(|b| b.to_string()).collect();
    let keys = input.da_public_keys.iter().map(|k| format!("{k:#x}")).collect::<Vec<_>>().join(",");
    let versioned_constants = match &input.versioned_constants_path {
        Some(path) => {
            // The command runs in `dir`: a relative path would point into it.
            let path = std::path::absolute(path).map_err(|e| {
                SnosRunnerError::Deterministic(format!(
                    "versioned constants file {}: {e}",
                    path.display()
                ))
            })?;
            if !path.is_file() {
                return Err(SnosRunnerError::Deterministic(format!(
                    "the versioned constants file {} does not exist or is not a file",
                    path.display()
                )));
            }
            Some(path.into_os_string())
        }
        None => None,
    };
    let bit = |b: bool| OsString::from(if b { "1" } else { "0" });
    let s = |s: String| Some(OsString::from(s));
    Ok(vec![
        ("SNOS_START_BLOCK", s(input.start_block.to_string())),
        ("SNOS_END_BLOCK", s(input.end_block.to_string())),
        ("SNOS_BLOCKS", s(blocks.join(","))),
        ("SNOS_RPC_URL", s(input.rpc_url.to_string())),
        ("SNOS_LAYOUT", s(input.layout.clone())),
        ("SNOS_CHAIN_ID", s(format!("{:#x}", input.chain_id))),
        ("SNOS_NETWORK", s(network_name(input.chain_id))),
        ("SNOS_IS_L3", s(input.is_l3.to_string())),
        ("SNOS_STRK_FEE_TOKEN_ADDRESS", s(format!("{:#x}", input.strk_fee_token_address))),
        ("SNOS_ETH_FEE_TOKEN_ADDRESS", s(format!("{:#x}", input.eth_fee_token_address))),
        ("SNOS_USE_KZG_DA", Some(bit(input.use_kzg_da))),
        ("SNOS_FULL_OUTPUT", Some(bit(input.full_output))),
        ("SNOS_PUBLIC_KEYS", (!keys.is_empty()).then(|| OsString::from(&keys))),
        ("SNOS_DA_PUBLIC_KEYS", s(keys)),
        ("SNOS_VERSIONED_CONSTANTS_PATH", versioned_constants),
        ("SNOS_OUTPUT_DIR", Some(dir.as_os_str().to_owned())),
        ("SNOS_OUTPUT", Some(dir.join(PIE_FILE).into_os_string())),
    ])
}

/// Reads and checks what the command wrote into `dir`: the PIE at `$SNOS_OUTPUT`
/// (`dir/cairo_pie.zip`) and the optional `os_output.json` (see [`check_outputs`]).
pub fn read_outputs(dir: &Path) -> Result<SnosOutput, SnosRunnerError> {
    let pie_path = dir.join(PIE_FILE);
    let cairo_pie_zip = std::fs::read(&pie_path).map_err(|e| {
        SnosRunnerError::Deterministic(format!(
            "the command exited 0 but did not write {PIE_FILE} ($SNOS_OUTPUT = {}): {e}",
            pie_path.display()
        ))
    })?;
    let os_output_json = match std::fs::read_to_string(dir.join(OS_OUTPUT_FILE)) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(SnosRunnerError::Deterministic(format!(
                "cannot read {OS_OUTPUT_FILE}: {e}"
            )))
        }
    };
    check_outputs(cairo_pie_zip, os_output_json.as_deref())
}

/// Checks what the command wrote, given as bytes: the `cairo_pie.zip` and, when the command
/// wrote one, the text of `os_output.json`.
///
/// The PIE must be a valid Cairo PIE with a non-empty output segment; `os_output.json`, when
/// given, must hold exactly that segment. The OS output is the segment.
///
/// # Errors
/// `Deterministic`, naming the file and the problem: the same output fails the same way.
pub fn check_outputs(
    cairo_pie_zip: Vec<u8>,
    os_output_json: Option<&str>,
) -> Result<SnosOutput, SnosRunnerError> {
    let pie =
        orchestrator_gps_fact_checker::fact::pie::read_pie_bytes(&cairo_pie_zip).map_err(|e| {
            SnosRunnerError::Deterministic(format!("{PIE_FILE} is not a valid Cairo PIE: {e}"))
        })?;
    let n_steps = pie.execution_resources.n_steps;
    let segment = orchestrator_gps_fact_checker::fact::pie::program_output(&pie).map_err(|e| {
        SnosRunnerError::Deterministic(format!("cannot read the PIE's output segment: {e}"))
    })?;
    let os_output = match os_output_json {
        Some(text) => {
            let given = parse_os_output_json(text).map_err(SnosRunnerError::Deterministic)?;
            if given != segment {
                return Err(SnosRunnerError::Deterministic(format!(
                    "{OS_OUTPUT_FILE} ({} felts) differs from the PIE's output segment ({} felts)",
                    given.len(),
                    segment.len()
                )));
            }
            given
        }
        None => segment,
    };
    if os_output.is_empty() {
        return Err(SnosRunnerError::Deterministic("the PIE has an empty output segment".into()));
    }
    Ok(SnosOutput { cairo_pie_zip, os_output, n_steps })
}

#[async_trait]
impl SnosRunner for ExternalRunner {
    fn name(&self) -> &'static str {
        "external"
    }

    async fn run(&self, input: &SnosInput) -> Result<SnosOutput, SnosRunnerError> {
        let dir = tempfile::tempdir()
            .map_err(|e| SnosRunnerError::Retryable(format!("output dir: {e}")))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(&self.config.command).current_dir(dir.path());
        for (name, value) in command_env(input, dir.path())? {
            match value {
                Some(value) => cmd.env(name, value),
                None => cmd.env_remove(name),
            };
        }
        run_command(cmd, "SNOS", self.config.timeout, |pid| {
            tracing::info!(
                runner = "external",
                start_block = input.start_block,
                end_block = input.end_block,
                pid,
                "SNOS command started"
            );
        })
        .await?;
        read_outputs(dir.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::tail;

    #[test]
    fn felts_parse_strictly() {
        let p_minus_1 = "0x800000000000011000000000000000000000000000000000000000000000000";
        let p = "0x800000000000011000000000000000000000000000000000000000000000001";
        assert_eq!(
            parse_os_output_json(&format!(r#"["0x1", "10", 7, "{p_minus_1}"]"#)).unwrap(),
            vec![Felt::ONE, Felt::from(10u8), Felt::from(7u8), -Felt::ONE]
        );
        for bad in [
            format!(r#"["{p}"]"#),
            r#"["0x"]"#.to_owned(),
            r#"[-1]"#.to_owned(),
            r#"["abc"]"#.to_owned(),
            r#"[1.5]"#.to_owned(),
            r#"{"a": 1}"#.to_owned(),
            "not json".to_owned(),
            format!(r#"["{}"]"#, "9".repeat(80)),
        ] {
            assert!(parse_os_output_json(&bad).is_err(), "{bad}");
        }
        // The prime in decimal is out of range too.
        let p_dec = "3618502788666131213697322783095070105623107215331596699973092056135872020481";
        assert!(parse_os_output_json(&format!(r#"["{p_dec}"]"#)).is_err());
    }

    #[test]
    fn outputs_are_checked_from_bytes() {
        use crate::Retryable;
        let pie = include_bytes!("../../test-support/vectors/pie/fibonacci.zip").to_vec();
        let out = check_outputs(pie.clone(), None).unwrap();
        assert_eq!(out.os_output.len(), 1);
        let json = format!(r#"["{:#x}"]"#, out.os_output[0]);
        assert_eq!(check_outputs(pie.clone(), Some(&json)).unwrap(), out);
        for (zip, json) in [
            (pie.clone(), Some(r#"["0x1", "0x2"]"#)),
            (pie.clone(), Some("not json")),
            (pie[..pie.len() / 2].to_vec(), None),
            (Vec::new(), None),
        ] {
            let err = check_outputs(zip, json).unwrap_err();
            assert!(!err.is_retryable(), "{err}");
        }
    }

    #[test]
    fn network_names_follow_generate_pie() {
        let short = |s: &str| Felt::from_bytes_be_slice(s.as_bytes());
        assert_eq!(network_name(short("SN_MAIN")), "mainnet");
        assert_eq!(network_name(short("SN_SEPOLIA")), "sepolia");
        assert_eq!(network_name(Felt::from_hex_unchecked("0x4d4144415241")), "MADARA");
        assert_eq!(network_name(short("SN_INTEGRATION_SEPOLIA")), "SN_INTEGRATION_SEPOLIA");
        // Not a printable short string: the hex, as SNOS_CHAIN_ID.
        assert_eq!(network_name(Felt::from(0x01ffu16)), "0x1ff");
        assert_eq!(network_name(short("A B")), format!("{:#x}", short("A B")));
        assert_eq!(network_name(Felt::ZERO), "0x0");
    }

    fn env_input() -> SnosInput {
        SnosInput {
            start_block: 9,
            end_block: 9,
            rpc_url: "http://127.0.0.1:9/".parse().unwrap(),
            layout: "all_cairo".into(),
            use_kzg_da: false,
            full_output: true,
            chain_id: Felt::from_bytes_be_slice(b"SN_MAIN"),
            da_public_keys: vec![],
            is_l3: false,
            strk_fee_token_address: crate::MAINNET_STRK_FEE_TOKEN_ADDRESS,
            eth_fee_token_address: crate::MAINNET_ETH_FEE_TOKEN_ADDRESS,
            versioned_constants_path: None,
            batch: None,
        }
    }

    #[test]
    fn optional_variables_are_removed_not_left_empty() {
        let env = command_env(&env_input(), Path::new("/tmp/out")).unwrap();
        let get = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
        // Present in the list with `None`: the runner removes any inherited value.
        assert_eq!(get("SNOS_PUBLIC_KEYS"), Some(None));
        assert_eq!(get("SNOS_VERSIONED_CONSTANTS_PATH"), Some(None));
        assert_eq!(get("SNOS_DA_PUBLIC_KEYS"), Some(Some("".into())));
        assert_eq!(get("SNOS_NETWORK"), Some(Some("mainnet".into())));
        assert_eq!(get("SNOS_OUTPUT"), Some(Some("/tmp/out/cairo_pie.zip".into())));
        assert_eq!(
            get("SNOS_STRK_FEE_TOKEN_ADDRESS"),
            Some(Some("0x4718f5a0fc34cc1af16a1cdee98ffb20c31f5cd61d6ab07201858f4287c938d".into()))
        );
    }

    #[test]
    fn versioned_constants_path_is_made_absolute_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vc.json");
        std::fs::write(&file, "{}").unwrap();
        // A path relative to the orchestrator's working directory.
        let cwd = std::env::current_dir().unwrap();
        let relative = pathdiff(&file, &cwd);
        let mut input = env_input();
        input.versioned_constants_path = Some(relative.clone());
        let env = command_env(&input, Path::new("/tmp/out")).unwrap();
        let vc = env.iter().find(|(n, _)| *n == "SNOS_VERSIONED_CONSTANTS_PATH").unwrap();
        let got = std::path::PathBuf::from(vc.1.clone().unwrap());
        assert!(got.is_absolute(), "{got:?} from {relative:?}");
        assert_eq!(std::fs::canonicalize(&got).unwrap(), std::fs::canonicalize(&file).unwrap());

        input.versioned_constants_path = Some(dir.path().join("missing.json"));
        let err = command_env(&input, Path::new("/tmp/out")).unwrap_err();
        assert!(
            matches!(&err, SnosRunnerError::Deterministic(m) if m.contains("missing.json") && m.contains("does not exist")),
            "{err}"
        );
    }

    /// `path` relative to `base` (both absolute), with `..` steps.
    fn pathdiff(path: &Path, base: &Path) -> std::path::PathBuf {
        let (p, b): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
        let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let mut out = std::path::PathBuf::new();
        for _ in common..b.len() {
            out.push("..");
        }
        for c in &p[common..] {
            out.push(c);
        }
        out
    }

    #[test]
    fn stderr_tail_keeps_the_end() {
        let long = "x".repeat(5000) + "END";
        let t = tail(long.as_bytes());
        assert!(t.ends_with("END") && t.len() == STDERR_TAIL);
        assert_eq!(tail(b"  \n"), "<empty stderr>");
    }
}
