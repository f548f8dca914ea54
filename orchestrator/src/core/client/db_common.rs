//! Backend-neutral pieces of the job databases (SQLite, PostgreSQL, MongoDB).
//!
//! Every backend stores a record as its full document plus a few denormalised fields the
//! queries filter and sort on. What those fields are, how a `u64` becomes a stored integer,
//! how a batch exposes its range, and which block lookups a batch write must touch are the
//! same everywhere, so they live here.

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

use crate::{
    core::client::database::{BatchWrite, DatabaseError, DatabaseResult, JobQuery},
    types::{
        batch::{AggregatorBatch, AggregatorBatchUpdates, BatchKind, SnosBatch, SnosBatchUpdates},
        jobs::{now_secs, JobMetadata},
    },
};

/// Fields of a job derived from its metadata, as stored integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobColumns {
    /// `metadata.common.orchestrator_version`.
    pub(crate) orchestrator_version: String,
    /// Proving / DA: the block the job works on.
    pub(crate) block_number: Option<i64>,
    /// SNOS: first block.
    pub(crate) start_block: Option<i64>,
    /// SNOS: last block.
    pub(crate) end_block: Option<i64>,
    /// State transition: the block or batch to settle.
    pub(crate) to_settle: Option<i64>,
    /// State transition: when the storage artifacts were tagged (unix seconds).
    pub(crate) storage_artifacts_tagged_at: Option<i64>,
}

impl JobColumns {
    /// The columns of `metadata`; fails when a block number does not fit in i64.
    pub(crate) fn of(metadata: &JobMetadata) -> DatabaseResult<Self> {
        let fields = metadata.specific.indexed();
        let int = |name: &str, v: Option<u64>| v.map(|v| to_i64(name, v)).transpose();
        Ok(Self {
            orchestrator_version: metadata.common.orchestrator_version.clone(),
            block_number: int("block_number", fields.block_number)?,
            start_block: int("start_block", fields.block_range.map(|(start, _)| start))?,
            end_block: int("end_block", fields.block_range.map(|(_, end)| end))?,
            to_settle: int("to_settle", fields.to_settle)?,
            storage_artifacts_tagged_at: fields.storage_artifacts_tagged_at.map(|t| t.timestamp()),
        })
    }
}

/// A [`JobQuery`] with its integers as stored ones; built by [`JobFilter::of`].
#[derive(Debug, Clone)]
pub(crate) struct JobFilter<'a> {
    /// The query, for its other filters.
    pub(crate) query: JobQuery<'a>,
    /// Internal ids that can be stored (the others match nothing).
    pub(crate) internal_ids: Option<Vec<i64>>,
    /// Lowest internal id.
    pub(crate) min_internal_id: Option<i64>,
    /// Highest internal id.
    pub(crate) max_internal_id: Option<i64>,
    /// At most this many (never 0).
    pub(crate) limit: Option<i64>,
}

impl<'a> JobFilter<'a> {
    /// The filter of `query`; `None` when it matches nothing whatever is stored (ids above
    /// `i64::MAX` only, an empty id list, a zero limit), so no statement need be sent.
    pub(crate) fn of(query: JobQuery<'a>) -> Option<Self> {
        let internal_ids = match query.internal_ids {
            Some(ids) => {
                let ids: Vec<i64> = ids.iter().filter_map(|i| lower_bound(*i)).collect();
                if ids.is_empty() {
                    return None;
                }
                Some(ids)
            }
            None => None,
        };
        let min_internal_id = match query.min_internal_id {
            Some(min) => Some(lower_bound(min)?),
            None => None,
        };
        let limit = match query.limit {
            Some(0) => return None,
            limit => limit.map(upper_bound),
        };
        let max_internal_id = query.max_internal_id.map(upper_bound);
        Some(Self { query, internal_ids, min_internal_id, max_internal_id, limit })
    }
}

/// The names of job types or statuses, as stored.
pub(crate) fn names<T: AsRef<str>>(items: &[T]) -> Vec<String> {
    items.iter().map(|i| i.as_ref().to_owned()).collect()
}

/// What the generic batch code needs from a SNOS or aggregator batch.
pub(crate) trait BatchRecord: BatchKind + Serialize + DeserializeOwned {
    /// Table (SQL) or collection (MongoDB) name.
    const TABLE: &'static str;
    /// Column (field) of the block lookups pointing at this kind of batch.
    const LOOKUP_COLUMN: &'static str;
    /// Name in messages.
    const WHAT: &'static str;

    /// Applies `updates` (a field left `None` keeps its value).
    fn apply(&mut self, updates: Self::Updates);

    /// Primary key.
    fn id(&self) -> Uuid;
    /// `(start_block, end_block)`, inclusive.
    fn range(&self) -> (u64, u64);
    /// Status name.
    fn status(&self) -> &str;
    /// Version of the orchestrator that built it.
    fn orchestrator_version(&self) -> &str;
    /// The aggregator batch a SNOS batch belongs to.
    fn aggregator_batch_index(&self) -> Option<u64>;
    /// Creation time.
    fn created_at(&self) -> DateTime<Utc>;
    /// Last update time.
    fn updated_at(&self) -> DateTime<Utc>;
    /// Sets `num_blocks`.
    fn set_num_blocks(&mut self, n: u64);
    /// Sets `updated_at`.
    fn touch(&mut self, now: DateTime<Utc>);

    /// Checks the range and recomputes `num_blocks`.
    fn normalize(&mut self) -> DatabaseResult<()> {
        let (start, end) = self.range();
        if end < start {
            return Err(DatabaseError::other(format!(
                "{} {}: end block {end} is before start block {start}",
                Self::WHAT,
                self.index()
            )));
        }
        self.set_num_blocks(end - start + 1);
        Ok(())
    }

    /// The batch as a write in `mode` stores it (checked, `num_blocks` recomputed and, for an
    /// upsert, `updated_at` set), with its columns.
    fn prepared(&self, mode: BatchWrite) -> DatabaseResult<(Self, BatchColumns)> {
        let mut batch = self.clone();
        batch.normalize()?;
        if mode == BatchWrite::Upsert {
            batch.touch(now_secs());
        }
        let row = BatchColumns::of(&batch)?;
        Ok((batch, row))
    }

    /// The batch with `updates` applied, checked and touched, with its columns.
    fn updated(mut self, updates: Self::Updates) -> DatabaseResult<(Self, BatchColumns)> {
        self.apply(updates);
        self.normalize()?;
        self.touch(now_secs());
        let row = BatchColumns::of(&self)?;
        Ok((self, row))
    }

    /// The error of an update of batch `index` when none is stored.
    fn not_found(index: u64) -> DatabaseError {
        DatabaseError::NotFound { what: format!("{} {index}", Self::WHAT) }
    }
}

macro_rules! batch_record {
    (
        $ty:ty, $table:literal, $what:literal, $lookup:literal, |$b:ident| $agg:expr,
        $updates:ty, |$ub:ident, $u:ident| $apply:block
    ) => {
        impl BatchRecord for $ty {
            const TABLE: &'static str = $table;
            const LOOKUP_COLUMN: &'static str = $lookup;
            const WHAT: &'static str = $what;

            fn apply(&mut self, $u: $updates) {
                let $ub = self;
                if let Some(end_block) = $u.end_block {
                    $ub.end_block = end_block;
                }
                if let Some(status) = $u.status {
                    $ub.status = status;
                }
                $apply
            }

            fn id(&self) -> Uuid {
                self.id
            }
            fn range(&self) -> (u64, u64) {
                (self.start_block, self.end_block)
            }
            fn status(&self) -> &str {
                self.status.as_ref()
            }
            fn orchestrator_version(&self) -> &str {
                &self.orchestrator_version
            }
            fn aggregator_batch_index(&self) -> Option<u64> {
                let $b = self;
                $agg
            }
            fn created_at(&self) -> DateTime<Utc> {
                self.created_at
            }
            fn updated_at(&self) -> DateTime<Utc> {
                self.updated_at
            }
            fn set_num_blocks(&mut self, n: u64) {
                self.num_blocks = n;
            }
            fn touch(&mut self, now: DateTime<Utc>) {
                self.updated_at = now;
            }
        }
    };
}

batch_record!(
    SnosBatch,
    "snos_batches",
    "SNOS batch",
    "snos_batch_index",
    |b| b.aggregator_batch_index,
    SnosBatchUpdates,
    |b, u| {}
);
batch_record!(
    AggregatorBatch,
    "aggregator_batches",
    "aggregator batch",
    "aggregator_batch_index",
    |_b| None,
    AggregatorBatchUpdates,
    |b, u| {
        if let Some(bucket_id) = u.bucket_id {
            b.bucket_id = Some(bucket_id);
        }
    }
);

/// The stored fields of a batch, checked to fit in i64, with its JSON document.
#[derive(Debug, Clone)]
pub(crate) struct BatchColumns {
    /// Primary key.
    pub(crate) id: Uuid,
    /// Batch index.
    pub(crate) index: i64,
    /// Aggregator batch of a SNOS batch.
    pub(crate) aggregator_batch_index: Option<i64>,
    /// Status name.
    pub(crate) status: String,
    /// Orchestrator version that built it.
    pub(crate) orchestrator_version: String,
    /// First block.
    pub(crate) start: i64,
    /// Last block.
    pub(crate) end: i64,
    /// Unix seconds.
    pub(crate) created_at: i64,
    /// Unix seconds.
    pub(crate) updated_at: i64,
    /// The whole batch as JSON.
    pub(crate) doc: String,
}

impl BatchColumns {
    /// The columns of `b`; fails when an index or block does not fit in i64.
    pub(crate) fn of<B: BatchRecord>(b: &B) -> DatabaseResult<Self> {
        let (start, end) = b.range();
        Ok(Self {
            id: b.id(),
            index: to_i64("batch index", b.index())?,
            aggregator_batch_index: b
                .aggregator_batch_index()
                .map(|i| to_i64("aggregator batch index", i))
                .transpose()?,
            status: b.status().to_owned(),
            orchestrator_version: b.orchestrator_version().to_owned(),
            start: to_i64("start_block", start)?,
            end: to_i64("end_block", end)?,
            created_at: b.created_at().timestamp(),
            updated_at: b.updated_at().timestamp(),
            doc: to_json(b)?,
        })
    }
}

/// A batch's index and inclusive block range, as stored integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSpan {
    /// Batch index.
    pub(crate) index: i64,
    /// First block.
    pub(crate) start: i64,
    /// Last block.
    pub(crate) end: i64,
}

impl From<&BatchColumns> for BatchSpan {
    fn from(c: &BatchColumns) -> Self {
        Self { index: c.index, start: c.start, end: c.end }
    }
}

/// The block ranges whose lookups must (re)point at `new` after a write that replaced `old`.
///
/// A new batch, or one whose index changed, needs its whole range; a batch keeping its index
/// only needs the blocks it grew by (the overlap already points at it). Blocks `old` covered
/// and `new` does not are cleared separately (see [`stale_lookup_filter`]).
pub(crate) fn lookup_ranges_to_write(old: Option<BatchSpan>, new: BatchSpan) -> Vec<(i64, i64)> {
    match old {
        Some(old) if old.index == new.index => {
            let mut out = Vec::new();
            if new.start < old.start {
                out.push((new.start, new.end.min(old.start - 1)));
            }
            if new.end > old.end {
                out.push((new.start.max(old.end + 1), new.end));
            }
            out
        }
        _ => vec![(new.start, new.end)],
    }
}

/// Which lookups pointing at `old.index` must be unset after a write that turned `old` into
/// `new`: `None` when none (the batch only grew), else the blocks to keep pointing at the
/// batch, as an inclusive range (`None` inside: keep none, the index changed).
pub(crate) fn stale_lookup_filter(old: BatchSpan, new: BatchSpan) -> Option<Option<(i64, i64)>> {
    if old.index != new.index {
        return Some(None);
    }
    if new.start <= old.start && new.end >= old.end {
        return None;
    }
    Some(Some((new.start, new.end)))
}

/// Splits an inclusive range into inclusive chunks of at most `size` blocks.
pub(crate) fn chunks(range: (i64, i64), size: i64) -> impl Iterator<Item = (i64, i64)> {
    let (start, end) = range;
    let size = size.max(1);
    let mut next = Some(start).filter(|s| *s <= end);
    std::iter::from_fn(move || {
        let s = next?;
        let e = s.saturating_add(size - 1).min(end);
        next = (e < end).then(|| e + 1);
        Some((s, e))
    })
}

/// The URL with any password replaced by `***`, for messages and logs. A URL that does not
/// parse is not shown at all (it might be a password pasted in the wrong place).
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = parsed.set_password(Some("***"));
            }
            // A password may also hide in the query (`?password=`).
            if parsed.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k.eq_ignore_ascii_case("password") {
                            "***".to_owned()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

/// A `u64` to store: every backend stores signed 64-bit integers, so larger values are refused.
pub(crate) fn to_i64(what: &str, value: u64) -> DatabaseResult<i64> {
    i64::try_from(value).map_err(|_| {
        DatabaseError::other(format!(
            "{what} {value} exceeds {}, the largest integer the database stores",
            i64::MAX
        ))
    })
}

/// A `u64` used as an equality or lower bound: `None` when it exceeds every storable value.
pub(crate) fn lower_bound(value: u64) -> Option<i64> {
    i64::try_from(value).ok()
}

/// A `u64` used as an inclusive upper bound: clamped, since nothing stored is larger.
pub(crate) fn upper_bound(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// JSON text of a record.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> DatabaseResult<String> {
    serde_json::to_string(value).map_err(DatabaseError::other)
}

/// Decodes a stored JSON document; a failure is `Corrupt`, naming `kind` and `id`.
pub(crate) fn decode_json<T: DeserializeOwned>(
    doc: &str,
    kind: &str,
    id: &str,
) -> DatabaseResult<T> {
    serde_json::from_str(doc)
        .map_err(|e| DatabaseError::Corrupt { what: format!("{kind} {id}"), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(index: i64, start: i64, end: i64) -> BatchSpan {
        BatchSpan { index, start, end }
    }

    #[test]
    fn lookup_ranges_cover_only_what_changed() {
        assert_eq!(lookup_ranges_to_write(None, span(1, 10, 20)), vec![(10, 20)]);
        assert_eq!(lookup_ranges_to_write(Some(span(2, 10, 20)), span(1, 10, 20)), vec![(10, 20)]);
        assert_eq!(lookup_ranges_to_write(Some(span(1, 10, 20)), span(1, 10, 25)), vec![(21, 25)]);
        assert_eq!(
            lookup_ranges_to_write(Some(span(1, 10, 20)), span(1, 5, 25)),
            vec![(5, 9), (21, 25)]
        );
        assert_eq!(
            lookup_ranges_to_write(Some(span(1, 10, 20)), span(1, 12, 18)),
            Vec::<(i64, i64)>::new()
        );
        assert_eq!(lookup_ranges_to_write(Some(span(1, 10, 20)), span(1, 30, 40)), vec![(30, 40)]);
    }

    #[test]
    fn stale_lookups_are_those_outside_the_new_range() {
        assert_eq!(stale_lookup_filter(span(1, 10, 20), span(1, 10, 25)), None);
        assert_eq!(stale_lookup_filter(span(1, 10, 20), span(1, 12, 20)), Some(Some((12, 20))));
        assert_eq!(stale_lookup_filter(span(1, 10, 20), span(2, 10, 20)), Some(None));
    }

    #[test]
    fn chunks_split_inclusive_ranges() {
        assert_eq!(chunks((1, 5), 2).collect::<Vec<_>>(), vec![(1, 2), (3, 4), (5, 5)]);
        assert_eq!(chunks((1, 1), 1000).collect::<Vec<_>>(), vec![(1, 1)]);
        assert_eq!(chunks((5, 4), 10).count(), 0);
        assert_eq!(
            chunks((i64::MAX - 1, i64::MAX), 1).collect::<Vec<_>>(),
            vec![(i64::MAX - 1, i64::MAX - 1), (i64::MAX, i64::MAX)]
        );
    }

    #[test]
    fn integers_above_i64_max_are_refused_or_clamped() {
        assert!(to_i64("x", u64::MAX).unwrap_err().to_string().contains("exceeds"));
        assert_eq!(lower_bound(u64::MAX), None);
        assert_eq!(upper_bound(u64::MAX), i64::MAX);
        assert_eq!(to_i64("x", 7).unwrap(), 7);
    }
}
