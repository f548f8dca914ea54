//! The `orchestrator` binary as a child process: `setup` once, then `run` instances that a test
//! kills (SIGKILL) or stops (SIGINT) and restarts. Each instance appends its output to a log file.

use std::{
    fs::OpenOptions,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use url::Url;

/// The orchestrator binary: `ORCH_BIN`, else `orchestrator` next to the test's `deps/` folder
/// (cargo builds it for the workspace's tests).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ORCH_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join("orchestrator");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build -p orchestrator --bin orchestrator` (or set ORCH_BIN)",
        bin.display()
    );
    bin
}

/// Runs `orchestrator setup <args>` to completion.
///
/// # Panics
/// When setup fails (its output is in the panic message).
pub fn setup(args: &[String], envs: &[(String, String)]) {
    let out = Command::new(binary())
        .arg("setup")
        .args(args)
        .envs(envs.iter().cloned())
        .output()
        .expect("run setup");
    assert!(
        out.status.success(),
        "orchestrator setup failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One running `orchestrator run`.
#[derive(Debug)]
pub struct OrchestratorProcess {
    child: Option<Child>,
    /// Its HTTP API.
    pub api: Url,
    /// Its OS process id.
    pub pid: u32,
}

impl OrchestratorProcess {
    /// Starts `orchestrator run <args> --host 127.0.0.1 --port <free>` with `envs`, appending
    /// stdout and stderr to `log`, and waits until `/health/ready` answers 200.
    ///
    /// # Panics
    /// When it does not start or exits before it is ready.
    pub async fn start(args: &[String], envs: &[(String, String)], log: &Path) -> Self {
        let port = crate::free_port();
        let file = OpenOptions::new().create(true).append(true).open(log).expect("log file");
        let child = Command::new(binary())
            .arg("run")
            .args(args)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .envs(envs.iter().cloned())
            .env("LOG_FORMAT", "pretty")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start orchestrator run");
        let pid = child.id();
        let api: Url = format!("http://127.0.0.1:{port}/").parse().expect("api url");
        let mut process = Self { child: Some(child), api, pid };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = process.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "orchestrator run exited with {status} before it was ready; the end of {}:\n{}",
                    log.display(),
                    crate::tail(log, 20)
                );
            }
            let ready = http
                .get(process.api.join("health/ready").expect("url"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return process;
            }
            assert!(
                Instant::now() < deadline,
                "orchestrator run not ready within 60 s; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL: the process dies wherever it is, nothing is flushed or released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGINT, then waits up to `timeout` for a graceful exit; returns whether it exited in
    /// time with success (SIGKILL otherwise).
    pub fn interrupt(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for OrchestratorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
