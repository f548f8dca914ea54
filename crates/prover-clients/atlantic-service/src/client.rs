//! The HTTP calls of the Atlantic API, one method per route, each under the shared retry
//! policy. The `api-key` header goes to the service only, never to the artifacts host.
//! Credentials in either URL (`http://user:password@host/`) are taken out of it and sent as an
//! `Authorization: Basic` header to that URL's host only.

use std::time::Duration;

use orchestrator_prover_client_interface::{
    retry::{send_observed, transport_error},
    ProverError, ProverResult, RetryPolicy,
};
use orchestrator_utils::{secret::split_userinfo, upstream::CONNECT_TIMEOUT, Secret};
use reqwest::{
    header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE},
    multipart::{Form, Part},
    StatusCode,
};
use serde::de::DeserializeOwned;
use url::Url;

use crate::types::{
    AtlanticAddQueryResponse, AtlanticBucketResponse, AtlanticCreateBucketRequest,
    AtlanticGetBucketResponse, AtlanticQueryResponse,
};

/// The prover name the API call metrics carry.
const PROVER: &str = "atlantic";

/// One text or file field of a multipart query.
#[derive(Debug, Clone)]
pub enum FormField {
    /// A text field.
    Text(&'static str, String),
    /// A file field: name, file name, content type, bytes.
    File(&'static str, &'static str, &'static str, Vec<u8>),
}

/// Low-level Atlantic API client.
#[derive(Debug, Clone)]
pub struct AtlanticClient {
    http: reqwest::Client,
    /// Without its credentials, which are in `service_auth`.
    service_url: Url,
    service_auth: Option<HeaderValue>,
    /// Without its credentials, which are in `artifacts_auth`.
    artifacts_base_url: Url,
    artifacts_auth: Option<HeaderValue>,
    api_key: Secret<String>,
    retry: RetryPolicy,
    mock_fact_hash: bool,
}

impl AtlanticClient {
    /// A client of the service at `service_url` with artifacts under `artifacts_base_url`.
    ///
    /// # Errors
    /// `Config` when the HTTP client cannot be built.
    pub fn new(
        service_url: Url,
        artifacts_base_url: Url,
        api_key: Secret<String>,
        retry: RetryPolicy,
        request_timeout: Duration,
        mock_fact_hash: bool,
    ) -> ProverResult<Self> {
        let mut builder = reqwest::Client::builder().timeout(request_timeout);
        if let Some(read) = retry.read_timeout {
            builder = builder.connect_timeout(read.min(CONNECT_TIMEOUT));
        }
        let http = builder.build().map_err(|e| {
            ProverError::Config(format!("cannot build the Atlantic HTTP client: {e}"))
        })?;
        let (service_url, service_auth) = split_auth(&service_url)?;
        let (artifacts_base_url, artifacts_auth) = split_auth(&artifacts_base_url)?;
        Ok(Self {
            http,
            service_url,
            service_auth,
            artifacts_base_url,
            artifacts_auth,
            api_key,
            retry,
            mock_fact_hash,
        })
    }

    /// `base` with `segments` appended as escaped path segments.
    fn url(base: &Url, segments: &[&str]) -> ProverResult<Url> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|()| ProverError::Config(format!("{base} cannot be a base URL")))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn service(&self, segments: &[&str]) -> ProverResult<Url> {
        Self::url(&self.service_url, segments)
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let request =
            self.http.request(method, url).header("api-key", self.api_key.expose().as_str());
        with_auth(request, self.service_auth.as_ref())
    }

    async fn json<T: DeserializeOwned>(
        operation: &str,
        response: reqwest::Response,
    ) -> ProverResult<T> {
        let bytes = response.bytes().await.map_err(|e| transport_error(operation, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| ProverError::from_body(operation, &e))
    }

    /// Maps a 404 whose body is Atlantic's own (not a proxy page) to `NotFound`.
    fn not_found(e: ProverError, operation: &str, what: &str) -> ProverError {
        match e {
            ProverError::Http { status: 404, kind, .. } if !kind.is_retryable() => {
                ProverError::NotFound { operation: operation.to_owned(), what: what.to_owned() }
            }
            e => e,
        }
    }

    /// `GET /is-alive`.
    ///
    /// # Errors
    /// Transport or HTTP errors.
    pub async fn is_alive(&self) -> ProverResult<()> {
        let url = self.service(&["is-alive"])?;
        send_observed(PROVER, &self.retry, "is-alive", || {
            self.request(reqwest::Method::GET, url.clone())
        })
        .await?;
        Ok(())
    }

    /// `POST /buckets`.
    ///
    /// # Errors
    /// Transport, HTTP or decoding errors.
    pub async fn create_bucket(
        &self,
        body: &AtlanticCreateBucketRequest,
    ) -> ProverResult<AtlanticBucketResponse> {
        const OP: &str = "create bucket";
        let url = self.service(&["buckets"])?;
        let r = send_observed(PROVER, &self.retry, OP, || {
            self.request(reqwest::Method::POST, url.clone()).json(body)
        })
        .await?;
        Self::json(OP, r).await
    }

    /// `GET /buckets/{id}`.
    ///
    /// # Errors
    /// `NotFound` for an unknown bucket; transport, HTTP or decoding errors.
    pub async fn get_bucket(&self, bucket_id: &str) -> ProverResult<AtlanticGetBucketResponse> {
        const OP: &str = "get bucket";
        let url = self.service(&["buckets", bucket_id])?;
        let r = send_observed(PROVER, &self.retry, OP, || {
            self.request(reqwest::Method::GET, url.clone())
        })
        .await
        .map_err(|e| Self::not_found(e, OP, bucket_id))?;
        Self::json(OP, r).await
    }

    /// `POST /buckets/close?bucketId=`.
    ///
    /// # Errors
    /// `NotFound` for an unknown bucket; transport, HTTP or decoding errors.
    pub async fn close_bucket(&self, bucket_id: &str) -> ProverResult<AtlanticBucketResponse> {
        const OP: &str = "close bucket";
        let mut url = self.service(&["buckets", "close"])?;
        url.query_pairs_mut().append_pair("bucketId", bucket_id);
        let r = send_observed(PROVER, &self.retry, OP, || {
            self.request(reqwest::Method::POST, url.clone())
        })
        .await
        .map_err(|e| Self::not_found(e, OP, bucket_id))?;
        Self::json(OP, r).await
    }

    /// `GET /atlantic-query-by-dedup-id?dedupId=`; `None` when no query has this dedup id.
    ///
    /// # Errors
    /// Transport, HTTP or decoding errors.
    pub async fn query_by_dedup_id(
        &self,
        dedup_id: &str,
    ) -> ProverResult<Option<AtlanticQueryResponse>> {
        const OP: &str = "dedup lookup";
        let mut url = self.service(&["atlantic-query-by-dedup-id"])?;
        url.query_pairs_mut().append_pair("dedupId", dedup_id);
        match send_observed(PROVER, &self.retry, OP, || {
            self.request(reqwest::Method::GET, url.clone())
        })
        .await
        {
            Ok(r) => Self::json(OP, r).await.map(Some),
            Err(e) => match Self::not_found(e, OP, dedup_id) {
                ProverError::NotFound { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    /// `POST /atlantic-query` (multipart); every query also carries `mockFactHash`.
    ///
    /// # Errors
    /// Transport, HTTP or decoding errors.
    pub async fn add_query(&self, fields: &[FormField]) -> ProverResult<AtlanticAddQueryResponse> {
        const OP: &str = "submit query";
        let url = self.service(&["atlantic-query"])?;
        let mock = self.mock_fact_hash.to_string();
        let build = || {
            let mut form = Form::new().text("mockFactHash", mock.clone());
            for field in fields {
                form = match field {
                    FormField::Text(name, value) => form.text(*name, value.clone()),
                    FormField::File(name, file_name, content_type, bytes) => {
                        let mut headers = HeaderMap::new();
                        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                        form.part(
                            *name,
                            Part::bytes(bytes.clone()).file_name(*file_name).headers(headers),
                        )
                    }
                };
            }
            self.request(reqwest::Method::POST, url.clone()).multipart(form)
        };
        let r = send_observed(PROVER, &self.retry, OP, build).await?;
        Self::json(OP, r).await
    }

    /// `GET /atlantic-query/{id}`.
    ///
    /// # Errors
    /// `NotFound` for an unknown query id; transport, HTTP or decoding errors.
    pub async fn get_query(&self, query_id: &str) -> ProverResult<AtlanticQueryResponse> {
        const OP: &str = "query status";
        let url = self.service(&["atlantic-query", query_id])?;
        let r = send_observed(PROVER, &self.retry, OP, || {
            self.request(reqwest::Method::GET, url.clone())
        })
        .await
        .map_err(|e| Self::not_found(e, OP, query_id))?;
        Self::json(OP, r).await
    }

    /// `GET {artifacts}/queries/{id}/{file}`; `None` for a missing artifact (404).
    ///
    /// # Errors
    /// Transport or HTTP errors other than 404.
    pub async fn get_artifact(&self, query_id: &str, file: &str) -> ProverResult<Option<Vec<u8>>> {
        const OP: &str = "download artifact";
        let url = Self::url(&self.artifacts_base_url, &["queries", query_id, file])?;
        // No api-key here: the artifacts live on another host.
        let get = || with_auth(self.http.get(url.clone()), self.artifacts_auth.as_ref());
        match send_observed(PROVER, &self.retry, OP, get).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| transport_error(OP, &e))?;
                Ok(Some(bytes.to_vec()))
            }
            Err(ProverError::Http { status, .. }) if status == StatusCode::NOT_FOUND.as_u16() => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// `url` without its credentials, and them as a sensitive `Authorization` header value.
fn split_auth(url: &Url) -> ProverResult<(Url, Option<HeaderValue>)> {
    let (url, authorization) = split_userinfo(url);
    let value = authorization
        .map(|v| {
            HeaderValue::from_str(v.expose()).map(|mut v| {
                v.set_sensitive(true);
                v
            })
        })
        .transpose()
        .map_err(|_| {
            ProverError::Config("the credentials of an Atlantic URL are not a valid header".into())
        })?;
    Ok((url, value))
}

fn with_auth(
    request: reqwest::RequestBuilder,
    auth: Option<&HeaderValue>,
) -> reqwest::RequestBuilder {
    match auth {
        Some(value) => request.header(AUTHORIZATION, value.clone()),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_escape_ids() {
        let base: Url = "https://storage.example/hero-bucket".parse().unwrap();
        let u = AtlanticClient::url(&base, &["queries", "a/b", "proof.json"]).unwrap();
        assert_eq!(u.as_str(), "https://storage.example/hero-bucket/queries/a%2Fb/proof.json");
        let base: Url = "http://127.0.0.1:4001/".parse().unwrap();
        assert_eq!(
            AtlanticClient::url(&base, &["is-alive"]).unwrap().as_str(),
            "http://127.0.0.1:4001/is-alive"
        );
    }
}
