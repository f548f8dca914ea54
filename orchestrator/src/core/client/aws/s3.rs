//! `StorageClient` on AWS S3: one bucket, keys as given (after [`check_key`]).

use async_trait::async_trait;
use aws_sdk_s3::{
    primitives::ByteStream,
    types::{Tag, Tagging},
};
use bytes::Bytes;

use super::{Arn, AwsEnv, AwsError};
use crate::core::client::storage::{check_key, StorageClient, StorageError};

/// Error codes S3 answers for a missing object.
const KEY_MISSING_CODES: &[&str] = &["NoSuchKey", "NotFound"];
/// Error codes S3 answers for a missing bucket.
pub(crate) const BUCKET_MISSING_CODES: &[&str] = &["NoSuchBucket"];

/// The bucket name from `--bucket-identifier` and `--aws-prefix`: an ARN's resource
/// (verbatim), or `{prefix}-{name}`.
///
/// # Errors
/// A malformed ARN, or a name S3 does not accept.
pub fn bucket_name(identifier: &str, prefix: Option<&str>) -> Result<String, AwsError> {
    let name = if identifier.starts_with("arn:") {
        Arn::parse(identifier, "s3")?.resource
    } else {
        match prefix {
            Some(p) if !p.is_empty() => format!("{p}-{identifier}"),
            _ => identifier.to_owned(),
        }
    };
    validate_bucket_name(&name)?;
    Ok(name)
}

/// Checks the S3 bucket naming rules: 3–63 characters of lowercase letters, digits, `.` and
/// `-`, starting and ending with a letter or digit, no `..`.
///
/// # Errors
/// A message naming the bucket and the broken rule.
pub fn validate_bucket_name(name: &str) -> Result<(), AwsError> {
    let fail = |why: &str| Err(AwsError::invalid(format!("bucket name {name:?} {why}")));
    if !(3..=63).contains(&name.len()) {
        return fail("must be 3 to 63 characters long");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return fail(&format!(
            "contains {bad:?}: only lowercase letters, digits, `.` and `-` are allowed"
        ));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        return fail("must start and end with a letter or a digit");
    }
    if name.contains("..") {
        return fail("must not contain `..`");
    }
    Ok(())
}

/// Artifacts in one S3 bucket.
#[derive(Clone)]
pub struct S3Storage {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage").field("bucket", &self.bucket).finish_non_exhaustive()
    }
}

impl S3Storage {
    /// Storage in `bucket` (path-style addressing when `env` has an endpoint).
    pub fn new(env: &AwsEnv, bucket: String) -> Self {
        Self { client: env.s3(), bucket }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The tags of `key`, sorted.
    ///
    /// # Errors
    /// `NotFound` if there is no such object.
    pub async fn object_tags(&self, key: &str) -> Result<Vec<(String, String)>, StorageError> {
        check_key(key, false)?;
        let out = self
            .client
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.fail(key, AwsError::from_sdk(&e)))?;
        let mut tags: Vec<(String, String)> =
            out.tag_set.into_iter().map(|t| (t.key, t.value)).collect();
        tags.sort();
        Ok(tags)
    }

    /// Maps an S3 error on `key`.
    fn fail(&self, key: &str, e: AwsError) -> StorageError {
        if e.is_code(KEY_MISSING_CODES)
            || (e.status == Some(404) && !e.is_code(BUCKET_MISSING_CODES))
        {
            StorageError::NotFound(key.to_owned())
        } else if e.retryable {
            StorageError::Unavailable(format!("bucket {}: {e}", self.bucket).into())
        } else {
            StorageError::other(format!("bucket {}, key {key:?}: {e}", self.bucket))
        }
    }
}

#[async_trait]
impl StorageClient for S3Storage {
    async fn get_data(&self, key: &str) -> Result<Bytes, StorageError> {
        check_key(key, false)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.fail(key, AwsError::from_sdk(&e)))?;
        let body = out.body.collect().await.map_err(|e| {
            StorageError::Unavailable(
                format!("bucket {}: reading {key:?}: {e}", self.bucket).into(),
            )
        })?;
        Ok(body.into_bytes())
    }

    async fn put_data(&self, data: Bytes, key: &str) -> Result<(), StorageError> {
        check_key(key, false)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| self.fail(key, AwsError::from_sdk(&e)))?;
        Ok(())
    }

    async fn delete_data(&self, key: &str) -> Result<(), StorageError> {
        check_key(key, false)?;
        match self.client.delete_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => Ok(()),
            Err(e) => match self.fail(key, AwsError::from_sdk(&e)) {
                // S3 answers 204 for a missing key; some emulators answer 404.
                StorageError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list_files_in_dir(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        check_key(prefix, true)?;
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.fail(prefix, AwsError::from_sdk(&e)))?;
            keys.extend(page.contents.unwrap_or_default().into_iter().filter_map(|o| o.key));
        }
        keys.sort();
        Ok(keys)
    }

    async fn tag_object(&self, key: &str, tags: &[(String, String)]) -> Result<(), StorageError> {
        check_key(key, false)?;
        let tag_set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(StorageError::other))
            .collect::<Result<Vec<_>, _>>()?;
        let tagging =
            Tagging::builder().set_tag_set(Some(tag_set)).build().map_err(StorageError::other)?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| self.fail(key, AwsError::from_sdk(&e)))?;
        Ok(())
    }

    async fn health_check(&self) -> Result<(), StorageError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk(&e);
                if e.retryable {
                    Err(StorageError::Unavailable(format!("bucket {}: {e}", self.bucket).into()))
                } else if e.status == Some(404) || e.is_code(BUCKET_MISSING_CODES) {
                    Err(StorageError::other(format!(
                        "bucket {} does not exist (run `orchestrator setup`)",
                        self.bucket
                    )))
                } else {
                    Err(StorageError::other(format!("bucket {}: {e}", self.bucket)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_utils::Retryable;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use rstest::rstest;

    use super::*;
    use crate::core::client::{
        aws::test_support::{moto_or_skip, unique_prefix},
        conformance::storage::StorageFactory,
    };

    #[rstest]
    #[case("mo-bucket", None, Some("mo-bucket"))]
    #[case("mo-bucket", Some("dev"), Some("dev-mo-bucket"))]
    #[case("arn:aws:s3:::their-bucket", Some("dev"), Some("their-bucket"))]
    #[case("Mo_Bucket", None, None)]
    #[case("mo-bucket", Some("Dev"), None)]
    #[case("ab", None, None)]
    #[case("-ab", None, None)]
    #[case("a..b", None, None)]
    fn bucket_names(#[case] id: &str, #[case] prefix: Option<&str>, #[case] want: Option<&str>) {
        assert_eq!(bucket_name(id, prefix).ok().as_deref(), want);
    }

    /// A fresh bucket on moto per `storage()` call.
    #[derive(Debug, Default)]
    struct S3Factory {
        last: Mutex<Option<S3Storage>>,
    }

    #[async_trait]
    impl StorageFactory for S3Factory {
        async fn storage(&self) -> Arc<dyn StorageClient> {
            let env = moto_or_skip().await.expect("moto checked by the test");
            let bucket = format!("{}-bucket", unique_prefix());
            env.s3().create_bucket().bucket(&bucket).send().await.expect("create bucket");
            let storage = S3Storage::new(&env, bucket);
            *self.last.lock().expect("last") = Some(storage.clone());
            Arc::new(storage)
        }

        async fn tags(&self, key: &str) -> Option<Vec<(String, String)>> {
            let storage = self.last.lock().expect("last").clone()?;
            Some(storage.object_tags(key).await.expect("read tags"))
        }
    }

    crate::storage_conformance_tests!({
        if crate::core::client::aws::test_support::moto_or_skip().await.is_none() {
            return;
        }
        S3Factory::default()
    });

    #[tokio::test]
    async fn a_missing_bucket_fails_the_health_check_by_name() {
        let Some(env) = moto_or_skip().await else {
            return;
        };
        let bucket = format!("{}-missing", unique_prefix());
        let s = S3Storage::new(&env, bucket.clone());
        let err = s.health_check().await.expect_err("missing bucket");
        assert!(err.to_string().contains(&bucket), "{err}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable() {
        let env = crate::core::client::aws::test_support::closed_port_env().await;
        let s = S3Storage::new(&env, "mo-bucket".to_owned());
        let err = s.get_data("a").await.expect_err("closed port");
        assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    }
}
