//! Conformance suites every backend of a client trait runs: the trait's documented contract,
//! written only against the trait.
//!
//! Each suite is a list of checks (`pub async fn <check>(client)` that panic on a violation),
//! exposed two ways:
//! - a macro generating one `#[tokio::test]` per check, for precise failure reports:
//!   [`database_conformance_tests!`](crate::database_conformance_tests) and
//!   [`lock_conformance_tests!`](crate::lock_conformance_tests);
//! - a function running every check in turn: [`database::database_conformance`] and
//!   [`lock::lock_conformance`].
//!
//! Both take a *fresh, empty* client per check: an `Arc<dyn Trait>`, or a
//! `(Arc<dyn Trait>, guard)` pair whose guard (a temp dir, a database dropper) lives until the
//! check ends.

use std::{any::Any, future::Future, panic::AssertUnwindSafe, sync::Arc};

use futures::FutureExt;

pub mod database;
pub mod lock;

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
