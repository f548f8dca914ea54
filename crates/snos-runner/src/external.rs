//! Runs the Starknet OS through an external command (for example the snos project's
//! `generate-pie`).
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
//! | `SNOS_USE_KZG_DA`, `SNOS_FULL_OUTPUT` | the OS flags, `0` or `1` |
//! | `SNOS_DA_PUBLIC_KEYS` | DA public keys, comma-separated `0x` hex (may be empty) |
//! | `SNOS_OUTPUT_DIR` | the output directory (also the working directory) |
//!
//! On success (exit status 0) it must have written `cairo_pie.zip` in the output directory,
//! and may write `os_output.json`, a JSON array of felts (`"0x…"` hex strings, decimal strings
//! or non-negative integers below the Stark prime). Without `os_output.json` the OS output is
//! the PIE's output segment; with it, it must equal that segment.
//!
//! Exit status 75 (`EX_TEMPFAIL`) means "transient, retry later" (for example the RPC is down);
//! any other failure status is deterministic. A command still running after the timeout is
//! killed with its whole process group and the run is retryable. Errors carry the tail of the
//! command's stderr; stdout is discarded.

use std::{path::Path, process::Stdio, time::Duration};

use async_trait::async_trait;
use tokio::{io::AsyncReadExt, process::Command};

use crate::{Felt, SnosInput, SnosOutput, SnosRunner, SnosRunnerError};

/// Exit status meaning "transient failure, retry" (sysexits `EX_TEMPFAIL`).
pub const EXIT_RETRYABLE: i32 = 75;
/// How much of the command's stderr an error keeps (bytes, from the end).
pub const STDERR_TAIL: usize = 2000;
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

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let text = text.trim();
    if text.is_empty() {
        "<empty stderr>".into()
    } else {
        text.to_owned()
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

/// Reads and checks what the command wrote into `dir` (see [`check_outputs`]).
pub fn read_outputs(dir: &Path) -> Result<SnosOutput, SnosRunnerError> {
    let pie_path = dir.join(PIE_FILE);
    let cairo_pie_zip = std::fs::read(&pie_path).map_err(|e| {
        SnosRunnerError::Deterministic(format!(
            "the command exited 0 but did not write {PIE_FILE}: {e}"
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

/// Kills the process group `pgid` (the command and everything it started).
async fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

#[async_trait]
impl SnosRunner for ExternalRunner {
    fn name(&self) -> &'static str {
        "external"
    }

    async fn run(&self, input: &SnosInput) -> Result<SnosOutput, SnosRunnerError> {
        let dir = tempfile::tempdir()
            .map_err(|e| SnosRunnerError::Retryable(format!("output dir: {e}")))?;
        let blocks: Vec<String> =
            (input.start_block..=input.end_block).map(|b| b.to_string()).collect();
        let keys: Vec<String> = input.da_public_keys.iter().map(|k| format!("{k:#x}")).collect();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&self.config.command)
            .current_dir(dir.path())
            .env("SNOS_START_BLOCK", input.start_block.to_string())
            .env("SNOS_END_BLOCK", input.end_block.to_string())
            .env("SNOS_BLOCKS", blocks.join(","))
            .env("SNOS_RPC_URL", input.rpc_url.as_str())
            .env("SNOS_LAYOUT", &input.layout)
            .env("SNOS_CHAIN_ID", format!("{:#x}", input.chain_id))
            .env("SNOS_USE_KZG_DA", if input.use_kzg_da { "1" } else { "0" })
            .env("SNOS_FULL_OUTPUT", if input.full_output { "1" } else { "0" })
            .env("SNOS_DA_PUBLIC_KEYS", keys.join(","))
            .env("SNOS_OUTPUT_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            SnosRunnerError::Deterministic(format!("cannot start the SNOS command: {e}"))
        })?;
        let pgid = child.id();
        let mut stderr = child.stderr.take();
        let reader = tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut buf).await;
            }
            buf
        });
        tracing::info!(
            runner = "external",
            start_block = input.start_block,
            end_block = input.end_block,
            pid = pgid,
            "SNOS command started"
        );

        let status = match tokio::time::timeout(self.config.timeout, child.wait()).await {
            Ok(status) => status.map_err(|e| {
                SnosRunnerError::Retryable(format!("waiting for the SNOS command: {e}"))
            })?,
            Err(_) => {
                if let Some(pgid) = pgid {
                    kill_group(pgid).await;
                }
                let _ = child.kill().await;
                let err = tokio::time::timeout(Duration::from_secs(5), reader).await;
                let stderr = err.ok().and_then(Result::ok).unwrap_or_default();
                return Err(SnosRunnerError::Retryable(format!(
                    "SNOS command timed out after {}s and was killed; stderr: {}",
                    self.config.timeout.as_secs_f64(),
                    tail(&stderr)
                )));
            }
        };
        // Children that outlive the command would keep the pipe open: end the group.
        if let Some(pgid) = pgid {
            kill_group(pgid).await;
        }
        let stderr = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        if !status.success() {
            let reason = format!(
                "SNOS command failed ({}); stderr: {}",
                status.code().map_or_else(
                    || "killed by a signal".to_owned(),
                    |c| format!("exit status {c}")
                ),
                tail(&stderr)
            );
            return Err(match status.code() {
                Some(EXIT_RETRYABLE) | None => SnosRunnerError::Retryable(reason),
                Some(_) => SnosRunnerError::Deterministic(reason),
            });
        }
        read_outputs(dir.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn stderr_tail_keeps_the_end() {
        let long = "x".repeat(5000) + "END";
        let t = tail(long.as_bytes());
        assert!(t.ends_with("END") && t.len() == STDERR_TAIL);
        assert_eq!(tail(b"  \n"), "<empty stderr>");
    }
}
