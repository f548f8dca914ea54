//! How the prover backends report their calls to whoever keeps the metrics, without depending
//! on it: the orchestrator installs its registry as the process's [`ProverObserver`]
//! ([`install`]), as the reference's prover crates record into the global OpenTelemetry meter.
//! A test scopes its own observer to a future ([`scope`]); without either, reports go nowhere.

use std::{
    future::Future,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use crate::ProverError;

/// Receives what the prover backends report.
pub trait ProverObserver: Send + Sync {
    /// One request to a prover's API ended (all its attempts).
    fn api_call(&self, call: &ApiCall<'_>);

    /// Something a backend counts outside an API call.
    fn event(&self, event: &ProverEvent<'_>);
}

/// One request to a prover's HTTP API, its retries included.
#[derive(Debug)]
pub struct ApiCall<'a> {
    /// `atlantic` or `sharp`.
    pub prover: &'static str,
    /// The operation (`submit query`, `get_status`, …).
    pub operation: &'a str,
    /// Attempts made, the first included (1: not retried).
    pub attempts: u32,
    /// Time from the first attempt to the end of the last, waits included.
    pub elapsed: Duration,
    /// The error it ended with, if it failed.
    pub error: Option<&'a ProverError>,
    /// Bytes sent (request bodies whose size is known up front) and received (response
    /// bodies' `Content-Length`), over all attempts.
    pub bytes: u64,
}

/// How a fact registration of the mock prover ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactRegistration {
    /// `isValid` was already true: nothing sent.
    AlreadyRegistered,
    /// `registerFact` was mined and the fact is valid.
    NewlyRegistered,
    /// The registration failed.
    Error,
}

/// A backend event that is not an API call.
#[derive(Debug)]
pub enum ProverEvent<'a> {
    /// SHARP: a submission found its job key known already and reused it.
    SharpIdempotencyHit,
    /// SHARP: a status read answered this status (`PROCESSED`, `IN_PROGRESS`, …).
    SharpJobStatus(&'a str),
    /// Mock prover: a fact registration ended after `elapsed`.
    MockFactRegistration {
        /// How it ended.
        outcome: FactRegistration,
        /// Its duration, the `isValid` checks included.
        elapsed: Duration,
    },
    /// Mock prover: one `isValid` call took `elapsed`.
    MockIsValidCheck {
        /// Its duration.
        elapsed: Duration,
    },
}

static INSTALLED: RwLock<Option<Arc<dyn ProverObserver>>> = RwLock::new(None);

tokio::task_local! {
    static SCOPED: Arc<dyn ProverObserver>;
}

/// Makes `observer` the process's observer (replacing any earlier one).
pub fn install(observer: Arc<dyn ProverObserver>) {
    *INSTALLED.write().unwrap_or_else(PoisonError::into_inner) = Some(observer);
}

/// Runs `f` with reports made inside it going to `observer` instead of the installed one.
pub async fn scope<F: Future>(observer: Arc<dyn ProverObserver>, f: F) -> F::Output {
    SCOPED.scope(observer, f).await
}

/// Hands `f` the current observer (the scoped one, else the installed one), if any.
pub fn report(f: impl FnOnce(&dyn ProverObserver)) {
    let observer = SCOPED
        .try_with(Arc::clone)
        .ok()
        .or_else(|| INSTALLED.read().unwrap_or_else(PoisonError::into_inner).clone());
    if let Some(o) = observer {
        f(o.as_ref());
    }
}

/// Reports `event` to the current observer.
pub fn event(event: ProverEvent<'_>) {
    report(|o| o.event(&event));
}
