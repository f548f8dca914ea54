//! Fault injection for the chaos workflow: a TCP proxy that cuts a service off, the L1 faults
//! (state-update transactions dropped from Anvil's pool, base-fee spikes) and a dedicated
//! PostgreSQL cluster a test may restart.
//!
//! Each injector counts what it did, so the test can print and check a table of faults.

use std::{
    collections::HashSet,
    path::PathBuf,
    process::Command,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use url::Url;

pub use orchestrator_test_support::proxy::TcpProxy;

/// Faults on the settlement layer (Anvil), through its JSON-RPC.
#[derive(Debug, Clone)]
pub struct L1Faults {
    rpc: Url,
    http: reqwest::Client,
    /// Transactions to the core contract dropped from the pool.
    pub dropped: Arc<AtomicU64>,
    /// Base-fee spikes started.
    pub spikes: Arc<AtomicU64>,
}

impl L1Faults {
    /// Faults on the Anvil at `rpc`.
    pub fn new(rpc: Url) -> Self {
        Self { rpc, http: reqwest::Client::new(), dropped: Arc::default(), spikes: Arc::default() }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer: Value = self
            .http
            .post(self.rpc.clone())
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("{method}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        match answer.get("error") {
            Some(e) => Err(format!("{method}: {e}")),
            None => Ok(answer["result"].clone()),
        }
    }

    /// Until `stop`, watches the pool (every 25 ms) for transactions from `sender` to `to`
    /// and drops the first one seen at each nonce with probability `p` (always the very
    /// first), drawn from `seed`: the state update of that batch must be sent again.
    pub fn spawn_dropper(
        &self,
        sender: &str,
        to: &str,
        p: f64,
        seed: u64,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let sender = sender.to_lowercase();
        let to = to.to_lowercase();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut seen: HashSet<u64> = HashSet::new();
            while !stop.is_cancelled() {
                if let Ok(pool) = this.call("txpool_content", json!([])).await {
                    for (from, by_nonce) in pool["pending"].as_object().into_iter().flatten() {
                        if from.to_lowercase() != sender {
                            continue;
                        }
                        for (nonce, tx) in by_nonce.as_object().into_iter().flatten() {
                            let Ok(nonce) = nonce.parse::<u64>() else { continue };
                            let target = tx["to"].as_str().unwrap_or_default().to_lowercase();
                            if target != to || !seen.insert(nonce) {
                                continue;
                            }
                            let first = seen.len() == 1;
                            if !first && !rng.gen_bool(p) {
                                continue;
                            }
                            let Some(hash) = tx["hash"].as_str() else { continue };
                            match this.call("anvil_dropTransaction", json!([hash])).await {
                                Ok(Value::Null) => {}
                                Ok(_) => {
                                    this.dropped.fetch_add(1, Ordering::SeqCst);
                                    println!("[chaos] dropped state update {hash} (nonce {nonce}) from the pool");
                                }
                                Err(e) => println!("[chaos] could not drop {hash}: {e}"),
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    }

    /// The base fee of the latest block, in wei.
    pub async fn base_fee(&self) -> Result<u128, String> {
        let block = self.call("eth_getBlockByNumber", json!(["latest", false])).await?;
        let hex = block["baseFeePerGas"].as_str().ok_or("no baseFeePerGas")?;
        u128::from_str_radix(hex.trim_start_matches("0x"), 16).map_err(|e| e.to_string())
    }

    /// Holds the base fee at 10× `baseline` for `hold` (set again before every block), then
    /// lets it fall back by EIP-1559 (about 12.5 % a block) and waits until it is below twice
    /// the baseline, so spikes never compound.
    pub async fn spike_base_fee(&self, baseline: u128, hold: Duration) -> Result<u128, String> {
        let base = baseline.max(1_000_000);
        let high = base * 10;
        self.spikes.fetch_add(1, Ordering::SeqCst);
        println!("[chaos] base fee {base} wei → {high} wei for {hold:?}");
        let until = tokio::time::Instant::now() + hold;
        while tokio::time::Instant::now() < until {
            self.call("anvil_setNextBlockBaseFeePerGas", json!([format!("{high:#x}")])).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        while self.base_fee().await? > 2 * base {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(high)
    }
}

/// A PostgreSQL cluster of its own (initdb in a temporary directory, trust authentication on
/// 127.0.0.1), so a test can restart it without disturbing the shared test server. Built
/// from the Debian packages `scripts/postgres.sh` installs; as root, the server runs as the
/// `postgres` user.
#[derive(Debug)]
pub struct PostgresCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Restarts so far.
    pub restarts: u64,
}

impl PostgresCluster {
    /// Creates and starts a cluster; `None` when PostgreSQL tests are skipped.
    ///
    /// # Panics
    /// When the PostgreSQL binaries are missing or the cluster does not start.
    pub fn start() -> Option<Self> {
        if crate::skipped(orchestrator_test_support::postgres::SKIP_VAR, "PostgreSQL") {
            return None;
        }
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL binaries in /usr/lib/postgresql: run scripts/postgres.sh")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .max()
            .expect("pg_ctl under /usr/lib/postgresql/*/bin: run scripts/postgres.sh");
        let dir = tempfile::Builder::new().prefix("orch-pg-").tempdir().expect("tempdir");
        let port = crate::free_port();
        let cluster = Self { dir, bin, port, restarts: 0 };
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        let data = cluster.data().display().to_string();
        cluster.run("initdb", &["-D", &data, "-A", "trust", "-U", "orchestrator", "--no-sync"]);
        cluster.start_server();
        Some(cluster)
    }

    fn start_server(&self) {
        let data = self.data().display().to_string();
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &opts, "-w", "start"]);
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        } else {
            Command::new(&exe).args(args).current_dir(self.dir.path()).output()
        }
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server URL (database `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://orchestrator@127.0.0.1:{}/postgres", self.port)
    }

    /// Restarts the server with `down` between stop and start (fast shutdown: every session
    /// is cut, as in a failover or a maintenance restart), waiting until it accepts
    /// connections again.
    pub async fn restart(&mut self, down: Duration) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
        tokio::time::sleep(down).await;
        self.start_server();
        self.restarts += 1;
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&exe).args(args).output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
