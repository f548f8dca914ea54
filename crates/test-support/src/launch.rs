//! What the service launchers share: where a tool's binary is found, how its tests are skipped,
//! a free port, the process guard, readiness polling, and the errors that name what failed.
//!
//! One rule for every service the tests need (starknet-devnet, Anvil, moto, PostgreSQL):
//! - `ORCH_SKIP_<…>_TESTS=1` skips the tests that need it, each printing
//!   `skipped: no <service> (<VAR>=1)`;
//! - otherwise a missing binary or an unreachable server fails the test with the command that
//!   installs or starts it.
//!
//! Binaries come from their own variable (`ORCH_DEVNET_BIN`, `ORCH_ANVIL_BIN`) or the tool
//! cache `scripts/devnet.sh` and `scripts/anvil.sh` install into: `$ORCH_CACHE`, default
//! `$HOME/.cache/orchestrator`. An empty variable counts as unset.

use std::{
    collections::hash_map::RandomState,
    ffi::OsString,
    fmt,
    fs::File,
    hash::{BuildHasher, Hasher},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use reqwest::Url;
use serde_json::{json, Value};

/// The variable that moves the tool cache (`scripts/env.sh` exports it).
pub const CACHE_VAR: &str = "ORCH_CACHE";

/// How long a reachability check of a server (moto, PostgreSQL) waits for the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How many times a launch is tried when the process exits before answering (its port was
/// taken between choosing it and binding it).
const ATTEMPTS: usize = 3;

/// Lines of a failed service's output quoted in the error.
const OUTPUT_TAIL_LINES: usize = 20;

/// A lookup of one environment variable (the process environment, or a map in tests).
pub(crate) type EnvFn<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The process environment, an empty value counting as unset.
pub(crate) fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// The tool cache: `$ORCH_CACHE`, else `$HOME/.cache/orchestrator`.
pub fn cache_dir() -> PathBuf {
    cache_dir_in(&process_env)
}

fn cache_dir_in(env: EnvFn<'_>) -> PathBuf {
    env(CACHE_VAR).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env("HOME").unwrap_or_else(|| ".".into())).join(".cache/orchestrator")
    })
}

/// A free TCP port on 127.0.0.1: bound, read and released, for the service to bind right
/// after (a launch retries on another port if it was taken in between).
///
/// # Panics
/// No port can be bound on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Whether the tests of a service are to be skipped: `var` is `1`. Prints
/// `skipped: no <what> (<var>=1)` when they are.
pub fn skipped(var: &str, what: &str) -> bool {
    let skip = skip_requested_in(&process_env, var);
    if skip {
        eprintln!("{}", skip_notice(var, what));
    }
    skip
}

pub(crate) fn skip_requested_in(env: EnvFn<'_>, var: &str) -> bool {
    env(var).is_some_and(|v| v == "1")
}

pub(crate) fn skip_notice(var: &str, what: &str) -> String {
    format!("skipped: no {what} ({var}=1)")
}

/// `len` random lowercase hex digits, different in every call and every process: for fresh
/// database names and resource prefixes.
pub fn unique_hex(len: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        // RandomState is seeded from the OS once per thread and stepped on every `new`.
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(len);
    out
}

/// A service binary the tests start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    /// Its name in messages (`starknet-devnet`).
    pub name: &'static str,
    /// The variable that names the binary explicitly (`ORCH_DEVNET_BIN`).
    pub bin_var: &'static str,
    /// Its path inside the tool cache.
    pub cache_path: &'static str,
    /// The command that installs it there.
    pub install: &'static str,
    /// The variable that, set to `1`, skips the tests that need it.
    pub skip_var: &'static str,
}

impl Tool {
    /// Where the binary is looked for: `$<bin_var>`, else its place in the tool cache.
    pub fn path(&self) -> PathBuf {
        self.path_in(&process_env)
    }

    pub(crate) fn path_in(&self, env: EnvFn<'_>) -> PathBuf {
        env(self.bin_var)
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir_in(env).join(self.cache_path))
    }

    /// Whether its tests run: `false` (after printing `skipped: no <name> (<skip_var>=1)`) when
    /// they are skipped.
    ///
    /// # Panics
    /// The binary is missing (the message names the command that installs it).
    pub fn available(&'static self) -> bool {
        match self.check_in(&process_env, &|p| p.is_file()) {
            Ok(Some(_)) => true,
            Ok(None) => {
                eprintln!("{}", skip_notice(self.skip_var, self.name));
                false
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// The binary to run, [`LaunchError::MissingBinary`] when it is not there (skipping is the
    /// caller's decision: see [`Tool::available`]).
    pub fn binary(&'static self) -> Result<PathBuf, LaunchError> {
        let path = self.path();
        if path.is_file() {
            Ok(path)
        } else {
            Err(LaunchError::MissingBinary { tool: self, path })
        }
    }

    /// `None` when skipped, the binary when it is there, the error naming the install command
    /// otherwise.
    fn check_in(
        &'static self,
        env: EnvFn<'_>,
        exists: &dyn Fn(&Path) -> bool,
    ) -> Result<Option<PathBuf>, LaunchError> {
        if skip_requested_in(env, self.skip_var) {
            return Ok(None);
        }
        let path = self.path_in(env);
        if exists(&path) {
            Ok(Some(path))
        } else {
            Err(LaunchError::MissingBinary { tool: self, path })
        }
    }
}

/// Why a service could not be started.
#[derive(Debug)]
#[non_exhaustive]
pub enum LaunchError {
    /// The binary is not where it was looked for.
    MissingBinary {
        /// The service.
        tool: &'static Tool,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The binary could not be run.
    Spawn {
        /// The service.
        tool: &'static Tool,
        /// The binary.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The process exited before it answered (on every port tried).
    Exited {
        /// The service.
        tool: &'static Tool,
        /// The port of the last try.
        port: u16,
        /// How it exited.
        status: ExitStatus,
        /// The end of its output.
        output: String,
    },
    /// The process runs but did not answer in time.
    NotReady {
        /// The service.
        tool: &'static Tool,
        /// Its port.
        port: u16,
        /// How long it was given.
        waited: Duration,
        /// The last answer of the readiness probe.
        last_error: String,
        /// The end of its output.
        output: String,
    },
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let output = |f: &mut fmt::Formatter<'_>, output: &str| {
            if output.trim().is_empty() {
                write!(f, "; it printed nothing")
            } else {
                write!(f, "; its output ends with:\n{output}")
            }
        };
        match self {
            Self::MissingBinary { tool, path } => write!(
                f,
                "{} not found at {}: run {} (or set {} to the binary, or {}=1 to skip these tests)",
                tool.name,
                path.display(),
                tool.install,
                tool.bin_var,
                tool.skip_var
            ),
            Self::Spawn { tool, path, error } => {
                write!(f, "cannot start {} ({}): {error}", tool.name, path.display())
            }
            Self::Exited { tool, port, status, output: out } => {
                write!(f, "{} exited ({status}) before answering on 127.0.0.1:{port}", tool.name)?;
                output(f, out)
            }
            Self::NotReady { tool, port, waited, last_error, output: out } => {
                write!(
                    f,
                    "{} did not answer on 127.0.0.1:{port} within {waited:?} (last error: {last_error})",
                    tool.name
                )?;
                output(f, out)
            }
        }
    }
}

impl std::error::Error for LaunchError {}

/// A started service process, killed when dropped (its output file removed).
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    port: u16,
    output: PathBuf,
}

impl ServiceProcess {
    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The file its stdout and stderr go to (removed on drop).
    pub fn output_path(&self) -> &Path {
        &self.output
    }

    /// Kills the process now (a node going down mid-test); dropping it later is harmless.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn output_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.output).unwrap_or_default(), OUTPUT_TAIL_LINES)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.output);
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How to run one service.
pub(crate) struct Launch<'a> {
    pub(crate) tool: &'static Tool,
    /// Its command line for a port.
    pub(crate) args: &'a dyn Fn(u16) -> Vec<String>,
    /// How long it may take to answer.
    pub(crate) timeout: Duration,
    /// Pause between two readiness probes.
    pub(crate) poll: Duration,
}

impl Launch<'_> {
    /// Starts the tool's binary on a free port and polls `ready(port)` until it answers `Ok`;
    /// retries on another port when the process exits first.
    pub(crate) async fn run(
        &self,
        ready: impl AsyncFnMut(u16) -> Result<(), String>,
    ) -> Result<ServiceProcess, LaunchError> {
        self.run_binary(&self.tool.binary()?, ready).await
    }

    /// [`Launch::run`] with the binary at `path`.
    async fn run_binary(
        &self,
        path: &Path,
        mut ready: impl AsyncFnMut(u16) -> Result<(), String>,
    ) -> Result<ServiceProcess, LaunchError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut process = self.spawn(path)?;
            let port = process.port;
            let deadline = Instant::now() + self.timeout;
            let status = loop {
                if let Some(status) = process.exited() {
                    break status;
                }
                match ready(port).await {
                    // A service of another test on the same port answers too: ours must live.
                    Ok(()) => match process.exited() {
                        None => return Ok(process),
                        Some(status) => break status,
                    },
                    Err(last_error) if Instant::now() >= deadline => {
                        return Err(LaunchError::NotReady {
                            tool: self.tool,
                            port,
                            waited: self.timeout,
                            last_error,
                            output: process.output_tail(),
                        });
                    }
                    Err(_) => tokio::time::sleep(self.poll).await,
                }
            };
            if attempt >= ATTEMPTS {
                return Err(LaunchError::Exited {
                    tool: self.tool,
                    port,
                    status,
                    output: process.output_tail(),
                });
            }
        }
    }

    fn spawn(&self, path: &Path) -> Result<ServiceProcess, LaunchError> {
        let port = free_port();
        let spawn_err =
            |error| LaunchError::Spawn { tool: self.tool, path: path.to_owned(), error };
        let output = std::env::temp_dir().join(format!(
            "orch-test-{}-{port}-{}.log",
            self.tool.name,
            unique_hex(8)
        ));
        let stdout = File::create(&output).map_err(spawn_err)?;
        let stderr = stdout.try_clone().map_err(spawn_err)?;
        let child = Command::new(path)
            .args((self.args)(port))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn();
        match child {
            Ok(child) => Ok(ServiceProcess { child, port, output }),
            Err(error) => {
                let _ = std::fs::remove_file(&output);
                Err(spawn_err(error))
            }
        }
    }
}

/// One JSON-RPC 2.0 call: the `result`, else the transport error or the node's whole answer
/// (with its `error` object) as text.
pub async fn json_rpc(
    http: &reqwest::Client,
    url: &Url,
    method: &str,
    params: Value,
) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let answer: Value = http
        .post(url.clone())
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    answer.get("result").cloned().ok_or_else(|| answer.to_string())
}

/// The `http://127.0.0.1:<port>/` URL of a local service.
pub(crate) fn local_url(port: u16) -> Url {
    format!("http://127.0.0.1:{port}/").parse().expect("a valid local URL")
}

/// An HTTP client for readiness probes: a probe that hangs counts as not ready.
pub(crate) fn probe_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("an HTTP client")
}

/// The host and port `url` points at, `default_port` when it names none and its scheme has no
/// known one (`postgres://`).
pub fn host_port(url: &str, default_port: u16) -> Result<(String, u16), String> {
    let parsed = Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let host = match parsed.host_str() {
        // IPv6 literals come bracketed; a socket address wants them bare.
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        _ => return Err("no host in the URL".to_owned()),
    };
    Ok((host, parsed.port_or_known_default().unwrap_or(default_port)))
}

/// Whether a TCP connection to `host:port` opens within [`CONNECT_TIMEOUT`]; the error says
/// why not.
pub async fn reachable(host: &str, port: u16) -> Result<(), String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host, port))).await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    /// An environment made of `vars`.
    pub(crate) fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> =
            vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        move |name| map.get(name).filter(|v| !v.is_empty()).cloned()
    }

    static TOOL: Tool = Tool {
        name: "demo-node",
        bin_var: "DEMO_BIN",
        cache_path: "tools/demo/bin/demo-node",
        install: "scripts/demo.sh install",
        skip_var: "DEMO_SKIP",
    };

    #[test]
    fn the_binary_comes_from_its_variable_or_the_tool_cache() {
        let env = env_of(&[("DEMO_BIN", "/opt/demo"), ("HOME", "/home/u")]);
        assert_eq!(TOOL.path_in(&env), PathBuf::from("/opt/demo"));
        let env = env_of(&[("HOME", "/home/u")]);
        assert_eq!(
            TOOL.path_in(&env),
            PathBuf::from("/home/u/.cache/orchestrator/tools/demo/bin/demo-node")
        );
        let env = env_of(&[("ORCH_CACHE", "/c"), ("HOME", "/home/u"), ("DEMO_BIN", "")]);
        assert_eq!(TOOL.path_in(&env), PathBuf::from("/c/tools/demo/bin/demo-node"));
        assert_eq!(cache_dir_in(&env_of(&[])), PathBuf::from("./.cache/orchestrator"));
    }

    #[test]
    fn a_missing_binary_names_the_install_command_and_the_variables() {
        let env = env_of(&[("ORCH_CACHE", "/nowhere")]);
        let err = TOOL.check_in(&env, &|_| false).expect_err("missing");
        assert!(matches!(err, LaunchError::MissingBinary { .. }), "{err:?}");
        let msg = err.to_string();
        for part in [
            "demo-node not found at /nowhere/tools/demo/bin/demo-node",
            "run scripts/demo.sh install",
            "DEMO_BIN",
            "DEMO_SKIP=1",
        ] {
            assert!(msg.contains(part), "{part:?} in {msg}");
        }
        let found = TOOL.check_in(&env, &|_| true).expect("present");
        assert_eq!(found, Some(PathBuf::from("/nowhere/tools/demo/bin/demo-node")));
    }

    #[test]
    fn the_skip_variable_skips_only_when_it_is_one() {
        for (value, skip) in [("1", true), ("0", false), ("", false), ("yes", false)] {
            let env = env_of(&[("DEMO_SKIP", value)]);
            assert_eq!(skip_requested_in(&env, "DEMO_SKIP"), skip, "{value:?}");
            // Skipping wins over a missing binary.
            assert_eq!(TOOL.check_in(&env, &|_| false).is_ok_and(|p| p.is_none()), skip);
        }
        assert_eq!(skip_notice("DEMO_SKIP", "demo"), "skipped: no demo (DEMO_SKIP=1)");
    }

    #[test]
    fn free_ports_are_bindable_and_vary() {
        let ports: std::collections::HashSet<u16> = (0..8).map(|_| free_port()).collect();
        assert!(ports.len() > 1, "{ports:?}");
        let port = *ports.iter().next().unwrap();
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }

    #[test]
    fn unique_hex_is_hex_of_the_asked_length_and_unique() {
        let a = unique_hex(32);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        let many: std::collections::HashSet<String> = (0..1000).map(|_| unique_hex(12)).collect();
        assert_eq!(many.len(), 1000);
    }

    #[test]
    fn host_port_reads_urls_with_and_without_a_port() {
        assert_eq!(host_port("http://127.0.0.1:5000", 1), Ok(("127.0.0.1".into(), 5000)));
        assert_eq!(host_port("http://localhost/", 1), Ok(("localhost".into(), 80)));
        assert_eq!(host_port("postgres://u:p@db.local/o", 5432), Ok(("db.local".into(), 5432)));
        assert_eq!(host_port("postgres://u:p@[::1]:6543/o", 5432), Ok(("::1".into(), 6543)));
        assert!(host_port("127.0.0.1:5000", 1).is_err());
        assert!(host_port("not a url", 1).is_err());
    }

    #[tokio::test]
    async fn a_closed_port_is_not_reachable() {
        let port = free_port();
        let err = reachable("127.0.0.1", port).await.expect_err("closed");
        assert!(!err.is_empty());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        reachable("127.0.0.1", open).await.expect("open");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    /// A process that exits at once is reported with its status and output, after the retries.
    #[tokio::test]
    async fn a_process_that_exits_before_answering_is_an_error_with_its_output() {
        let dir = std::env::temp_dir().join(format!("orch-launch-test-{}", unique_hex(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("fails.sh");
        std::fs::write(&script, "#!/bin/sh\necho \"cannot bind port $1\" >&2\nexit 3\n").unwrap();
        static TOOL: Tool = Tool {
            name: "failing-node",
            bin_var: "ORCH_TEST_SUPPORT_NO_SUCH_VAR",
            cache_path: "none",
            install: "nothing",
            skip_var: "ORCH_TEST_SUPPORT_NO_SUCH_SKIP",
        };
        let args = |port: u16| vec![script.display().to_string(), port.to_string()];
        // Run through /bin/sh so the script needs no exec bit.
        let launch = Launch {
            tool: &TOOL,
            args: &args,
            timeout: Duration::from_secs(5),
            poll: Duration::from_millis(20),
        };
        let mut probes = 0;
        let err = launch
            .run_binary(Path::new("/bin/sh"), async |_| {
                probes += 1;
                Err("refused".to_owned())
            })
            .await
            .expect_err("it exits");
        let msg = err.to_string();
        assert!(matches!(err, LaunchError::Exited { .. }), "{err:?}");
        assert!(msg.contains("failing-node exited") && msg.contains("cannot bind port"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A process that never answers is reported after the timeout with the probe's last error.
    #[tokio::test]
    async fn a_process_that_never_answers_times_out_naming_the_probe_error() {
        static TOOL: Tool = Tool {
            name: "silent-node",
            bin_var: "ORCH_TEST_SUPPORT_NO_SUCH_VAR",
            cache_path: "none",
            install: "nothing",
            skip_var: "ORCH_TEST_SUPPORT_NO_SUCH_SKIP",
        };
        let args = |_port: u16| vec!["30".to_owned()];
        let launch = Launch {
            tool: &TOOL,
            args: &args,
            timeout: Duration::from_millis(300),
            poll: Duration::from_millis(50),
        };
        let err = launch
            .run_binary(Path::new("/bin/sleep"), async |_| Err("connection refused".to_owned()))
            .await
            .expect_err("never ready");
        assert!(matches!(err, LaunchError::NotReady { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("silent-node did not answer") && msg.contains("connection refused"));
    }

    /// A ready process is returned and killed when its guard is dropped.
    #[tokio::test]
    async fn the_guard_kills_the_process() {
        static TOOL: Tool = Tool {
            name: "sleeper",
            bin_var: "ORCH_TEST_SUPPORT_NO_SUCH_VAR",
            cache_path: "none",
            install: "nothing",
            skip_var: "ORCH_TEST_SUPPORT_NO_SUCH_SKIP",
        };
        let args = |_port: u16| vec!["30".to_owned()];
        let launch = Launch {
            tool: &TOOL,
            args: &args,
            timeout: Duration::from_secs(5),
            poll: Duration::from_millis(20),
        };
        let process =
            launch.run_binary(Path::new("/bin/sleep"), async |_| Ok(())).await.expect("ready");
        let pid = process.child.id();
        let output = process.output_path().to_owned();
        assert!(output.is_file());
        drop(process);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still running");
        assert!(!output.exists());
    }
}
