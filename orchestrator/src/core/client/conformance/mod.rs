//! Conformance suites for the client traits: every backend — embedded (SQLite, directory,
//! log) and cloud (SQS, S3, SNS) — runs the same checks through the trait alone.
//!
//! Each suite is a set of `pub async fn` checks taking a factory of fresh backends, plus a
//! macro that generates one `#[tokio::test]` per check in a `*_conformance` module:
//!
//! ```ignore
//! crate::queue_conformance_tests!(MyQueueFactory::default());
//! ```
//!
//! The factory expression is evaluated once per test, so each test gets its own backends.
//! Checks panic with a message naming the broken rule. The database and lock suites can also
//! run every check in turn ([`database::database_conformance`], [`lock::lock_conformance`])
//! and take a fresh client, or a `(client, guard)` pair whose guard (a temp dir) lives until
//! the check ends.

pub mod alert;
pub mod database;
pub mod lock;
pub mod queue;
pub mod storage;

use std::{future::Future, time::Duration};

/// How often `eventually` polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `probe` until it returns `Some`, or `None` once `within` has passed.
///
/// Cloud backends are eventually consistent (SQS short polls sample servers, counts lag),
/// so checks wait for outcomes rather than expecting them on the first call.
pub async fn eventually<T, Fut>(within: Duration, mut probe: impl FnMut() -> Fut) -> Option<T>
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Generates one `#[tokio::test]` per check of a suite in a module named `$module`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($module:ident, $suite:ident, $factory:expr; $($check:ident),+ $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let factory = $factory;
                    $crate::core::client::conformance::$suite::$check(&factory).await;
                }
            )+
        }
    };
}

use std::{any::Any, panic::AssertUnwindSafe, sync::Arc};

use futures::FutureExt;

/// A client under test plus whatever must outlive it.
pub struct Fixture<C: ?Sized> {
    /// The client.
    pub client: Arc<C>,
    /// Dropped after the check (temp dir, container handle …).
    _guard: Option<Box<dyn Any + Send>>,
}

impl<C: ?Sized> std::fmt::Debug for Fixture<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("guard", &self._guard.is_some()).finish_non_exhaustive()
    }
}

impl<C: ?Sized> From<Arc<C>> for Fixture<C> {
    fn from(client: Arc<C>) -> Self {
        Self { client, _guard: None }
    }
}

impl<C: ?Sized, G: Any + Send> From<(Arc<C>, G)> for Fixture<C> {
    fn from((client, guard): (Arc<C>, G)) -> Self {
        Self { client, _guard: Some(Box::new(guard)) }
    }
}

/// Runs one check; a failure is re-raised with the check's name in front.
///
/// # Panics
/// When the check panics.
pub async fn run_check(name: &str, check: impl Future<Output = ()>) {
    if let Err(panic) = AssertUnwindSafe(check).catch_unwind().await {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "non-string panic".to_owned());
        panic!("conformance check `{name}` failed: {msg}");
    }
}
