//! The embedded tier's SQLite file (WAL): jobs, batches, lookups, locks and queues share it.
//!
//! Each backend creates its own tables with `CREATE TABLE IF NOT EXISTS` in its `init`, so
//! opening an existing data dir is idempotent. The database and locks are the shared SQL layer
//! ([`super::sql`]) over the SQLite [`Dialect`] below.

pub mod queue;

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use futures::future::BoxFuture;
use sqlx::{
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
    Sqlite,
};

use super::{
    database::{DatabaseError, DatabaseResult},
    sql::{ColumnTypes, Dialect, Sql},
    BoxError,
};

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

/// SQLite: times are integers (unix seconds; lock times unix milliseconds of this process's
/// clock, which the processes sharing the file share), ids and documents text, lists `IN (…)`.
impl Dialect for Sqlite {
    const TYPES: ColumnTypes =
        ColumnTypes { id: "TEXT", int: "INTEGER", name: "TEXT", time: "INTEGER", json: "TEXT" };
    /// The write lock is taken up front, so a read followed by a write cannot fail half-way
    /// with a stale snapshot, and no other writer runs until the commit.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const FOR_UPDATE: &'static str = "";
    const TO_TEXT: &'static str = "";

    fn secs(column: &str) -> String {
        column.to_owned()
    }

    fn push_doc_patch(q: &mut Sql<Self>, patch: serde_json::Map<String, serde_json::Value>) {
        q.push("json_set(doc, '$.version', version + 1");
        for (field, value) in patch {
            q.push(format!(", '$.{field}', json(")).bind(value.to_string()).push(")");
        }
        q.push(")");
    }

    fn push_lock_time(q: &mut Sql<Self>, now_ms: i64, ttl: Option<Duration>) {
        let ttl_ms = ttl.map_or(0, |ttl| i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        q.bind(now_ms.saturating_add(ttl_ms));
    }

    fn lock_micros(column: &str) -> String {
        format!("{column} * 1000")
    }

    fn is_transient(e: &sqlx::Error) -> bool {
        self::is_transient(e)
    }

    /// Opens (creating if needed) `<name>.sqlite` in the directory of the current file; an
    /// in-memory database has no such directory.
    fn open_sibling<'a>(
        pool: &'a SqlitePool,
        name: &'a str,
    ) -> BoxFuture<'a, DatabaseResult<SqlitePool>> {
        Box::pin(async move {
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(DatabaseError::other(format!(
                    "invalid SQLite database name {name:?}: use only ASCII letters, digits, '_' and '-'"
                )));
            }
            let file: PathBuf = pool.connect_options().get_filename().to_path_buf();
            let shown = file.display().to_string();
            if shown.is_empty() || shown.starts_with(':') || shown.contains("mode=memory") {
                return Err(DatabaseError::other(format!(
                    "cannot switch database: the current SQLite database {shown:?} is not a file"
                )));
            }
            let dir = file.parent().map(PathBuf::from).unwrap_or_default();
            open_file(&dir.join(format!("{name}.sqlite"))).await.map_err(DatabaseError::other)
        })
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
