//! The embedded tier's SQLite file (WAL): jobs, batches, lookups, locks and queues share it.
//!
//! Each backend creates its own tables with `CREATE TABLE IF NOT EXISTS` in its `init`, so
//! opening an existing data dir is idempotent.

pub mod queue;

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::BoxError;

pub mod database;
pub mod lock;

/// File name of the database inside `--data-dir`.
pub const DB_FILE_NAME: &str = "orchestrator.sqlite";

/// Why the SQLite file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data dir could not be created.
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a usable SQLite database.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: BoxError,
    },
}

/// Opens (creating if needed) `data_dir/orchestrator.sqlite` in WAL mode and checks that it
/// is a readable SQLite database.
pub async fn open_pool(data_dir: &Path) -> Result<SqlitePool, OpenError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|source| OpenError::DataDir { path: data_dir.display().to_string(), source })?;
    let path = data_dir.join(DB_FILE_NAME);
    open_file(&path).await
}

/// Opens (creating if needed) a SQLite file in WAL mode.
pub async fn open_file(path: &Path) -> Result<SqlitePool, OpenError> {
    let shown = path.display().to_string();
    let err = |e: sqlx::Error| OpenError::Open { path: shown.clone(), source: Box::new(e) };
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(err)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(err)?;
    // A corrupt file opens fine and fails on first read: check now, so the error names it.
    sqlx::query("SELECT count(*) FROM sqlite_master").execute(&pool).await.map_err(err)?;
    Ok(pool)
}

/// Maps a sqlx error to retryable (busy, locked, pool timeout, I/O) or not.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => {
            let msg = db.message();
            msg.contains("database is locked") || msg.contains("busy")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_a_fresh_dir_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = open_pool(dir.path()).await.expect("open");
        let mode: (String,) =
            sqlx::query_as("PRAGMA journal_mode").fetch_one(&pool).await.expect("pragma");
        assert_eq!(mode.0, "wal");
        pool.close().await;
        open_pool(dir.path()).await.expect("reopen");
    }

    #[tokio::test]
    async fn a_corrupt_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(DB_FILE_NAME), vec![0x42u8; 8192]).expect("write");
        let err = open_pool(dir.path()).await.expect_err("corrupt file must not open");
        assert!(err.to_string().contains(DB_FILE_NAME), "{err}");
    }
}
