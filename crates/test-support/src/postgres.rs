//! PostgreSQL for the distributed-tier tests. It is not started per test: `scripts/postgres.sh`
//! starts one server (and prints its URL); each test creates a fresh database on it, named by
//! [`fresh_database_name`] and reached with [`database_url`].
//!
//! The server: `$MADARA_ORCHESTRATOR_TEST_POSTGRES_URL`, default
//! `postgres://orchestrator:orchestrator@127.0.0.1:5432/orchestrator` (`scripts/test.sh`
//! exports it). `ORCH_SKIP_POSTGRES_TESTS=1` skips the tests ([`server_or_skip`] answers
//! `None`); otherwise an unreachable server fails them with the command that starts it.
//!
//! Creating the database is the caller's (it has a PostgreSQL client; this crate stays light):
//! `CREATE DATABASE "<name>"` on the server URL, then connect to [`database_url`].

use reqwest::Url;

use crate::launch::{self, EnvFn};

/// The variable naming the server.
pub const URL_VAR: &str = "MADARA_ORCHESTRATOR_TEST_POSTGRES_URL";
/// The URL `scripts/postgres.sh` prints by default.
pub const DEFAULT_URL: &str = "postgres://orchestrator:orchestrator@127.0.0.1:5432/orchestrator";
/// Set to `1` to skip the tests that need PostgreSQL.
pub const SKIP_VAR: &str = "ORCH_SKIP_POSTGRES_TESTS";

/// The server URL for the tests.
pub fn server_url() -> String {
    server_url_in(&launch::process_env)
}

fn server_url_in(env: EnvFn<'_>) -> String {
    env(URL_VAR)
        .map(|v| v.to_string_lossy().trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// The server URL once the server accepts connections; `None` (after printing
/// `skipped: no PostgreSQL (…)`) when PostgreSQL tests are skipped.
///
/// # Panics
/// The server does not answer (the message says how to start it, without the password).
pub async fn server_or_skip() -> Option<String> {
    if launch::skipped(SKIP_VAR, "PostgreSQL") {
        return None;
    }
    let url = server_url();
    if let Err(e) = check(&url).await {
        panic!("{e}");
    }
    Some(url)
}

/// Whether the server of `url` accepts a TCP connection; the error names the server (password
/// hidden), the cause and how to start it.
pub async fn check(url: &str) -> Result<(), String> {
    let (host, port) = launch::host_port(url, 5432)
        .map_err(|e| format!("{URL_VAR} is not a PostgreSQL URL ({}): {e}", redact(url)))?;
    launch::reachable(&host, port).await.map_err(|cause| {
        format!(
            "PostgreSQL is unreachable at {} ({cause}): start it with `scripts/postgres.sh` (it \
             prints the URL; set {URL_VAR} to use another server), or set {SKIP_VAR}=1 to skip",
            redact(url)
        )
    })
}

/// `url` with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// A fresh database name: `prefix`, `_` and 32 hex digits (`prefix` should be a lowercase SQL
/// identifier such as `orch_test`).
pub fn fresh_database_name(prefix: &str) -> String {
    format!("{prefix}_{}", launch::unique_hex(32))
}

/// The URL of database `name` on the server of `server_url` (same credentials and options).
///
/// # Panics
/// `server_url` is not a URL.
pub fn database_url(server_url: &str, name: &str) -> String {
    let mut url = Url::parse(server_url)
        .unwrap_or_else(|e| panic!("{URL_VAR} is not a URL ({}): {e}", redact(server_url)));
    url.set_path(&format!("/{name}"));
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::env_of;

    #[test]
    fn the_url_comes_from_its_variable_or_the_default() {
        assert_eq!(server_url_in(&env_of(&[])), DEFAULT_URL);
        assert_eq!(server_url_in(&env_of(&[(URL_VAR, " ")])), DEFAULT_URL);
        assert_eq!(server_url_in(&env_of(&[(URL_VAR, "postgres://a@h/d")])), "postgres://a@h/d");
    }

    #[test]
    fn a_database_url_keeps_credentials_host_and_options() {
        assert_eq!(
            database_url("postgres://u:p@127.0.0.1:5432/orchestrator", "orch_x_1"),
            "postgres://u:p@127.0.0.1:5432/orch_x_1"
        );
        assert_eq!(
            database_url("postgres://u:p@db/o?sslmode=disable", "n"),
            "postgres://u:p@db/n?sslmode=disable"
        );
        assert_eq!(database_url("postgres://u@db:6000", "n"), "postgres://u@db:6000/n");
    }

    #[test]
    fn database_names_are_fresh_identifiers() {
        let (a, b) = (fresh_database_name("orch_test"), fresh_database_name("orch_test"));
        assert_ne!(a, b);
        assert!(a.starts_with("orch_test_") && a.len() == "orch_test_".len() + 32, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    }

    #[test]
    fn the_password_never_shows() {
        assert_eq!(redact("postgres://u:hunter2@db:5432/o"), "postgres://u:***@db:5432/o");
        assert_eq!(redact("postgres://u@db/o"), "postgres://u@db/o");
        assert_eq!(redact("::"), "<unparsable URL>");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named_without_its_password() {
        let url = format!("postgres://u:hunter2@127.0.0.1:{}/o", launch::free_port());
        let msg = check(&url).await.expect_err("nothing listens");
        assert!(!msg.contains("hunter2") && msg.contains("u:***@127.0.0.1"), "{msg}");
        assert!(msg.contains("scripts/postgres.sh") && msg.contains("ORCH_SKIP_POSTGRES_TESTS=1"));
        let msg = check("not a url").await.expect_err("not a URL");
        assert!(msg.contains(URL_VAR), "{msg}");
    }
}
