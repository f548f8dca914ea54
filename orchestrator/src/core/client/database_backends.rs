//! Opens the job database and locks that `--postgres` or `--mongodb` select (the embedded
//! SQLite ones come with the rest of the embedded tier), creating their tables or indexes.

use std::sync::Arc;

use crate::config::DatabaseBackend;

use super::{
    db_common::redact_url,
    mongodb::{self, database::MongoDatabase, lock::MongoLock},
    postgres::{self, database::PostgresDatabase, lock::PostgresLock},
    BoxError, DatabaseClient, LockClient,
};

/// A distributed database and its locks.
#[derive(Debug)]
pub struct DatabaseClients {
    /// Jobs, batches and lookups.
    pub database: Arc<dyn DatabaseClient>,
    /// Locks, in the same database.
    pub lock: Arc<dyn LockClient>,
    /// What exists now, for `setup`'s summary (the URL's password redacted).
    pub summary: String,
}

/// Why the database could not be opened; names the (redacted) URL and the part.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseBackendError {
    /// PostgreSQL is unreachable or refuses the credentials.
    #[error(transparent)]
    Postgres(#[from] postgres::OpenError),
    /// MongoDB is unreachable or the URL is malformed.
    #[error(transparent)]
    Mongo(#[from] mongodb::OpenError),
    /// The tables, indexes or collections could not be created.
    #[error("cannot create the {part} at {url}: {source}")]
    Init {
        /// Which part.
        part: &'static str,
        /// The URL, password redacted.
        url: String,
        /// Why.
        #[source]
        source: BoxError,
    },
}

/// Opens the database `backend` selects and creates what is missing (idempotent; safe from
/// several processes at once); `None` for the embedded tier.
///
/// # Errors
/// When the server is unreachable, refuses the credentials, or the schema cannot be created.
pub async fn open(
    backend: &DatabaseBackend,
) -> Result<Option<DatabaseClients>, DatabaseBackendError> {
    match backend {
        DatabaseBackend::Embedded => Ok(None),
        DatabaseBackend::Postgres { url } => {
            let shown = redact_url(url.expose());
            let init = |part: &'static str| {
                let url = shown.clone();
                move |e: BoxError| DatabaseBackendError::Init { part, url, source: e }
            };
            let pool = postgres::open_pool(url).await?;
            let database =
                PostgresDatabase::open(pool.clone()).await.map_err(|e| init("tables")(e.into()))?;
            let lock = PostgresLock::open(pool).await.map_err(|e| init("locks table")(e.into()))?;
            Ok(Some(DatabaseClients {
                database: Arc::new(database),
                lock: Arc::new(lock),
                summary: format!(
                    "database: PostgreSQL at {shown} (tables jobs, snos_batches, aggregator_batches, block_batch_lookups, trigger_pauses, locks)"
                ),
            }))
        }
        DatabaseBackend::Mongo { url, name } => {
            let shown = redact_url(url.expose());
            let init = |part: &'static str| {
                let url = shown.clone();
                move |e: BoxError| DatabaseBackendError::Init { part, url, source: e }
            };
            let (client, db) = mongodb::open(url, name).await?;
            let lock = MongoLock::open(&db).await.map_err(|e| init("lock indexes")(e.into()))?;
            let database =
                MongoDatabase::open(client, db).await.map_err(|e| init("indexes")(e.into()))?;
            Ok(Some(DatabaseClients {
                database: Arc::new(database),
                lock: Arc::new(lock),
                summary: format!(
                    "database: MongoDB database {name} at {shown} (collections jobs, snos_batches, aggregator_batches, block_batch_lookups, trigger_pauses, locks, with their indexes)"
                ),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_utils::Secret;

    use super::*;
    use crate::core::client::postgres::test_support::TestDb;

    #[tokio::test]
    async fn embedded_opens_nothing() {
        assert!(open(&DatabaseBackend::Embedded).await.expect("embedded").is_none());
    }

    /// Opening twice (two processes, or `setup` then `run`) is idempotent and shares data.
    #[tokio::test]
    async fn postgres_opens_twice_and_shares_data() {
        let Some(test_db) = TestDb::create().await else { return };
        let mut url = url::Url::parse(&postgres::test_support::server_url()).expect("test URL");
        url.set_path(&test_db.name);
        let backend = DatabaseBackend::Postgres { url: Secret::new(url.to_string()) };
        let a = open(&backend).await.expect("open").expect("postgres");
        let password = format!(":{}@", url.password().expect("the test URL has a password"));
        assert!(a.summary.contains("PostgreSQL") && a.summary.contains(":***@"), "{}", a.summary);
        assert!(!a.summary.contains(&password), "{}", a.summary);
        let b = open(&backend).await.expect("open again").expect("postgres");
        a.lock
            .acquire_lock(
                "k",
                crate::core::client::LockValue::Boolean(true),
                std::time::Duration::from_secs(60),
                Some("a"),
            )
            .await
            .expect("a takes the lock");
        assert!(b.lock.is_locked("k").await.expect("b sees it"));
        a.database.disconnect().await.expect("disconnect");
        b.database.disconnect().await.expect("disconnect");
    }

    #[tokio::test]
    async fn unreachable_databases_are_named_without_passwords() {
        let backend = DatabaseBackend::Postgres {
            url: Secret::new("postgres://u:pw-secret@127.0.0.1:1/o".to_owned()),
        };
        let err = open(&backend).await.expect_err("unreachable");
        let msg = err.to_string();
        assert!(msg.contains("127.0.0.1:1") && !msg.contains("pw-secret"), "{msg}");
        let backend = DatabaseBackend::Mongo {
            url: Secret::new(
                "mongodb://u:pw-secret@127.0.0.1:1/?serverSelectionTimeoutMS=200".to_owned(),
            ),
            name: "o".to_owned(),
        };
        let msg = open(&backend).await.expect_err("unreachable").to_string();
        assert!(msg.contains("127.0.0.1:1") && !msg.contains("pw-secret"), "{msg}");
    }
}
