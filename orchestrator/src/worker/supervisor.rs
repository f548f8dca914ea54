//! Named long-running tasks whose panic is never silent.
//!
//! Every loop of a running orchestrator (one event worker per queue, the orphan scanner, the
//! settlement sampler, the HTTP server, the in-process cron, the gauge pusher) is started through
//! a [`Supervisor`] under a name. The loop runs in its own tokio task, so a panic ends only that
//! task; the supervisor logs it as an error with the task's name and the panic message, then:
//! - for a loop started with [`Supervisor::spawn`]: starts it again after a short backoff,
//!   unless it already panicked [`MAX_RESTARTS`] times within [`RESTART_WINDOW`];
//! - for a task started with [`Supervisor::spawn_critical`] (one that cannot be started again,
//!   such as the HTTP server on its listener), or a loop past its restarts: records the failure
//!   and cancels the shutdown token, so the orchestrator drains and `orchestrator run` exits
//!   with a non-zero status.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

/// Panics of one task within [`RESTART_WINDOW`] after which it is no longer restarted.
pub const MAX_RESTARTS: usize = 5;
/// The window over which restarts are counted.
pub const RESTART_WINDOW: Duration = Duration::from_secs(300);
/// The first wait before a restart; it doubles with each panic in the window.
pub const RESTART_BACKOFF: Duration = Duration::from_millis(500);

/// Starts named tasks on a [`TaskTracker`] and watches them for panics.
#[derive(Debug, Clone)]
pub struct Supervisor {
    tracker: TaskTracker,
    shutdown: CancellationToken,
    failure: Arc<Mutex<Option<String>>>,
}

impl Supervisor {
    /// A supervisor spawning on `tracker`; a fatal panic cancels `shutdown`.
    pub fn new(tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        Self { tracker, shutdown, failure: Arc::new(Mutex::new(None)) }
    }

    /// Why the process must exit with a failure, once a task has stopped it.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a fatal failure of the task `name` and cancels the shutdown token.
    pub fn fail(&self, name: &str, reason: impl std::fmt::Display) {
        let reason = format!("task `{name}` stopped the orchestrator: {reason}");
        tracing::error!(task = name, "{reason}");
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(reason);
        self.shutdown.cancel();
    }

    /// Runs the loop `make(token)` under `name` until the token is cancelled or the loop returns;
    /// a panic restarts it (see the module docs). `make` is called again for every restart. The
    /// token is a child of the shutdown token.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, make: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        let this = self.clone();
        self.tracker.spawn(async move {
            let mut panics: Vec<Instant> = Vec::new();
            loop {
                let Some(message) = this.run_once(&name, make(this.shutdown.child_token())).await
                else {
                    return;
                };
                let now = Instant::now();
                panics.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
                panics.push(now);
                if panics.len() > MAX_RESTARTS {
                    this.fail(
                        &name,
                        format_args!(
                            "panicked {} times within {:?}, last: {message}",
                            panics.len(),
                            RESTART_WINDOW
                        ),
                    );
                    return;
                }
                let wait = RESTART_BACKOFF * 2u32.pow(panics.len() as u32 - 1);
                tracing::error!(task = %name, panic = %message, restart_in = ?wait, "Task panicked; restarting it");
                tokio::select! {
                    _ = this.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        });
    }

    /// Runs `task` under `name` once; a panic stops the orchestrator.
    pub fn spawn_critical<Fut>(&self, name: impl Into<String>, task: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        let this = self.clone();
        self.tracker.spawn(async move {
            if let Some(message) = this.run_once(&name, task).await {
                this.fail(&name, format_args!("panicked: {message}"));
            }
        });
    }

    /// Runs `task` in its own tokio task; the panic message if it panicked.
    async fn run_once<Fut>(&self, name: &str, task: Fut) -> Option<String>
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let span = tracing::info_span!("task", name = %name);
        match tokio::spawn(task.instrument(span)).await {
            Err(err) if err.is_panic() => Some(panic_message(err.into_panic())),
            // Returned, or cancelled by the runtime shutting down.
            _ => None,
        }
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "(a panic without a message)".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn supervisor() -> (Supervisor, TaskTracker, CancellationToken) {
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        (Supervisor::new(tracker.clone(), shutdown.clone()), tracker, shutdown)
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_panics_once_is_restarted_and_the_process_goes_on() {
        let (sup, tracker, shutdown) = supervisor();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        sup.spawn("flaky-loop", move |token| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("first run fails");
                }
                token.cancelled().await;
            }
        });
        tokio::time::sleep(RESTART_BACKOFF * 4).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "the loop ran again after its panic");
        assert!(!shutdown.is_cancelled(), "one panic does not stop the process");
        assert_eq!(sup.failure(), None);
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_keeps_panicking_stops_the_process_with_a_reason() {
        let (sup, tracker, shutdown) = supervisor();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        sup.spawn("broken-loop", move |_| {
            r.fetch_add(1, Ordering::SeqCst);
            async { panic!("always") }
        });
        tokio::time::timeout(Duration::from_secs(120), shutdown.cancelled())
            .await
            .expect("the process is stopped");
        assert_eq!(runs.load(Ordering::SeqCst), MAX_RESTARTS + 1);
        let failure = sup.failure().expect("a failure is recorded");
        assert!(failure.contains("broken-loop") && failure.contains("always"), "{failure}");
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn a_critical_task_that_panics_stops_the_process_at_once() {
        let (sup, tracker, shutdown) = supervisor();
        sup.spawn_critical("http-server", async { panic!("{}", String::from("bind lost")) });
        tokio::time::timeout(Duration::from_secs(10), shutdown.cancelled())
            .await
            .expect("the process is stopped");
        let failure = sup.failure().expect("a failure is recorded");
        assert!(failure.contains("http-server") && failure.contains("bind lost"), "{failure}");
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn a_loop_that_returns_is_not_restarted() {
        let (sup, tracker, shutdown) = supervisor();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        sup.spawn("one-shot", move |_| {
            r.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        tracker.close();
        tracker.wait().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!shutdown.is_cancelled());
        assert_eq!(sup.failure(), None);
    }
}
