//! [`DatabaseClient`] on a SQL database, for every [`Dialect`].
//!
//! Every record is stored as its JSON document (`doc`, the source of truth when reading) plus
//! the columns the queries filter and sort on, denormalised from the document at each write
//! (see `core::client::db_common`):
//!
//! - `jobs`: `id` primary key, `UNIQUE (job_type, internal_id)`;
//! - `snos_batches` / `aggregator_batches`: `idx`, `start_block` and `end_block` each unique;
//! - `block_batch_lookups`: one row per block, `block_number` primary key;
//! - `trigger_pauses`: one row per paused trigger, `trigger_name` primary key (no document).
//!
//! Integers are 64-bit: a `u64` above `i64::MAX` is refused on write and, in a filter, matches
//! nothing (or, as an upper bound, everything).
//!
//! Several processes may share one database:
//! - `create_job` is one `INSERT … ON CONFLICT (job_type, internal_id) DO NOTHING`;
//! - `update_job` is one `UPDATE … WHERE id = ? AND version = ? RETURNING`, so of several
//!   writers holding one version exactly one matches a row;
//! - a batch write and its block lookup sync run in one transaction ([`Dialect::BEGIN`]) that
//!   reads the batch row first ([`Dialect::FOR_UPDATE`]), so a read-modify-write never loses a
//!   concurrent one and a crash leaves both or neither; lookup rows are written in ascending
//!   block order, so concurrent syncs cannot deadlock each other.

use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::{pool::PoolConnection, Pool, Transaction};
use strum::IntoEnumIterator;

use super::{
    dialect::{Dialect, List, Sql, Value},
    schema,
};
use crate::{
    core::client::{
        database::{
            BatchStore, BatchWrite, DatabaseClient, DatabaseError, DatabaseResult, JobQuery,
            TriggerPause, WithoutJobsQuery, WithoutSuccessorQuery,
        },
        db_common::{
            decode_json, lookup_ranges_to_write, lower_bound, names, to_i64, to_json, upper_bound,
            BatchColumns, BatchRecord, BatchSpan, JobColumns, JobFilter,
        },
    },
    types::{
        batch::{BatchQuery, BlockBatchLookup, SnosBatch, SortOrder},
        jobs::{now_ms, now_secs, JobItem, JobItemUpdates, JobStatus, JobType},
        queue::WorkerTriggerType,
    },
};

/// The stored columns of a batch besides `id`, in the order of [`batch_values`].
const BATCH_COLUMNS: [&str; 9] = [
    "idx",
    "aggregator_batch_index",
    "status",
    "orchestrator_version",
    "start_block",
    "end_block",
    "created_at",
    "updated_at",
    "doc",
];

/// The job and batch database on a SQL database of dialect `D`.
///
/// Build it with [`SqlDatabase::open`] over a pool (or [`SqlDatabase::new`], then
/// [`SqlDatabase::init`]).
#[derive(Debug)]
pub struct SqlDatabase<D: sqlx::Database> {
    /// The current pool; replaced by [`DatabaseClient::switch_database`].
    pool: RwLock<Pool<D>>,
}

/// The columns of a `jobs` row, in the order of [`job_row`].
pub const JOB_COLUMNS: &str = "id, internal_id, job_type, status, external_id, version, \
     created_at, updated_at, orchestrator_version, block_number, start_block, end_block, \
     to_settle, storage_artifacts_tagged_at, doc";

/// The values of `job`'s `jobs` row, in the order of [`JOB_COLUMNS`] (what `insert_job` writes;
/// the scale bench seeds with it).
///
/// # Errors
/// A number out of the column's range, or a document that does not serialise.
pub fn job_row(job: &JobItem) -> DatabaseResult<Vec<Value>> {
    let cols = JobColumns::of(&job.metadata)?;
    Ok(vec![
        Value::Uuid(job.id),
        to_i64("internal_id", job.internal_id)?.into(),
        job.job_type.as_ref().into(),
        job.status.as_ref().into(),
        job.external_id.to_string().into(),
        job.version.into(),
        Value::Time(Some(job.created_at.timestamp())),
        Value::Time(Some(job.updated_at.timestamp())),
        cols.orchestrator_version.into(),
        cols.block_number.into(),
        cols.start_block.into(),
        cols.end_block.into(),
        cols.to_settle.into(),
        Value::Time(cols.storage_artifacts_tagged_at),
        Value::Json(to_json(job)?),
    ])
}

impl<D: Dialect> SqlDatabase<D> {
    /// Wraps a pool; call [`Self::init`] before use.
    pub fn new(pool: Pool<D>) -> Self {
        Self { pool: RwLock::new(pool) }
    }

    /// Wraps a pool and creates the tables.
    ///
    /// # Errors
    /// When the schema cannot be created (see [`Self::init`]).
    pub async fn open(pool: Pool<D>) -> DatabaseResult<Self> {
        let db = Self::new(pool);
        db.init().await?;
        Ok(db)
    }

    /// Creates the tables and indexes if they do not exist; safe on every start, also from
    /// several processes at once.
    ///
    /// # Errors
    /// `Unavailable` when the database is busy or unreachable, `Other` when the schema cannot
    /// be applied.
    pub async fn init(&self) -> DatabaseResult<()> {
        D::apply_schema(&self.pool(), schema::database(&D::TYPES)).await.map_err(db_err::<D>)
    }

    /// The current pool (cheap clone of a shared handle).
    pub fn pool(&self) -> Pool<D> {
        // A poisoned lock only means another thread panicked while swapping the handle; the
        // handle itself is always valid.
        self.pool.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn conn(&self) -> DatabaseResult<PoolConnection<D>> {
        self.pool().acquire().await.map_err(db_err::<D>)
    }

    /// A transaction for a batch write; rolled back if dropped before its commit.
    async fn begin(&self) -> DatabaseResult<Transaction<'static, D>> {
        self.pool().begin_with(D::BEGIN).await.map_err(db_err::<D>)
    }

    /// Runs `q` and decodes the `doc` of each row as a `kind`.
    async fn fetch_docs<T: DeserializeOwned>(
        &self,
        q: Sql<D>,
        kind: &str,
    ) -> DatabaseResult<Vec<T>> {
        let rows = q.fetch(&mut *self.conn().await?).await.map_err(db_err::<D>)?;
        rows.iter().map(|row| decode_doc::<D, T>(row, kind)).collect()
    }
}

#[async_trait]
impl<D: Dialect, B: BatchRecord> BatchStore<B> for SqlDatabase<D> {
    async fn get_batches(&self, query: BatchQuery<B::Status>) -> DatabaseResult<Vec<B>> {
        let mut q = select::<D>(B::TABLE);
        if !query.indexes.is_empty() {
            let indexes: Vec<i64> = query.indexes.iter().filter_map(|i| lower_bound(*i)).collect();
            if indexes.is_empty() {
                return Ok(Vec::new());
            }
            q.and_in("idx", List::Ints(indexes), false);
        }
        if !query.statuses.is_empty() {
            q.and_in("status", List::Texts(names(&query.statuses)), false);
        }
        if let Some(version) = &query.orchestrator_version {
            q.push(" AND orchestrator_version = ").bind(version.as_str());
        }
        q.push(match query.sort {
            SortOrder::Ascending => " ORDER BY idx ASC",
            SortOrder::Descending => " ORDER BY idx DESC",
        });
        q.limit(query.limit.map(upper_bound));
        self.fetch_docs(q, B::WHAT).await
    }

    /// Writes the batch and syncs its lookups, in one transaction.
    async fn write_batch(&self, batch: &B, mode: BatchWrite) -> DatabaseResult<B> {
        let (batch, row) = batch.prepared(mode)?;
        let mut tx = self.begin().await?;
        let old = match mode {
            BatchWrite::Create => None,
            BatchWrite::Upsert => {
                load_batch::<D, B>(&mut tx, "id", Value::Uuid(batch.id())).await?
            }
        };
        let old_row = old.as_ref().map(BatchColumns::of).transpose()?;
        put_batch::<D, B>(&mut tx, &row, old_row.is_some()).await?;
        sync_lookups::<D, B>(&mut tx, old_row.as_ref(), &row).await?;
        tx.commit().await.map_err(db_err::<D>)?;
        Ok(batch)
    }

    /// Updates the batch and syncs its lookups, in one transaction.
    async fn update_batch(&self, index: u64, updates: B::Updates) -> DatabaseResult<B> {
        let Some(key) = lower_bound(index) else { return Err(B::not_found(index)) };
        let mut tx = self.begin().await?;
        let Some(old) = load_batch::<D, B>(&mut tx, "idx", key.into()).await? else {
            return Err(B::not_found(index));
        };
        let old_row = BatchColumns::of(&old)?;
        let (batch, row) = old.updated(updates)?;
        put_batch::<D, B>(&mut tx, &row, true).await?;
        sync_lookups::<D, B>(&mut tx, Some(&old_row), &row).await?;
        tx.commit().await.map_err(db_err::<D>)?;
        Ok(batch)
    }
}

#[async_trait]
impl<D: Dialect> DatabaseClient for SqlDatabase<D> {
    async fn health_check(&self) -> DatabaseResult<()> {
        Sql::<D>::new("SELECT 1").fetch(&mut *self.conn().await?).await.map_err(db_err::<D>)?;
        Ok(())
    }

    async fn disconnect(&self) -> DatabaseResult<()> {
        self.pool().close().await;
        Ok(())
    }

    /// Opens the database `name` beside the current one (see [`Dialect::open_sibling`]),
    /// creates the tables and uses it from now on; the previous pool is closed. Only this
    /// client switches: locks (and queues) sharing the old pool keep it.
    async fn switch_database(&self, name: &str) -> DatabaseResult<()> {
        let next = D::open_sibling(&self.pool(), name).await?;
        D::apply_schema(&next, schema::database(&D::TYPES)).await.map_err(db_err::<D>)?;
        let old =
            std::mem::replace(&mut *self.pool.write().unwrap_or_else(|e| e.into_inner()), next);
        old.close().await;
        Ok(())
    }

    // ---- jobs ----

    async fn insert_job(&self, job: &JobItem) -> DatabaseResult<bool> {
        let mut q = Sql::<D>::new(format!("INSERT INTO jobs ({JOB_COLUMNS}) VALUES ("));
        q.binds(job_row(job)?);
        q.push(") ON CONFLICT (job_type, internal_id) DO NOTHING RETURNING id");
        let inserted = q.fetch(&mut *self.conn().await?).await.map_err(|e| {
            match e.as_database_error() {
                // Only the primary key is left to violate: the conflict target absorbs the rest.
                Some(d) if d.is_unique_violation() => {
                    DatabaseError::Conflict(format!("a job with id {} already exists", job.id))
                }
                _ => db_err::<D>(e),
            }
        })?;
        Ok(!inserted.is_empty())
    }

    /// One `UPDATE … WHERE id = ? AND version = ?` that sets only the fields present in
    /// `updates` (in the columns and, through [`Dialect::push_doc_patch`], in the stored
    /// document), increments the version and sets `updated_at`; the stored document is
    /// returned.
    async fn write_job_update(
        &self,
        current: &JobItem,
        updates: JobItemUpdates,
    ) -> DatabaseResult<Option<JobItem>> {
        // The document keeps milliseconds, the `updated_at` column (never queried) seconds.
        let now = now_ms();
        let mut patch = serde_json::Map::new();
        patch.insert("updated_at".to_owned(), to_value(&now)?);
        let mut q = Sql::<D>::new("UPDATE jobs SET version = version + 1, updated_at = ");
        q.bind(Value::Time(Some(now.timestamp())));
        if let Some(status) = updates.status {
            q.push(", status = ").bind(status.as_ref());
            patch.insert("status".to_owned(), to_value(&status)?);
        }
        if let Some(external_id) = &updates.external_id {
            q.push(", external_id = ").bind(external_id.to_string());
            patch.insert("external_id".to_owned(), to_value(external_id)?);
        }
        if let Some(metadata) = &updates.metadata {
            let cols = JobColumns::of(metadata)?;
            q.push(", orchestrator_version = ").bind(cols.orchestrator_version);
            q.push(", block_number = ").bind(cols.block_number);
            q.push(", start_block = ").bind(cols.start_block);
            q.push(", end_block = ").bind(cols.end_block);
            q.push(", to_settle = ").bind(cols.to_settle);
            q.push(", storage_artifacts_tagged_at = ")
                .bind(Value::Time(cols.storage_artifacts_tagged_at));
            patch.insert("metadata".to_owned(), to_value(metadata)?);
        }
        // On the right-hand side of SET every column is its value before the update.
        q.push(", doc = ");
        D::push_doc_patch(&mut q, patch);
        q.push(" WHERE id = ").bind(Value::Uuid(current.id));
        q.push(" AND version = ").bind(current.version);
        q.push(" RETURNING ").push(doc_columns::<D>());
        let rows = q.fetch(&mut *self.conn().await?).await.map_err(db_err::<D>)?;
        rows.first().map(|row| decode_doc::<D, _>(row, "job")).transpose()
    }

    async fn get_jobs(&self, query: JobQuery<'_>) -> DatabaseResult<Vec<JobItem>> {
        let Some(q) = job_select::<D>("", query) else { return Ok(Vec::new()) };
        self.fetch_docs(q, "job").await
    }

    async fn jobs_without_successor(
        &self,
        query: WithoutSuccessorQuery<'_>,
    ) -> DatabaseResult<Vec<JobItem>> {
        let Some(min) = lower_bound(query.min_internal_id) else { return Ok(Vec::new()) };
        let mut q = select::<D>("jobs");
        q.push(" AND job_type = ").bind(query.job_type.as_ref());
        q.push(" AND status = ").bind(query.status.as_ref());
        q.push(" AND internal_id >= ").bind(min);
        if let Some(version) = query.orchestrator_version {
            q.push(" AND orchestrator_version = ").bind(version);
        }
        q.push(" AND NOT EXISTS (SELECT 1 FROM jobs b WHERE b.internal_id = jobs.internal_id");
        q.push(" AND b.job_type = ").bind(query.successor_type.as_ref());
        // One index probe per job from the watermark on (`Dialect::PROBE`), never a hash of
        // every successor job of the type (a year of them: 150 ms on PostgreSQL).
        q.push(" AND b.internal_id >= ").bind(min).push(D::PROBE);
        q.push(") ORDER BY internal_id ASC");
        self.fetch_docs(q, "job").await
    }

    /// A job touches the block through its indexed fields (`JobSpecificMetadata::indexed`):
    /// the block it works on, the range it covers, the block or batch it settles. Aggregator
    /// jobs carry none of them: they are matched through the aggregator batch (index = internal
    /// id) whose range contains the block.
    ///
    /// Two statements: the aggregator batches containing the block first, then the jobs, with
    /// those batch indexes bound as a list (as on MongoDB): a subquery in the `OR` made
    /// PostgreSQL read every Aggregator job (a year of them: 40 ms).
    async fn get_jobs_by_block_number(&self, block_number: u64) -> DatabaseResult<Vec<JobItem>> {
        let Some(block) = lower_bound(block_number) else { return Ok(Vec::new()) };
        let mut batches = Sql::<D>::new("SELECT idx FROM aggregator_batches WHERE start_block <= ");
        batches.bind(block).push(" AND end_block >= ").bind(block);
        let rows = batches.fetch(&mut *self.conn().await?).await.map_err(db_err::<D>)?;
        let containing: Vec<i64> =
            rows.iter().filter_map(|row| D::int(row, "idx").ok().flatten()).collect();
        let mut q = select::<D>("jobs");
        q.push(" AND ((block_number = ").bind(block);
        q.push(") OR (to_settle = ").bind(block);
        q.push(") OR (start_block <= ").bind(block);
        q.push(" AND end_block >= ").bind(block).push(")");
        if !containing.is_empty() {
            q.push(" OR (job_type = ").bind(JobType::Aggregator.as_ref());
            q.and_in("internal_id", List::Ints(containing), false).push(")");
        }
        // `job_type || ''` is not an index column: SQLite would otherwise read every job in
        // `(job_type, internal_id)` order to skip the sort, where the OR of the indexed terms
        // (a multi-index OR) reads only the jobs of the block.
        q.push(") ORDER BY job_type || '' ASC, internal_id ASC");
        self.fetch_docs(q, "job").await
    }

    // ---- SNOS batches (the rest of the batch methods are `BatchStore`) ----

    async fn get_snos_batches_by_aggregator_index(
        &self,
        aggregator_index: u64,
    ) -> DatabaseResult<Vec<SnosBatch>> {
        let Some(agg) = lower_bound(aggregator_index) else { return Ok(Vec::new()) };
        let mut q = select::<D>(SnosBatch::TABLE);
        q.push(" AND aggregator_batch_index = ").bind(agg).push(" ORDER BY idx ASC");
        self.fetch_docs(q, SnosBatch::WHAT).await
    }

    async fn snos_batches_without_jobs(
        &self,
        query: WithoutJobsQuery<'_>,
    ) -> DatabaseResult<Vec<SnosBatch>> {
        let Some(min) = lower_bound(query.min_index) else { return Ok(Vec::new()) };
        let mut q = select::<D>(SnosBatch::TABLE);
        q.push(" AND status = ").bind(query.status.as_ref());
        q.push(" AND idx >= ").bind(min);
        if let Some(version) = query.orchestrator_version {
            q.push(" AND orchestrator_version = ").bind(version);
        }
        q.push(" AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.internal_id = snos_batches.idx");
        q.push(" AND j.job_type = ").bind(JobType::SnosRun.as_ref()).push(D::PROBE);
        q.push(") ORDER BY idx ASC").limit(Some(upper_bound(query.limit)));
        self.fetch_docs(q, SnosBatch::WHAT).await
    }

    // ---- lookups ----

    async fn get_block_batch_lookup(
        &self,
        block_number: u64,
    ) -> DatabaseResult<Option<BlockBatchLookup>> {
        let Some(block) = lower_bound(block_number) else { return Ok(None) };
        let mut q = Sql::<D>::new(format!(
            "SELECT snos_batch_index, aggregator_batch_index, {} AS created_at, {} AS updated_at
             FROM block_batch_lookups WHERE block_number = ",
            D::secs("created_at"),
            D::secs("updated_at"),
        ));
        q.bind(block);
        let rows = q.fetch(&mut *self.conn().await?).await.map_err(db_err::<D>)?;
        rows.first().map(|row| decode_lookup::<D>(row, block_number)).transpose()
    }

    // ---- trigger pauses ----

    /// One `INSERT … ON CONFLICT (trigger_name) DO NOTHING`: of racing pauses the first stays.
    async fn insert_trigger_pause(&self, pause: &TriggerPause) -> DatabaseResult<bool> {
        let mut q = Sql::<D>::new(
            "INSERT INTO trigger_pauses (trigger_name, paused_by, paused_at_ms, reason) VALUES (",
        );
        q.binds([
            pause.trigger.name().into(),
            pause.paused_by.as_str().into(),
            pause.paused_at_ms().into(),
            pause.reason.as_deref().into(),
        ]);
        q.push(") ON CONFLICT (trigger_name) DO NOTHING RETURNING trigger_name");
        let inserted = q.fetch(&mut *self.conn().await?).await.map_err(db_err::<D>)?;
        Ok(!inserted.is_empty())
    }

    async fn delete_trigger_pause(
        &self,
        trigger: WorkerTriggerType,
    ) -> DatabaseResult<Option<TriggerPause>> {
        let mut q = Sql::<D>::new("DELETE FROM trigger_pauses WHERE trigger_name = ");
        q.bind(trigger.name()).push(" RETURNING ").push(PAUSE_COLUMNS);
        let rows = q.fetch(&mut *self.conn().await?).await.map_err(db_err::<D>)?;
        rows.first().map(decode_pause::<D>).transpose()
    }

    async fn get_trigger_pause(
        &self,
        trigger: WorkerTriggerType,
    ) -> DatabaseResult<Option<TriggerPause>> {
        let mut q = Sql::<D>::new(format!(
            "SELECT {PAUSE_COLUMNS} FROM trigger_pauses WHERE trigger_name = "
        ));
        q.bind(trigger.name());
        let rows = q.fetch(&mut *self.conn().await?).await.map_err(db_err::<D>)?;
        rows.first().map(decode_pause::<D>).transpose()
    }

    async fn get_trigger_pauses(&self) -> DatabaseResult<Vec<TriggerPause>> {
        let q = Sql::<D>::new(format!(
            "SELECT {PAUSE_COLUMNS} FROM trigger_pauses ORDER BY trigger_name ASC"
        ));
        let rows = q.fetch(&mut *self.conn().await?).await.map_err(db_err::<D>)?;
        rows.iter().map(decode_pause::<D>).collect()
    }
}

/// The columns of a `trigger_pauses` row, in the order [`decode_pause`] reads them.
const PAUSE_COLUMNS: &str = "trigger_name, paused_by, paused_at_ms, reason";

fn decode_pause<D: Dialect>(row: &D::Row) -> DatabaseResult<TriggerPause> {
    let trigger = D::text(row, "trigger_name").ok().flatten().unwrap_or_else(|| "?".to_owned());
    let corrupt = |reason: String| DatabaseError::Corrupt {
        what: format!("trigger pause {trigger:?}"),
        reason,
    };
    let paused_by = D::text(row, "paused_by")
        .map_err(|e| corrupt(e.to_string()))?
        .ok_or_else(|| corrupt("paused_by is NULL".to_owned()))?;
    let paused_at_ms = D::int(row, "paused_at_ms")
        .map_err(|e| corrupt(e.to_string()))?
        .ok_or_else(|| corrupt("paused_at_ms is NULL".to_owned()))?;
    let reason = D::text(row, "reason").map_err(|e| corrupt(e.to_string()))?;
    TriggerPause::from_stored(&trigger, paused_by, paused_at_ms, reason)
}

/// The statement of [`DatabaseClient::get_jobs`] for `query`, after `prefix` (`EXPLAIN …` in
/// the tests that check which index serves it); `None` when the query matches nothing.
pub(crate) fn job_select<D: Dialect>(prefix: &str, query: JobQuery<'_>) -> Option<Sql<D>> {
    let filter = JobFilter::of(query)?;
    let mut q =
        Sql::<D>::new(format!("{prefix}SELECT {} FROM jobs WHERE true", doc_columns::<D>()));
    if let Some(id) = query.id {
        q.push(" AND id = ").bind(Value::Uuid(id));
    }
    if !query.job_types.is_empty() {
        q.and_in("job_type", List::Texts(names(query.job_types)), false);
    }
    // Several statuses select a few open jobs: they are sorted, not found by walking an
    // index in `internal_id` order (see `sort_key`).
    let mut several_statuses = query.statuses.len() > 1;
    if !query.statuses.is_empty() {
        q.and_in("status", List::Texts(names(query.statuses)), false);
    }
    if !query.excluded_statuses.is_empty() {
        // As the list of the other statuses: `status IN (…)` seeks the few open jobs in the
        // `(job_type, status, internal_id)` index, where `NOT IN` walks every completed one.
        let others: Vec<JobStatus> =
            JobStatus::iter().filter(|s| !query.excluded_statuses.contains(s)).collect();
        if others.is_empty() {
            return None;
        }
        several_statuses |= others.len() > 1;
        q.and_in("status", List::Texts(names(&others)), false);
    }
    if let Some(ids) = filter.internal_ids {
        q.and_in("internal_id", List::Ints(ids), false);
    }
    if let Some(min) = filter.min_internal_id {
        q.push(" AND internal_id >= ").bind(min);
    }
    if let Some(max) = filter.max_internal_id {
        q.push(" AND internal_id <= ").bind(max);
    }
    if let Some(version) = query.orchestrator_version {
        q.push(" AND orchestrator_version = ").bind(version);
    }
    if query.storage_artifacts_untagged {
        q.push(" AND storage_artifacts_tagged_at IS NULL");
    }
    // `+internal_id` is not an index column: SQLite then picks the index by the filter
    // (`job_type, status, …`: the few jobs in those statuses) and sorts them, instead of
    // walking every job of the type through `(job_type, internal_id)` to the first match,
    // which it prefers for the `LIMIT` (PostgreSQL sorts the rows of an `= ANY` match anyway).
    let sort_key = if several_statuses { "+internal_id" } else { "internal_id" };
    q.push(match query.sort {
        SortOrder::Ascending => format!(" ORDER BY {sort_key} ASC, job_type ASC"),
        SortOrder::Descending => format!(" ORDER BY {sort_key} DESC, job_type DESC"),
    });
    q.limit(filter.limit);
    Some(q)
}

/// `SELECT id, doc FROM table WHERE true`, to be extended with `AND …` filters.
fn select<D: Dialect>(table: &str) -> Sql<D> {
    Sql::new(format!("SELECT {} FROM {table} WHERE true", doc_columns::<D>()))
}

/// The `id` and `doc` columns of a table, as text.
fn doc_columns<D: Dialect>() -> String {
    format!("id{t} AS id, doc{t} AS doc", t = D::TO_TEXT)
}

/// Reads the batch whose `column` is `key`, keeping its row until the transaction ends.
async fn load_batch<D: Dialect, B: BatchRecord>(
    conn: &mut D::Connection,
    column: &str,
    key: Value,
) -> DatabaseResult<Option<B>> {
    let mut q =
        Sql::<D>::new(format!("SELECT {} FROM {} WHERE {column} = ", doc_columns::<D>(), B::TABLE));
    q.bind(key).push(D::FOR_UPDATE);
    let rows = q.fetch(conn).await.map_err(db_err::<D>)?;
    rows.first().map(|row| decode_doc::<D, B>(row, B::WHAT)).transpose()
}

/// The values of [`BATCH_COLUMNS`].
fn batch_values(row: &BatchColumns) -> [Value; 9] {
    [
        row.index.into(),
        row.aggregator_batch_index.into(),
        row.status.as_str().into(),
        row.orchestrator_version.as_str().into(),
        row.start.into(),
        row.end.into(),
        Value::Time(Some(row.created_at)),
        Value::Time(Some(row.updated_at)),
        Value::Json(row.doc.clone()),
    ]
}

/// Inserts the batch `row`, or replaces the stored one with its id; unique violations are
/// `Conflict`.
async fn put_batch<D: Dialect, B: BatchRecord>(
    conn: &mut D::Connection,
    row: &BatchColumns,
    replace: bool,
) -> DatabaseResult<()> {
    let id = Value::Uuid(row.id);
    let q = if replace {
        let mut q = Sql::<D>::new(format!("UPDATE {} SET ", B::TABLE));
        for (i, (column, value)) in BATCH_COLUMNS.iter().zip(batch_values(row)).enumerate() {
            q.push(if i > 0 { ", " } else { "" }).push(column).push(" = ").bind(value);
        }
        q.push(" WHERE id = ").bind(id);
        q
    } else {
        let columns = BATCH_COLUMNS.join(", ");
        let mut q = Sql::<D>::new(format!("INSERT INTO {} (id, {columns}) VALUES (", B::TABLE));
        q.binds(std::iter::once(id).chain(batch_values(row))).push(")");
        q
    };
    q.fetch(conn).await.map_err(|e| match e.as_database_error() {
        Some(d) if d.is_unique_violation() => DatabaseError::Conflict(format!(
            "{} {} ({}..={}): {}",
            B::WHAT,
            row.index,
            row.start,
            row.end,
            d.message()
        )),
        _ => db_err::<D>(e),
    })?;
    Ok(())
}

/// Points the lookups of the blocks of `new` at its index and unsets the index on blocks the
/// batch (as `old`) covered but no longer does. Runs inside the batch write's transaction.
async fn sync_lookups<D: Dialect, B: BatchRecord>(
    conn: &mut D::Connection,
    old: Option<&BatchColumns>,
    new: &BatchColumns,
) -> DatabaseResult<()> {
    let col = B::LOOKUP_COLUMN;
    let now = Value::Time(Some(now_secs().timestamp()));
    if let Some(old) = old {
        let mut q =
            Sql::<D>::new(format!("UPDATE block_batch_lookups SET {col} = NULL, updated_at = "));
        q.bind(now.clone()).push(format!(" WHERE {col} = ")).bind(old.index);
        if old.index == new.index {
            q.push(" AND (block_number < ").bind(new.start);
            q.push(" OR block_number > ").bind(new.end).push(")");
        }
        q.fetch(conn).await.map_err(db_err::<D>)?;
    }
    for (start, end) in lookup_ranges_to_write(old.map(BatchSpan::from), new.into()) {
        let mut q = Sql::<D>::new("WITH RECURSIVE r(b) AS (SELECT ");
        q.bind(start).push(" UNION ALL SELECT b + 1 FROM r WHERE b < ").bind(end);
        q.push(format!(
            ") INSERT INTO block_batch_lookups (block_number, {col}, created_at, updated_at) SELECT b, "
        ));
        q.bind(new.index).push(", ").bind(now.clone()).push(", ").bind(now.clone());
        q.push(format!(
            " FROM r WHERE true ON CONFLICT (block_number) DO UPDATE SET {col} = excluded.{col},
                updated_at = excluded.updated_at"
        ));
        q.fetch(conn).await.map_err(db_err::<D>)?;
    }
    Ok(())
}

fn decode_lookup<D: Dialect>(row: &D::Row, block_number: u64) -> DatabaseResult<BlockBatchLookup> {
    let corrupt = |reason: String| DatabaseError::Corrupt {
        what: format!("block batch lookup {block_number}"),
        reason,
    };
    let int = |col: &str| D::int(row, col).map_err(|e| corrupt(e.to_string()));
    let index = |col: &str| -> DatabaseResult<Option<u64>> {
        let v = int(col)?;
        v.map(|v| u64::try_from(v).map_err(|_| corrupt(format!("negative {col} {v}")))).transpose()
    };
    let time = |col: &str| -> DatabaseResult<DateTime<Utc>> {
        let v = int(col)?.ok_or_else(|| corrupt(format!("{col} is NULL")))?;
        DateTime::from_timestamp(v, 0).ok_or_else(|| corrupt(format!("{col} {v} out of range")))
    };
    Ok(BlockBatchLookup {
        block_number,
        snos_batch_index: index("snos_batch_index")?,
        aggregator_batch_index: index("aggregator_batch_index")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

/// Decodes the `doc` column of a row whose `id` column names the record in errors.
fn decode_doc<D: Dialect, T: DeserializeOwned>(row: &D::Row, kind: &str) -> DatabaseResult<T> {
    let id = D::text(row, "id").ok().flatten().unwrap_or_else(|| "?".to_owned());
    let corrupt = |reason: String| DatabaseError::Corrupt { what: format!("{kind} {id}"), reason };
    let doc = D::text(row, "doc").map_err(|e| corrupt(e.to_string()))?;
    decode_json(&doc.ok_or_else(|| corrupt("doc is NULL".to_owned()))?, kind, &id)
}

/// A value as JSON.
fn to_value<T: serde::Serialize + ?Sized>(value: &T) -> DatabaseResult<serde_json::Value> {
    serde_json::to_value(value).map_err(DatabaseError::other)
}

/// Maps a sqlx error: transient ([`Dialect::is_transient`]) → `Unavailable` (retryable),
/// decoding → `Corrupt`, anything else → `Other`.
pub(crate) fn db_err<D: Dialect>(e: sqlx::Error) -> DatabaseError {
    if D::is_transient(&e) {
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

/// Checks every dialect runs besides the conformance suite, on databases the caller opens.
#[cfg(test)]
pub(crate) mod checks {
    use orchestrator_utils::Retryable;
    use std::{collections::BTreeSet, sync::Arc};

    use super::*;
    use crate::types::{
        batch::SnosBatchUpdates,
        jobs::{JobSpecificMetadata, SnosMetadata},
    };

    /// A `Created` SnosRun job.
    pub(crate) fn snos_job(internal_id: u64) -> JobItem {
        JobItem::new(
            JobType::SnosRun,
            internal_id,
            JobSpecificMetadata::Snos(SnosMetadata {
                snos_batch_index: internal_id,
                ..Default::default()
            }),
        )
    }

    /// Two clients on one database behave like two processes: many racing updates, none
    /// lost, and every version won by exactly one writer.
    pub(crate) async fn racing_updates_lose_nothing<D: Dialect>(
        a: Arc<SqlDatabase<D>>,
        b: Arc<SqlDatabase<D>>,
    ) {
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

    /// Two clients creating the same jobs and growing the same batch concurrently: each job
    /// exists once, and the lookups end consistent with the batch.
    pub(crate) async fn racing_creates_and_batch_writes<D: Dialect>(
        a: Arc<SqlDatabase<D>>,
        b: Arc<SqlDatabase<D>>,
    ) {
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

    /// Integers above `i64::MAX` and inverted block ranges are refused on write.
    pub(crate) async fn values_above_i64_max_are_refused_on_write<D: Dialect>(db: &SqlDatabase<D>) {
        let err = db.create_job(snos_job(u64::MAX)).await.expect_err("too big");
        assert!(err.to_string().contains("exceeds"), "{err}");
        assert!(!err.is_retryable());
        let huge = SnosBatch::new(1, None, u64::MAX, "0.14.2", Default::default());
        let err = db.create_snos_batch(huge).await.expect_err("too big");
        assert!(err.to_string().contains("start_block"), "{err}");
        let mut bad_range = SnosBatch::new(1, None, 10, "0.14.2", Default::default());
        bad_range.end_block = 5;
        assert!(db.create_snos_batch(bad_range).await.is_err());
    }

    /// A stored document that does not decode is `Corrupt`, naming the record.
    pub(crate) async fn an_undecodable_document_is_corrupt_and_named<D: Dialect>(
        db: &SqlDatabase<D>,
    ) {
        let job = db.create_job(snos_job(1)).await.expect("create");
        let mut conn = db.conn().await.expect("connection");
        Sql::<D>::new("UPDATE jobs SET doc = '{\"not\": \"a job\"}'")
            .fetch(&mut conn)
            .await
            .expect("break");
        let err = db.get_job_by_id(job.id).await.expect_err("corrupt");
        assert!(
            matches!(&err, DatabaseError::Corrupt { what, .. } if what.contains(&job.id.to_string())),
            "{err:?}"
        );
    }

    /// A database from before `trigger_pauses` (the table dropped here) gains it at the next
    /// `init`, its jobs kept; a stored pause of a trigger this version does not know is
    /// `Corrupt`, naming it.
    pub(crate) async fn init_adds_trigger_pauses_to_an_older_database<D: Dialect>(
        db: &SqlDatabase<D>,
    ) {
        let job = db.create_job(snos_job(1)).await.expect("create");
        let mut conn = db.conn().await.expect("connection");
        Sql::<D>::new("DROP TABLE trigger_pauses").fetch(&mut conn).await.expect("drop");
        drop(conn);
        let snos = WorkerTriggerType::Stage(JobType::SnosRun);
        assert!(db.get_trigger_pause(snos).await.is_err(), "no table before the migration");
        db.init().await.expect("init migrates");
        assert_eq!(db.get_job_by_id(job.id).await.expect("get"), Some(job));
        assert_eq!(db.get_trigger_pauses().await.expect("empty table"), vec![]);
        let pause = TriggerPause::new(snos, "alice", Some("after the migration".to_owned()));
        assert!(db.insert_trigger_pause(&pause).await.expect("pause"));
        assert_eq!(db.get_trigger_pause(snos).await.expect("get"), Some(pause));

        let mut conn = db.conn().await.expect("connection");
        Sql::<D>::new(
            "INSERT INTO trigger_pauses (trigger_name, paused_by, paused_at_ms)
             VALUES ('NoSuchTrigger', 'from a newer version', 0)",
        )
        .fetch(&mut conn)
        .await
        .expect("insert");
        let err = db.get_trigger_pauses().await.expect_err("unknown trigger");
        assert!(
            matches!(&err, DatabaseError::Corrupt { what, .. } if what.contains("NoSuchTrigger")),
            "{err:?}"
        );
        // The read by key of a known trigger is not affected.
        assert!(db.get_trigger_pause(snos).await.expect("get").is_some());
    }

    /// `init` again (also concurrently, as processes starting together) keeps the data; after
    /// `disconnect` calls fail as retryable.
    pub(crate) async fn init_is_idempotent_and_a_closed_pool_is_unavailable<D: Dialect>(
        db: &SqlDatabase<D>,
    ) {
        let job = db.create_job(snos_job(1)).await.expect("create");
        let (x, y) = tokio::join!(db.init(), db.init());
        x.expect("init again");
        y.expect("init again");
        assert_eq!(db.get_job_by_id(job.id).await.expect("get"), Some(job));
        db.disconnect().await.expect("disconnect");
        assert!(db.health_check().await.expect_err("closed").is_retryable());
    }
}
