//! [`LockClient`] on MongoDB: collection `locks`, the key as `_id`, a TTL index on
//! `expires_at` (expire after 0 s, named `ttl_index`) so the server deletes expired locks by
//! itself, and an index on `created_at` (reference §4).
//!
//! The TTL monitor runs about once a minute, so expiry is also checked in every filter: a lock
//! is live while `expires_at > now`. `acquire_lock` is one `find_one_and_update` with upsert
//! filtered on `{_id: key, expires_at <= now}`: an expired lock matches and is taken over, a
//! missing one is inserted, and a live one makes the insert fail on `_id` (duplicate key), so
//! of concurrent acquires exactly one wins. Times come from this process's clock (as in the
//! reference): keep the hosts' clocks in sync.

use std::time::Duration;

use ::mongodb::{
    bson::{doc, Bson, Document},
    options::{IndexOptions, ReturnDocument},
    Collection, Database, IndexModel,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    documents::{self as d, date_bson},
    is_duplicate_key, is_transient, LOCKS,
};
use crate::core::client::lock::{LockClient, LockError, LockInfo, LockRequest, LockValue};

/// Longest TTL stored; longer ones are clamped (BSON datetimes have a range).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// TTL locks on MongoDB.
#[derive(Debug, Clone)]
pub struct MongoLock {
    locks: Collection<Document>,
}

impl MongoLock {
    /// Wraps the database (from [`super::open`]) and ensures the lock indexes.
    ///
    /// # Errors
    /// When the indexes cannot be created.
    pub async fn open(db: &Database) -> Result<Self, LockError> {
        let this = Self { locks: db.collection(LOCKS) };
        this.locks.create_indexes(index_models()).await.map_err(lock_err)?;
        Ok(this)
    }
}

/// The lock collection's indexes: TTL on `expires_at`, plain on `created_at`.
pub fn index_models() -> Vec<IndexModel> {
    vec![
        IndexModel::builder()
            .keys(doc! { "expires_at": 1 })
            .options(
                IndexOptions::builder()
                    .expire_after(Duration::ZERO)
                    .name("ttl_index".to_owned())
                    .build(),
            )
            .build(),
        IndexModel::builder()
            .keys(doc! { "created_at": 1 })
            .options(IndexOptions::builder().name("created_at_index".to_owned()).build())
            .build(),
    ]
}

/// The `$set` of an acquire: value, owner, times.
pub fn acquire_update(
    value: &LockValue,
    owner: Option<&str>,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Document, LockError> {
    let json = serde_json::to_value(value).map_err(LockError::other)?;
    let value = d::json_to_bson(&json, "lock value").map_err(LockError::other)?;
    let owner = owner.map_or(Bson::Null, |o| Bson::String(o.to_owned()));
    Ok(doc! { "$set": {
        "value": value,
        "owner": owner,
        "created_at": date_bson(now),
        "expires_at": date_bson(expiry(now, ttl)),
    } })
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    // MAX_TTL keeps the sum far inside chrono's range.
    now + chrono::Duration::from_std(ttl.min(MAX_TTL)).unwrap_or(chrono::Duration::zero())
}

#[async_trait]
impl LockClient for MongoLock {
    async fn try_acquire_lock(&self, req: LockRequest<'_>) -> Result<Option<LockInfo>, LockError> {
        let LockRequest { key, value, ttl, owner } = req;
        let now = Utc::now();
        let taken = self
            .locks
            .find_one_and_update(
                d::acquire_filter(key, now),
                acquire_update(&value, owner, now, ttl)?,
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match taken {
            Ok(Some(doc)) => decode(&doc).map(Some),
            Ok(None) => {
                Err(LockError::other(format!("lock {key}: the upsert returned no document")))
            }
            // A live lock does not match the filter, so the upsert hits the unique key.
            Err(e) if is_duplicate_key(&e) => Ok(None),
            Err(e) => Err(lock_err(e)),
        }
    }

    async fn try_release_lock(&self, key: &str, owner: Option<&str>) -> Result<bool, LockError> {
        let done = self
            .locks
            .delete_one(d::live_lock_filter(key, owner, Utc::now()))
            .await
            .map_err(lock_err)?;
        Ok(done.deleted_count > 0)
    }

    async fn try_extend_lock(
        &self,
        key: &str,
        owner: Option<&str>,
        ttl: Duration,
    ) -> Result<Option<LockInfo>, LockError> {
        let now = Utc::now();
        let extended = self
            .locks
            .find_one_and_update(
                d::live_lock_filter(key, owner, now),
                doc! { "$set": { "expires_at": date_bson(expiry(now, ttl)) } },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(lock_err)?;
        extended.map(|doc| decode(&doc)).transpose()
    }

    async fn get_lock(&self, key: &str) -> Result<Option<LockInfo>, LockError> {
        let doc = self
            .locks
            .find_one(d::live_lock_filter(key, None, Utc::now()))
            .await
            .map_err(lock_err)?;
        doc.map(|doc| decode(&doc)).transpose()
    }
}

/// A stored lock document.
pub fn decode(doc: &Document) -> Result<LockInfo, LockError> {
    let key =
        doc.get_str("_id").map_err(|e| LockError::other(format!("corrupt lock: {e}")))?.to_owned();
    let bad = |reason: String| LockError::other(format!("corrupt lock {key}: {reason}"));
    let value = doc.get("value").ok_or_else(|| bad("no value".to_owned()))?;
    let value: LockValue =
        serde_json::from_value(d::bson_to_json(value)).map_err(|e| bad(e.to_string()))?;
    let owner = match doc.get("owner") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(s)) => Some(s.clone()),
        Some(other) => return Err(bad(format!("owner {other} is not a string"))),
    };
    let time = |field: &str| -> Result<DateTime<Utc>, LockError> {
        let t = doc.get_datetime(field).map_err(|e| bad(e.to_string()))?;
        DateTime::from_timestamp_millis(t.timestamp_millis())
            .ok_or_else(|| bad(format!("{field} out of range")))
    };
    Ok(LockInfo {
        value,
        owner,
        created_at: time("created_at")?,
        expires_at: time("expires_at")?,
        key,
    })
}

fn lock_err(e: ::mongodb::error::Error) -> LockError {
    if is_transient(&e) {
        LockError::Unavailable(Box::new(e))
    } else {
        LockError::other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod conformance {
        crate::lock_conformance_tests!({
            let Some(guard) = crate::core::client::mongodb::test_support::TestDb::create().await
            else {
                return;
            };
            let locks = super::MongoLock::open(&guard.db).await.expect("lock indexes");
            let locks: std::sync::Arc<dyn crate::core::client::LockClient> =
                std::sync::Arc::new(locks);
            std::future::ready((locks, guard))
        });
    }

    #[test]
    fn the_ttl_index_expires_at_the_stored_time() {
        let models = index_models();
        assert_eq!(models[0].keys, doc! { "expires_at": 1 });
        let options = models[0].options.as_ref().expect("options");
        assert_eq!(
            (options.expire_after, options.name.as_deref()),
            (Some(Duration::ZERO), Some("ttl_index"))
        );
        assert_eq!(models[1].keys, doc! { "created_at": 1 });
    }

    #[test]
    fn acquire_documents_round_trip() {
        let now = DateTime::from_timestamp_millis(1_700_000_000_123).expect("time");
        let value = LockValue::Json(serde_json::json!({ "batch": 7, "$odd": ["x"] }));
        let update =
            acquire_update(&value, Some("worker-1"), now, Duration::from_secs(60)).expect("update");
        let mut stored = update.get_document("$set").expect("$set").clone();
        assert_eq!(stored.get("owner"), Some(&Bson::String("worker-1".to_owned())));
        assert_eq!(stored.get("expires_at"), Some(&date_bson(now + chrono::Duration::seconds(60))));
        stored.insert("_id", "k");
        let info = decode(&stored).expect("decode");
        assert_eq!(
            info,
            LockInfo {
                key: "k".to_owned(),
                value,
                owner: Some("worker-1".to_owned()),
                created_at: now,
                expires_at: now + chrono::Duration::seconds(60),
            }
        );
        let none =
            acquire_update(&LockValue::Number(-1), None, now, Duration::MAX).expect("update");
        assert_eq!(none.get_document("$set").expect("$set").get("owner"), Some(&Bson::Null));
    }
}
