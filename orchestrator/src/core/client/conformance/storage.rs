//! The `StorageClient` conformance suite (the contract in `core::client::storage`), with S3's
//! semantics as the reference: keys are plain strings listed by string prefix, tags are
//! replaced as a whole, and writing an object drops its tags.

use orchestrator_utils::Retryable;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::core::client::storage::{StorageClient, StorageError};

/// Makes a fresh, empty store for one check.
#[async_trait]
pub trait StorageFactory: Send + Sync {
    /// A client over a fresh, empty store. Panics if it cannot be made.
    async fn storage(&self) -> Arc<dyn StorageClient>;

    /// The tags of `key` in the store last returned by `storage`, sorted, when the backend
    /// can read them back (S3 `GetObjectTagging`); `None` skips the read-back checks.
    async fn tags(&self, _key: &str) -> Option<Vec<(String, String)>> {
        None
    }
}

/// Generates one `#[tokio::test]` per storage check, in a module `storage_conformance`, for
/// the factory expression (evaluated once per test).
#[macro_export]
macro_rules! storage_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(
            storage_conformance, storage, $factory;
            health_check_passes,
            put_then_get_returns_the_bytes,
            put_overwrites,
            a_missing_key_is_not_found,
            delete_removes_and_is_idempotent,
            list_returns_sorted_keys_under_a_prefix,
            tags_are_set_on_existing_objects_only,
            invalid_keys_are_rejected,
        );
    };
}

/// The health check passes on a fresh store.
pub async fn health_check_passes(f: &(impl StorageFactory + ?Sized)) {
    let s = f.storage().await;
    s.health_check().await.expect("health_check on a fresh store");
    assert_eq!(
        s.list_files_in_dir("").await.expect("list"),
        Vec::<String>::new(),
        "the health probe leaves nothing behind"
    );
}

/// Bytes come back exactly, for nested, empty and large objects.
pub async fn put_then_get_returns_the_bytes(f: &(impl StorageFactory + ?Sized)) {
    let s = f.storage().await;
    let binary = Bytes::from((0..=255u8).cycle().take(70_000).collect::<Vec<_>>());
    for (key, data) in [
        ("snos_output/1/cairo_pie.zip", binary),
        ("blob/batch/1/0.txt", Bytes::from_static(b"0x01\n0x02")),
        ("empty", Bytes::new()),
        ("unicode/é ✓.json", Bytes::from_static(b"{}")),
    ] {
        s.put_data(data.clone(), key).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
        assert_eq!(
            s.get_data(key).await.unwrap_or_else(|e| panic!("get {key}: {e}")),
            data,
            "{key}"
        );
    }
}

/// A second put replaces the object.
pub async fn put_overwrites(f: &(impl StorageFactory + ?Sized)) {
    let s = f.storage().await;
    s.put_data(Bytes::from_static(b"a much longer first version"), "k/v").await.expect("put");
    s.put_data(Bytes::from_static(b"second"), "k/v").await.expect("overwrite");
    assert_eq!(s.get_data("k/v").await.expect("get"), Bytes::from_static(b"second"));
    assert_eq!(s.list_files_in_dir("k/").await.expect("list"), vec!["k/v".to_owned()]);
}

/// Reading a missing key is `NotFound`, which is not retryable.
pub async fn a_missing_key_is_not_found(f: &(impl StorageFactory + ?Sized)) {
    let s = f.storage().await;
    for key in ["missing", "missing/nested.json"] {
        let err = s.get_data(key).await.expect_err("missing key");
        assert!(matches!(err, StorageError::NotFound(_)), "{key}: {err:?}");
        assert!(!err.is_retryable());
    }
    s.put_data(Bytes::from_static(b"x"), "dir/file").await.expect("put");
    let err = s.get_data("dir").await.expect_err("a prefix is not an object");
    assert!(matches!(err, StorageError::NotFound(_)), "prefix: {err:?}");
}

/// Delete removes the object; deleting a missing key succeeds.
pub async fn delete_removes_and_is_idempotent(f: &(impl StorageFactory + ?Sized)) {
    let s = f.storage().await;
    s.put_data(Bytes::from_static(b"x"), "a/b/c").await.expect("put");
    s.delete_data("a/b/c").await.expect("delete");
    assert!(
        matches!(s.get_data("a/b/c").await, Err(StorageError::NotFound(_))),
        "deleted object still readable"
    );
    s.delete_data("a/b/c").await.expect("second delete");
    s.delete_data("never/existed").await.expect("delete of a missing key");
    assert!(s.list_files_in_dir("a/").await.expect("list").is_empty());
}

/// Listing returns every key under a prefix (string prefix, recursive), sorted.
pub async fn list_returns_sorted_keys_under_a_prefix(f: &(impl StorageFactory + ?Sized)) {
    let s = f.storage().await;
    let keys = ["snos/2/a", "snos/10/b", "snos/1/c", "snos/1/d/e", "snos_other", "proof/1"];
    for key in keys {
        s.put_data(Bytes::from_static(b"x"), key)
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }
    let list = |prefix: &'static str| {
        let s = Arc::clone(&s);
        async move {
            s.list_files_in_dir(prefix).await.unwrap_or_else(|e| panic!("list {prefix:?}: {e}"))
        }
    };
    assert_eq!(list("snos/").await, ["snos/1/c", "snos/1/d/e", "snos/10/b", "snos/2/a"]);
    assert_eq!(list("snos/1").await, ["snos/1/c", "snos/1/d/e", "snos/10/b"]);
    assert_eq!(
        list("snos").await,
        ["snos/1/c", "snos/1/d/e", "snos/10/b", "snos/2/a", "snos_other"]
    );
    assert_eq!(list("proof/1").await, ["proof/1"]);
    assert!(list("nothing/").await.is_empty());
    let mut all: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    all.sort();
    assert_eq!(list("").await, all);
}

/// Tagging works on existing objects, replaces the tag set, and is `NotFound` otherwise.
pub async fn tags_are_set_on_existing_objects_only(f: &(impl StorageFactory + ?Sized)) {
    let s = f.storage().await;
    let expire = vec![("expire-after-settlement".to_owned(), "true".to_owned())];
    s.put_data(Bytes::from_static(b"x"), "batch/1/proof.json").await.expect("put");
    s.tag_object("batch/1/proof.json", &expire).await.expect("tag");
    if let Some(tags) = f.tags("batch/1/proof.json").await {
        assert_eq!(tags, expire);
    }
    let replaced = vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())];
    s.tag_object("batch/1/proof.json", &replaced).await.expect("tag again");
    if let Some(tags) = f.tags("batch/1/proof.json").await {
        assert_eq!(tags, replaced, "a second tagging replaces the set");
    }
    assert_eq!(
        s.get_data("batch/1/proof.json").await.expect("get"),
        Bytes::from_static(b"x"),
        "tagging keeps the data"
    );
    assert_eq!(
        s.list_files_in_dir("").await.expect("list"),
        ["batch/1/proof.json"],
        "tags are not objects"
    );

    s.put_data(Bytes::from_static(b"y"), "batch/1/proof.json").await.expect("overwrite");
    if let Some(tags) = f.tags("batch/1/proof.json").await {
        assert!(tags.is_empty(), "a new object starts untagged, as on S3: {tags:?}");
    }

    let err = s.tag_object("batch/2/missing.json", &expire).await.expect_err("tag a missing key");
    assert!(matches!(err, StorageError::NotFound(_)), "{err:?}");
}

/// Empty, absolute and `..` keys are refused by every operation.
pub async fn invalid_keys_are_rejected(f: &(impl StorageFactory + ?Sized)) {
    let s = f.storage().await;
    for key in ["", "/etc/passwd", "../outside", "a/../../outside", "a/..", ".."] {
        let invalid = |r: Result<(), StorageError>, op: &str| {
            assert!(matches!(r, Err(StorageError::InvalidKey { .. })), "{op} {key:?}: {r:?}");
        };
        invalid(s.put_data(Bytes::from_static(b"x"), key).await, "put");
        invalid(s.get_data(key).await.map(drop), "get");
        invalid(s.delete_data(key).await, "delete");
        invalid(s.tag_object(key, &[]).await, "tag");
    }
    for prefix in ["/etc", "../"] {
        let r = s.list_files_in_dir(prefix).await;
        assert!(matches!(r, Err(StorageError::InvalidKey { .. })), "list {prefix:?}: {r:?}");
    }
}
