//! Telemetry: logs (tracing), OpenTelemetry export and the metrics registry.
//!
//! - Logs go to stderr (stdout is for command results), filtered by `RUST_LOG` (default
//!   `info`); `LOG_FORMAT=json` writes one JSON object per event, anything else pretty lines.
//! - With an OTLP collector endpoint, traces and logs ([`init`]) and metrics (every 5 s,
//!   [`otlp_metrics`]) are also exported over gRPC, under the configured service name.
//! - [`metrics`] holds the instruments: each [`metrics::Metrics`] has its own meter provider,
//!   whose readers are the Prometheus exporter behind `/metrics` and, when configured, the OTLP
//!   reader of [`otlp_metrics`].

pub mod metrics;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    logs::SdkLoggerProvider, metrics::PeriodicReader, trace::SdkTracerProvider, Resource,
};
use tracing_subscriber::{fmt, prelude::*, EnvFilter, Layer, Registry};

use crate::config::OtelParams;

/// Whether the OTLP exporters are installed in this process.
static OTLP_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether [`init`] installed the OTLP exporters (the trace-id middleware then parents request
/// spans on the caller's trace).
pub fn otlp_active() -> bool {
    OTLP_ACTIVE.load(Ordering::Relaxed)
}

/// Keeps the OpenTelemetry trace and log providers alive; dropping it flushes and shuts them
/// down. (The meter provider belongs to [`metrics::Metrics`], which flushes on its last drop.)
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    logger: Option<SdkLoggerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Shutdown flushes what is buffered; an error means the collector is unreachable and
        // there is nobody left to tell but stderr's log, which may be gone as well.
        if let Some(t) = self.tracer.take() {
            let _ = t.shutdown();
        }
        if let Some(l) = self.logger.take() {
            let _ = l.shutdown();
        }
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An OTLP exporter could not be built for the endpoint.
    #[error("cannot build the OTLP {signal} exporter for {endpoint}: {reason}")]
    Exporter {
        /// traces, metrics or logs.
        signal: &'static str,
        /// The collector endpoint (an URL without credentials).
        endpoint: String,
        /// The exporter's error.
        reason: String,
    },
}

fn json_logs() -> bool {
    std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"))
}

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

fn fmt_layer() -> Box<dyn Layer<Registry> + Send + Sync> {
    if json_logs() {
        fmt::layer().json().with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).boxed()
    }
}

/// Installs the global subscriber once (logs only); later calls are no-ops.
pub fn init_tracing() {
    // An error only means a subscriber is already installed (tests call this repeatedly).
    let _ = tracing_subscriber::registry().with(vec![fmt_layer()]).with(env_filter()).try_init();
}

/// Installs the global subscriber and, when `otel.collector_endpoint` is set, the OTLP
/// exporters of traces and logs (metrics: [`otlp_metrics`]). Must run inside a Tokio runtime
/// (the gRPC client).
///
/// # Errors
/// An exporter cannot be built for the endpoint.
pub fn init(otel: &OtelParams) -> Result<TelemetryGuard, TelemetryError> {
    let Some(endpoint) = otel.collector_endpoint.as_ref() else {
        init_tracing();
        return Ok(TelemetryGuard::default());
    };
    let shown = shown_endpoint(endpoint);
    let err = |signal| exporter_error(signal, &shown);
    let resource = resource(otel);

    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.as_str())
        .build()
        .map_err(err("traces"))?;
    let tracer = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(spans)
        .build();

    let log_exporter = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.as_str())
        .build()
        .map_err(err("logs"))?;
    let logger = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(log_exporter)
        .build();

    opentelemetry::global::set_tracer_provider(tracer.clone());

    // The exporters' own transport logs must not be exported again (a feedback loop).
    let quiet_transport = || {
        EnvFilter::new("info,hyper=off,h2=off,tonic=off,opentelemetry=off,opentelemetry_sdk=off")
    };
    let layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![
        fmt_layer(),
        tracing_opentelemetry::layer().with_tracer(tracer.tracer("orchestrator")).boxed(),
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&logger)
            .with_filter(quiet_transport())
            .boxed(),
    ];
    if tracing_subscriber::registry().with(layers).with(env_filter()).try_init().is_ok() {
        OTLP_ACTIVE.store(true, Ordering::Relaxed);
        tracing::info!(endpoint = %shown, service = %otel.service_name, "OpenTelemetry export on");
    }
    Ok(TelemetryGuard { tracer: Some(tracer), logger: Some(logger) })
}

/// The OTLP side of the metrics: a periodic reader (every 5 s) and the resource naming the
/// service, for the meter provider of a [`metrics::Metrics`] ([`metrics::Metrics::with_otlp`]).
/// A reader serves one provider, so the app builds one for its one `Metrics`.
#[derive(Debug)]
pub struct OtlpMetrics {
    pub(crate) reader: PeriodicReader<opentelemetry_otlp::MetricExporter>,
    pub(crate) resource: Resource,
}

/// Builds the OTLP metric reader when `otel.collector_endpoint` is set (`None` without it).
/// Must run inside a Tokio runtime (the gRPC client).
///
/// # Errors
/// The exporter cannot be built for the endpoint.
pub fn otlp_metrics(otel: &OtelParams) -> Result<Option<OtlpMetrics>, TelemetryError> {
    let Some(endpoint) = otel.collector_endpoint.as_ref() else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.as_str())
        .build()
        .map_err(exporter_error("metrics", &shown_endpoint(endpoint)))?;
    let reader =
        PeriodicReader::builder(exporter).with_interval(std::time::Duration::from_secs(5)).build();
    Ok(Some(OtlpMetrics { reader, resource: resource(otel) }))
}

/// The resource every signal is exported under: the configured service name.
fn resource(otel: &OtelParams) -> Resource {
    Resource::builder().with_service_name(otel.service_name.clone()).build()
}

/// The endpoint as errors and logs show it: never with the URL's credentials.
fn shown_endpoint(endpoint: &url::Url) -> String {
    let mut shown = endpoint.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Maps an exporter build error of `signal` to a [`TelemetryError`] naming the endpoint.
fn exporter_error(
    signal: &'static str,
    shown: &str,
) -> impl FnOnce(opentelemetry_otlp::ExporterBuildError) -> TelemetryError {
    let endpoint = shown.to_owned();
    move |e| TelemetryError::Exporter { signal, endpoint, reason: e.to_string() }
}
