//! LocalStack (PyPI `localstack-core`, no Docker): `scripts/localstack.sh start` runs one per
//! machine and prints its endpoint; `scripts/test.sh` exports it as
//! `$MADARA_ORCHESTRATOR_TEST_LOCALSTACK_ENDPOINT` (default `http://127.0.0.1:4566`). Tests
//! share it under fresh resource prefixes. `ORCH_SKIP_LOCALSTACK_TESTS=1` skips them; otherwise
//! a LocalStack that does not answer fails them with the command that starts it.

use crate::launch::{self, EnvFn};

/// The variable naming the endpoint.
pub const ENDPOINT_VAR: &str = "MADARA_ORCHESTRATOR_TEST_LOCALSTACK_ENDPOINT";
/// The endpoint without the variable.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";
/// `1` skips the LocalStack tests.
pub const SKIP_VAR: &str = "ORCH_SKIP_LOCALSTACK_TESTS";

/// The endpoint, without a trailing slash.
pub fn endpoint() -> String {
    endpoint_in(&launch::process_env)
}

fn endpoint_in(env: EnvFn<'_>) -> String {
    env(ENDPOINT_VAR)
        .map(|v| v.to_string_lossy().trim().trim_end_matches('/').to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
}

/// The endpoint once LocalStack's health route answers; `None` (after printing
/// `skipped: no LocalStack`) when the tests are skipped.
///
/// # Panics
/// When LocalStack does not answer (the message says how to start it).
pub async fn endpoint_or_skip() -> Option<String> {
    if launch::skipped(SKIP_VAR, "LocalStack") {
        return None;
    }
    let endpoint = endpoint();
    let health = format!("{endpoint}/_localstack/health");
    match launch::probe_client().get(&health).send().await {
        Ok(r) if r.status().is_success() => Some(endpoint),
        other => panic!(
            "LocalStack does not answer at {health} ({}): start it with \
             `scripts/localstack.sh start` (or point {ENDPOINT_VAR} at one), or set {SKIP_VAR}=1 \
             to skip",
            other.map_or_else(|e| e.to_string(), |r| r.status().to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::env_of;

    #[test]
    fn the_endpoint_comes_from_its_variable_or_the_default() {
        assert_eq!(endpoint_in(&env_of(&[])), DEFAULT_ENDPOINT);
        assert_eq!(endpoint_in(&env_of(&[(ENDPOINT_VAR, " ")])), DEFAULT_ENDPOINT);
        assert_eq!(
            endpoint_in(&env_of(&[(ENDPOINT_VAR, "http://10.0.0.2:4566/")])),
            "http://10.0.0.2:4566"
        );
    }
}
