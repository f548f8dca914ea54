//! The MongoDB-wire test server (PyPI `secantusdb`): `scripts/mongodb.sh start` runs one and
//! prints its URL; `scripts/test.sh` exports it as `$MADARA_ORCHESTRATOR_TEST_MONGODB_URL`.
//! Every test takes a fresh database on it.
//!
//! Unlike moto and PostgreSQL there is no default URL: without one the tests fail saying what
//! to set, unless `ORCH_SKIP_MONGODB_TESTS=1` skips them. The server's own variable,
//! `MADARA_ORCHESTRATOR_MONGODB_CONNECTION_URL` (what `run` reads), is the fallback.

use crate::launch::{self, EnvFn};

/// The variable naming the test server.
pub const URL_VAR: &str = "MADARA_ORCHESTRATOR_TEST_MONGODB_URL";
/// Read when [`URL_VAR`] is unset: the variable `orchestrator run` reads.
pub const FALLBACK_URL_VAR: &str = "MADARA_ORCHESTRATOR_MONGODB_CONNECTION_URL";
/// `1` skips the MongoDB tests.
pub const SKIP_VAR: &str = "ORCH_SKIP_MONGODB_TESTS";

/// The test server's URL: `Ok(None)` when the tests are skipped, an error saying what to set
/// when there is no URL and no skip.
pub fn url() -> Result<Option<String>, String> {
    url_in(&launch::process_env)
}

fn url_in(env: EnvFn<'_>) -> Result<Option<String>, String> {
    if launch::skip_requested_in(env, SKIP_VAR) {
        return Ok(None);
    }
    let set = |var: &str| {
        env(var).map(|v| v.to_string_lossy().trim().to_owned()).filter(|v| !v.is_empty())
    };
    match set(URL_VAR).or_else(|| set(FALLBACK_URL_VAR)) {
        Some(url) => Ok(Some(url)),
        None => Err(format!(
            "no MongoDB server for the MongoDB tests: set {URL_VAR} (`scripts/mongodb.sh start` \
             starts one on 127.0.0.1 and prints its URL; `make test` does this), or set \
             {SKIP_VAR}=1 to skip them"
        )),
    }
}

/// The test server's URL once its port answers; `None` (after printing `skipped: no MongoDB`)
/// when the tests are skipped.
///
/// # Panics
/// When no URL is set and the tests are not skipped, or when the server does not answer (the
/// message says how to start it).
pub async fn url_or_skip() -> Option<String> {
    let url = match url() {
        Ok(Some(url)) => url,
        Ok(None) => {
            eprintln!("{}", launch::skip_notice(SKIP_VAR, "MongoDB"));
            return None;
        }
        Err(why) => panic!("{why}"),
    };
    // The first host of the URL is enough to know the server is up.
    let first = url.split(',').next().unwrap_or(&url);
    let (host, port) = launch::host_port(first, 27017)
        .unwrap_or_else(|e| panic!("{URL_VAR} is not a MongoDB URL: {e}"));
    if let Err(cause) = launch::reachable(&host, port).await {
        panic!(
            "the MongoDB test server does not answer at {host}:{port} ({cause}): start it with \
             `scripts/mongodb.sh start`, or set {SKIP_VAR}=1 to skip"
        );
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::env_of;

    #[test]
    fn the_url_comes_from_its_variable_then_the_servers_own() {
        let url = "mongodb://127.0.0.1:27017";
        assert_eq!(url_in(&env_of(&[(URL_VAR, url)])), Ok(Some(url.to_owned())));
        assert_eq!(url_in(&env_of(&[(FALLBACK_URL_VAR, url)])), Ok(Some(url.to_owned())));
        assert_eq!(url_in(&env_of(&[(SKIP_VAR, "1"), (URL_VAR, url)])), Ok(None));
    }

    #[test]
    fn no_url_without_a_skip_is_an_error_saying_what_to_set() {
        for env in [env_of(&[]), env_of(&[(URL_VAR, " ")]), env_of(&[(SKIP_VAR, "0")])] {
            let err = url_in(&env).expect_err("no URL, no skip");
            assert!(err.contains(URL_VAR) && err.contains(SKIP_VAR), "{err}");
        }
    }
}
