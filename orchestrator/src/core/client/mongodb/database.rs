//! [`DatabaseClient`] on MongoDB, with the reference's collections and indexes.
//!
//! - `create_job` is an upsert with `$setOnInsert` keyed by `(job_type, internal_id)`: when a
//!   document matched (or a concurrent insert won the unique index) it is `ItemAlreadyExists`;
//! - `update_job` is one `find_one_and_update` filtered by `{id, version}` that `$set`s the
//!   given fields and `$inc`s the version, so of several writers of one version one wins;
//! - jobs without successor and SNOS batches without jobs are `$lookup` aggregations;
//! - a batch write replaces the batch document, then syncs `block_batch_lookups` with bulk
//!   `update_many` / unordered `insert_many` calls in chunks of [`LOOKUP_CHUNK`] blocks.
//!
//! Unlike PostgreSQL, the batch write and its lookup sync are not one transaction (MongoDB
//! needs a replica set for those, and the reference does without): a crash in between leaves
//! lookups behind until that batch is written again. Batches are written by the batching
//! workers, which run under a cluster-wide lock, so batch writes do not race each other.

use std::sync::RwLock;

use ::mongodb::{
    bson::{doc, Bson, Document},
    options::{IndexOptions, ReturnDocument},
    Client, Collection, Cursor, Database, IndexModel,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::de::DeserializeOwned;

use super::{
    documents::{self as d, uuid_bson},
    is_duplicate_key, is_transient, AGGREGATOR_BATCHES, BLOCK_BATCH_LOOKUPS, JOBS, SNOS_BATCHES,
    TRIGGER_PAUSES,
};
use crate::{
    core::client::{
        database::{
            BatchStore, BatchWrite, DatabaseClient, DatabaseError, DatabaseResult, JobQuery,
            TriggerPause, WithoutJobsQuery, WithoutSuccessorQuery,
        },
        db_common::{
            chunks, lookup_ranges_to_write, lower_bound, stale_lookup_filter, to_i64, upper_bound,
            BatchColumns, BatchRecord, BatchSpan, JobFilter,
        },
    },
    types::{
        batch::{AggregatorBatch, BatchQuery, BlockBatchLookup, SnosBatch, SortOrder},
        jobs::{now_ms, now_secs, JobItem, JobItemUpdates},
        queue::WorkerTriggerType,
    },
};

/// Blocks per bulk lookup write.
pub const LOOKUP_CHUNK: i64 = 1_000;

/// The job and batch database on MongoDB.
#[derive(Debug)]
pub struct MongoDatabase {
    client: Client,
    /// The current database; replaced by [`DatabaseClient::switch_database`].
    db: RwLock<Database>,
}

impl MongoDatabase {
    /// Wraps a client and database (from [`super::open`]) and ensures the indexes.
    ///
    /// # Errors
    /// When the indexes cannot be created.
    pub async fn open(client: Client, db: Database) -> DatabaseResult<Self> {
        let this = Self { client, db: RwLock::new(db) };
        this.ensure_indexes().await?;
        Ok(this)
    }

    /// Creates the reference's indexes if missing (idempotent: same keys and options).
    ///
    /// # Errors
    /// `Unavailable` when the server is unreachable; `Other` when an index exists with other
    /// options.
    pub async fn ensure_indexes(&self) -> DatabaseResult<()> {
        ensure_indexes(&self.db()).await
    }

    /// The current database handle.
    pub fn db(&self) -> Database {
        // A poisoned lock only means another thread panicked while swapping the handle; the
        // handle itself is always valid.
        self.db.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db().collection(name)
    }

    async fn find_jobs(
        &self,
        filter: Document,
        sort: Document,
        limit: Option<i64>,
    ) -> DatabaseResult<Vec<JobItem>> {
        let coll = self.coll(JOBS);
        let mut find = coll.find(filter).sort(sort);
        if let Some(limit) = limit {
            find = find.limit(limit);
        }
        decode_all(find.await.map_err(db_err)?, "id", "job").await
    }

    async fn find_batches<B: BatchRecord>(
        &self,
        filter: Document,
        sort: Document,
        limit: Option<u64>,
    ) -> DatabaseResult<Vec<B>> {
        // The contract: a limit of 0 returns nothing (MongoDB's own `limit(0)` means no limit).
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        // An aggregation rather than `find`: see `d::sorted_find_pipeline` (a server ignoring a
        // `find`'s sort on an `$in` field).
        let pipeline = d::sorted_find_pipeline(filter, sort, limit.map(upper_bound));
        let cursor = self.coll(B::TABLE).aggregate(pipeline).await.map_err(db_err)?;
        decode_all(cursor, "_id", B::WHAT).await
    }

    async fn find_batch<B: BatchRecord>(
        &self,
        filter: Document,
        sort: Document,
    ) -> DatabaseResult<Option<B>> {
        Ok(self.find_batches(filter, sort, Some(1)).await?.into_iter().next())
    }

    /// Unsets the batch index on lookups the batch (as `old`) covered and no longer does, then
    /// points the lookups of the blocks it newly covers at it: existing rows with
    /// `update_many`, missing ones with an unordered `insert_many` (a duplicate from a
    /// concurrent writer is then pointed by a second `update_many`).
    async fn sync_lookups<B: BatchRecord>(
        &self,
        old: Option<BatchSpan>,
        new: BatchSpan,
    ) -> DatabaseResult<()> {
        let field = B::LOOKUP_COLUMN;
        let now = now_secs();
        let lookups = self.coll(BLOCK_BATCH_LOOKUPS);
        if let Some(old) = old {
            if let Some(keep) = stale_lookup_filter(old, new) {
                lookups
                    .update_many(
                        d::stale_lookups_filter(field, old.index, keep),
                        d::unset_lookup(field, now),
                    )
                    .await
                    .map_err(db_err)?;
            }
        }
        for range in lookup_ranges_to_write(old, new) {
            for (start, end) in chunks(range, LOOKUP_CHUNK) {
                let filter = d::block_range_filter(start, end);
                lookups
                    .update_many(filter.clone(), d::point_lookups(field, new.index, now))
                    .await
                    .map_err(db_err)?;
                let existing: Vec<Document> = lookups
                    .find(filter.clone())
                    .projection(doc! { "block_number": 1, "_id": 0 })
                    .await
                    .map_err(db_err)?
                    .try_collect()
                    .await
                    .map_err(db_err)?;
                let have: std::collections::HashSet<i64> =
                    existing.iter().filter_map(|doc| int_field(doc, "block_number")).collect();
                let missing: Vec<Document> = (start..=end)
                    .filter(|b| !have.contains(b))
                    .map(|b| d::new_lookup(b, field, new.index, now))
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                if let Err(e) = lookups.insert_many(missing).ordered(false).await {
                    if !is_duplicate_key(&e) {
                        return Err(db_err(e));
                    }
                    lookups
                        .update_many(filter, d::point_lookups(field, new.index, now))
                        .await
                        .map_err(db_err)?;
                }
            }
        }
        Ok(())
    }
}

/// The reference's indexes (reference §4), one list per collection, and ours on
/// `trigger_pauses`.
pub fn index_models() -> Vec<(&'static str, Vec<IndexModel>)> {
    let plain = |keys: Document| IndexModel::builder().keys(keys).build();
    let unique = |keys: Document| {
        IndexModel::builder()
            .keys(keys)
            .options(IndexOptions::builder().unique(true).build())
            .build()
    };
    let batch_indexes = |extra: Vec<IndexModel>| {
        let mut v = vec![
            unique(doc! { "index": 1 }),
            plain(doc! { "status": 1 }),
            plain(doc! { "created_at": -1 }),
            plain(doc! { "start_block": 1, "end_block": 1 }),
            unique(doc! { "start_block": 1 }),
            unique(doc! { "end_block": 1 }),
            // The batches of a status by index (the Aggregator trigger's closed batches, the
            // `?status=` lists), as the SQL `(status, idx)` index.
            plain(doc! { "status": 1, "index": 1 }),
        ];
        v.extend(extra);
        v
    };
    vec![
        (
            JOBS,
            vec![
                plain(doc! { "id": 1 }),
                unique(doc! { "job_type": 1, "internal_id": -1 }),
                plain(doc! { "job_type": 1, "status": 1, "internal_id": -1 }),
                // The StorageCleanup page (`get_jobs_without_storage_artifacts_tagged`).
                plain(doc! {
                    "job_type": 1,
                    "status": 1,
                    "metadata.specific.storage_artifacts_tagged_at": 1,
                    "internal_id": 1,
                }),
                plain(doc! { "status": 1 }),
                plain(doc! { "internal_id": 1 }),
                // Ours, as the SQL indexes (docs/databases.md, "Query plans at scale"): the jobs
                // of a status by internal id (`/jobs?status=`, the orphan scan) without sorting
                // every job of the status, and the jobs of a block
                // (`/blocks/settlement-status/…`) without reading every job.
                plain(doc! { "status": 1, "internal_id": 1 }),
                plain(doc! { "metadata.specific.block_number": 1 }),
                plain(
                    doc! { "metadata.specific.start_block": 1, "metadata.specific.end_block": 1 },
                ),
                plain(doc! { "metadata.specific.context.Batch.to_settle": 1 }),
                plain(doc! { "metadata.specific.context.Block.to_settle": 1 }),
            ],
        ),
        (AGGREGATOR_BATCHES, batch_indexes(vec![])),
        (
            SNOS_BATCHES,
            batch_indexes(vec![
                plain(doc! { "aggregator_batch_index": 1 }),
                plain(doc! { "aggregator_batch_index": 1, "index": 1 }),
            ]),
        ),
        (
            BLOCK_BATCH_LOOKUPS,
            vec![
                unique(doc! { "block_number": 1 }),
                plain(doc! { "snos_batch_index": 1 }),
                plain(doc! { "aggregator_batch_index": 1 }),
            ],
        ),
        (TRIGGER_PAUSES, vec![unique(doc! { "trigger": 1 })]),
    ]
}

/// Creates the indexes of every collection on `db` (collections are created implicitly).
async fn ensure_indexes(db: &Database) -> DatabaseResult<()> {
    for (collection, models) in index_models() {
        db.collection::<Document>(collection).create_indexes(models).await.map_err(|e| {
            let wrapped =
                DatabaseError::other(format!("cannot create the indexes of {collection}: {e}"));
            if is_transient(&e) {
                DatabaseError::Unavailable(Box::new(e))
            } else {
                wrapped
            }
        })?;
    }
    Ok(())
}

#[async_trait]
impl<B: BatchRecord> BatchStore<B> for MongoDatabase {
    async fn get_batches(&self, query: BatchQuery<B::Status>) -> DatabaseResult<Vec<B>> {
        let statuses: Vec<String> = query.statuses.iter().map(|s| s.as_ref().to_owned()).collect();
        let Some(filter) =
            d::batch_query_filter(&query.indexes, &statuses, query.orchestrator_version.as_deref())
        else {
            return Ok(Vec::new());
        };
        let sort = match query.sort {
            SortOrder::Ascending => doc! { "index": 1 },
            SortOrder::Descending => doc! { "index": -1 },
        };
        self.find_batches(filter, sort, query.limit).await
    }

    /// Writes the batch, then syncs its lookups.
    async fn write_batch(&self, batch: &B, mode: BatchWrite) -> DatabaseResult<B> {
        let (batch, row) = batch.prepared(mode)?;
        let doc = d::encode_record(&batch, batch.id(), "_id", B::WHAT)?;
        let coll = self.coll(B::TABLE);
        let old = match mode {
            BatchWrite::Create => {
                coll.insert_one(doc).await.map_err(conflict_or::<B>(&row))?;
                None
            }
            BatchWrite::Upsert => coll
                .find_one_and_replace(doc! { "_id": uuid_bson(batch.id()) }, doc)
                .upsert(true)
                .return_document(ReturnDocument::Before)
                .await
                .map_err(conflict_or::<B>(&row))?,
        };
        let old = old.map(|doc| d::decode_record::<B>(doc, "_id", B::WHAT)).transpose()?;
        let old_span =
            old.as_ref().map(|o| BatchColumns::of(o).map(|c| BatchSpan::from(&c))).transpose()?;
        self.sync_lookups::<B>(old_span, (&row).into()).await?;
        Ok(batch)
    }

    async fn update_batch(&self, index: u64, updates: B::Updates) -> DatabaseResult<B> {
        let Some(key) = lower_bound(index) else { return Err(B::not_found(index)) };
        let Some(old) = self.find_batch::<B>(doc! { "index": key }, doc! {}).await? else {
            return Err(B::not_found(index));
        };
        let old_span = BatchSpan::from(&BatchColumns::of(&old)?);
        let (batch, row) = old.updated(updates)?;
        let doc = d::encode_record(&batch, batch.id(), "_id", B::WHAT)?;
        let replaced = self
            .coll(B::TABLE)
            .replace_one(doc! { "_id": uuid_bson(batch.id()) }, doc)
            .await
            .map_err(conflict_or::<B>(&row))?;
        if replaced.matched_count == 0 {
            return Err(B::not_found(index));
        }
        self.sync_lookups::<B>(Some(old_span), (&row).into()).await?;
        Ok(batch)
    }
}

#[async_trait]
impl DatabaseClient for MongoDatabase {
    async fn health_check(&self) -> DatabaseResult<()> {
        self.db().run_command(doc! { "ping": 1 }).await.map_err(db_err)?;
        Ok(())
    }

    async fn disconnect(&self) -> DatabaseResult<()> {
        self.client.clone().shutdown().immediate(true).await;
        Ok(())
    }

    /// Uses database `name` of the same server from now on (MongoDB creates it on first
    /// write) and ensures its indexes.
    async fn switch_database(&self, name: &str) -> DatabaseResult<()> {
        if name.is_empty()
            || name.len() > 63
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(DatabaseError::other(format!(
                "invalid MongoDB database name {name:?}: use 1 to 63 ASCII letters, digits, '_' and '-'"
            )));
        }
        let next = self.client.database(name);
        ensure_indexes(&next).await?;
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    // ---- jobs ----

    async fn insert_job(&self, job: &JobItem) -> DatabaseResult<bool> {
        let internal_id = to_i64("internal_id", job.internal_id)?;
        let doc = d::encode_record(job, job.id, "id", "job")?;
        let (filter, update) = d::create_job_upsert(&doc, job.job_type, internal_id);
        match self.coll(JOBS).update_one(filter, update).upsert(true).await {
            Ok(result) => Ok(result.upserted_id.is_some()),
            // Two concurrent upserts of one key: the loser hits the unique index.
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn write_job_update(
        &self,
        current: &JobItem,
        updates: JobItemUpdates,
    ) -> DatabaseResult<Option<JobItem>> {
        let update = d::job_update(&updates, now_ms())?;
        let updated = self
            .coll(JOBS)
            .find_one_and_update(d::versioned_filter(current.id, current.version), update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(db_err)?;
        updated.map(|doc| d::decode_record(doc, "id", "job")).transpose()
    }

    async fn get_jobs(&self, query: JobQuery<'_>) -> DatabaseResult<Vec<JobItem>> {
        let Some(filter) = JobFilter::of(query) else { return Ok(Vec::new()) };
        self.find_jobs(d::job_filter(&filter), d::job_sort(query.sort), filter.limit).await
    }

    async fn jobs_without_successor(
        &self,
        query: WithoutSuccessorQuery<'_>,
    ) -> DatabaseResult<Vec<JobItem>> {
        let Some(min) = lower_bound(query.min_internal_id) else { return Ok(Vec::new()) };
        let pipeline = d::jobs_without_successor_pipeline(
            query.job_type,
            query.status,
            query.successor_type,
            query.orchestrator_version,
            min,
        );
        let cursor = self.coll(JOBS).aggregate(pipeline).await.map_err(db_err)?;
        decode_all(cursor, "id", "job").await
    }

    async fn get_jobs_by_block_number(&self, block_number: u64) -> DatabaseResult<Vec<JobItem>> {
        let Some(block) = lower_bound(block_number) else { return Ok(Vec::new()) };
        let containing: Vec<AggregatorBatch> =
            self.find_batches(d::batches_containing(block), doc! { "index": 1 }, None).await?;
        let indexes: Vec<i64> = containing.iter().filter_map(|b| lower_bound(b.index)).collect();
        self.find_jobs(
            d::jobs_by_block_filter(block, &indexes),
            doc! { "job_type": 1, "internal_id": 1 },
            None,
        )
        .await
    }

    // ---- SNOS batches (the rest of the batch methods are `BatchStore`) ----

    async fn get_snos_batches_by_aggregator_index(
        &self,
        aggregator_index: u64,
    ) -> DatabaseResult<Vec<SnosBatch>> {
        let Some(agg) = lower_bound(aggregator_index) else { return Ok(Vec::new()) };
        self.find_batches(doc! { "aggregator_batch_index": agg }, doc! { "index": 1 }, None).await
    }

    async fn snos_batches_without_jobs(
        &self,
        query: WithoutJobsQuery<'_>,
    ) -> DatabaseResult<Vec<SnosBatch>> {
        let Some(min) = lower_bound(query.min_index) else { return Ok(Vec::new()) };
        // MongoDB refuses `$limit: 0` ("the limit must be positive"); the contract is nothing.
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let pipeline = d::snos_batches_without_jobs_pipeline(
            query.status.as_ref(),
            upper_bound(query.limit),
            query.orchestrator_version,
            min,
        );
        let cursor = self.coll(SNOS_BATCHES).aggregate(pipeline).await.map_err(db_err)?;
        decode_all(cursor, "_id", SnosBatch::WHAT).await
    }

    // ---- lookups ----

    async fn get_block_batch_lookup(
        &self,
        block_number: u64,
    ) -> DatabaseResult<Option<BlockBatchLookup>> {
        let Some(block) = lower_bound(block_number) else { return Ok(None) };
        let doc = self
            .coll(BLOCK_BATCH_LOOKUPS)
            .find_one(doc! { "block_number": block })
            .await
            .map_err(db_err)?;
        doc.map(|doc| decode_lookup(&doc, block_number)).transpose()
    }

    // ---- trigger pauses ----

    /// An upsert with `$setOnInsert` keyed by the trigger: of racing pauses the first stays
    /// (the loser of an insert race hits the unique index).
    async fn insert_trigger_pause(&self, pause: &TriggerPause) -> DatabaseResult<bool> {
        let (filter, update) = d::trigger_pause_upsert(pause);
        match self.coll(TRIGGER_PAUSES).update_one(filter, update).upsert(true).await {
            Ok(result) => Ok(result.upserted_id.is_some()),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn delete_trigger_pause(
        &self,
        trigger: WorkerTriggerType,
    ) -> DatabaseResult<Option<TriggerPause>> {
        let removed = self
            .coll(TRIGGER_PAUSES)
            .find_one_and_delete(d::trigger_pause_filter(trigger))
            .await
            .map_err(db_err)?;
        removed.as_ref().map(d::decode_trigger_pause).transpose()
    }

    async fn get_trigger_pause(
        &self,
        trigger: WorkerTriggerType,
    ) -> DatabaseResult<Option<TriggerPause>> {
        let doc = self
            .coll(TRIGGER_PAUSES)
            .find_one(d::trigger_pause_filter(trigger))
            .await
            .map_err(db_err)?;
        doc.as_ref().map(d::decode_trigger_pause).transpose()
    }

    async fn get_trigger_pauses(&self) -> DatabaseResult<Vec<TriggerPause>> {
        let docs: Vec<Document> = self
            .coll(TRIGGER_PAUSES)
            .find(doc! {})
            .sort(doc! { "trigger": 1 })
            .await
            .map_err(db_err)?
            .try_collect()
            .await
            .map_err(db_err)?;
        docs.iter().map(d::decode_trigger_pause).collect()
    }
}

/// Decodes every document of `cursor` as a `kind` record whose id is `id_field`.
async fn decode_all<T: DeserializeOwned>(
    cursor: Cursor<Document>,
    id_field: &str,
    kind: &str,
) -> DatabaseResult<Vec<T>> {
    let docs: Vec<Document> = cursor.try_collect().await.map_err(db_err)?;
    docs.into_iter().map(|doc| d::decode_record(doc, id_field, kind)).collect()
}

/// An integer field (Int32 or Int64), if present.
fn int_field(doc: &Document, field: &str) -> Option<i64> {
    match doc.get(field)? {
        Bson::Int64(i) => Some(*i),
        Bson::Int32(i) => Some(i64::from(*i)),
        _ => None,
    }
}

/// A lookup document; a missing or null batch index is `None`.
pub(crate) fn decode_lookup(doc: &Document, block_number: u64) -> DatabaseResult<BlockBatchLookup> {
    let corrupt = |reason: String| DatabaseError::Corrupt {
        what: format!("block batch lookup {block_number}"),
        reason,
    };
    let index = |field: &str| -> DatabaseResult<Option<u64>> {
        match doc.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(_) => {
                let v = int_field(doc, field)
                    .ok_or_else(|| corrupt(format!("{field} is not an integer")))?;
                u64::try_from(v).map(Some).map_err(|_| corrupt(format!("negative {field} {v}")))
            }
        }
    };
    let time = |field: &str| -> DatabaseResult<DateTime<Utc>> {
        match doc.get(field) {
            Some(Bson::DateTime(t)) => DateTime::from_timestamp_millis(t.timestamp_millis())
                .ok_or_else(|| corrupt(format!("{field} out of range"))),
            _ => Err(corrupt(format!("{field} is not a datetime"))),
        }
    };
    Ok(BlockBatchLookup {
        block_number,
        snos_batch_index: index("snos_batch_index")?,
        aggregator_batch_index: index("aggregator_batch_index")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

fn conflict_or<B: BatchRecord>(
    row: &BatchColumns,
) -> impl FnOnce(::mongodb::error::Error) -> DatabaseError + '_ {
    move |e| {
        if is_duplicate_key(&e) {
            DatabaseError::Conflict(format!(
                "{} {} ({}..={}): {e}",
                B::WHAT,
                row.index,
                row.start,
                row.end
            ))
        } else {
            db_err(e)
        }
    }
}

/// Maps a driver error: network / selection / "not now" → `Unavailable` (retryable),
/// anything else → `Other`.
pub(crate) fn db_err(e: ::mongodb::error::Error) -> DatabaseError {
    if is_transient(&e) {
        DatabaseError::Unavailable(Box::new(e))
    } else {
        DatabaseError::other(e)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{core::client::mongodb::test_support::TestDb, types::jobs::JobType};

    /// A fresh database (dropped with the guard); `None` (after printing `skipped: no MongoDB`)
    /// when no test server is set and `ORCH_SKIP_MONGODB_TESTS=1` (see `TestDb::create`).
    async fn fresh_db() -> Option<(Arc<MongoDatabase>, TestDb)> {
        let test_db = TestDb::create().await?;
        let db = MongoDatabase::open(test_db.client.clone(), test_db.db.clone())
            .await
            .expect("ensure indexes");
        Some((Arc::new(db), test_db))
    }

    mod conformance {
        crate::database_conformance_tests!({
            let Some((db, guard)) = super::fresh_db().await else { return };
            let db: std::sync::Arc<dyn crate::core::client::DatabaseClient> = db;
            std::future::ready((db, guard))
        });
    }

    #[test]
    fn the_reference_indexes() {
        let models = index_models();
        let names: Vec<&str> = models.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            names,
            ["jobs", "aggregator_batches", "snos_batches", "block_batch_lookups", "trigger_pauses"]
        );
        let unique = |c: &str| -> Vec<Document> {
            models
                .iter()
                .find(|(name, _)| *name == c)
                .map(|(_, m)| {
                    m.iter()
                        .filter(|m| m.options.as_ref().and_then(|o| o.unique).unwrap_or(false))
                        .map(|m| m.keys.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(unique("jobs"), vec![doc! { "job_type": 1, "internal_id": -1 }]);
        for c in ["snos_batches", "aggregator_batches"] {
            assert_eq!(
                unique(c),
                vec![doc! { "index": 1 }, doc! { "start_block": 1 }, doc! { "end_block": 1 }],
                "{c}"
            );
        }
        assert_eq!(unique("block_batch_lookups"), vec![doc! { "block_number": 1 }]);
        assert_eq!(unique("trigger_pauses"), vec![doc! { "trigger": 1 }]);
    }

    /// The indexes the trigger and route queries need, as the SQL schema has them
    /// (docs/databases.md, "Query plans at scale").
    #[test]
    fn the_indexes_of_the_queries_at_scale() {
        let models = index_models();
        let keys = |c: &str| -> Vec<Document> {
            let (_, m) = models.iter().find(|(name, _)| *name == c).expect("collection");
            m.iter().map(|m| m.keys.clone()).collect()
        };
        let jobs = keys("jobs");
        for want in [
            doc! { "job_type": 1, "status": 1, "internal_id": -1 },
            doc! { "status": 1, "internal_id": 1 },
            doc! { "metadata.specific.block_number": 1 },
            doc! { "metadata.specific.start_block": 1, "metadata.specific.end_block": 1 },
            doc! { "metadata.specific.context.Batch.to_settle": 1 },
            doc! { "metadata.specific.context.Block.to_settle": 1 },
        ] {
            assert!(jobs.contains(&want), "jobs lacks {want}");
        }
        for c in ["snos_batches", "aggregator_batches"] {
            assert!(keys(c).contains(&doc! { "status": 1, "index": 1 }), "{c}");
        }
        assert!(keys("snos_batches").contains(&doc! { "aggregator_batch_index": 1, "index": 1 }));
    }

    #[test]
    fn lookups_decode_missing_indexes_as_none() {
        let now = Utc::now();
        let doc = d::new_lookup(5, "snos_batch_index", 2, now);
        let l = decode_lookup(&doc, 5).expect("decode");
        assert_eq!((l.snos_batch_index, l.aggregator_batch_index), (Some(2), None));
        assert!(decode_lookup(&doc! { "block_number": 5_i64 }, 5).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_clients_racing_updates_lose_nothing() {
        let Some((a, guard)) = fresh_db().await else { return };
        let b =
            Arc::new(MongoDatabase::open(guard.client.clone(), guard.db.clone()).await.expect("b"));
        let job = a
            .create_job(JobItem::new(
                JobType::SnosRun,
                1,
                crate::types::jobs::JobSpecificMetadata::Snos(Default::default()),
            ))
            .await
            .expect("create");
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let db = if w % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    let mut won = 0;
                    while won < 10 {
                        let current = db.get_job_by_id(job.id).await.expect("get").expect("exists");
                        let mut metadata = current.metadata.clone();
                        metadata.common.process_attempt_no += 1;
                        match db
                            .update_job(&current, JobItemUpdates::new().metadata(metadata))
                            .await
                        {
                            Ok(_) => won += 1,
                            Err(DatabaseError::UpdateFailed { .. }) => {}
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.expect("writer panicked");
        }
        let stored = a.get_job_by_id(job.id).await.expect("get").expect("exists");
        assert_eq!((stored.version, stored.metadata.common.process_attempt_no), (40, 40));
    }
}
