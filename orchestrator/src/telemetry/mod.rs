//! Telemetry: logs (tracing), OpenTelemetry export and the metrics registry.
//!
//! - Logs go to stderr (stdout is for command results), filtered by `RUST_LOG` (default
//!   `info`); `LOG_FORMAT=json` writes one JSON object per event, anything else pretty lines.
//! - With an OTLP collector endpoint ([`init`]), traces, metrics (every 5 s) and logs are also
//!   exported over gRPC, under the configured service name.
//! - [`metrics`] holds the instruments; `/metrics` renders them for Prometheus.

pub mod metrics;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    logs::SdkLoggerProvider, metrics::SdkMeterProvider, trace::SdkTracerProvider, Resource,
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

/// Keeps the OpenTelemetry providers alive; dropping it flushes and shuts them down.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Shutdown flushes what is buffered; an error means the collector is unreachable and
        // there is nobody left to tell but stderr's log, which may be gone as well.
        if let Some(t) = self.tracer.take() {
            let _ = t.shutdown();
        }
        if let Some(m) = self.meter.take() {
            let _ = m.shutdown();
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
/// exporters of traces, metrics and logs. Must run inside a Tokio runtime (the gRPC client).
///
/// # Errors
/// An exporter cannot be built for the endpoint.
pub fn init(otel: &OtelParams) -> Result<TelemetryGuard, TelemetryError> {
    let Some(endpoint) = otel.collector_endpoint.as_ref() else {
        init_tracing();
        return Ok(TelemetryGuard::default());
    };
    // Never put credentials of the endpoint URL into an error or a log line.
    let mut shown = endpoint.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    let shown = shown.to_string();
    let err = |signal: &'static str| {
        let endpoint = shown.clone();
        move |e: opentelemetry_otlp::ExporterBuildError| TelemetryError::Exporter {
            signal,
            endpoint,
            reason: e.to_string(),
        }
    };
    let resource = Resource::builder().with_service_name(otel.service_name.clone()).build();

    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.as_str())
        .build()
        .map_err(err("traces"))?;
    let tracer = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(spans)
        .build();

    let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.as_str())
        .build()
        .map_err(err("metrics"))?;
    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(metric_exporter)
        .with_interval(std::time::Duration::from_secs(5))
        .build();
    let meter =
        SdkMeterProvider::builder().with_resource(resource.clone()).with_reader(reader).build();

    let log_exporter = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.as_str())
        .build()
        .map_err(err("logs"))?;
    let logger = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(log_exporter)
        .build();

    opentelemetry::global::set_meter_provider(meter.clone());
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
    Ok(TelemetryGuard { tracer: Some(tracer), meter: Some(meter), logger: Some(logger) })
}
