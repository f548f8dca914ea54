//! Database flags (`--mongodb`, `--postgres`).

use orchestrator_utils::Secret;

/// The job database; without `--mongodb` or `--postgres` a SQLite file under `--data-dir`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseArgs {
    /// Use MongoDB.
    #[arg(long, conflicts_with = "postgres")]
    pub mongodb: bool,

    /// MongoDB connection URL (`_FILE` companion supported).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_MONGODB_CONNECTION_URL",
        hide_env_values = true,
        default_value = "mongodb://localhost:27017"
    )]
    pub mongodb_connection_url: Secret<String>,

    /// MongoDB database name.
    #[arg(long, env = "MADARA_ORCHESTRATOR_DATABASE_NAME", default_value = "orchestrator")]
    pub mongodb_database_name: String,

    /// Use PostgreSQL (not in the reference): the tested shared database for several
    /// orchestrator processes.
    #[arg(long, requires = "postgres_url")]
    pub postgres: bool,

    /// PostgreSQL connection URL, e.g. `postgres://user:pass@localhost:5432/orchestrator`
    /// (`_FILE` companion supported; `--postgres-connection-url` is accepted as an alias).
    #[arg(
        long,
        alias = "postgres-connection-url",
        env = "MADARA_ORCHESTRATOR_POSTGRES_URL",
        hide_env_values = true
    )]
    pub postgres_url: Option<Secret<String>>,
}
