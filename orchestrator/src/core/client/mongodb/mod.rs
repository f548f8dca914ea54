//! The reference's MongoDB database (`--mongodb`): collections `jobs`, `snos_batches`,
//! `aggregator_batches`, `block_batch_lookups` and `locks` (reference §4), plus our
//! `trigger_pauses`.
//!
//! Documents are built by the pure functions of [`documents`] (unit-tested against the
//! expected shapes):
//! - integers are BSON Int64 (a `u64` above `i64::MAX` is refused, never silently a double);
//! - ids are BSON binary UUIDs (`id` on jobs, `_id` on batches), top-level `created_at` /
//!   `updated_at` BSON datetimes; everything else keeps its JSON shape.
//!
//! The conformance suites run against the MongoDB-wire server `scripts/mongodb.sh` starts
//! (`make test` sets `MADARA_ORCHESTRATOR_TEST_MONGODB_URL`); without a URL they fail unless
//! `ORCH_SKIP_MONGODB_TESTS=1` (see `docs/databases.md`).

pub mod database;
pub mod documents;
pub mod lock;

use std::time::Duration;

use ::mongodb::{
    bson::doc,
    error::{ErrorKind, WriteFailure},
    options::ClientOptions,
    Client, Database,
};
use orchestrator_utils::Secret;

use super::{db_common::redact_url, BoxError};

/// Collection of jobs.
pub const JOBS: &str = "jobs";
/// Collection of SNOS batches.
pub const SNOS_BATCHES: &str = "snos_batches";
/// Collection of aggregator batches.
pub const AGGREGATOR_BATCHES: &str = "aggregator_batches";
/// Collection of block → batch lookups.
pub const BLOCK_BATCH_LOOKUPS: &str = "block_batch_lookups";
/// Collection of locks.
pub const LOCKS: &str = "locks";
/// Collection of operator pauses of triggers (ours; unique `trigger`).
pub const TRIGGER_PAUSES: &str = "trigger_pauses";

/// How long an operation waits for a usable server before failing as unavailable.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// MongoDB's duplicate key error code.
pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// Why MongoDB could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to MongoDB at {url}: {source}")]
pub struct OpenError {
    /// The URL with its password redacted.
    pub url: String,
    /// Why.
    #[source]
    pub source: BoxError,
}

/// Connects to `url`, checks the server answers a `ping`, and returns the client and the
/// database `name`.
///
/// # Errors
/// When the URL is malformed or no server answers; the error names the URL with its
/// password redacted.
pub async fn open(url: &Secret<String>, name: &str) -> Result<(Client, Database), OpenError> {
    let shown = redact_url(url.expose());
    let err = |source: BoxError| OpenError { url: shown.clone(), source };
    // The driver's parse errors may quote the URL: report only that it is malformed.
    let mut options = ClientOptions::parse(url.expose()).await.map_err(|_| {
        err("malformed MongoDB URL (expected mongodb://user:password@host:port)".into())
    })?;
    options.app_name = Some("madara-orchestrator".to_owned());
    options.server_selection_timeout.get_or_insert(SERVER_SELECTION_TIMEOUT);
    let client = Client::with_options(options).map_err(|e| err(Box::new(e)))?;
    let db = client.database(name);
    db.run_command(doc! { "ping": 1 }).await.map_err(|e| err(Box::new(e)))?;
    Ok((client, db))
}

/// Whether the same operation may succeed later: network, server selection and pool
/// failures, errors the driver labels retryable, and the server's "not now" codes.
pub fn is_transient(e: &::mongodb::error::Error) -> bool {
    if [
        "RetryableWriteError",
        "TransientTransactionError",
        "SystemOverloadedError",
        "RetryableError",
    ]
    .iter()
    .any(|l| e.contains_label(l))
    {
        return true;
    }
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => true,
        _ => error_code(e).is_some_and(is_transient_code),
    }
}

/// Server codes worth retrying: host unreachable / not found (6, 7), exceeded time limit
/// (50, 262), network timeout (89), shutdown in progress (91, 11600, 11602), write conflict
/// (112), not primary / recovering (189, 10107, 13435, 13436), socket exception (9001).
fn is_transient_code(code: i32) -> bool {
    matches!(
        code,
        6 | 7 | 50 | 89 | 91 | 112 | 189 | 262 | 9001 | 10107 | 11600 | 11602 | 13435 | 13436
    )
}

/// The server's error code, from a command or write error (the first of an `insert_many`).
pub(crate) fn error_code(e: &::mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m.write_errors.as_ref().and_then(|w| w.first()).map(|w| w.code),
        _ => None,
    }
}

/// Whether `e` is (or, for `insert_many`, contains only) duplicate key errors.
pub(crate) fn is_duplicate_key(e: &::mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(m) => {
            m.write_concern_error.is_none()
                && m.write_errors
                    .as_ref()
                    .is_some_and(|w| !w.is_empty() && w.iter().all(|w| w.code == DUPLICATE_KEY))
        }
        _ => error_code(e) == Some(DUPLICATE_KEY),
    }
}

/// Fresh databases for tests, dropped afterwards.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A database created for one test; dropped when this is dropped.
    #[derive(Debug)]
    pub(crate) struct TestDb {
        /// The client.
        pub(crate) client: Client,
        /// The fresh database.
        pub(crate) db: Database,
    }

    impl TestDb {
        /// Connects to the test server (`orchestrator_test_support::mongodb`: the URL in
        /// `MADARA_ORCHESTRATOR_TEST_MONGODB_URL`) with a fresh database name; `None` (after
        /// printing `skipped: no MongoDB`) when `ORCH_SKIP_MONGODB_TESTS=1`.
        ///
        /// # Panics
        /// When no URL is set and the tests are not skipped (the message says what to set),
        /// or when the server does not answer.
        pub(crate) async fn create() -> Option<Self> {
            let url = orchestrator_test_support::mongodb::url_or_skip().await?;
            let name = format!("orch_test_{}", uuid::Uuid::new_v4().simple());
            let (client, db) = open(&Secret::new(url), &name).await.unwrap_or_else(|e| {
                panic!(
                    "the MongoDB test server does not answer: {e} (start one with \
                     `scripts/mongodb.sh start`, or set ORCH_SKIP_MONGODB_TESTS=1 to skip)"
                )
            });
            Some(Self { client, db })
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            // Drop runs outside any async context we may block: use a thread with its own runtime.
            let db = self.db.clone();
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async move { db.drop().await.ok() })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("warning: could not drop test database {}", self.db.name());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_malformed_url_is_refused_without_echoing_it() {
        let err =
            open(&Secret::new("mongodb://u:s3cret@".to_owned()), "o").await.expect_err("malformed");
        let msg = format!("{err} / {err:?}");
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(msg.contains("malformed"), "{msg}");
    }

    /// Nothing listens on port 1: the error names the redacted URL and the cause.
    #[tokio::test]
    async fn an_unreachable_server_is_named_without_the_password() {
        let url = Secret::new(
            "mongodb://orch:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=300".to_owned(),
        );
        let err = open(&url, "o").await.expect_err("nothing listens on port 1");
        let msg = format!("{err} / {err:?}");
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(msg.contains("mongodb://orch:***@127.0.0.1:1/"), "{msg}");
        let source = err.source.downcast_ref::<::mongodb::error::Error>().expect("a driver error");
        assert!(is_transient(source), "{source:?}");
    }

    #[test]
    fn transient_codes() {
        assert!(is_transient_code(189) && is_transient_code(91) && is_transient_code(112));
        assert!(!is_transient_code(DUPLICATE_KEY) && !is_transient_code(2));
    }
}
