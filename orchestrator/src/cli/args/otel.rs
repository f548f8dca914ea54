//! OpenTelemetry flags.

use url::Url;

/// Telemetry export.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Telemetry")]
pub struct OtelArgs {
    /// Service name reported to the collector.
    #[arg(long, env = "MADARA_ORCHESTRATOR_OTEL_SERVICE_NAME", default_value = "orchestrator")]
    pub otel_service_name: String,

    /// OTLP gRPC collector endpoint; without it nothing is exported.
    #[arg(long, env = "MADARA_ORCHESTRATOR_OTEL_COLLECTOR_ENDPOINT")]
    pub otel_collector_endpoint: Option<Url>,
}
