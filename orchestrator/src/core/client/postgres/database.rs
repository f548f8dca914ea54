//! [`DatabaseClient`] on PostgreSQL.
//!
//! Same layout as the SQLite backend: every record is its JSON document (`doc JSONB`, the
//! source of truth when reading) plus the columns the queries filter and sort on,
//! denormalised from the document at each write (see [`crate::core::client::db_common`]):
//!
//! - `jobs`: `id UUID` primary key, `UNIQUE (job_type, internal_id)`;
//! - `snos_batches` / `aggregator_batches`: `idx`, `start_block` and `end_block` each unique;
//! - `block_batch_lookups`: one row per block, `block_number` primary key.
//!
//! Integers are `BIGINT`: a `u64` above `i64::MAX` is refused on write and, in a filter,
//! matches nothing (or, as an upper bound, everything).
//!
//! Several processes may share one database:
//! - `create_job` is one `INSERT … ON CONFLICT (job_type, internal_id) DO NOTHING`;
//! - `update_job` is one `UPDATE … WHERE id = $1 AND version = $2 RETURNING`, so of several
//!   writers holding one version exactly one matches a row;
//! - a batch write and its block lookup sync run in one transaction that first locks the
//!   batch row (`SELECT … FOR UPDATE`), so a read-modify-write never loses a concurrent one;
//! - the schema is created under an advisory lock ([`super::apply_schema`]).

use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::{
    postgres::{PgPool, PgRow},
    AssertSqlSafe, PgConnection, Postgres, QueryBuilder, Row,
};
use uuid::Uuid;

use super::{apply_schema, connect_with, is_transient, sqlstate, valid_database_name};
use crate::{
    core::client::{
        database::{DatabaseClient, DatabaseError, DatabaseResult},
        db_common::{
            decode_json, lookup_ranges_to_write, lower_bound, to_i64, to_json, upper_bound,
            BatchColumns, BatchRecord, BatchSpan, JobColumns, BLOCK_NUMBER_JOB_TYPES,
        },
    },
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus, AggregatorBatchUpdates,
            BatchQuery, BlockBatchLookup, SnosBatch, SnosBatchQuery, SnosBatchStatus,
            SnosBatchUpdates, SortOrder,
        },
        jobs::{now_secs, JobItem, JobItemUpdates, JobStatus, JobType},
    },
};

/// Schema of the jobs, batches and lookups; idempotent. Names compare bytewise (`COLLATE "C"`)
/// so orderings match the other backends whatever the server's locale.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    id UUID PRIMARY KEY,
    internal_id BIGINT NOT NULL,
    job_type TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    external_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    orchestrator_version TEXT NOT NULL,
    block_number BIGINT,
    start_block BIGINT,
    end_block BIGINT,
    to_settle BIGINT,
    storage_artifacts_tagged_at TIMESTAMPTZ,
    doc JSONB NOT NULL,
    CONSTRAINT jobs_job_type_internal_id_key UNIQUE (job_type, internal_id)
);
CREATE INDEX IF NOT EXISTS jobs_type_status_internal_id ON jobs (job_type, status, internal_id);
CREATE INDEX IF NOT EXISTS jobs_status_internal_id ON jobs (status, internal_id);
CREATE INDEX IF NOT EXISTS jobs_block_number ON jobs (block_number) WHERE block_number IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_to_settle ON jobs (to_settle) WHERE to_settle IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_block_range ON jobs (start_block, end_block) WHERE start_block IS NOT NULL;

CREATE TABLE IF NOT EXISTS snos_batches (
    id UUID PRIMARY KEY,
    idx BIGINT NOT NULL UNIQUE,
    aggregator_batch_index BIGINT,
    status TEXT COLLATE "C" NOT NULL,
    orchestrator_version TEXT NOT NULL,
    start_block BIGINT NOT NULL UNIQUE,
    end_block BIGINT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    doc JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS snos_batches_status_idx ON snos_batches (status, idx);
CREATE INDEX IF NOT EXISTS snos_batches_aggregator ON snos_batches (aggregator_batch_index, idx);

CREATE TABLE IF NOT EXISTS aggregator_batches (
    id UUID PRIMARY KEY,
    idx BIGINT NOT NULL UNIQUE,
    aggregator_batch_index BIGINT,
    status TEXT COLLATE "C" NOT NULL,
    orchestrator_version TEXT NOT NULL,
    start_block BIGINT NOT NULL UNIQUE,
    end_block BIGINT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    doc JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS aggregator_batches_status_idx ON aggregator_batches (status, idx);

CREATE TABLE IF NOT EXISTS block_batch_lookups (
    block_number BIGINT PRIMARY KEY,
    snos_batch_index BIGINT,
    aggregator_batch_index BIGINT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS block_batch_lookups_snos ON block_batch_lookups (snos_batch_index);
CREATE INDEX IF NOT EXISTS block_batch_lookups_aggregator ON block_batch_lookups (aggregator_batch_index);
"#;

/// Columns every job or batch read returns.
const DOC_COLUMNS: &str = "id::text AS id, doc::text AS doc";

/// The job and batch database on PostgreSQL.
///
/// Build it with [`PostgresDatabase::open`] over the pool from [`super::open_pool`].
#[derive(Debug)]
pub struct PostgresDatabase {
    /// The current pool; replaced by [`DatabaseClient::switch_database`].
    pool: RwLock<PgPool>,
}

impl PostgresDatabase {
    /// Wraps a pool; call [`Self::init`] before use.
    pub fn new(pool: PgPool) -> Self {
        Self { pool: RwLock::new(pool) }
    }

    /// Wraps a pool and creates the tables.
    ///
    /// # Errors
    /// When the schema cannot be created (see [`Self::init`]).
    pub async fn open(pool: PgPool) -> DatabaseResult<Self> {
        let db = Self::new(pool);
        db.init().await?;
        Ok(db)
    }

    /// Creates the tables and indexes if they do not exist; safe on every start, also from
    /// several processes at once.
    ///
    /// # Errors
    /// `Unavailable` when the server is unreachable, `Other` when the schema cannot be applied.
    pub async fn init(&self) -> DatabaseResult<()> {
        apply_schema(&self.pool(), SCHEMA).await.map_err(db_err)
    }

    /// The current pool (cheap clone of a shared handle).
    pub fn pool(&self) -> PgPool {
        // A poisoned lock only means another thread panicked while swapping the handle; the
        // handle itself is always valid.
        self.pool.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `f` in a transaction, committed when it returns `Ok`.
    async fn write_tx<T>(
        &self,
        f: impl for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, DatabaseResult<T>>,
    ) -> DatabaseResult<T> {
        let mut tx = self.pool().begin().await.map_err(db_err)?;
        let out = f(&mut tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn fetch_jobs(&self, mut qb: QueryBuilder<Postgres>) -> DatabaseResult<Vec<JobItem>> {
        let rows = qb.build().fetch_all(&self.pool()).await.map_err(db_err)?;
        rows.iter().map(|r| decode_doc(r, "job")).collect()
    }

    async fn fetch_job(&self, qb: QueryBuilder<Postgres>) -> DatabaseResult<Option<JobItem>> {
        Ok(self.fetch_jobs(qb).await?.into_iter().next())
    }

    async fn fetch_batches<B: BatchRecord>(
        &self,
        mut qb: QueryBuilder<Postgres>,
    ) -> DatabaseResult<Vec<B>> {
        let rows = qb.build().fetch_all(&self.pool()).await.map_err(db_err)?;
        rows.iter().map(|r| decode_doc(r, B::WHAT)).collect()
    }

    async fn fetch_batch<B: BatchRecord>(
        &self,
        qb: QueryBuilder<Postgres>,
    ) -> DatabaseResult<Option<B>> {
        Ok(self.fetch_batches(qb).await?.into_iter().next())
    }

    async fn query_batches<B: BatchRecord, S: AsRef<str>>(
        &self,
        query: &BatchQuery<S>,
    ) -> DatabaseResult<Vec<B>> {
        let mut qb = select_batches::<B>();
        if !query.indexes.is_empty() {
            let indexes: Vec<i64> = query.indexes.iter().filter_map(|i| lower_bound(*i)).collect();
            if indexes.is_empty() {
                return Ok(Vec::new());
            }
            qb.push(" AND idx = ANY(").push_bind(indexes).push(")");
        }
        if !query.statuses.is_empty() {
            let statuses: Vec<String> =
                query.statuses.iter().map(|s| s.as_ref().to_owned()).collect();
            qb.push(" AND status = ANY(").push_bind(statuses).push(")");
        }
        if let Some(version) = &query.orchestrator_version {
            qb.push(" AND orchestrator_version = ").push_bind(version.clone());
        }
        qb.push(match query.sort {
            SortOrder::Ascending => " ORDER BY idx ASC",
            SortOrder::Descending => " ORDER BY idx DESC",
        });
        push_limit(&mut qb, query.limit);
        self.fetch_batches(qb).await
    }

    /// Inserts a new batch and points its blocks' lookups at it.
    async fn create_batch<B: BatchRecord>(&self, mut batch: B) -> DatabaseResult<B> {
        batch.normalize()?;
        let row = BatchColumns::of(&batch)?;
        self.write_tx(move |conn| {
            Box::pin(async move {
                insert_batch::<B>(conn, &row).await?;
                sync_lookups::<B>(conn, None, &row).await
            })
        })
        .await?;
        Ok(batch)
    }

    /// Inserts the batch or replaces the one with the same id, syncing the lookups.
    async fn upsert_batch<B: BatchRecord>(&self, batch: &B) -> DatabaseResult<B> {
        let mut batch = batch.clone();
        batch.normalize()?;
        batch.touch(now_secs());
        let row = BatchColumns::of(&batch)?;
        self.write_tx(move |conn| {
            Box::pin(async move {
                let old = load_batch_for_update::<B>(conn, "id", Key::Id(&row.id)).await?;
                match &old {
                    Some(_) => replace_batch::<B>(conn, &row).await?,
                    None => insert_batch::<B>(conn, &row).await?,
                }
                let old_row = old.as_ref().map(BatchColumns::of).transpose()?;
                sync_lookups::<B>(conn, old_row.as_ref(), &row).await
            })
        })
        .await?;
        Ok(batch)
    }

    /// Applies `change` to the batch with this index; `NotFound` if there is none.
    async fn update_batch_by_index<B: BatchRecord>(
        &self,
        index: u64,
        change: impl FnOnce(&mut B) + Send + 'static,
    ) -> DatabaseResult<B> {
        let not_found = move || DatabaseError::NotFound { what: format!("{} {index}", B::WHAT) };
        let Some(key) = lower_bound(index) else { return Err(not_found()) };
        self.write_tx(move |conn| {
            Box::pin(async move {
                let Some(old) = load_batch_for_update::<B>(conn, "idx", Key::Index(key)).await?
                else {
                    return Err(not_found());
                };
                let old_row = BatchColumns::of(&old)?;
                let mut batch = old;
                change(&mut batch);
                batch.normalize()?;
                batch.touch(now_secs());
                let row = BatchColumns::of(&batch)?;
                replace_batch::<B>(conn, &row).await?;
                sync_lookups::<B>(conn, Some(&old_row), &row).await?;
                Ok(batch)
            })
        })
        .await
    }
}

#[async_trait]
impl DatabaseClient for PostgresDatabase {
    async fn health_check(&self) -> DatabaseResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool()).await.map_err(db_err)?;
        Ok(())
    }

    async fn disconnect(&self) -> DatabaseResult<()> {
        self.pool().close().await;
        Ok(())
    }

    /// Connects to database `name` of the same server (creating it if missing), creates the
    /// tables and uses it from now on; the previous pool is closed. `name` may contain only
    /// ASCII letters, digits, `_` and `-`.
    async fn switch_database(&self, name: &str) -> DatabaseResult<()> {
        if !valid_database_name(name) {
            return Err(DatabaseError::other(format!(
                "invalid PostgreSQL database name {name:?}: use 1 to 63 ASCII letters, digits, '_' and '-'"
            )));
        }
        let current = self.pool();
        let options = (*current.connect_options()).clone().database(name);
        let next = match connect_with(options.clone()).await {
            Ok(pool) => pool,
            // 3D000: the database does not exist.
            Err(e) if sqlstate(&e).as_deref() == Some("3D000") => {
                let sql = format!("CREATE DATABASE \"{name}\"");
                if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&current).await {
                    // 42P04: another process created it first.
                    if sqlstate(&e).as_deref() != Some("42P04") {
                        return Err(db_err(e));
                    }
                }
                connect_with(options).await.map_err(db_err)?
            }
            Err(e) => return Err(db_err(e)),
        };
        apply_schema(&next, SCHEMA).await.map_err(db_err)?;
        let old =
            std::mem::replace(&mut *self.pool.write().unwrap_or_else(|e| e.into_inner()), next);
        old.close().await;
        Ok(())
    }

    // ---- jobs ----

    async fn create_job(&self, job: JobItem) -> DatabaseResult<JobItem> {
        let cols = JobColumns::of(&job.metadata)?;
        let doc = to_json(&job)?;
        let result = sqlx::query(
            "INSERT INTO jobs (id, internal_id, job_type, status, external_id, version, created_at,
                updated_at, orchestrator_version, block_number, start_block, end_block, to_settle,
                storage_artifacts_tagged_at, doc)
             VALUES ($1::uuid, $2, $3, $4, $5, $6, to_timestamp($7), to_timestamp($8), $9, $10, $11, $12,
                $13, to_timestamp($14), $15::jsonb)
             ON CONFLICT (job_type, internal_id) DO NOTHING",
        )
        .bind(job.id.to_string())
        .bind(to_i64("internal_id", job.internal_id)?)
        .bind(job.job_type.as_ref())
        .bind(job.status.as_ref())
        .bind(job.external_id.to_string())
        .bind(job.version)
        .bind(job.created_at.timestamp())
        .bind(job.updated_at.timestamp())
        .bind(cols.orchestrator_version)
        .bind(cols.block_number)
        .bind(cols.start_block)
        .bind(cols.end_block)
        .bind(cols.to_settle)
        .bind(cols.storage_artifacts_tagged_at)
        .bind(doc)
        .execute(&self.pool())
        .await
        .map_err(|e| match e.as_database_error() {
            // Only the primary key is left to violate: the conflict target absorbs the rest.
            Some(d) if d.is_unique_violation() => {
                DatabaseError::Conflict(format!("a job with id {} already exists", job.id))
            }
            _ => db_err(e),
        })?;
        if result.rows_affected() == 0 {
            return Err(DatabaseError::ItemAlreadyExists {
                job_type: job.job_type,
                internal_id: job.internal_id,
            });
        }
        Ok(job)
    }

    async fn get_job_by_id(&self, id: Uuid) -> DatabaseResult<Option<JobItem>> {
        let mut qb = select_jobs();
        qb.push(" AND id = ").push_bind(id.to_string()).push("::uuid");
        self.fetch_job(qb).await
    }

    async fn get_job_by_internal_id_and_type(
        &self,
        internal_id: u64,
        job_type: JobType,
    ) -> DatabaseResult<Option<JobItem>> {
        let Some(internal_id) = lower_bound(internal_id) else { return Ok(None) };
        let mut qb = select_jobs();
        qb.push(" AND job_type = ").push_bind(job_type.as_ref().to_owned());
        qb.push(" AND internal_id = ").push_bind(internal_id);
        self.fetch_job(qb).await
    }

    async fn get_jobs_by_internal_ids_and_type(
        &self,
        internal_ids: &[u64],
        job_type: JobType,
    ) -> DatabaseResult<Vec<JobItem>> {
        let ids: Vec<i64> = internal_ids.iter().filter_map(|i| lower_bound(*i)).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = select_jobs();
        qb.push(" AND job_type = ").push_bind(job_type.as_ref().to_owned());
        qb.push(" AND internal_id = ANY(").push_bind(ids).push(")");
        qb.push(" ORDER BY internal_id ASC");
        self.fetch_jobs(qb).await
    }

    /// One `UPDATE … WHERE id = $ AND version = $` that sets only the fields present in
    /// `updates` (in the columns and, merged with `||`, in the stored document), increments
    /// the version and sets `updated_at`; the stored document is returned.
    async fn update_job(
        &self,
        current: &JobItem,
        updates: JobItemUpdates,
    ) -> DatabaseResult<JobItem> {
        if updates.is_empty() {
            return Err(DatabaseError::NoUpdateFound(current.id));
        }
        let now = now_secs();
        let patch = DocPatch {
            updated_at: now,
            status: updates.status,
            external_id: updates.external_id.as_ref(),
            metadata: updates.metadata.as_ref(),
        };
        let mut qb = QueryBuilder::<Postgres>::new(
            "UPDATE jobs SET version = version + 1, updated_at = to_timestamp(",
        );
        qb.push_bind(now.timestamp()).push(")");
        if let Some(status) = updates.status {
            qb.push(", status = ").push_bind(status.as_ref().to_owned());
        }
        if let Some(external_id) = &updates.external_id {
            qb.push(", external_id = ").push_bind(external_id.to_string());
        }
        if let Some(metadata) = &updates.metadata {
            let cols = JobColumns::of(metadata)?;
            qb.push(", orchestrator_version = ").push_bind(cols.orchestrator_version);
            qb.push(", block_number = ").push_bind(cols.block_number);
            qb.push(", start_block = ").push_bind(cols.start_block);
            qb.push(", end_block = ").push_bind(cols.end_block);
            qb.push(", to_settle = ").push_bind(cols.to_settle);
            qb.push(", storage_artifacts_tagged_at = to_timestamp(")
                .push_bind(cols.storage_artifacts_tagged_at)
                .push(")");
        }
        // On the right-hand side of SET every column is its value before the update.
        qb.push(", doc = doc || ").push_bind(to_json(&patch)?);
        qb.push("::jsonb || jsonb_build_object('version', version + 1)");
        qb.push(" WHERE id = ").push_bind(current.id.to_string()).push("::uuid");
        qb.push(" AND version = ").push_bind(current.version);
        qb.push(" RETURNING ").push(DOC_COLUMNS);
        let row = qb.build().fetch_optional(&self.pool()).await.map_err(db_err)?;
        match row {
            Some(row) => decode_doc(&row, "job"),
            None => Err(DatabaseError::UpdateFailed { id: current.id, version: current.version }),
        }
    }

    async fn get_latest_job_by_type(
        &self,
        job_type: JobType,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<JobItem>> {
        let mut qb = select_jobs();
        qb.push(" AND job_type = ").push_bind(job_type.as_ref().to_owned());
        push_version(&mut qb, orchestrator_version);
        qb.push(" ORDER BY internal_id DESC LIMIT 1");
        self.fetch_job(qb).await
    }

    async fn get_latest_job_by_type_and_status(
        &self,
        job_type: JobType,
        status: JobStatus,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<JobItem>> {
        let mut qb = select_jobs();
        qb.push(" AND job_type = ").push_bind(job_type.as_ref().to_owned());
        qb.push(" AND status = ").push_bind(status.as_ref().to_owned());
        push_version(&mut qb, orchestrator_version);
        qb.push(" ORDER BY internal_id DESC LIMIT 1");
        self.fetch_job(qb).await
    }

    async fn get_jobs_without_successor(
        &self,
        job_a_type: JobType,
        job_a_status: JobStatus,
        job_b_type: JobType,
        orchestrator_version: Option<&str>,
        min_internal_id: u64,
    ) -> DatabaseResult<Vec<JobItem>> {
        let Some(min) = lower_bound(min_internal_id) else { return Ok(Vec::new()) };
        let mut qb = select_jobs();
        qb.push(" AND job_type = ").push_bind(job_a_type.as_ref().to_owned());
        qb.push(" AND status = ").push_bind(job_a_status.as_ref().to_owned());
        qb.push(" AND internal_id >= ").push_bind(min);
        push_version(&mut qb, orchestrator_version);
        qb.push(" AND NOT EXISTS (SELECT 1 FROM jobs b WHERE b.internal_id = jobs.internal_id AND b.job_type = ");
        qb.push_bind(job_b_type.as_ref().to_owned());
        qb.push(") ORDER BY internal_id ASC");
        self.fetch_jobs(qb).await
    }

    async fn get_jobs_after_internal_id_by_job_type(
        &self,
        job_type: JobType,
        status: JobStatus,
        internal_id: u64,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Vec<JobItem>> {
        // No stored id exceeds i64::MAX, so "after" anything at or above it is empty.
        let Some(after) = lower_bound(internal_id).filter(|v| *v < i64::MAX) else {
            return Ok(Vec::new());
        };
        let mut qb = select_jobs();
        qb.push(" AND job_type = ").push_bind(job_type.as_ref().to_owned());
        qb.push(" AND status = ").push_bind(status.as_ref().to_owned());
        qb.push(" AND internal_id > ").push_bind(after);
        push_version(&mut qb, orchestrator_version);
        qb.push(" ORDER BY internal_id ASC");
        self.fetch_jobs(qb).await
    }

    async fn get_jobs_by_types_and_statuses(
        &self,
        job_types: &[JobType],
        statuses: &[JobStatus],
        limit: Option<u64>,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Vec<JobItem>> {
        let mut qb = select_jobs();
        if !job_types.is_empty() {
            let types: Vec<String> = job_types.iter().map(|t| t.as_ref().to_owned()).collect();
            qb.push(" AND job_type = ANY(").push_bind(types).push(")");
        }
        if !statuses.is_empty() {
            let statuses: Vec<String> = statuses.iter().map(|s| s.as_ref().to_owned()).collect();
            qb.push(" AND status = ANY(").push_bind(statuses).push(")");
        }
        push_version(&mut qb, orchestrator_version);
        qb.push(" ORDER BY internal_id ASC, job_type ASC");
        push_limit(&mut qb, limit);
        self.fetch_jobs(qb).await
    }

    async fn get_jobs_without_storage_artifacts_tagged(
        &self,
        limit: Option<u64>,
    ) -> DatabaseResult<Vec<JobItem>> {
        let mut qb = select_jobs();
        qb.push(" AND job_type = ").push_bind(JobType::StateTransition.as_ref().to_owned());
        qb.push(" AND status = ").push_bind(JobStatus::Completed.as_ref().to_owned());
        qb.push(" AND storage_artifacts_tagged_at IS NULL ORDER BY internal_id ASC");
        push_limit(&mut qb, limit);
        self.fetch_jobs(qb).await
    }

    async fn get_jobs_between_internal_ids(
        &self,
        job_type: JobType,
        status: JobStatus,
        gte: u64,
        lte: u64,
    ) -> DatabaseResult<Vec<JobItem>> {
        let Some(gte) = lower_bound(gte) else { return Ok(Vec::new()) };
        let mut qb = select_jobs();
        qb.push(" AND job_type = ").push_bind(job_type.as_ref().to_owned());
        qb.push(" AND status = ").push_bind(status.as_ref().to_owned());
        qb.push(" AND internal_id >= ").push_bind(gte);
        qb.push(" AND internal_id <= ").push_bind(upper_bound(lte));
        qb.push(" ORDER BY internal_id ASC");
        self.fetch_jobs(qb).await
    }

    async fn get_oldest_job_by_type_excluding_statuses(
        &self,
        job_type: JobType,
        statuses: &[JobStatus],
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<JobItem>> {
        let mut qb = select_jobs();
        qb.push(" AND job_type = ").push_bind(job_type.as_ref().to_owned());
        if !statuses.is_empty() {
            let statuses: Vec<String> = statuses.iter().map(|s| s.as_ref().to_owned()).collect();
            qb.push(" AND NOT (status = ANY(").push_bind(statuses).push("))");
        }
        push_version(&mut qb, orchestrator_version);
        qb.push(" ORDER BY internal_id ASC LIMIT 1");
        self.fetch_job(qb).await
    }

    /// Aggregator jobs carry no block range in their metadata: they are matched through the
    /// aggregator batch (index = internal id) whose range contains the block.
    async fn get_jobs_by_block_number(&self, block_number: u64) -> DatabaseResult<Vec<JobItem>> {
        let Some(block) = lower_bound(block_number) else { return Ok(Vec::new()) };
        let types: Vec<String> =
            BLOCK_NUMBER_JOB_TYPES.iter().map(|t| t.as_ref().to_owned()).collect();
        let mut qb = select_jobs();
        qb.push(" AND ((job_type = ANY(").push_bind(types);
        qb.push(") AND block_number = ").push_bind(block);
        qb.push(") OR (job_type = ").push_bind(JobType::StateTransition.as_ref().to_owned());
        qb.push(" AND to_settle = ").push_bind(block);
        qb.push(") OR (job_type = ").push_bind(JobType::SnosRun.as_ref().to_owned());
        qb.push(" AND start_block <= ").push_bind(block);
        qb.push(" AND end_block >= ").push_bind(block);
        qb.push(") OR (job_type = ").push_bind(JobType::Aggregator.as_ref().to_owned());
        qb.push(" AND internal_id IN (SELECT idx FROM aggregator_batches WHERE start_block <= ");
        qb.push_bind(block);
        qb.push(" AND end_block >= ").push_bind(block);
        qb.push("))) ORDER BY job_type ASC, internal_id ASC");
        self.fetch_jobs(qb).await
    }

    async fn get_jobs_by_status(&self, status: JobStatus) -> DatabaseResult<Vec<JobItem>> {
        let mut qb = select_jobs();
        qb.push(" AND status = ").push_bind(status.as_ref().to_owned());
        qb.push(" ORDER BY internal_id ASC, job_type ASC");
        self.fetch_jobs(qb).await
    }

    // ---- SNOS batches ----

    async fn get_latest_snos_batch(&self) -> DatabaseResult<Option<SnosBatch>> {
        let mut qb = select_batches::<SnosBatch>();
        qb.push(" ORDER BY idx DESC LIMIT 1");
        self.fetch_batch(qb).await
    }

    async fn get_snos_batches(&self, query: SnosBatchQuery) -> DatabaseResult<Vec<SnosBatch>> {
        self.query_batches(&query).await
    }

    async fn update_snos_batch_status_by_index(
        &self,
        index: u64,
        status: SnosBatchStatus,
    ) -> DatabaseResult<SnosBatch> {
        self.update_batch_by_index(index, move |b: &mut SnosBatch| b.status = status).await
    }

    async fn get_snos_batches_without_jobs(
        &self,
        status: SnosBatchStatus,
        limit: u64,
        orchestrator_version: Option<&str>,
        min_index: u64,
    ) -> DatabaseResult<Vec<SnosBatch>> {
        let Some(min) = lower_bound(min_index) else { return Ok(Vec::new()) };
        let mut qb = select_batches::<SnosBatch>();
        qb.push(" AND status = ").push_bind(status.as_ref().to_owned());
        qb.push(" AND idx >= ").push_bind(min);
        if let Some(version) = orchestrator_version {
            qb.push(" AND orchestrator_version = ").push_bind(version.to_owned());
        }
        qb.push(" AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.internal_id = snos_batches.idx AND j.job_type = ");
        qb.push_bind(JobType::SnosRun.as_ref().to_owned());
        qb.push(") ORDER BY idx ASC");
        push_limit(&mut qb, Some(limit));
        self.fetch_batches(qb).await
    }

    async fn update_or_create_snos_batch(&self, batch: &SnosBatch) -> DatabaseResult<SnosBatch> {
        self.upsert_batch(batch).await
    }

    async fn create_snos_batch(&self, batch: SnosBatch) -> DatabaseResult<SnosBatch> {
        self.create_batch(batch).await
    }

    async fn update_snos_batch(
        &self,
        index: u64,
        updates: SnosBatchUpdates,
    ) -> DatabaseResult<SnosBatch> {
        self.update_batch_by_index(index, move |b: &mut SnosBatch| {
            if let Some(end_block) = updates.end_block {
                b.end_block = end_block;
            }
            if let Some(status) = updates.status {
                b.status = status;
            }
        })
        .await
    }

    async fn get_snos_batches_by_aggregator_index(
        &self,
        aggregator_index: u64,
    ) -> DatabaseResult<Vec<SnosBatch>> {
        let Some(agg) = lower_bound(aggregator_index) else { return Ok(Vec::new()) };
        let mut qb = select_batches::<SnosBatch>();
        qb.push(" AND aggregator_batch_index = ").push_bind(agg);
        qb.push(" ORDER BY idx ASC");
        self.fetch_batches(qb).await
    }

    async fn get_start_snos_batch_for_aggregator(
        &self,
        aggregator_index: u64,
    ) -> DatabaseResult<Option<SnosBatch>> {
        let Some(agg) = lower_bound(aggregator_index) else { return Ok(None) };
        let mut qb = select_batches::<SnosBatch>();
        qb.push(" AND aggregator_batch_index = ").push_bind(agg);
        qb.push(" ORDER BY idx ASC LIMIT 1");
        self.fetch_batch(qb).await
    }

    // ---- aggregator batches ----

    async fn get_latest_aggregator_batch(&self) -> DatabaseResult<Option<AggregatorBatch>> {
        let mut qb = select_batches::<AggregatorBatch>();
        qb.push(" ORDER BY idx DESC LIMIT 1");
        self.fetch_batch(qb).await
    }

    async fn get_oldest_aggregator_batch(
        &self,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<AggregatorBatch>> {
        let mut qb = select_batches::<AggregatorBatch>();
        if let Some(version) = orchestrator_version {
            qb.push(" AND orchestrator_version = ").push_bind(version.to_owned());
        }
        qb.push(" ORDER BY idx ASC LIMIT 1");
        self.fetch_batch(qb).await
    }

    async fn get_aggregator_batches(
        &self,
        query: AggregatorBatchQuery,
    ) -> DatabaseResult<Vec<AggregatorBatch>> {
        self.query_batches(&query).await
    }

    async fn update_aggregator_batch_status_by_index(
        &self,
        index: u64,
        status: AggregatorBatchStatus,
    ) -> DatabaseResult<AggregatorBatch> {
        self.update_batch_by_index(index, move |b: &mut AggregatorBatch| b.status = status).await
    }

    async fn update_aggregator_batch(
        &self,
        index: u64,
        updates: AggregatorBatchUpdates,
    ) -> DatabaseResult<AggregatorBatch> {
        self.update_batch_by_index(index, move |b: &mut AggregatorBatch| {
            if let Some(end_block) = updates.end_block {
                b.end_block = end_block;
            }
            if let Some(status) = updates.status {
                b.status = status;
            }
            if let Some(bucket_id) = updates.bucket_id {
                b.bucket_id = Some(bucket_id);
            }
        })
        .await
    }

    async fn update_or_create_aggregator_batch(
        &self,
        batch: &AggregatorBatch,
    ) -> DatabaseResult<AggregatorBatch> {
        self.upsert_batch(batch).await
    }

    async fn create_aggregator_batch(
        &self,
        batch: AggregatorBatch,
    ) -> DatabaseResult<AggregatorBatch> {
        self.create_batch(batch).await
    }

    async fn get_aggregator_batch_for_block(
        &self,
        block_number: u64,
    ) -> DatabaseResult<Option<AggregatorBatch>> {
        let Some(block) = lower_bound(block_number) else { return Ok(None) };
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT b.id::text AS id, b.doc::text AS doc FROM block_batch_lookups l \
             JOIN aggregator_batches b ON b.idx = l.aggregator_batch_index WHERE l.block_number = ",
        );
        qb.push_bind(block);
        self.fetch_batch(qb).await
    }

    // ---- lookups ----

    async fn get_block_batch_lookup(
        &self,
        block_number: u64,
    ) -> DatabaseResult<Option<BlockBatchLookup>> {
        let Some(block) = lower_bound(block_number) else { return Ok(None) };
        let row = sqlx::query(
            "SELECT snos_batch_index, aggregator_batch_index,
                extract(epoch FROM created_at)::bigint AS created_at,
                extract(epoch FROM updated_at)::bigint AS updated_at
             FROM block_batch_lookups WHERE block_number = $1",
        )
        .bind(block)
        .fetch_optional(&self.pool())
        .await
        .map_err(db_err)?;
        row.map(|row| decode_lookup_row(&row, block_number)).transpose()
    }
}

// ---- jobs ----

/// The top-level fields `update_job` merges into the stored document.
#[derive(Serialize)]
struct DocPatch<'a> {
    updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<JobStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a crate::types::jobs::ExternalId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a crate::types::jobs::JobMetadata>,
}

/// `SELECT id, doc FROM jobs WHERE true`, to be extended with `AND …` filters.
fn select_jobs() -> QueryBuilder<Postgres> {
    QueryBuilder::new(format!("SELECT {DOC_COLUMNS} FROM jobs WHERE true"))
}

fn push_version(qb: &mut QueryBuilder<Postgres>, version: Option<&str>) {
    if let Some(version) = version {
        qb.push(" AND orchestrator_version = ").push_bind(version.to_owned());
    }
}

fn push_limit(qb: &mut QueryBuilder<Postgres>, limit: Option<u64>) {
    if let Some(limit) = limit {
        qb.push(" LIMIT ").push_bind(upper_bound(limit));
    }
}

// ---- batches ----

fn select_batches<B: BatchRecord>() -> QueryBuilder<Postgres> {
    QueryBuilder::new(format!("SELECT {DOC_COLUMNS} FROM {} WHERE true", B::TABLE))
}

enum Key<'a> {
    Id(&'a str),
    Index(i64),
}

/// Reads a batch and locks its row until the transaction ends.
async fn load_batch_for_update<B: BatchRecord>(
    conn: &mut PgConnection,
    column: &'static str,
    key: Key<'_>,
) -> DatabaseResult<Option<B>> {
    let row = match key {
        Key::Id(id) => {
            let sql = format!(
                "SELECT {DOC_COLUMNS} FROM {} WHERE {column} = $1::uuid FOR UPDATE",
                B::TABLE
            );
            sqlx::query(AssertSqlSafe(sql)).bind(id.to_owned()).fetch_optional(&mut *conn).await
        }
        Key::Index(i) => {
            let sql =
                format!("SELECT {DOC_COLUMNS} FROM {} WHERE {column} = $1 FOR UPDATE", B::TABLE);
            sqlx::query(AssertSqlSafe(sql)).bind(i).fetch_optional(&mut *conn).await
        }
    }
    .map_err(db_err)?;
    row.map(|r| decode_doc(&r, B::WHAT)).transpose()
}

fn conflict_or<B: BatchRecord>(
    row: &BatchColumns,
) -> impl FnOnce(sqlx::Error) -> DatabaseError + '_ {
    move |e| match e.as_database_error() {
        Some(d) if d.is_unique_violation() => DatabaseError::Conflict(format!(
            "{} {} ({}..={}): {}",
            B::WHAT,
            row.index,
            row.start,
            row.end,
            d.message()
        )),
        _ => db_err(e),
    }
}

async fn insert_batch<B: BatchRecord>(
    conn: &mut PgConnection,
    row: &BatchColumns,
) -> DatabaseResult<()> {
    let sql = format!(
        "INSERT INTO {} (id, idx, aggregator_batch_index, status, orchestrator_version, start_block,
            end_block, created_at, updated_at, doc)
         VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, to_timestamp($8), to_timestamp($9), $10::jsonb)",
        B::TABLE
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(row.id.clone())
        .bind(row.index)
        .bind(row.aggregator_batch_index)
        .bind(row.status.clone())
        .bind(row.orchestrator_version.clone())
        .bind(row.start)
        .bind(row.end)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.doc.clone())
        .execute(&mut *conn)
        .await
        .map_err(conflict_or::<B>(row))?;
    Ok(())
}

async fn replace_batch<B: BatchRecord>(
    conn: &mut PgConnection,
    row: &BatchColumns,
) -> DatabaseResult<()> {
    let sql = format!(
        "UPDATE {} SET idx = $1, aggregator_batch_index = $2, status = $3, orchestrator_version = $4,
            start_block = $5, end_block = $6, created_at = to_timestamp($7), updated_at = to_timestamp($8),
            doc = $9::jsonb
         WHERE id = $10::uuid",
        B::TABLE
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(row.index)
        .bind(row.aggregator_batch_index)
        .bind(row.status.clone())
        .bind(row.orchestrator_version.clone())
        .bind(row.start)
        .bind(row.end)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.doc.clone())
        .bind(row.id.clone())
        .execute(&mut *conn)
        .await
        .map_err(conflict_or::<B>(row))?;
    Ok(())
}

/// Points the lookups of the blocks of `new` at its index and unsets the index on blocks the
/// batch (as `old`) covered but no longer does. Runs inside the batch write's transaction;
/// rows are written in ascending block order, so concurrent syncs cannot deadlock each other.
async fn sync_lookups<B: BatchRecord>(
    conn: &mut PgConnection,
    old: Option<&BatchColumns>,
    new: &BatchColumns,
) -> DatabaseResult<()> {
    let col = B::LOOKUP_COLUMN;
    let now = now_secs().timestamp();
    let fresh = lookup_ranges_to_write(old.map(BatchSpan::from), new.into());
    if let Some(old) = old {
        let clear = format!(
            "UPDATE block_batch_lookups SET {col} = NULL, updated_at = to_timestamp($1)
             WHERE {col} = $2 AND ($2 <> $3 OR block_number < $4 OR block_number > $5)"
        );
        sqlx::query(AssertSqlSafe(clear))
            .bind(now)
            .bind(old.index)
            .bind(new.index)
            .bind(new.start)
            .bind(new.end)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let upsert = format!(
        "INSERT INTO block_batch_lookups (block_number, {col}, created_at, updated_at)
         SELECT b, $3, to_timestamp($4), to_timestamp($4) FROM generate_series($1::bigint, $2::bigint) AS b
         ON CONFLICT (block_number) DO UPDATE SET {col} = EXCLUDED.{col}, updated_at = EXCLUDED.updated_at"
    );
    for (start, end) in fresh {
        sqlx::query(AssertSqlSafe(upsert.clone()))
            .bind(start)
            .bind(end)
            .bind(new.index)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

fn decode_lookup_row(row: &PgRow, block_number: u64) -> DatabaseResult<BlockBatchLookup> {
    let corrupt = |reason: String| DatabaseError::Corrupt {
        what: format!("block batch lookup {block_number}"),
        reason,
    };
    let get_index = |col: &str| -> DatabaseResult<Option<u64>> {
        let v: Option<i64> = row.try_get(col).map_err(|e| corrupt(e.to_string()))?;
        v.map(|v| u64::try_from(v).map_err(|_| corrupt(format!("negative {col} {v}")))).transpose()
    };
    let get_time = |col: &str| -> DatabaseResult<DateTime<Utc>> {
        let v: i64 = row.try_get(col).map_err(|e| corrupt(e.to_string()))?;
        DateTime::from_timestamp(v, 0).ok_or_else(|| corrupt(format!("{col} {v} out of range")))
    };
    Ok(BlockBatchLookup {
        block_number,
        snos_batch_index: get_index("snos_batch_index")?,
        aggregator_batch_index: get_index("aggregator_batch_index")?,
        created_at: get_time("created_at")?,
        updated_at: get_time("updated_at")?,
    })
}

// ---- shared helpers ----

/// Decodes the `doc` column of a row whose `id` column names the record in errors.
fn decode_doc<T: serde::de::DeserializeOwned>(row: &PgRow, kind: &str) -> DatabaseResult<T> {
    let id: String = row.try_get("id").unwrap_or_else(|_| "?".to_owned());
    let doc: String = row.try_get("doc").map_err(|e| DatabaseError::Corrupt {
        what: format!("{kind} {id}"),
        reason: e.to_string(),
    })?;
    decode_json(&doc, kind, &id)
}

/// Maps a sqlx error: connection / pool / serialization failures → `Unavailable`
/// (retryable), decoding → `Corrupt`, anything else → `Other`.
pub(crate) fn db_err(e: sqlx::Error) -> DatabaseError {
    if is_transient(&e) {
        return DatabaseError::Unavailable(Box::new(e));
    }
    match e {
        sqlx::Error::ColumnDecode { index, source } => {
            DatabaseError::Corrupt { what: format!("column {index}"), reason: source.to_string() }
        }
        sqlx::Error::Decode(source) => {
            DatabaseError::Corrupt { what: "row".to_owned(), reason: source.to_string() }
        }
        e => DatabaseError::other(e),
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, sync::Arc};

    use super::*;
    use crate::{
        core::client::postgres::test_support::TestDb,
        types::jobs::{JobSpecificMetadata, SnosMetadata},
    };

    /// A fresh database (dropped with the returned guard); `None` when skipped.
    async fn fresh_db() -> Option<(Arc<PostgresDatabase>, TestDb)> {
        let test_db = TestDb::create().await?;
        let pool =
            connect_with(test_db.options.clone()).await.expect("connect to the test database");
        let db = PostgresDatabase::open(pool).await.expect("create the schema");
        Some((Arc::new(db), test_db))
    }

    mod conformance {
        // Each test returns early (after printing "skipped: no PostgreSQL") when the server is
        // unreachable and ORCH_SKIP_POSTGRES_TESTS=1; otherwise an unreachable server fails it.
        crate::database_conformance_tests!({
            let Some((db, guard)) = super::fresh_db().await else { return };
            let db: std::sync::Arc<dyn crate::core::client::DatabaseClient> = db;
            std::future::ready((db, guard))
        });
    }

    fn snos_job(internal_id: u64) -> JobItem {
        JobItem::new(
            JobType::SnosRun,
            internal_id,
            JobSpecificMetadata::Snos(SnosMetadata {
                snos_batch_index: internal_id,
                ..Default::default()
            }),
        )
    }

    /// Two pools on one database behave like two processes: many racing updates, none lost,
    /// and every version won by exactly one writer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_pools_racing_updates_lose_nothing() {
        let Some(test_db) = TestDb::create().await else { return };
        let open = || async {
            PostgresDatabase::open(connect_with(test_db.options.clone()).await.expect("pool")).await
        };
        let a = Arc::new(open().await.expect("a"));
        let b = Arc::new(open().await.expect("b"));
        let job = a.create_job(snos_job(1)).await.expect("create");
        const WRITERS: usize = 4;
        const EACH: u64 = 25;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let db = if w % 2 == 0 { a.clone() } else { b.clone() };
                let id = job.id;
                tokio::spawn(async move {
                    let mut won = Vec::new();
                    let mut lost = 0u64;
                    while (won.len() as u64) < EACH {
                        let current = db.get_job_by_id(id).await.expect("get").expect("exists");
                        let mut metadata = current.metadata.clone();
                        metadata.common.process_attempt_no += 1;
                        match db
                            .update_job(&current, JobItemUpdates::new().metadata(metadata))
                            .await
                        {
                            Ok(next) => won.push(next.version),
                            Err(DatabaseError::UpdateFailed { .. }) => lost += 1,
                            Err(e) => panic!("writer {w}: {e:?}"),
                        }
                    }
                    (won, lost)
                })
            })
            .collect();
        let mut versions = BTreeSet::new();
        let mut conflicts = 0;
        for w in writers {
            let (won, lost) = w.await.expect("writer panicked");
            conflicts += lost;
            for v in won {
                assert!(versions.insert(v), "version {v} won twice");
            }
        }
        let total = WRITERS as u64 * EACH;
        let stored = b.get_job_by_id(job.id).await.expect("get").expect("exists");
        assert_eq!(stored.version as u64, total);
        assert_eq!(stored.metadata.common.process_attempt_no, total, "an update was lost");
        assert_eq!(versions, (1..=total as i32).collect::<BTreeSet<_>>());
        assert!(conflicts > 0, "writers never raced; the test proves nothing");
        a.disconnect().await.expect("disconnect");
        b.disconnect().await.expect("disconnect");
    }

    /// Two pools creating the same jobs and growing the same batch concurrently: each job
    /// exists once, and the lookups end consistent with the batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_pools_racing_creates_and_batch_writes() {
        let Some(test_db) = TestDb::create().await else { return };
        let open = || async {
            PostgresDatabase::open(connect_with(test_db.options.clone()).await.expect("pool")).await
        };
        let (a, b) = (Arc::new(open().await.expect("a")), Arc::new(open().await.expect("b")));
        a.create_snos_batch(SnosBatch::new(1, None, 100, "0.14.2", Default::default()))
            .await
            .expect("batch");
        let racers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|db| {
                tokio::spawn(async move {
                    let mut created = 0;
                    for i in 0..20u64 {
                        match db.create_job(snos_job(i)).await {
                            Ok(_) => created += 1,
                            Err(DatabaseError::ItemAlreadyExists { .. }) => {}
                            Err(e) => panic!("{e:?}"),
                        }
                        // Grow the batch from whatever the other writer left.
                        let current =
                            db.get_latest_snos_batch().await.expect("get").expect("exists");
                        let updates = SnosBatchUpdates {
                            end_block: Some(current.end_block + 1),
                            status: None,
                        };
                        db.update_snos_batch(1, updates).await.expect("grow");
                    }
                    created
                })
            })
            .collect();
        let mut created = 0;
        for r in racers {
            created += r.await.expect("racer panicked");
        }
        assert_eq!(created, 20, "every job created exactly once");
        // Grows raced with absolute end blocks, so the final end is whichever landed last; the
        // lookups must agree with it exactly.
        let batch = a.get_latest_snos_batch().await.expect("get").expect("exists");
        assert!(batch.end_block > 100, "{batch:?}");
        assert_eq!(batch.num_blocks, batch.end_block - 99);
        for block in 100..=140 {
            let l = b.get_block_batch_lookup(block).await.expect("lookup");
            let expected = (block <= batch.end_block).then_some(1);
            assert_eq!(l.and_then(|l| l.snos_batch_index), expected, "block {block}");
        }
    }

    #[tokio::test]
    async fn values_above_i64_max_are_refused_on_write() {
        let Some((db, _guard)) = fresh_db().await else { return };
        let err = db.create_job(snos_job(u64::MAX)).await.expect_err("too big");
        assert!(err.to_string().contains("exceeds"), "{err}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn an_undecodable_document_is_corrupt_and_named() {
        let Some((db, _guard)) = fresh_db().await else { return };
        let job = db.create_job(snos_job(1)).await.expect("create");
        sqlx::query("UPDATE jobs SET doc = '{\"not\": \"a job\"}'")
            .execute(&db.pool())
            .await
            .expect("break");
        let err = db.get_job_by_id(job.id).await.expect_err("corrupt");
        assert!(
            matches!(&err, DatabaseError::Corrupt { what, .. } if what.contains(&job.id.to_string())),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn init_is_idempotent_and_a_closed_pool_is_unavailable() {
        let Some((db, _guard)) = fresh_db().await else { return };
        let job = db.create_job(snos_job(1)).await.expect("create");
        // Concurrent inits (several processes starting together) do not trip over each other.
        let (x, y) = tokio::join!(db.init(), db.init());
        x.expect("init again");
        y.expect("init again");
        assert_eq!(db.get_job_by_id(job.id).await.expect("get"), Some(job));
        db.disconnect().await.expect("disconnect");
        assert!(db.health_check().await.expect_err("closed").is_retryable());
    }

    #[tokio::test]
    async fn switch_database_creates_and_uses_a_sibling_database() {
        let Some((db, guard)) = fresh_db().await else { return };
        let job = db.create_job(snos_job(1)).await.expect("create");
        let other = format!("{}_other", guard.name);
        db.switch_database(&other).await.expect("switch");
        assert_eq!(db.get_job_by_id(job.id).await.expect("get"), None);
        db.create_job(snos_job(1)).await.expect("same key in the other database");
        assert!(db.switch_database("bad name; DROP").await.is_err());
        db.switch_database(&guard.name).await.expect("switch back");
        assert_eq!(db.get_job_by_id(job.id).await.expect("get"), Some(job));
        let admin = connect_with(guard.options.clone()).await.expect("admin");
        db.disconnect().await.expect("disconnect");
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE \"{other}\" WITH (FORCE)")))
            .execute(&admin)
            .await
            .expect("drop the sibling");
    }
}
