//! Starting and stopping a whole orchestrator: clients, workers, cron, HTTP server.

use crate::core::client::Clients;
use crate::worker::Config;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use eyre::WrapErr;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::{AlertBackend, CronBackend, EngineParams, RunParams, ServerSettings},
    core::client::{
        embedded::{self, EmbeddedOptions},
        local_cron::LocalCron,
        CronClient,
    },
    server,
    types::{jobs::JobType, queue::WorkerTriggerType},
    worker::{
        controller::WorkerController, handler::JobHandlers, stages, supervisor::Supervisor,
        trigger::Triggers, watch::Watchdog,
    },
};

/// A running orchestrator.
#[derive(Debug)]
pub struct Orchestrator {
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// The shared context.
    pub config: Arc<Config>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    supervisor: Supervisor,
    graceful_timeout: Duration,
}

/// The in-process cron and its period, when the embedded cron is selected.
pub type LocalTriggers = Option<(Arc<dyn CronClient>, Duration)>;

impl Orchestrator {
    /// Builds everything `params` selects and starts it.
    pub async fn start(mut params: RunParams) -> eyre::Result<Self> {
        let mock_atlantic = start_mock_atlantic(&mut params).await?;
        let clients = build_clients(&params).await?;
        let external = stages::external::ExternalClients::new(&params).await?;
        let (handlers, triggers) = stages::build_with(&params, &clients, &external)?;
        report_missing(&params, &handlers, &triggers);
        let engine = engine_params(&params);
        let watchdog =
            Watchdog::new(external.node.clone(), external.settlement.clone(), params.service.watch);
        // The one set of instruments of the process: `/metrics`, and OTLP when configured.
        let otlp = crate::telemetry::otlp_metrics(&params.otel)
            .wrap_err("cannot set up the OTLP export of metrics")?;
        let config = Arc::new(
            Config::new(params.layer, clients, handlers, triggers, engine)
                .with_server(server_settings(&params))
                .with_watchdog(watchdog)
                .with_metrics(crate::telemetry::metrics::Metrics::with_otlp(otlp)),
        );
        // The prover backends report their API calls into the same instruments.
        orchestrator_prover_client_interface::observe::install(config.metrics.clone());
        let cron: LocalTriggers = match params.infra.cron {
            CronBackend::Embedded { interval } => Some((
                Arc::new(LocalCron::new(config.queue().clone())) as Arc<dyn CronClient>,
                interval,
            )),
            CronBackend::EventBridge { .. } => None,
        };
        let addr: SocketAddr = format!("{}:{}", params.server.host, params.server.port)
            .parse()
            .wrap_err_with(|| {
                format!(
                    "--host/--port do not form an address: {}:{}",
                    params.server.host, params.server.port
                )
            })?;
        let orchestrator = Self::start_with(config, addr, cron).await?;
        if let Some(server) = mock_atlantic {
            // The mock server lives as long as the orchestrator.
            let token = orchestrator.shutdown.clone();
            orchestrator.tracker.spawn(async move {
                token.cancelled().await;
                server.stop().await;
            });
        }
        Ok(orchestrator)
    }

    /// Starts the server, the workers and (if given) the in-process cron over `config`.
    pub async fn start_with(
        config: Arc<Config>,
        addr: SocketAddr,
        cron: LocalTriggers,
    ) -> eyre::Result<Self> {
        server::check_settings(&config.server)?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let supervisor = Supervisor::new(tracker.clone(), shutdown.clone());
        let (listener, addr) =
            server::bind(addr).await.wrap_err_with(|| format!("cannot listen on {addr}"))?;
        let router = server::router(config.clone());
        // The server cannot be started again on its listener: any end of it stops the process.
        let (server_token, server_supervisor) = (shutdown.child_token(), supervisor.clone());
        supervisor.spawn_critical("http-server", async move {
            if let Err(e) = server::serve(listener, router, server_token).await {
                server_supervisor.fail("http-server", e);
            }
        });
        WorkerController::new(config.clone()).spawn(&supervisor);
        if let Some((cron, interval)) = cron {
            let triggers = WorkerTriggerType::for_layer(config.layer);
            let cron_supervisor = supervisor.clone();
            supervisor.spawn("cron", move |token| {
                let (cron, supervisor) = (cron.clone(), cron_supervisor.clone());
                async move {
                    if let Err(e) = cron.run(triggers, interval, token).await {
                        supervisor.fail("cron", e);
                    }
                }
            });
        }
        if crate::telemetry::otlp_active() {
            // OTLP has no scrape: push the job-status and queue-depth gauges periodically.
            let config = config.clone();
            supervisor.spawn("gauge-pusher", move |token| {
                let config = config.clone();
                async move {
                    loop {
                        crate::worker::gauges::refresh_gauges(&config, Duration::ZERO).await;
                        tokio::select! {
                            _ = token.cancelled() => break,
                            _ = tokio::time::sleep(GAUGE_PUSH_INTERVAL) => {}
                        }
                    }
                }
            });
        }
        tracing::info!(%addr, layer = %config.layer, admin = config.server.admin_enabled, "Orchestrator started");
        let graceful_timeout = config.engine.graceful_shutdown_timeout;
        Ok(Self { addr, config, shutdown, tracker, supervisor, graceful_timeout })
    }

    /// A token that stops the orchestrator when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Why a task stopped the orchestrator, if one did (a panic of a critical task, or of a
    /// worker beyond its restarts).
    pub fn failure(&self) -> Option<String> {
        self.supervisor.failure()
    }

    /// Stops receiving and hands the work in flight back, within the graceful timeout, then
    /// returns. It is an error when a task stopped the orchestrator (so `run` exits non-zero).
    ///
    /// A job handler still running is cut off at once: its job returns to the status it had
    /// before `LockedForProcessing` (a versioned update) and its message is made visible again
    /// immediately, so another instance — or this one restarted — continues it without waiting
    /// for the lock timeout. A verification in flight is cut off the same way (it holds no
    /// lock; only its message is made visible). Work past the handler (recording an outcome,
    /// acking, a trigger run, a dead letter) finishes normally. Whatever is still running when
    /// the graceful timeout expires is dropped with the process: a job it left locked is healed
    /// after its lock timeout, as after a crash.
    pub async fn stop(self) -> eyre::Result<()> {
        tracing::info!(graceful_timeout = ?self.graceful_timeout, "Stopping: handing the work in flight back");
        self.shutdown.cancel();
        self.tracker.close();
        match tokio::time::timeout(self.graceful_timeout, self.tracker.wait()).await {
            Ok(()) => {
                tracing::info!("Orchestrator stopped");
                match self.supervisor.failure() {
                    Some(reason) => Err(eyre::eyre!(reason)),
                    None => Ok(()),
                }
            }
            Err(_) => Err(eyre::eyre!(
                "in-flight work did not finish within {:?} (--graceful-shutdown-timeout); a job it \
                 left locked is healed after its lock timeout",
                self.graceful_timeout
            )),
        }
    }

    /// Runs until SIGINT/SIGTERM (or until the token is cancelled), then stops.
    pub async fn run_until_signal(self) -> eyre::Result<()> {
        let token = self.shutdown.clone();
        tokio::select! {
            _ = shutdown_signal() => tracing::info!("Signal received; shutting down"),
            _ = token.cancelled() => tracing::warn!("A critical task stopped; shutting down"),
        }
        self.stop().await
    }
}

/// How often the gauges are recomputed for the OTLP exporter.
const GAUGE_PUSH_INTERVAL: Duration = Duration::from_secs(15);

/// The HTTP server settings from the command line.
pub fn server_settings(params: &RunParams) -> ServerSettings {
    ServerSettings {
        admin_enabled: params.server.admin_enabled,
        admin_token: params.server.admin_token.clone(),
        open_job_actions: params.server.open_job_actions,
        max_priority_queue_size: params.service.max_priority_queue_size,
        shadow: params.shadow.is_some(),
        dependencies: server::health::ExternalDependencies::new(
            crate::preflight::dependency_probes(params),
        ),
        ..ServerSettings::default()
    }
}

/// Starts the embedded mock Atlantic server (`--mock-atlantic-server`, settings from the
/// `MOCK_ATLANTIC_*` variables) and points the Atlantic service and artifacts URLs at it.
async fn start_mock_atlantic(
    params: &mut RunParams,
) -> eyre::Result<Option<orchestrator_mock_atlantic_server::MockAtlanticServer>> {
    let crate::config::ProverParams::Atlantic(atlantic) = &mut params.prover else {
        return Ok(None);
    };
    if !atlantic.mock_server {
        return Ok(None);
    }
    let config = orchestrator_mock_atlantic_server::MockAtlanticConfig::from_env()
        .wrap_err("mock Atlantic server settings")?;
    let server = orchestrator_mock_atlantic_server::MockAtlanticServer::start(config)
        .await
        .wrap_err("cannot start the mock Atlantic server")?;
    tracing::info!(url = %server.url(), "Mock Atlantic server started; Atlantic calls go to it");
    atlantic.service_url = server.url();
    atlantic.artifacts_base_url = server.url();
    Ok(Some(server))
}

/// The infrastructure clients `params` selects.
pub async fn build_clients(params: &RunParams) -> eyre::Result<Clients> {
    let alert_webhook = match &params.infra.alerts {
        AlertBackend::Embedded { webhook_url } => webhook_url.as_ref().map(|u| u.expose().clone()),
        AlertBackend::Sns { .. } => None,
    };
    let options =
        EmbeddedOptions { queue: params.queue.clone(), visibility_timeout: None, alert_webhook };
    let mut clients =
        embedded::open(&params.infra.data_dir, &options).await.wrap_err_with(|| {
            format!("cannot open the data dir {}", params.infra.data_dir.display())
        })?;
    crate::core::client::aws::apply_backends(&mut clients, &params.infra, params.layer)
        .await
        .wrap_err("AWS configuration")?;
    // `--postgres` / `--mongodb` replace the embedded database and locks.
    if let Some(db) = crate::core::client::database_backends::open(&params.infra.database).await? {
        clients.database = db.database;
        clients.lock = db.lock;
    }
    Ok(clients)
}

/// Engine knobs from the command line.
pub fn engine_params(params: &RunParams) -> EngineParams {
    let trigger_interval = match params.infra.cron {
        CronBackend::Embedded { interval } | CronBackend::EventBridge { interval, .. } => interval,
    };
    EngineParams {
        queue: params.queue.clone(),
        job_timeouts: params.service.timeouts.clone(),
        failed_job_halt: params.service.failed_job_halt,
        orphan_scan_interval: params.service.orphan_scan_interval,
        stale_message_after: params.service.stale_message_after,
        trigger_interval,
        graceful_shutdown_timeout: params.service.graceful_shutdown_timeout,
        ..EngineParams::default()
    }
}

/// Logs, once at start, which job handlers and triggers of the layer this build lacks.
fn report_missing(params: &RunParams, handlers: &JobHandlers, triggers: &Triggers) {
    let have: Vec<JobType> = handlers.job_types().collect();
    for trigger in WorkerTriggerType::for_layer(params.layer) {
        if triggers.get(*trigger).is_none() {
            tracing::warn!(trigger = %trigger, "Trigger not built yet in this version; its messages are dropped");
        }
    }
    use strum::IntoEnumIterator;
    let missing: Vec<String> =
        JobType::iter().filter(|t| !have.contains(t)).map(|t| t.to_string()).collect();
    if !missing.is_empty() {
        tracing::warn!(
            job_types = %missing.join(", "),
            prover = ?params.prover.kind(),
            "No handler for these job types in this version: their prover, settlement and DA \
             settings are parsed and validated but not used yet"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "Cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "Cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
