//! The SQL layer shared by SQLite (`sqlite/`) and PostgreSQL (`postgres/`): one
//! [`DatabaseClient`](super::DatabaseClient) ([`SqlDatabase`]) and one
//! [`LockClient`](super::LockClient) ([`SqlLock`]), generic over a [`Dialect`].
//!
//! A dialect is the sqlx database type itself ([`sqlx::Sqlite`], [`sqlx::Postgres`]) and says
//! only what differs: the schema and how it is applied, how a writing transaction starts and
//! locks the rows it reads, how lists are bound, how ids, documents and times are stored, how
//! a job document is patched, which clock locks use, which errors are transient, and how a
//! sibling database is opened. Statements are built with [`Sql`], which places every value as
//! the dialect wants it.

pub mod database;
pub mod dialect;
pub mod lock;
pub mod schema;

pub use database::SqlDatabase;
pub use dialect::{Dialect, Driver, List, Sql, Value};
pub use lock::SqlLock;
pub use schema::ColumnTypes;
