//! What differs between the SQL databases ([`Dialect`]), and the sqlx plumbing the shared code
//! builds and runs its statements with ([`Sql`], [`Driver`]).

use std::{fmt::Display, time::Duration};

use futures::future::BoxFuture;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool,
    QueryBuilder, Row, Type,
};
use uuid::Uuid;

use super::schema::ColumnTypes;
use crate::core::client::database::DatabaseResult;

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer, or NULL.
    Int(Option<i64>),
    /// A float.
    Float(f64),
    /// Text, or NULL.
    Text(Option<String>),
    /// An id, bound as text (a dialect may cast it to its id type).
    Uuid(Uuid),
    /// A JSON document, bound as text (a dialect may cast it to its JSON type).
    Json(String),
    /// A time in unix seconds, or NULL, bound as an integer (a dialect may convert it to its
    /// time type).
    Time(Option<i64>),
}

macro_rules! value_from {
    ($($ty:ty => |$v:ident| $value:expr),* $(,)?) => {$(
        impl From<$ty> for Value {
            fn from($v: $ty) -> Self {
                $value
            }
        }
    )*};
}

value_from! {
    i64 => |v| Self::Int(Some(v)),
    i32 => |v| Self::Int(Some(v.into())),
    Option<i64> => |v| Self::Int(v),
    f64 => |v| Self::Float(v),
    String => |v| Self::Text(Some(v)),
    &str => |v| Self::Text(Some(v.to_owned())),
    Option<&str> => |v| Self::Text(v.map(str::to_owned)),
}

/// The values of an `IN` list.
#[derive(Debug, Clone, PartialEq)]
pub enum List {
    /// Integers.
    Ints(Vec<i64>),
    /// Texts.
    Texts(Vec<String>),
}

/// The sqlx plumbing of the SQL layer: binding a [`Value`], running a statement, reading a
/// column. Implemented once, below, for every sqlx database that binds and decodes these types,
/// so that the generic code needs no sqlx trait bounds of its own.
pub trait Driver: Database {
    /// Appends a placeholder bound to `value` (ids, documents and times as their plain types).
    fn bind(qb: &mut QueryBuilder<Self>, value: Value);
    /// Runs the statement on `conn` and returns the rows it yields.
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        qb: QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;
    /// Runs the statements of `sql` (no values bound) on `conn`.
    fn execute_script(
        conn: &mut Self::Connection,
        sql: String,
    ) -> BoxFuture<'_, Result<(), sqlx::Error>>;
    /// A text column; `None` for NULL.
    fn text(row: &Self::Row, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// An integer column; `None` for NULL.
    fn int(row: &Self::Row, column: &str) -> Result<Option<i64>, sqlx::Error>;
}

impl<DB> Driver for DB
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
{
    fn bind(qb: &mut QueryBuilder<DB>, value: Value) {
        match value {
            Value::Int(v) | Value::Time(v) => qb.push_bind(v),
            Value::Float(v) => qb.push_bind(v),
            Value::Text(v) => qb.push_bind(v),
            Value::Uuid(v) => qb.push_bind(Some(v.to_string())),
            Value::Json(v) => qb.push_bind(Some(v)),
        };
    }

    fn fetch_all<'c>(
        conn: &'c mut DB::Connection,
        mut qb: QueryBuilder<DB>,
    ) -> BoxFuture<'c, Result<Vec<DB::Row>, sqlx::Error>> {
        Box::pin(async move { qb.build().fetch_all(conn).await })
    }

    fn execute_script(
        conn: &mut DB::Connection,
        sql: String,
    ) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move { sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await.map(drop) })
    }

    fn text(row: &DB::Row, column: &str) -> Result<Option<String>, sqlx::Error> {
        row.try_get(column)
    }

    fn int(row: &DB::Row, column: &str) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(column)
    }
}

/// What differs between the SQL databases the shared [`super::SqlDatabase`] and
/// [`super::SqlLock`] run on: implemented by [`sqlx::Sqlite`] (`sqlite/`) and
/// [`sqlx::Postgres`] (`postgres/`). The methods with a body write standard SQL; a dialect
/// replaces them where it has a better form.
pub trait Dialect: Driver {
    /// The column types of the tables (see [`super::schema`]).
    const TYPES: ColumnTypes;
    /// Starts a transaction that reads then writes batches and lookups.
    const BEGIN: &'static str;
    /// Ends a read, in such a transaction, that keeps the rows it read from other writers until
    /// the transaction ends (empty where [`Self::BEGIN`] already excludes them).
    const FOR_UPDATE: &'static str;
    /// Appended to a column read as text (ids and documents).
    const TO_TEXT: &'static str;
    /// Appended to a correlated `NOT EXISTS` subquery to keep it a per-row index probe rather
    /// than a join the planner may turn into a hash of every row it could match (empty where
    /// the database always probes).
    const PROBE: &'static str = "";

    /// Appends `value` as the columns of this database store it.
    fn push_value(q: &mut Sql<Self>, value: Value) {
        q.bind_plain(value);
    }

    /// Appends `column IN (list)`, or `column NOT IN (list)` when `negated`; `list` is not empty.
    fn push_in(q: &mut Sql<Self>, column: &str, list: List, negated: bool) {
        q.push(column).push(if negated { " NOT IN (" } else { " IN (" });
        match list {
            List::Ints(values) => q.binds(values.into_iter().map(Value::from)),
            List::Texts(values) => q.binds(values.into_iter().map(Value::from)),
        };
        q.push(")");
    }

    /// An expression reading the time column `column` as unix seconds.
    fn secs(column: &str) -> String;

    /// Appends the new job document: column `doc` with the top-level fields of `patch`
    /// replaced and its `version` incremented (in an `UPDATE`, where `version` is the old one).
    fn push_doc_patch(q: &mut Sql<Self>, patch: serde_json::Map<String, serde_json::Value>);

    /// Appends the time a lock statement compares and stores: now, or now + `ttl`. `now_ms` is
    /// this process's clock, for a dialect without its own.
    fn push_lock_time(q: &mut Sql<Self>, now_ms: i64, ttl: Option<Duration>);

    /// An expression reading the lock time column `column` as unix microseconds.
    fn lock_micros(column: &str) -> String;

    /// Whether the same statement may succeed later (busy, unreachable, serialization failure).
    fn is_transient(e: &sqlx::Error) -> bool;

    /// Applies the idempotent DDL `schema`, also when several processes start together.
    fn apply_schema(pool: &Pool<Self>, schema: String) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move { Self::execute_script(&mut *pool.acquire().await?, schema).await })
    }

    /// A pool on the database (or file) `name` beside the one `pool` uses, created if missing;
    /// refuses a name that is not plain letters, digits, `_` and `-`.
    fn open_sibling<'a>(
        pool: &'a Pool<Self>,
        name: &'a str,
    ) -> BoxFuture<'a, DatabaseResult<Pool<Self>>>;
}

/// A statement being built: SQL text, and values placed where and as dialect `D` wants them.
pub struct Sql<D: Database>(QueryBuilder<D>);

impl<D: Database> std::fmt::Debug for Sql<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sql").field(&self.0.sql().as_str()).finish()
    }
}

impl<D: Dialect> Sql<D> {
    /// Starts a statement with `sql`.
    pub fn new(sql: impl Into<String>) -> Self {
        Self(QueryBuilder::new(sql))
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: impl Display) -> &mut Self {
        self.0.push(sql);
        self
    }

    /// Appends a placeholder bound to `value`, as the dialect stores such a value.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        D::push_value(self, value.into());
        self
    }

    /// Appends a placeholder bound to `value` as it is.
    pub fn bind_plain(&mut self, value: Value) -> &mut Self {
        D::bind(&mut self.0, value);
        self
    }

    /// Appends `values`, separated by commas.
    pub fn binds(&mut self, values: impl IntoIterator<Item = Value>) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self
    }

    /// Appends ` AND column IN (list)` (`NOT IN` when `negated`).
    pub fn and_in(&mut self, column: &str, list: List, negated: bool) -> &mut Self {
        self.push(" AND ");
        D::push_in(self, column, list, negated);
        self
    }

    /// Appends a lock time (see [`Dialect::push_lock_time`]).
    pub fn lock_time(&mut self, now_ms: i64, ttl: Option<Duration>) -> &mut Self {
        D::push_lock_time(self, now_ms, ttl);
        self
    }

    /// Appends ` LIMIT limit`, if any.
    pub fn limit(&mut self, limit: Option<i64>) -> &mut Self {
        if let Some(limit) = limit {
            self.push(" LIMIT ").bind(limit);
        }
        self
    }

    /// The sqlx builder, for a dialect binding a type only it knows.
    pub fn builder(&mut self) -> &mut QueryBuilder<D> {
        &mut self.0
    }

    /// Runs the statement on `conn` and returns the rows it yields.
    pub async fn fetch(self, conn: &mut D::Connection) -> Result<Vec<D::Row>, sqlx::Error> {
        D::fetch_all(conn, self.0).await
    }
}
