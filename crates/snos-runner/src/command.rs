//! Runs an external command the way both seams need it ([`crate::external`] for SNOS,
//! [`crate::external_aggregator`] for the aggregator): stdin closed, stdout discarded, stderr
//! kept, in its own process group, killed with that group after a timeout, its exit status
//! classified for the job's error policy.

use std::{process::Stdio, time::Duration};

use tokio::{io::AsyncReadExt, process::Command};

use crate::SnosRunnerError;

/// Exit status meaning "transient failure, retry" (sysexits `EX_TEMPFAIL`).
pub const EXIT_RETRYABLE: i32 = 75;
/// How much of the command's stderr an error keeps (bytes, from the end).
pub const STDERR_TAIL: usize = 2000;

/// How long to wait for the stderr reader once the command is over.
const STDERR_DRAIN: Duration = Duration::from_secs(5);

/// Runs `cmd` (its program, arguments, working directory and environment already set) until it
/// exits or `timeout` passes. `what` names the command in errors (`SNOS`, `aggregator`):
/// "cannot start the `<what>` command", "`<what>` command timed out after Ns and was killed;
/// stderr: …", "`<what>` command failed (exit status N); stderr: …". `started` is called once
/// the command runs, with its pid (also its process group id), to log the start.
///
/// When the command is over, its process group is killed: children that outlive it would keep
/// the stderr pipe open.
///
/// # Errors
/// `Retryable`: exit status [`EXIT_RETRYABLE`], killed by a signal, the timeout (the whole
/// process group is killed), an error waiting for it. `Deterministic`: it cannot be started,
/// any other failure status. Both carry the tail of its stderr.
pub(crate) async fn run_command(
    mut cmd: Command,
    what: &str,
    timeout: Duration,
    started: impl FnOnce(Option<u32>),
) -> Result<(), SnosRunnerError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        SnosRunnerError::Deterministic(format!("cannot start the {what} command: {e}"))
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
    started(pgid);

    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(|e| {
            SnosRunnerError::Retryable(format!("waiting for the {what} command: {e}"))
        })?,
        Err(_) => {
            if let Some(pgid) = pgid {
                kill_group(pgid).await;
            }
            let _ = child.kill().await;
            let err = tokio::time::timeout(STDERR_DRAIN, reader).await;
            let stderr = err.ok().and_then(Result::ok).unwrap_or_default();
            return Err(SnosRunnerError::Retryable(format!(
                "{what} command timed out after {}s and was killed; stderr: {}",
                timeout.as_secs_f64(),
                tail(&stderr)
            )));
        }
    };
    // Children that outlive the command would keep the pipe open: end the group.
    if let Some(pgid) = pgid {
        kill_group(pgid).await;
    }
    let stderr = tokio::time::timeout(STDERR_DRAIN, reader)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    if !status.success() {
        let reason = format!(
            "{what} command failed ({}); stderr: {}",
            status
                .code()
                .map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit status {c}")),
            tail(&stderr)
        );
        return Err(match status.code() {
            Some(EXIT_RETRYABLE) | None => SnosRunnerError::Retryable(reason),
            Some(_) => SnosRunnerError::Deterministic(reason),
        });
    }
    Ok(())
}

/// The last [`STDERR_TAIL`] bytes of `bytes`, as trimmed text (`<empty stderr>` when blank).
pub(crate) fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let text = text.trim();
    if text.is_empty() {
        "<empty stderr>".into()
    } else {
        text.to_owned()
    }
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
