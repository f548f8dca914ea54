//! The BSON documents, filters, updates and pipelines the MongoDB backend sends: pure
//! functions, so their shapes are checked by unit tests without a server.

use ::mongodb::bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

use crate::{
    core::client::{
        database::{DatabaseError, DatabaseResult, TriggerPause},
        db_common::{lower_bound, names, JobFilter},
    },
    types::{
        batch::SortOrder,
        jobs::{JobItemUpdates, JobStatus, JobType},
        queue::WorkerTriggerType,
    },
};

/// Field of a job's orchestrator version.
pub const JOB_VERSION_FIELD: &str = "metadata.common.orchestrator_version";

/// Top-level fields stored as BSON datetimes.
const DATE_FIELDS: [&str; 2] = ["created_at", "updated_at"];

// ---- values ----

/// A UUID as BSON binary (subtype 4), as the reference stores ids.
pub fn uuid_bson(id: Uuid) -> Bson {
    Bson::Binary(Binary { subtype: BinarySubtype::Uuid, bytes: id.as_bytes().to_vec() })
}

/// A time as a BSON datetime (millisecond precision).
pub fn date_bson(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(::mongodb::bson::DateTime::from_millis(t.timestamp_millis()))
}

/// JSON to BSON with every integer as Int64: a number above `i64::MAX` is an error (it would
/// otherwise become a lossy double), and keys starting with `$` are kept as data.
pub fn json_to_bson(value: &serde_json::Value, path: &str) -> DatabaseResult<Bson> {
    Ok(match value {
        serde_json::Value::Null => Bson::Null,
        serde_json::Value::Bool(b) => Bson::Boolean(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Bson::Int64(i)
            } else if n.is_u64() {
                return Err(DatabaseError::other(format!(
                    "{path} {n} exceeds {}, the largest integer the database stores",
                    i64::MAX
                )));
            } else {
                Bson::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Bson::String(s.clone()),
        serde_json::Value::Array(items) => Bson::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| json_to_bson(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => {
            let mut doc = Document::new();
            for (k, v) in map {
                doc.insert(k.clone(), json_to_bson(v, &format!("{path}.{k}"))?);
            }
            Bson::Document(doc)
        }
    })
}

/// BSON to JSON: integers and doubles as numbers, datetimes as RFC 3339, UUID binaries as
/// their hyphenated text.
pub fn bson_to_json(value: &Bson) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Int32(i) => Value::from(*i),
        Bson::Int64(i) => Value::from(*i),
        Bson::Double(d) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(items) => Value::Array(items.iter().map(bson_to_json).collect()),
        Bson::Document(doc) => {
            Value::Object(doc.iter().map(|(k, v)| (k.clone(), bson_to_json(v))).collect())
        }
        Bson::DateTime(d) => Value::String(
            DateTime::<Utc>::from_timestamp_millis(d.timestamp_millis())
                .map_or_else(|| d.to_string(), |t| t.to_rfc3339()),
        ),
        Bson::Binary(b) if b.subtype == BinarySubtype::Uuid || b.bytes.len() == 16 => {
            Uuid::from_slice(&b.bytes)
                .map_or_else(|_| Value::String(format!("{b}")), |u| Value::String(u.to_string()))
        }
        Bson::ObjectId(o) => Value::String(o.to_hex()),
        other => Value::String(other.to_string()),
    }
}

// ---- records ----

/// The stored document of a record: its JSON shape as BSON, with `id` moved to `id_field` as
/// a binary UUID and the top-level timestamps as datetimes.
pub fn encode_record<T: Serialize>(
    value: &T,
    id: Uuid,
    id_field: &str,
    kind: &str,
) -> DatabaseResult<Document> {
    let json = serde_json::to_value(value).map_err(DatabaseError::other)?;
    let Bson::Document(mut doc) = json_to_bson(&json, kind)? else {
        return Err(DatabaseError::other(format!("a {kind} does not serialise to a document")));
    };
    doc.remove("id");
    for field in DATE_FIELDS {
        if let Some(Bson::String(s)) = doc.get(field) {
            let t =
                DateTime::parse_from_rfc3339(s).map_err(DatabaseError::other)?.with_timezone(&Utc);
            doc.insert(field, date_bson(t));
        }
    }
    let mut out = Document::new();
    out.insert(id_field, uuid_bson(id));
    out.extend(doc);
    Ok(out)
}

/// The record of a stored document (the inverse of [`encode_record`]); a document that does
/// not decode is `Corrupt`, naming the record.
pub fn decode_record<T: DeserializeOwned>(
    mut doc: Document,
    id_field: &str,
    kind: &str,
) -> DatabaseResult<T> {
    let id = doc.remove(id_field);
    if id_field != "_id" {
        doc.remove("_id");
    }
    let id_text = id
        .as_ref()
        .map(bson_to_json)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    let mut json = bson_to_json(&Bson::Document(doc));
    if let Some(obj) = json.as_object_mut() {
        obj.insert("id".to_owned(), serde_json::Value::String(id_text.clone()));
    }
    serde_json::from_value(json).map_err(|e| DatabaseError::Corrupt {
        what: format!("{kind} {id_text}"),
        reason: e.to_string(),
    })
}

// ---- jobs ----

/// `create_job`: the filter on `(job_type, internal_id)` and the `$setOnInsert` update of an
/// upsert that inserts `job` only if no job has that key.
pub fn create_job_upsert(
    job_doc: &Document,
    job_type: JobType,
    internal_id: i64,
) -> (Document, Document) {
    (
        doc! { "job_type": job_type.as_ref(), "internal_id": internal_id },
        doc! { "$setOnInsert": job_doc.clone() },
    )
}

/// `update_job`: the `{id, version}` filter of the versioned update.
pub fn versioned_filter(id: Uuid, version: i32) -> Document {
    doc! { "id": uuid_bson(id), "version": version }
}

/// `update_job`: `$set` of the fields present in `updates` plus `updated_at`, `$inc` of the
/// version.
pub fn job_update(updates: &JobItemUpdates, now: DateTime<Utc>) -> DatabaseResult<Document> {
    let mut set = doc! { "updated_at": date_bson(now) };
    if let Some(status) = updates.status {
        set.insert("status", status.as_ref());
    }
    if let Some(external_id) = &updates.external_id {
        let json = serde_json::to_value(external_id).map_err(DatabaseError::other)?;
        set.insert("external_id", json_to_bson(&json, "external_id")?);
    }
    if let Some(metadata) = &updates.metadata {
        let json = serde_json::to_value(metadata).map_err(DatabaseError::other)?;
        set.insert("metadata", json_to_bson(&json, "metadata")?);
    }
    Ok(doc! { "$set": set, "$inc": { "version": 1_i32 } })
}

/// Adds the orchestrator-version filter of jobs, if any.
pub fn with_job_version(mut filter: Document, version: Option<&str>) -> Document {
    if let Some(v) = version {
        filter.insert(JOB_VERSION_FIELD, v);
    }
    filter
}

/// Jobs of `a_type` in `a_status` with internal id ≥ `min` (and the version, if given) that
/// have no job of `b_type` with the same internal id, ascending.
pub fn jobs_without_successor_pipeline(
    a_type: JobType,
    a_status: JobStatus,
    b_type: JobType,
    version: Option<&str>,
    min: i64,
) -> Vec<Document> {
    let matching = with_job_version(
        doc! { "job_type": a_type.as_ref(), "status": a_status.as_ref(), "internal_id": { "$gte": min } },
        version,
    );
    vec![
        doc! { "$match": matching },
        doc! { "$sort": { "internal_id": 1 } },
        doc! { "$lookup": {
            "from": super::JOBS,
            "let": { "iid": "$internal_id" },
            "pipeline": [
                { "$match": { "$expr": { "$and": [
                    { "$eq": ["$job_type", b_type.as_ref()] },
                    { "$eq": ["$internal_id", "$$iid"] },
                ] } } },
                { "$limit": 1 },
                { "$project": { "_id": 1 } },
            ],
            "as": "successors",
        } },
        doc! { "$match": { "successors": { "$size": 0 } } },
        doc! { "$project": { "successors": 0 } },
    ]
}

/// Jobs related to a block (see `DatabaseClient::get_jobs_by_block_number`), through the
/// metadata fields that only the job types touching a block carry (the block a proving or DA job
/// works on, the block or batch a state transition settles, the range of a SNOS run), as the SQL
/// backends do through `JobSpecificMetadata::indexed`; `aggregator_indexes` are the indexes of
/// the aggregator batches containing the block.
pub fn jobs_by_block_filter(block: i64, aggregator_indexes: &[i64]) -> Document {
    let mut any = vec![
        Bson::Document(doc! { "metadata.specific.block_number": block }),
        Bson::Document(doc! { "metadata.specific.context.Batch.to_settle": block }),
        Bson::Document(doc! { "metadata.specific.context.Block.to_settle": block }),
        Bson::Document(doc! {
            "metadata.specific.start_block": { "$lte": block },
            "metadata.specific.end_block": { "$gte": block },
        }),
    ];
    if !aggregator_indexes.is_empty() {
        any.push(Bson::Document(doc! {
            "job_type": JobType::Aggregator.as_ref(),
            "internal_id": { "$in": aggregator_indexes.to_vec() },
        }));
    }
    doc! { "$or": any }
}

/// The filter of a job query (see `DatabaseClient::get_jobs`). Untagged storage artifacts are
/// a `null` tag, which matches a missing field too.
pub(crate) fn job_filter(f: &JobFilter<'_>) -> Document {
    let q = &f.query;
    let mut filter = Document::new();
    if let Some(id) = q.id {
        filter.insert("id", uuid_bson(id));
    }
    if !q.job_types.is_empty() {
        filter.insert("job_type", doc! { "$in": names(q.job_types) });
    }
    let mut status = Document::new();
    if !q.statuses.is_empty() {
        status.insert("$in", names(q.statuses));
    }
    if !q.excluded_statuses.is_empty() {
        status.insert("$nin", names(q.excluded_statuses));
    }
    if !status.is_empty() {
        filter.insert("status", status);
    }
    let mut internal_id = Document::new();
    if let Some(ids) = &f.internal_ids {
        internal_id.insert("$in", ids.clone());
    }
    if let Some(min) = f.min_internal_id {
        internal_id.insert("$gte", min);
    }
    if let Some(max) = f.max_internal_id {
        internal_id.insert("$lte", max);
    }
    if !internal_id.is_empty() {
        filter.insert("internal_id", internal_id);
    }
    if q.storage_artifacts_untagged {
        filter.insert("metadata.specific.storage_artifacts_tagged_at", Bson::Null);
    }
    with_job_version(filter, q.orchestrator_version)
}

/// The order of a job query: by internal id, then job type.
pub fn job_sort(sort: SortOrder) -> Document {
    let direction = match sort {
        SortOrder::Ascending => 1,
        SortOrder::Descending => -1,
    };
    doc! { "internal_id": direction, "job_type": direction }
}

// ---- batches ----

/// A sorted read as an aggregation: `$match` `filter`, then `$sort` by `sort` (left out when
/// empty: MongoDB refuses an empty `$sort`), then `$limit` when given.
///
/// Batch reads use this rather than `find(filter).sort(sort)`. On MongoDB both are the same
/// query (the pipeline optimizer turns a leading `$match` + `$sort` + `$limit` into the
/// `find` plan), but SecantusDB 0.7.0b3, the MongoDB-wire server `make test` runs, ignores a
/// `find`'s single-field sort when the filter has `$in` on that same indexed field
/// (`{index: {$in: [4, 2]}}` sorted by `{index: 1}` comes back 4, 2, in the `$in` list's
/// order); its aggregation `$sort` is correct. See `docs/databases.md`.
pub fn sorted_find_pipeline(filter: Document, sort: Document, limit: Option<i64>) -> Vec<Document> {
    let mut pipeline = vec![doc! { "$match": filter }];
    if !sort.is_empty() {
        pipeline.push(doc! { "$sort": sort });
    }
    if let Some(limit) = limit {
        pipeline.push(doc! { "$limit": limit });
    }
    pipeline
}

/// Batches containing `block`.
pub fn batches_containing(block: i64) -> Document {
    doc! { "start_block": { "$lte": block }, "end_block": { "$gte": block } }
}

/// SNOS batches in `status` with index ≥ `min` (and the version, if given) that have no
/// SnosRun job yet, ascending, at most `limit`.
pub fn snos_batches_without_jobs_pipeline(
    status: &str,
    limit: i64,
    version: Option<&str>,
    min: i64,
) -> Vec<Document> {
    let mut matching = doc! { "status": status, "index": { "$gte": min } };
    if let Some(v) = version {
        matching.insert("orchestrator_version", v);
    }
    vec![
        doc! { "$match": matching },
        doc! { "$sort": { "index": 1 } },
        doc! { "$lookup": {
            "from": super::JOBS,
            "let": { "batch_index": "$index" },
            "pipeline": [
                { "$match": { "$expr": { "$and": [
                    { "$eq": ["$job_type", JobType::SnosRun.as_ref()] },
                    { "$eq": ["$internal_id", "$$batch_index"] },
                ] } } },
                { "$limit": 1 },
                { "$project": { "_id": 1 } },
            ],
            "as": "jobs",
        } },
        doc! { "$match": { "jobs": { "$size": 0 } } },
        doc! { "$project": { "jobs": 0 } },
        doc! { "$limit": limit.max(0) },
    ]
}

/// The filter of a batch query (indexes and statuses: empty means any).
pub fn batch_query_filter(
    indexes: &[u64],
    statuses: &[String],
    version: Option<&str>,
) -> Option<Document> {
    let mut filter = Document::new();
    if !indexes.is_empty() {
        let indexes: Vec<i64> = indexes.iter().filter_map(|i| lower_bound(*i)).collect();
        if indexes.is_empty() {
            return None;
        }
        filter.insert("index", doc! { "$in": indexes });
    }
    if !statuses.is_empty() {
        filter.insert("status", doc! { "$in": statuses.to_vec() });
    }
    if let Some(v) = version {
        filter.insert("orchestrator_version", v);
    }
    Some(filter)
}

// ---- lookups ----

/// The lookups pointing at batch `index` (field `field`) that fall outside `keep` (all of
/// them when `keep` is `None`).
pub fn stale_lookups_filter(field: &str, index: i64, keep: Option<(i64, i64)>) -> Document {
    let mut filter = doc! { field: index };
    if let Some((start, end)) = keep {
        filter.insert(
            "$or",
            vec![
                doc! { "block_number": { "$lt": start } },
                doc! { "block_number": { "$gt": end } },
            ],
        );
    }
    filter
}

/// Unsets `field` (the reference unsets, rather than nulls, a lookup's batch index).
pub fn unset_lookup(field: &str, now: DateTime<Utc>) -> Document {
    doc! { "$unset": { field: "" }, "$set": { "updated_at": date_bson(now) } }
}

/// Lookups of the blocks `start..=end`.
pub fn block_range_filter(start: i64, end: i64) -> Document {
    doc! { "block_number": { "$gte": start, "$lte": end } }
}

/// Points `field` of existing lookups at `index`.
pub fn point_lookups(field: &str, index: i64, now: DateTime<Utc>) -> Document {
    doc! { "$set": { field: index, "updated_at": date_bson(now) } }
}

/// A new lookup row.
pub fn new_lookup(block: i64, field: &str, index: i64, now: DateTime<Utc>) -> Document {
    doc! { "block_number": block, field: index, "created_at": date_bson(now), "updated_at": date_bson(now) }
}

// ---- locks ----

/// `acquire_lock`: matches the lock only if it has expired; with upsert, a missing lock is
/// inserted and a live one makes the insert fail on `_id` (→ already held).
pub fn acquire_filter(key: &str, now: DateTime<Utc>) -> Document {
    doc! { "_id": key, "expires_at": { "$lte": date_bson(now) } }
}

/// The live lock `key`, held by `owner` when given.
pub fn live_lock_filter(key: &str, owner: Option<&str>, now: DateTime<Utc>) -> Document {
    let mut filter = doc! { "_id": key, "expires_at": { "$gt": date_bson(now) } };
    if let Some(owner) = owner {
        filter.insert("owner", owner);
    }
    filter
}

// ---- trigger pauses ----

/// The pause of `trigger` (the unique `trigger` field).
pub fn trigger_pause_filter(trigger: WorkerTriggerType) -> Document {
    doc! { "trigger": trigger.name() }
}

/// `insert_trigger_pause`: an upsert keyed by the trigger whose fields are only set on insert,
/// so a trigger paused already keeps its first pause.
pub fn trigger_pause_upsert(pause: &TriggerPause) -> (Document, Document) {
    let reason = pause.reason.as_deref().map_or(Bson::Null, |r| Bson::String(r.to_owned()));
    let fields = doc! {
        "trigger": pause.trigger.name(),
        "paused_by": pause.paused_by.as_str(),
        "paused_at": date_bson(pause.paused_at),
        "reason": reason,
    };
    (trigger_pause_filter(pause.trigger), doc! { "$setOnInsert": fields })
}

/// A stored pause; `Corrupt` (naming the trigger) when a field is missing or mistyped.
pub fn decode_trigger_pause(doc: &Document) -> DatabaseResult<TriggerPause> {
    let trigger = doc.get_str("trigger").unwrap_or("?");
    let corrupt = |reason: String| DatabaseError::Corrupt {
        what: format!("trigger pause {trigger:?}"),
        reason,
    };
    let paused_by = doc.get_str("paused_by").map_err(|e| corrupt(format!("paused_by: {e}")))?;
    let paused_at =
        doc.get_datetime("paused_at").map_err(|e| corrupt(format!("paused_at: {e}")))?;
    let reason = match doc.get("reason") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(r)) => Some(r.clone()),
        Some(other) => {
            return Err(corrupt(format!("reason is a {:?}, not a string", other.element_type())))
        }
    };
    TriggerPause::from_stored(trigger, paused_by.to_owned(), paused_at.timestamp_millis(), reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{
        batch::SnosBatch,
        jobs::{JobItem, JobSpecificMetadata, SnosMetadata},
    };

    fn job() -> JobItem {
        JobItem::new(
            JobType::SnosRun,
            7,
            JobSpecificMetadata::Snos(SnosMetadata {
                snos_batch_index: 7,
                start_block: 70,
                end_block: 79,
                num_blocks: 10,
                ..Default::default()
            }),
        )
    }

    #[test]
    fn sorted_reads_are_match_sort_limit_pipelines() {
        let filter = doc! { "index": { "$in": [4_i64, 2_i64] } };
        assert_eq!(
            sorted_find_pipeline(filter.clone(), doc! { "index": 1 }, Some(3)),
            vec![
                doc! { "$match": filter.clone() },
                doc! { "$sort": { "index": 1 } },
                doc! { "$limit": 3_i64 },
            ]
        );
        // No sort key: no `$sort` stage (MongoDB refuses an empty one); no limit: no `$limit`.
        assert_eq!(
            sorted_find_pipeline(filter.clone(), doc! {}, None),
            vec![doc! { "$match": filter }]
        );
    }

    #[test]
    fn a_job_is_stored_like_the_reference_and_round_trips() {
        let job = job();
        let doc = encode_record(&job, job.id, "id", "job").expect("encode");
        assert_eq!(doc.get("id"), Some(&uuid_bson(job.id)));
        assert!(matches!(doc.get("id"), Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Uuid));
        assert_eq!(doc.get("internal_id"), Some(&Bson::Int64(7)));
        assert_eq!(doc.get("version"), Some(&Bson::Int64(0)));
        assert_eq!(doc.get_str("job_type").expect("job_type"), "SnosRun");
        assert_eq!(doc.get_str("status").expect("status"), "Created");
        assert!(matches!(doc.get("created_at"), Some(Bson::DateTime(_))));
        assert!(matches!(doc.get("updated_at"), Some(Bson::DateTime(_))));
        let specific = doc
            .get_document("metadata")
            .and_then(|m| m.get_document("specific"))
            .expect("specific");
        assert_eq!(specific.get("start_block"), Some(&Bson::Int64(70)));
        assert_eq!(specific.get_str("type").expect("tag"), "Snos");
        assert_eq!(doc.keys().next().map(String::as_str), Some("id"));
        // A stored document has a server-made `_id` too; it is dropped on read.
        let mut stored = doc.clone();
        stored.insert("_id", ::mongodb::bson::oid::ObjectId::new());
        let back: JobItem = decode_record(stored, "id", "job").expect("decode");
        assert_eq!(back, job);
    }

    #[test]
    fn a_batch_uses_its_uuid_as_underscore_id() {
        let batch = SnosBatch::new(3, Some(1), 100, "0.14.2", Default::default());
        let doc = encode_record(&batch, batch.id, "_id", "SNOS batch").expect("encode");
        assert_eq!(doc.get("_id"), Some(&uuid_bson(batch.id)));
        assert!(doc.get("id").is_none());
        assert_eq!(doc.get("index"), Some(&Bson::Int64(3)));
        assert_eq!(doc.get("aggregator_batch_index"), Some(&Bson::Int64(1)));
        let back: SnosBatch = decode_record(doc, "_id", "SNOS batch").expect("decode");
        assert_eq!(back, batch);
    }

    #[test]
    fn integers_above_i64_max_are_refused_not_doubled() {
        let mut job = job();
        job.internal_id = u64::MAX;
        let err = encode_record(&job, job.id, "id", "job").expect_err("too big");
        assert!(
            err.to_string().contains("internal_id") && err.to_string().contains("exceeds"),
            "{err}"
        );
        assert_eq!(json_to_bson(&serde_json::json!(1.5), "x").expect("double"), Bson::Double(1.5));
        assert_eq!(
            json_to_bson(&serde_json::json!({"$k": 1}), "x").expect("doc"),
            Bson::Document(doc! { "$k": 1_i64 })
        );
    }

    #[test]
    fn an_undecodable_document_is_corrupt_and_named() {
        let id = Uuid::new_v4();
        let err =
            decode_record::<JobItem>(doc! { "id": uuid_bson(id), "not": "a job" }, "id", "job")
                .expect_err("corrupt");
        assert!(
            matches!(&err, DatabaseError::Corrupt { what, .. } if what == &format!("job {id}")),
            "{err:?}"
        );
    }

    #[test]
    fn create_is_an_upsert_keyed_by_type_and_internal_id() {
        let job = job();
        let doc = encode_record(&job, job.id, "id", "job").expect("encode");
        let (filter, update) = create_job_upsert(&doc, JobType::SnosRun, 7);
        assert_eq!(filter, doc! { "job_type": "SnosRun", "internal_id": 7_i64 });
        assert_eq!(update, doc! { "$setOnInsert": doc });
    }

    #[test]
    fn the_versioned_update_sets_only_given_fields() {
        let id = Uuid::new_v4();
        assert_eq!(versioned_filter(id, 3), doc! { "id": uuid_bson(id), "version": 3_i32 });
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let update = job_update(
            &JobItemUpdates::new().status(JobStatus::Completed).external_id("0xab"),
            now,
        )
        .expect("update");
        assert_eq!(
            update,
            doc! {
                "$set": { "updated_at": date_bson(now), "status": "Completed", "external_id": "0xab" },
                "$inc": { "version": 1_i32 },
            }
        );
        let with_meta =
            job_update(&JobItemUpdates::new().metadata(job().metadata), now).expect("update");
        let set = with_meta.get_document("$set").expect("$set");
        assert!(set.get_document("metadata").is_ok() && set.get("status").is_none());
    }

    #[test]
    fn jobs_without_successor_is_a_lookup_pipeline() {
        let p = jobs_without_successor_pipeline(
            JobType::SnosRun,
            JobStatus::Completed,
            JobType::ProofCreation,
            Some("0.1.0"),
            5,
        );
        assert_eq!(
            p[0],
            doc! { "$match": { "job_type": "SnosRun", "status": "Completed", "internal_id": { "$gte": 5_i64 }, JOB_VERSION_FIELD: "0.1.0" } }
        );
        assert_eq!(p[1], doc! { "$sort": { "internal_id": 1 } });
        let lookup = p[2].get_document("$lookup").expect("$lookup");
        assert_eq!(lookup.get_str("from").expect("from"), "jobs");
        assert_eq!(lookup.get_str("as").expect("as"), "successors");
        let inner = lookup.get_array("pipeline").expect("pipeline");
        assert_eq!(
            inner[0],
            Bson::Document(doc! { "$match": { "$expr": { "$and": [
                { "$eq": ["$job_type", "ProofCreation"] },
                { "$eq": ["$internal_id", "$$iid"] },
            ] } } })
        );
        assert_eq!(p[3], doc! { "$match": { "successors": { "$size": 0 } } });
        let p = jobs_without_successor_pipeline(
            JobType::SnosRun,
            JobStatus::Completed,
            JobType::ProofCreation,
            None,
            0,
        );
        assert!(p[0].get_document("$match").expect("match").get(JOB_VERSION_FIELD).is_none());
    }

    #[test]
    fn snos_batches_without_jobs_is_a_lookup_pipeline_with_a_limit() {
        let p = snos_batches_without_jobs_pipeline("Closed", 10, None, 2);
        assert_eq!(p[0], doc! { "$match": { "status": "Closed", "index": { "$gte": 2_i64 } } });
        let lookup = p[2].get_document("$lookup").expect("$lookup");
        assert_eq!(lookup.get_document("let").expect("let"), &doc! { "batch_index": "$index" });
        assert_eq!(p[3], doc! { "$match": { "jobs": { "$size": 0 } } });
        assert_eq!(p.last(), Some(&doc! { "$limit": 10_i64 }));
    }

    #[test]
    fn the_block_filter_covers_every_job_kind() {
        let f = jobs_by_block_filter(42, &[3]);
        let any = f.get_array("$or").expect("$or");
        assert_eq!(any.len(), 5);
        assert_eq!(any[0], Bson::Document(doc! { "metadata.specific.block_number": 42_i64 }));
        assert_eq!(
            any[4],
            Bson::Document(doc! { "job_type": "Aggregator", "internal_id": { "$in": [3_i64] } })
        );
        assert_eq!(jobs_by_block_filter(42, &[]).get_array("$or").expect("$or").len(), 4);
    }

    #[test]
    fn a_job_query_is_one_filter_and_sort() {
        use crate::core::client::database::JobQuery;
        let query = JobQuery {
            job_types: &[JobType::StateTransition],
            statuses: &[JobStatus::Completed],
            excluded_statuses: &[JobStatus::Failed],
            internal_ids: Some(&[3, u64::MAX, 1]),
            min_internal_id: Some(1),
            max_internal_id: Some(u64::MAX),
            orchestrator_version: Some("v"),
            storage_artifacts_untagged: true,
            sort: SortOrder::Descending,
            limit: Some(5),
            ..JobQuery::default()
        };
        let filter = JobFilter::of(query).expect("matches something");
        assert_eq!(filter.limit, Some(5));
        assert_eq!(
            job_filter(&filter),
            doc! {
                "job_type": { "$in": ["StateTransition"] },
                "status": { "$in": ["Completed"], "$nin": ["Failed"] },
                "internal_id": { "$in": [3_i64, 1_i64], "$gte": 1_i64, "$lte": i64::MAX },
                "metadata.specific.storage_artifacts_tagged_at": Bson::Null,
                JOB_VERSION_FIELD: "v",
            }
        );
        assert_eq!(job_sort(SortOrder::Descending), doc! { "internal_id": -1, "job_type": -1 });
        assert_eq!(job_filter(&JobFilter::of(JobQuery::default()).expect("all")), doc! {});
        for nothing in [
            JobQuery { internal_ids: Some(&[u64::MAX]), ..JobQuery::default() },
            JobQuery { min_internal_id: Some(u64::MAX), ..JobQuery::default() },
            JobQuery { limit: Some(0), ..JobQuery::default() },
        ] {
            assert!(JobFilter::of(nothing).is_none(), "{nothing:?}");
        }
    }

    #[test]
    fn batch_queries_and_lookups() {
        assert_eq!(batch_query_filter(&[], &[], None), Some(Document::new()));
        assert_eq!(
            batch_query_filter(&[u64::MAX], &[], None),
            None,
            "an index above i64::MAX matches nothing"
        );
        assert_eq!(
            batch_query_filter(&[1, 2], &["Open".to_owned()], Some("v")),
            Some(
                doc! { "index": { "$in": [1_i64, 2_i64] }, "status": { "$in": ["Open"] }, "orchestrator_version": "v" }
            )
        );
        assert_eq!(
            stale_lookups_filter("snos_batch_index", 4, Some((10, 20))),
            doc! { "snos_batch_index": 4_i64, "$or": [{ "block_number": { "$lt": 10_i64 } }, { "block_number": { "$gt": 20_i64 } }] }
        );
        assert_eq!(
            stale_lookups_filter("snos_batch_index", 4, None),
            doc! { "snos_batch_index": 4_i64 }
        );
        let now = Utc::now();
        assert_eq!(
            new_lookup(5, "aggregator_batch_index", 2, now).get("block_number"),
            Some(&Bson::Int64(5))
        );
        assert!(unset_lookup("snos_batch_index", now)
            .get_document("$unset")
            .expect("$unset")
            .contains_key("snos_batch_index"));
    }

    #[test]
    fn lock_filters() {
        let now = Utc::now();
        assert_eq!(
            acquire_filter("k", now),
            doc! { "_id": "k", "expires_at": { "$lte": date_bson(now) } }
        );
        assert_eq!(
            live_lock_filter("k", Some("a"), now),
            doc! { "_id": "k", "expires_at": { "$gt": date_bson(now) }, "owner": "a" }
        );
        assert!(live_lock_filter("k", None, now).get("owner").is_none());
    }

    #[test]
    fn a_trigger_pause_is_set_on_insert_only_and_round_trips() {
        let pause = TriggerPause::new(
            WorkerTriggerType::Stage(JobType::SnosRun),
            "alice",
            Some("prover down".to_owned()),
        );
        let (filter, update) = trigger_pause_upsert(&pause);
        assert_eq!(filter, doc! { "trigger": "Snos" });
        assert_eq!(update.keys().collect::<Vec<_>>(), ["$setOnInsert"]);
        let stored = update.get_document("$setOnInsert").expect("fields").clone();
        assert!(matches!(stored.get("paused_at"), Some(Bson::DateTime(_))), "{stored:?}");
        assert_eq!(decode_trigger_pause(&stored).expect("decode"), pause);

        let unknown = doc! { "trigger": "NoSuchTrigger", "paused_by": "a", "paused_at": date_bson(Utc::now()) };
        let err = decode_trigger_pause(&unknown).expect_err("unknown trigger");
        assert!(err.to_string().contains("NoSuchTrigger"), "{err}");
        let no_time = doc! { "trigger": "Snos", "paused_by": "a" };
        assert!(decode_trigger_pause(&no_time)
            .expect_err("no time")
            .to_string()
            .contains("paused_at"));
    }
}
