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
//! Checks panic with a message naming the broken rule.

pub mod alert;
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
