//! moto, the AWS emulator of the distributed-tier tests. It is not started per test:
//! `scripts/moto.sh start` runs one server (and prints its endpoint), every test shares it under
//! a fresh resource prefix ([`fresh_prefix`]), so tests run in parallel without resets.
//!
//! The endpoint: `$MADARA_ORCHESTRATOR_TEST_AWS_ENDPOINT`, default `http://127.0.0.1:5000`
//! (`scripts/test.sh` exports it). `ORCH_SKIP_AWS_TESTS=1` skips the tests
//! ([`endpoint_or_skip`] answers `None`); otherwise an unreachable moto fails them with the
//! command that starts it.

use crate::launch::{self, EnvFn};

/// The variable naming moto's endpoint.
pub const ENDPOINT_VAR: &str = "MADARA_ORCHESTRATOR_TEST_AWS_ENDPOINT";
/// The endpoint `scripts/moto.sh start` serves by default.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:5000";
/// Set to `1` to skip the tests that need moto.
pub const SKIP_VAR: &str = "ORCH_SKIP_AWS_TESTS";

/// moto's endpoint for the tests.
pub fn endpoint() -> String {
    endpoint_in(&launch::process_env)
}

fn endpoint_in(env: EnvFn<'_>) -> String {
    env(ENDPOINT_VAR)
        .map(|v| v.to_string_lossy().trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
}

/// moto's endpoint once it answers; `None` (after printing `skipped: no moto (…)`) when AWS
/// tests are skipped.
///
/// # Panics
/// moto does not answer (the message says how to start it).
pub async fn endpoint_or_skip() -> Option<String> {
    if launch::skipped(SKIP_VAR, "moto") {
        return None;
    }
    let endpoint = endpoint();
    if let Err(e) = check(&endpoint).await {
        panic!("{e}");
    }
    Some(endpoint)
}

/// Whether moto answers at `endpoint` (a TCP connection); the error names the endpoint, the
/// cause and how to start moto.
pub async fn check(endpoint: &str) -> Result<(), String> {
    let (host, port) = launch::host_port(endpoint, 80)
        .map_err(|e| format!("{ENDPOINT_VAR}={endpoint:?} is not an endpoint: {e}"))?;
    launch::reachable(&host, port).await.map_err(|e| unreachable_message(endpoint, &e))
}

fn unreachable_message(endpoint: &str, cause: &str) -> String {
    format!(
        "moto is not reachable at {endpoint} ({cause}): start it with `scripts/moto.sh start` \
         (or point {ENDPOINT_VAR} at one), or set {SKIP_VAR}=1 to skip"
    )
}

/// A fresh resource prefix (`t` and 12 hex digits): valid in every AWS resource name, unique per
/// call.
pub fn fresh_prefix() -> String {
    format!("t{}", launch::unique_hex(12))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::env_of;

    #[test]
    fn the_endpoint_comes_from_its_variable_or_the_default() {
        assert_eq!(endpoint_in(&env_of(&[])), "http://127.0.0.1:5000");
        assert_eq!(endpoint_in(&env_of(&[(ENDPOINT_VAR, "")])), "http://127.0.0.1:5000");
        assert_eq!(endpoint_in(&env_of(&[(ENDPOINT_VAR, " http://m:5001 ")])), "http://m:5001");
    }

    #[tokio::test]
    async fn an_unreachable_moto_is_named_with_how_to_start_it() {
        let closed = format!("http://127.0.0.1:{}", launch::free_port());
        let msg = check(&closed).await.expect_err("nothing listens");
        assert!(msg.contains(&closed), "{msg}");
        assert!(msg.contains("scripts/moto.sh start") && msg.contains("ORCH_SKIP_AWS_TESTS=1"));
        let msg = check("127.0.0.1:5000").await.expect_err("no scheme");
        assert!(msg.contains(ENDPOINT_VAR), "{msg}");
    }

    #[test]
    fn prefixes_are_fresh_and_valid_resource_names() {
        let (a, b) = (fresh_prefix(), fresh_prefix());
        assert_ne!(a, b);
        assert_eq!(a.len(), 13);
        assert!(a.starts_with('t') && a[1..].chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }
}
