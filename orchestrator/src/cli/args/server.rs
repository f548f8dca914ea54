//! HTTP server flags.

use orchestrator_utils::Secret;

/// The HTTP server.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Server")]
pub struct ServerArgs {
    /// Address the HTTP server binds to.
    #[arg(long, env = "MADARA_ORCHESTRATOR_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port of the HTTP server (0 picks a free port).
    #[arg(long, env = "MADARA_ORCHESTRATOR_PORT", default_value_t = 3000)]
    pub port: u16,

    /// Mount the `/admin/*` routes.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ADMIN_ENABLED")]
    pub admin_enabled: bool,

    /// Bearer token required by the `/admin/*` routes (`_FILE` companion supported; not in the
    /// reference).
    #[arg(long, env = "MADARA_ORCHESTRATOR_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret<String>>,

    /// Serve `/jobs/{id}/process|verify|retry` without the admin token even when one is set,
    /// as the reference does (not in the reference: there they are always open).
    #[arg(long, env = "MADARA_ORCHESTRATOR_OPEN_JOB_ACTIONS")]
    pub open_job_actions: bool,
}
