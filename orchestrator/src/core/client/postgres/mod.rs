//! The distributed tier's PostgreSQL database (`--postgres`): jobs, batches, lookups and locks
//! shared by several orchestrator processes.
//!
//! [`open_pool`] connects and checks the server answers; [`database::PostgresDatabase`] and
//! [`lock::PostgresLock`] — the shared SQL layer ([`super::sql`]) over the PostgreSQL
//! [`Dialect`] below — create their tables idempotently in their `init`. Connection URLs
//! carry passwords: errors and `Debug` output show them with the password redacted.

pub mod database;
pub mod lock;

use std::{str::FromStr, time::Duration};

use futures::future::BoxFuture;
use orchestrator_utils::Secret;
use sqlx::{
    postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions},
    AssertSqlSafe, Connection, Postgres,
};

use super::{
    database::{DatabaseError, DatabaseResult},
    db_common::redact_url,
    sql::{database::db_err, ColumnTypes, Dialect, List, Sql, Value},
    BoxError,
};

/// Connections per process; workers hold one only for the length of a statement.
const MAX_CONNECTIONS: u32 = 10;

/// How long a caller waits for a free connection (or a new one) before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why PostgreSQL could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to PostgreSQL at {url}: {source}")]
pub struct OpenError {
    /// The URL with its password redacted.
    pub url: String,
    /// Why.
    #[source]
    pub source: BoxError,
}

/// Connects to the database named by `url` and checks it answers.
///
/// # Errors
/// When the URL is malformed, the server is unreachable or refuses the credentials; the error
/// names the URL with its password redacted.
pub async fn open_pool(url: &Secret<String>) -> Result<PgPool, OpenError> {
    let shown = redact_url(url.expose());
    let err = |source: BoxError| OpenError { url: shown.clone(), source };
    // sqlx's own parse errors may quote the URL: report ours instead.
    url::Url::parse(url.expose()).map_err(|e| err(format!("malformed URL: {e}").into()))?;
    let options = PgConnectOptions::from_str(url.expose()).map_err(|_| {
        err("malformed PostgreSQL URL (expected postgres://user:password@host:port/database)"
            .into())
    })?;
    connect_with(options).await.map_err(|e| err(Box::new(e)))
}

/// A pool over `options`, checked by opening one connection first: an unreachable server or
/// refused credentials fail fast with the real cause (a pool would only report a timeout).
pub(crate) async fn connect_with(options: PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    // `CREATE … IF NOT EXISTS` on every start would otherwise log a notice per table. JIT
    // compilation is off: every statement here is a short indexed read or write, and when the
    // planner overestimates one (a range of internal ids on a year of jobs) compiling it took
    // 85 ms for a query that runs in 1 ms.
    let options = options
        .application_name("madara-orchestrator")
        .options([("client_min_messages", "warning"), ("jit", "off")]);
    let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {}s", ACQUIRE_TIMEOUT.as_secs()),
            ))
        })??;
    probe.close().await?;
    Ok(PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options))
}

/// Whether the same statement may succeed later: connection and pool failures, serialization
/// failures and deadlocks, a server shutting down or out of resources.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_transient_sqlstate(&code)),
        _ => false,
    }
}

/// SQLSTATEs worth retrying: class 08 (connection), 40001 (serialization failure), 40P01
/// (deadlock), class 53 (insufficient resources), 55P03 (lock not available), 57P01..57P05
/// (admin shutdown, crash, cannot connect now, idle session timeout).
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || matches!(code, "40001" | "40P01" | "55P03")
}

/// The SQLSTATE of a database error.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
}

/// Whether `name` is safe to use as a database name without quoting surprises.
fn valid_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// PostgreSQL: ids `UUID`, documents `JSONB`, times `TIMESTAMPTZ` (lock times from the
/// server's clock, so hosts whose clocks disagree still agree on expiry), lists bound as one
/// array (`= ANY($1)`), batch rows locked with `FOR UPDATE`.
impl Dialect for Postgres {
    const TYPES: ColumnTypes = ColumnTypes {
        id: "UUID",
        int: "BIGINT",
        // Bytewise, so orderings match the other backends whatever the server's locale.
        name: "TEXT COLLATE \"C\"",
        time: "TIMESTAMPTZ",
        json: "JSONB",
    };
    const BEGIN: &'static str = "BEGIN";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const TO_TEXT: &'static str = "::text";
    /// `OFFSET 0` keeps PostgreSQL from pulling the subquery up into an anti-join: on a year of
    /// jobs it hashed every successor job of the type (100 ms and more) to check a few.
    const PROBE: &'static str = " OFFSET 0";

    fn push_value(q: &mut Sql<Self>, value: Value) {
        match value {
            Value::Time(_) => q.push("to_timestamp(").bind_plain(value).push(")"),
            Value::Uuid(_) => q.bind_plain(value).push("::uuid"),
            Value::Json(_) => q.bind_plain(value).push("::jsonb"),
            value => q.bind_plain(value),
        };
    }

    /// One value is `column = $1`: the planner walks an index in its order for an equality,
    /// not for `= ANY` (PostgreSQL 15 sorts every matching row first, e.g. all the jobs of a
    /// type for the latest one).
    fn push_in(q: &mut Sql<Self>, column: &str, list: List, negated: bool) {
        let single = match &list {
            List::Ints(v) if v.len() == 1 => Some(Value::Int(Some(v[0]))),
            List::Texts(v) if v.len() == 1 => Some(Value::Text(Some(v[0].clone()))),
            _ => None,
        };
        if let Some(value) = single {
            q.push(column).push(if negated { " <> " } else { " = " }).bind_plain(value);
            return;
        }
        q.push(if negated { "NOT (" } else { "(" }).push(column).push(" = ANY(");
        match list {
            List::Ints(values) => q.builder().push_bind(values),
            List::Texts(values) => q.builder().push_bind(values),
        };
        q.push("))");
    }

    fn secs(column: &str) -> String {
        format!("extract(epoch FROM {column})::bigint")
    }

    fn push_doc_patch(q: &mut Sql<Self>, patch: serde_json::Map<String, serde_json::Value>) {
        q.push("doc || ").bind(Value::Json(serde_json::Value::Object(patch).to_string()));
        q.push(" || jsonb_build_object('version', version + 1)");
    }

    fn push_lock_time(q: &mut Sql<Self>, _now_ms: i64, ttl: Option<Duration>) {
        match ttl {
            None => q.push("now()"),
            Some(ttl) => q.push("now() + make_interval(secs => ").bind(ttl.as_secs_f64()).push(")"),
        };
    }

    fn lock_micros(column: &str) -> String {
        format!("(extract(epoch FROM {column}) * 1000000)::bigint")
    }

    fn is_transient(e: &sqlx::Error) -> bool {
        self::is_transient(e)
    }

    /// Runs the DDL under a transaction-scoped advisory lock, so processes starting together
    /// do not race on `CREATE … IF NOT EXISTS` (which is not atomic in PostgreSQL: two
    /// concurrent creates of one table may fail on the catalog's unique index).
    fn apply_schema(pool: &PgPool, schema: String) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        /// Arbitrary, fixed key of the schema lock ("orchestr" in ASCII).
        const SCHEMA_LOCK_KEY: i64 = 0x6f72_6368_6573_7472;
        Box::pin(async move {
            let mut tx = pool.begin().await?;
            let lock = sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SCHEMA_LOCK_KEY);
            lock.execute(&mut *tx).await?;
            sqlx::raw_sql(AssertSqlSafe(schema)).execute(&mut *tx).await?;
            tx.commit().await
        })
    }

    /// Connects to database `name` of the same server, creating it if missing; `name` may
    /// contain only ASCII letters, digits, `_` and `-`.
    fn open_sibling<'a>(pool: &'a PgPool, name: &'a str) -> BoxFuture<'a, DatabaseResult<PgPool>> {
        Box::pin(async move {
            if !valid_database_name(name) {
                return Err(DatabaseError::other(format!(
                    "invalid PostgreSQL database name {name:?}: use 1 to 63 ASCII letters, digits, '_' and '-'"
                )));
            }
            let options = (*pool.connect_options()).clone().database(name);
            match connect_with(options.clone()).await {
                Ok(pool) => Ok(pool),
                // 3D000: the database does not exist.
                Err(e) if sqlstate(&e).as_deref() == Some("3D000") => {
                    let sql = format!("CREATE DATABASE \"{name}\"");
                    if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(pool).await {
                        // 42P04: another process created it first.
                        if sqlstate(&e).as_deref() != Some("42P04") {
                            return Err(db_err::<Postgres>(e));
                        }
                    }
                    connect_with(options).await.map_err(db_err::<Postgres>)
                }
                Err(e) => Err(db_err::<Postgres>(e)),
            }
        })
    }
}

/// Fresh databases for tests, dropped afterwards.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    use orchestrator_test_support::postgres::{self as server, URL_VAR};

    /// The server URL the tests use (`MADARA_ORCHESTRATOR_TEST_POSTGRES_URL`, default the URL
    /// `scripts/postgres.sh` prints).
    pub(crate) fn server_url() -> String {
        server::server_url()
    }

    /// A database created for one test; dropped (with its connections) when this is dropped.
    #[derive(Debug)]
    pub(crate) struct TestDb {
        /// The database name.
        pub(crate) name: String,
        /// Options connecting to it.
        pub(crate) options: PgConnectOptions,
        admin: PgConnectOptions,
    }

    impl TestDb {
        /// Creates a fresh database on the test server; `None` (after printing
        /// `skipped: no PostgreSQL`) when PostgreSQL tests are skipped
        /// (`ORCH_SKIP_POSTGRES_TESTS=1`).
        ///
        /// # Panics
        /// When the server is unreachable or refuses the connection.
        pub(crate) async fn create() -> Option<Self> {
            let url = server::server_or_skip().await?;
            let admin = match PgConnectOptions::from_str(&url) {
                Ok(o) => o,
                Err(e) => panic!("{URL_VAR} is not a PostgreSQL URL ({}): {e}", redact_url(&url)),
            };
            let pool = connect_with(admin.clone()).await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {} refused the test connection ({e}): check {URL_VAR} \
                     (`scripts/postgres.sh` prints the URL it creates)",
                    redact_url(&url)
                )
            });
            let name = server::fresh_database_name("orch_test");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&pool)
                .await
                .unwrap_or_else(|e| {
                    panic!("cannot create test database {name}: {e} (the role needs CREATEDB)")
                });
            pool.close().await;
            let options = admin.clone().database(&name);
            Some(Self { name, options, admin })
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            // Drop runs outside any async context we may block: use a thread with its own runtime.
            let admin = self.admin.clone();
            let name = self.name.clone();
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async move {
                    let pool = connect_with(admin).await.ok()?;
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.ok()?;
                    pool.close().await;
                    Some(())
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("warning: could not drop test database {}", self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("postgres://u:hunter2@db:5432/o"), "postgres://u:***@db:5432/o");
        assert_eq!(redact_url("postgres://u@db/o"), "postgres://u@db/o");
        let q = redact_url("postgres://db/o?user=u&password=hunter2");
        assert!(!q.contains("hunter2") && q.contains("password=***"), "{q}");
        assert_eq!(redact_url("hunter2"), "<unparseable URL>");
    }

    #[test]
    fn sqlstates_are_classified() {
        for code in ["08006", "40001", "40P01", "53300", "57P01", "55P03"] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "42P01", "22003"] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }

    /// Nothing listens on port 1: the error names the URL, hides the password, is not a panic.
    #[tokio::test]
    async fn unreachable_server_error_names_the_url_without_the_password() {
        let url = Secret::new("postgres://orch:s3cret-pw@127.0.0.1:1/orchestrator".to_owned());
        let err = open_pool(&url).await.expect_err("nothing listens on port 1");
        let msg = format!("{err} / {err:?}");
        assert!(msg.contains("postgres://orch:***@127.0.0.1:1/orchestrator"), "{msg}");
        assert!(!msg.contains("s3cret-pw"), "{msg}");
        assert!(msg.to_lowercase().contains("refused"), "the cause is named: {msg}");
    }

    #[tokio::test]
    async fn malformed_url_is_refused_without_echoing_it() {
        let err = open_pool(&Secret::new("postgres://u:pw@[bad/o".to_owned()))
            .await
            .expect_err("malformed");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }

    /// A wrong password names the URL and PostgreSQL's reason.
    #[tokio::test]
    async fn wrong_password_is_named() {
        let Some(_db) = test_support::TestDb::create().await else { return };
        let mut url = url::Url::parse(&test_support::server_url()).expect("test URL parses");
        url.set_password(Some("definitely-wrong-pw")).expect("URL with credentials");
        let err = open_pool(&Secret::new(url.to_string())).await.expect_err("wrong password");
        let msg = format!("{err} / {err:?}");
        assert!(!msg.contains("definitely-wrong-pw"), "{msg}");
        assert!(msg.contains(":***@"), "{msg}");
        assert!(msg.contains("password authentication failed"), "{msg}");
    }
}
