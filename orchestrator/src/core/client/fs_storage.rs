//! `FsStorage`: artifact storage in a directory (`--data-dir/artifacts`), the embedded
//! tier's S3.
//!
//! Layout under the root:
//! - `<key>`: the object, keys being relative `/`-separated paths;
//! - `.tags/<key>.json`: its tags (a JSON object), like S3 object tagging; the lifecycle tag
//!   `expire-after-settlement=true` set by StorageCleanup lands here. The sidecar's
//!   modification time is when the object was tagged: tagging again with the same tags leaves
//!   the sidecar (and that time) as it is. [`FsStorage::expire_tagged`] deletes the objects
//!   whose tag is older than a cutoff — the directory store's stand-in for the S3 lifecycle
//!   rule;
//! - `.tmp/`: files being written. Every write goes to a fresh file there, is synced, then
//!   renamed over the target, so readers see the old or the new object, never a torn one.
//!
//! `.tags` and `.tmp` are reserved: keys starting with them are refused. Semantics follow
//! S3: listing is by string prefix, recursive and sorted; tagging replaces the whole tag
//! set; writing an object drops its tags.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    time::SystemTime,
};

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use super::storage::{check_key, StorageClient, StorageError};

/// Directory of the tag sidecars.
const TAGS_DIR: &str = ".tags";
/// Directory of files being written.
const TMP_DIR: &str = ".tmp";

/// A key → bytes store in a directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Opens (creating if needed) a store rooted at `root`.
    ///
    /// # Errors
    /// `Other` when the directories cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        for dir in [root.join(TAGS_DIR), root.join(TMP_DIR)] {
            std::fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
        }
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The tags of an object, sorted by name; empty when it has none.
    ///
    /// # Errors
    /// `NotFound` when the object does not exist, `InvalidKey` for a bad key.
    pub async fn tags(&self, key: &str) -> Result<Vec<(String, String)>, StorageError> {
        let (object, tags) = (self.object_path(key)?, self.tags_path(key)?);
        let key = key.to_owned();
        blocking(move || {
            if !object.is_file() {
                return Err(StorageError::NotFound(key));
            }
            match std::fs::read(&tags) {
                Ok(json) => {
                    let map: BTreeMap<String, String> =
                        serde_json::from_slice(&json).map_err(StorageError::other)?;
                    Ok(map.into_iter().collect())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(io_err("read", &tags, e)),
            }
        })
        .await
    }

    /// When the object was tagged (its sidecar's modification time); `None` when it has no
    /// tags.
    ///
    /// # Errors
    /// `InvalidKey` for a bad key, `Other` when the sidecar cannot be read.
    pub async fn tagged_at(&self, key: &str) -> Result<Option<SystemTime>, StorageError> {
        let tags = self.tags_path(key)?;
        blocking(move || match std::fs::metadata(&tags) {
            Ok(meta) => meta.modified().map(Some).map_err(|e| io_err("read the time of", &tags, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &tags, e)),
        })
        .await
    }

    /// Deletes every object tagged `name=value` whose tag was set at or before `tagged_before`
    /// (with its sidecar), and the directories this leaves empty; returns the deleted keys,
    /// sorted. A sidecar whose object is gone (a crash between the two deletions) is removed
    /// too. Objects without that tag, or tagged later, are left alone.
    ///
    /// # Errors
    /// `Other` (or `Unavailable` for a transient I/O error) naming the path; the objects
    /// deleted before the error stay deleted, the rest are found again by the next call.
    pub async fn expire_tagged(
        &self,
        (name, value): (&str, &str),
        tagged_before: SystemTime,
    ) -> Result<Vec<String>, StorageError> {
        let (root, name, value) = (self.root.clone(), name.to_owned(), value.to_owned());
        blocking(move || expire(&root, &name, &value, tagged_before)).await
    }

    /// Where the object of `key` lives.
    fn object_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        check_key(key, false)?;
        let first = key.split('/').next().unwrap_or_default();
        if first == TAGS_DIR || first == TMP_DIR {
            return Err(StorageError::InvalidKey {
                key: key.to_owned(),
                reason: format!("{first} is reserved"),
            });
        }
        Ok(self.root.join(key))
    }

    /// Where the tags of `key` live.
    fn tags_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        self.object_path(key)?;
        Ok(self.root.join(TAGS_DIR).join(format!("{key}.json")))
    }
}

#[async_trait]
impl StorageClient for FsStorage {
    async fn get_data(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = self.object_path(key)?;
        let key = key.to_owned();
        blocking(move || match std::fs::read(&path) {
            Ok(data) => Ok(Bytes::from(data)),
            // A "directory" is only a prefix of other keys, not an object.
            Err(e) if e.kind() == io::ErrorKind::NotFound || path.is_dir() => {
                Err(StorageError::NotFound(key))
            }
            Err(e) => Err(io_err("read", &path, e)),
        })
        .await
    }

    async fn put_data(&self, data: Bytes, key: &str) -> Result<(), StorageError> {
        let (path, tags) = (self.object_path(key)?, self.tags_path(key)?);
        let root = self.root.clone();
        blocking(move || {
            // Drop the tags first: a crash in between leaves the old data untagged, never the
            // new data with stale tags (which could expire it).
            remove_if_present(&tags)?;
            write_atomic(&root, &path, &data)
        })
        .await
    }

    async fn delete_data(&self, key: &str) -> Result<(), StorageError> {
        let (path, tags) = (self.object_path(key)?, self.tags_path(key)?);
        blocking(move || {
            if !path.is_dir() {
                remove_if_present(&path)?;
            }
            remove_if_present(&tags)
        })
        .await
    }

    async fn list_files_in_dir(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        check_key(prefix, true)?;
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        blocking(move || list(&root, &prefix)).await
    }

    /// Replaces the tag set of the object (as S3 `PutObjectTagging` does).
    async fn tag_object(&self, key: &str, tags: &[(String, String)]) -> Result<(), StorageError> {
        let (path, tags_path) = (self.object_path(key)?, self.tags_path(key)?);
        let map: BTreeMap<&str, &str> =
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let json = serde_json::to_vec(&map).map_err(StorageError::other)?;
        let (root, key) = (self.root.clone(), key.to_owned());
        blocking(move || {
            if !path.is_file() {
                return Err(StorageError::NotFound(key));
            }
            // The same tags again: keep the sidecar, whose time is when they were set.
            if std::fs::read(&tags_path).is_ok_and(|current| current == json) {
                return Ok(());
            }
            write_atomic(&root, &tags_path, &json)
        })
        .await
    }

    /// Writes, reads back and deletes a probe file.
    async fn health_check(&self) -> Result<(), StorageError> {
        let probe = self.root.join(TMP_DIR).join(format!("health-{}", Uuid::new_v4()));
        blocking(move || {
            let payload = b"orchestrator storage probe";
            std::fs::write(&probe, payload).map_err(|e| io_err("write", &probe, e))?;
            let read = std::fs::read(&probe).map_err(|e| io_err("read", &probe, e));
            remove_if_present(&probe)?;
            if read? != payload {
                return Err(StorageError::other(format!(
                    "probe {} read back different bytes",
                    probe.display()
                )));
            }
            Ok(())
        })
        .await
    }
}

/// A file-system operation that failed, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {path}: {source}")]
struct FsError {
    op: &'static str,
    path: String,
    #[source]
    source: io::Error,
}

/// Maps an I/O error: a full disk or an interrupted call may pass (`Unavailable`), anything
/// else (permissions, a file where a directory should be) needs an operator (`Other`).
fn io_err(op: &'static str, path: &Path, source: io::Error) -> StorageError {
    let transient = matches!(
        source.kind(),
        io::ErrorKind::StorageFull
            | io::ErrorKind::Interrupted
            | io::ErrorKind::TimedOut
            | io::ErrorKind::WouldBlock
    );
    let e = FsError { op, path: path.display().to_string(), source };
    if transient {
        StorageError::Unavailable(Box::new(e))
    } else {
        StorageError::other(e)
    }
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(StorageError::other)?
}

/// Writes `data` to a fresh file in `root/.tmp`, syncs it and renames it over `target`.
fn write_atomic(root: &Path, target: &Path, data: &[u8]) -> Result<(), StorageError> {
    use std::io::Write as _;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err("create", parent, e))?;
    }
    let tmp = root.join(TMP_DIR).join(Uuid::new_v4().to_string());
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        match std::fs::rename(&tmp, target) {
            // The directory was pruned by `expire_tagged` in between: create it again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::rename(&tmp, target)
            }
            renamed => renamed,
        }
    })();
    if let Err(e) = written {
        // Best effort: a leftover temp file is harmless, it is never listed.
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err("write", target, e));
    }
    Ok(())
}

/// Removes a file, succeeding if it is already gone.
fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path, e)),
        _ => Ok(()),
    }
}

/// [`FsStorage::expire_tagged`]: walks `.tags`, reads the sidecars old enough, deletes the
/// objects carrying the tag.
fn expire(
    root: &Path,
    name: &str,
    value: &str,
    tagged_before: SystemTime,
) -> Result<Vec<String>, StorageError> {
    let tags_root = root.join(TAGS_DIR);
    let mut pending = vec![tags_root.clone()];
    let mut deleted = Vec::new();
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("list", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err("list", &dir, e))?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(|e| io_err("list", &path, e))?;
            if file_type.is_dir() {
                pending.push(path);
                continue;
            }
            // `<key>.json`, the key being UTF-8; anything else was not written by this store.
            let Some(key) = path
                .strip_prefix(&tags_root)
                .ok()
                .and_then(|rel| rel.to_str())
                .and_then(|rel| rel.strip_suffix(".json"))
                .map(|k| k.replace(std::path::MAIN_SEPARATOR, "/"))
            else {
                continue;
            };
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(|e| io_err("read the time of", &path, e))?;
            if modified > tagged_before {
                continue;
            }
            let tags: BTreeMap<String, String> = match std::fs::read(&path) {
                Ok(json) => serde_json::from_slice(&json).map_err(|e| {
                    StorageError::other(format!("the tags at {} do not parse: {e}", path.display()))
                })?,
                // Removed since the listing (the object was rewritten or deleted).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read", &path, e)),
            };
            if tags.get(name).map(String::as_str) != Some(value) {
                continue;
            }
            let object = root.join(&key);
            // The object first: a crash in between leaves a sidecar without object, which the
            // next call removes, never an object whose expiry is forgotten.
            if object.is_file() {
                remove_if_present(&object)?;
                deleted.push(key);
                prune_empty_dirs(root, &object);
            }
            remove_if_present(&path)?;
            prune_empty_dirs(&tags_root, &path);
        }
    }
    deleted.sort();
    Ok(deleted)
}

/// Removes the directories above `removed` that are empty now, up to (not including) `root`.
/// Best effort: a directory that is not empty (or is being written to) stays.
fn prune_empty_dirs(root: &Path, removed: &Path) {
    let mut dir = removed.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}

/// Every key starting with `prefix` (a string prefix, as on S3), sorted.
fn list(root: &Path, prefix: &str) -> Result<Vec<String>, StorageError> {
    // Only the directory holding the prefix's last segment can contain matches.
    let base = prefix.rfind('/').map_or("", |i| &prefix[..i]);
    let mut pending = vec![(root.join(base), base.to_owned())];
    let mut keys = Vec::new();
    while let Some((dir, dir_key)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // The prefix names no directory (or a file): nothing under it.
            Err(e)
                if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) =>
            {
                continue
            }
            Err(e) => return Err(io_err("list", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err("list", &dir, e))?;
            // Keys are UTF-8; anything else was not written by this store.
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if dir_key.is_empty() && (name == TAGS_DIR || name == TMP_DIR) {
                continue;
            }
            let key = if dir_key.is_empty() { name } else { format!("{dir_key}/{name}") };
            let file_type = entry.file_type().map_err(|e| io_err("list", &entry.path(), e))?;
            if file_type.is_dir() {
                // Descend only where matches can be: the key so far and the prefix agree.
                if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                    pending.push((entry.path(), key));
                }
            } else if file_type.is_file() && key.starts_with(prefix) {
                keys.push(key);
            }
        }
    }
    keys.sort();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::core::client::conformance::storage::StorageFactory;

    /// A fresh store in a temp dir per call; the dirs live as long as the factory.
    #[derive(Debug, Default)]
    struct FsStorageFactory {
        dirs: Mutex<Vec<tempfile::TempDir>>,
        last: Mutex<Option<FsStorage>>,
    }

    #[async_trait]
    impl StorageFactory for FsStorageFactory {
        async fn storage(&self) -> Arc<dyn StorageClient> {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = FsStorage::open(dir.path().join("artifacts")).expect("open");
            self.dirs.lock().expect("dirs").push(dir);
            *self.last.lock().expect("last") = Some(storage.clone());
            Arc::new(storage)
        }

        async fn tags(&self, key: &str) -> Option<Vec<(String, String)>> {
            let storage = self.last.lock().expect("last").clone().expect("a store was made");
            Some(storage.tags(key).await.expect("tags"))
        }
    }

    crate::storage_conformance_tests!(FsStorageFactory::default());

    fn store() -> (tempfile::TempDir, FsStorage) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FsStorage::open(dir.path()).expect("open");
        (dir, storage)
    }

    #[tokio::test]
    async fn reserved_names_are_refused() {
        let (_dir, s) = store();
        for key in [".tags/x.json", ".tmp", ".tmp/abc"] {
            let err = s.put_data(Bytes::from_static(b"x"), key).await.expect_err("reserved");
            assert!(matches!(err, StorageError::InvalidKey { .. }), "{key}: {err:?}");
        }
        // Other dot names are ordinary keys.
        s.put_data(Bytes::from_static(b"x"), ".tagsx/y").await.expect("put");
        assert_eq!(s.list_files_in_dir(".tags").await.expect("list"), [".tagsx/y"]);
    }

    #[tokio::test]
    async fn objects_are_plain_files_with_json_tag_sidecars() {
        let (dir, s) = store();
        s.put_data(Bytes::from_static(b"pie"), "snos_output/7/cairo_pie.zip").await.expect("put");
        s.tag_object(
            "snos_output/7/cairo_pie.zip",
            &[("expire-after-settlement".into(), "true".into())],
        )
        .await
        .expect("tag");
        assert_eq!(
            std::fs::read(dir.path().join("snos_output/7/cairo_pie.zip")).expect("read"),
            b"pie"
        );
        let sidecar =
            std::fs::read_to_string(dir.path().join(".tags/snos_output/7/cairo_pie.zip.json"))
                .expect("sidecar");
        assert_eq!(sidecar, r#"{"expire-after-settlement":"true"}"#);
        s.delete_data("snos_output/7/cairo_pie.zip").await.expect("delete");
        assert!(
            !dir.path().join(".tags/snos_output/7/cairo_pie.zip.json").exists(),
            "tags go with the object"
        );
    }

    const EXPIRE: (&str, &str) = ("expire-after-settlement", "true");

    fn tag(name: &str, value: &str) -> Vec<(String, String)> {
        vec![(name.to_owned(), value.to_owned())]
    }

    #[tokio::test]
    async fn expire_tagged_deletes_the_objects_tagged_long_enough_ago_and_nothing_else() {
        let (dir, s) = store();
        for key in ["1/pie.zip", "1/proof.json", "10/pie.zip", "blob/batch/1/1.txt", "other"] {
            s.put_data(Bytes::from_static(b"x"), key).await.expect("put");
        }
        for key in ["1/pie.zip", "1/proof.json", "blob/batch/1/1.txt"] {
            s.tag_object(key, &tag(EXPIRE.0, EXPIRE.1)).await.expect("tag");
        }
        s.tag_object("10/pie.zip", &tag(EXPIRE.0, "false")).await.expect("tag");
        s.tag_object("other", &tag("keep", "true")).await.expect("tag");
        // A crash between deleting an object and its sidecar left this sidecar behind.
        std::fs::write(dir.path().join(".tags/gone.json"), r#"{"expire-after-settlement":"true"}"#)
            .expect("orphan sidecar");

        let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        assert!(s.expire_tagged(EXPIRE, an_hour_ago).await.expect("expire").is_empty());
        assert!(s.get_data("1/pie.zip").await.is_ok(), "tagged too recently");

        let later = SystemTime::now() + std::time::Duration::from_secs(1);
        let deleted = s.expire_tagged(EXPIRE, later).await.expect("expire");
        assert_eq!(deleted, ["1/pie.zip", "1/proof.json", "blob/batch/1/1.txt"]);
        for key in &deleted {
            assert!(matches!(s.get_data(key).await, Err(StorageError::NotFound(_))), "{key}");
            assert_eq!(s.tagged_at(key).await.expect("time"), None, "{key}: sidecar gone");
        }
        for gone in ["1", "blob", ".tags/1", ".tags/blob", ".tags/gone.json"] {
            assert!(!dir.path().join(gone).exists(), "{gone} is removed");
        }
        for key in ["10/pie.zip", "other"] {
            assert!(s.get_data(key).await.is_ok(), "{key} is kept");
        }
        assert_eq!(s.tags("10/pie.zip").await.expect("tags"), tag(EXPIRE.0, "false"));
        assert!(dir.path().join(".tags").is_dir() && dir.path().join(".tmp").is_dir());
        // The store keeps working where directories were removed.
        s.put_data(Bytes::from_static(b"y"), "blob/batch/1/1.txt").await.expect("put again");
        assert_eq!(s.list_files_in_dir("blob/").await.expect("list"), ["blob/batch/1/1.txt"]);
    }

    #[tokio::test]
    async fn tagging_again_with_the_same_tags_keeps_the_tag_time() {
        let (_dir, s) = store();
        s.put_data(Bytes::from_static(b"x"), "k").await.expect("put");
        assert_eq!(s.tagged_at("k").await.expect("time"), None);
        s.tag_object("k", &tag(EXPIRE.0, EXPIRE.1)).await.expect("tag");
        let first = s.tagged_at("k").await.expect("time").expect("tagged");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        s.tag_object("k", &tag(EXPIRE.0, EXPIRE.1)).await.expect("tag again");
        assert_eq!(s.tagged_at("k").await.expect("time"), Some(first));
        s.tag_object("k", &tag(EXPIRE.0, "false")).await.expect("other tags");
        assert_eq!(s.tags("k").await.expect("tags"), tag(EXPIRE.0, "false"));
        assert!(s.tagged_at("k").await.expect("time").expect("tagged") > first);
    }

    #[tokio::test]
    async fn writes_leave_no_temp_files() {
        let (dir, s) = store();
        for i in 0..20 {
            s.put_data(Bytes::from(vec![i; 1000]), "k").await.expect("put");
        }
        s.health_check().await.expect("health");
        assert_eq!(std::fs::read_dir(dir.path().join(".tmp")).expect("tmp").count(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_overwrites_never_tear() {
        let (_dir, s) = store();
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        s.put_data(Bytes::from(vec![i; 64 * 1024]), "shared").await.expect("put");
                        let got = s.get_data("shared").await.expect("get");
                        assert!(
                            got.len() == 64 * 1024 && got.iter().all(|&b| b == got[0]),
                            "torn read"
                        );
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("join");
        }
    }

    #[tokio::test]
    async fn a_file_in_the_way_of_a_directory_is_an_error_not_a_panic() {
        let (_dir, s) = store();
        s.put_data(Bytes::from_static(b"x"), "a").await.expect("put");
        let err = s.put_data(Bytes::from_static(b"y"), "a/b").await.expect_err("a is a file");
        assert!(matches!(err, StorageError::Other(_)), "{err:?}");
        assert!(s.list_files_in_dir("a/").await.expect("list").is_empty());
    }
}
