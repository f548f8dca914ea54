//! The HTTP retry policy the HTTP prover backends share.
//!
//! Only failures of the path to the prover are retried here: transport errors (connect, reset,
//! timeout), gateway answers (502, 503, 504), 429 with its `Retry-After`, and error pages that
//! a proxy or load balancer wrote instead of the prover (an HTML body, Go's plain
//! `404 page not found`, nginx's character-map JSON). Every other answer is the prover's own
//! and goes back to the caller at once: retrying a 400 for a malformed PIE cannot help.
//!
//! Delays grow exponentially from [`RetryPolicy::base`] and never exceed what is left of
//! [`RetryPolicy::budget`]; a `Retry-After` hint replaces a shorter backoff delay.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

use crate::{ProverError, ProverResult, Retryable};

/// Longest body kept in an error message.
const MAX_ERROR_BODY: usize = 512;

/// How a non-success HTTP answer is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFailureKind {
    /// Something between us and the prover failed (gateway, proxy page): retry.
    Infrastructure,
    /// The server asked us to slow down (429): retry after its hint.
    RateLimited,
    /// The prover rejected the request (4xx): do not retry.
    Client,
    /// The prover failed on the request (5xx with its own body): do not retry here.
    Server,
}

impl HttpFailureKind {
    /// Whether the request may be sent again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Infrastructure | Self::RateLimited)
    }
}

/// Classifies a non-success answer from its status and body.
pub fn classify_http_failure(status: u16, body: &str) -> HttpFailureKind {
    let trimmed = body.trim();
    if matches!(status, 502..=504) {
        return HttpFailureKind::Infrastructure;
    }
    if status == 429 {
        return HttpFailureKind::RateLimited;
    }
    if trimmed.starts_with('<')
        || trimmed.eq_ignore_ascii_case("404 page not found")
        || is_char_map_json(trimmed)
    {
        return HttpFailureKind::Infrastructure;
    }
    if status >= 500 {
        HttpFailureKind::Server
    } else {
        HttpFailureKind::Client
    }
}

/// nginx behind some gateways serialises its HTML page as a JSON object of characters
/// (`{"0":"<","1":"h",…}`); such a body is a proxy page, not a prover answer.
fn is_char_map_json(body: &str) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    !map.is_empty()
        && map.iter().all(|(k, v)| {
            k.bytes().all(|b| b.is_ascii_digit())
                && v.as_str().is_some_and(|s| s.chars().count() == 1)
        })
}

/// Exponential backoff within a total time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First delay; doubles after each failed attempt.
    pub base: Duration,
    /// Longest single delay.
    pub max_delay: Duration,
    /// Total time after which no new attempt starts.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    /// Base 2 s, single delays up to 30 s, budget 120 s (the reference's values).
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A policy with this base delay and total budget.
    pub fn new(base: Duration, budget: Duration) -> Self {
        Self { base, max_delay: budget.max(base), budget }
    }

    /// No retries: one attempt.
    pub fn none() -> Self {
        Self { base: Duration::ZERO, max_delay: Duration::ZERO, budget: Duration::ZERO }
    }

    /// Delay before attempt `attempt + 1` after `attempt` failed attempts (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.max_delay)
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or the budget is spent.
    ///
    /// # Errors
    /// The last error of `op`.
    pub async fn run<T, F, Fut>(&self, operation: &str, mut op: F) -> ProverResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ProverResult<T>>,
    {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => e,
            };
            let delay = err
                .retry_after()
                .map_or(self.backoff(attempt), |hint| hint.max(self.backoff(attempt)));
            let elapsed = started.elapsed();
            if elapsed + delay > self.budget {
                tracing::warn!(target: "orch::prover", operation, attempt, error = %err, "Retry budget spent; giving up");
                return Err(err);
            }
            tracing::debug!(target: "orch::prover", operation, attempt, ?delay, error = %err, "Retrying prover request");
            tokio::time::sleep(delay).await;
        }
    }
}

/// Sends the request `build` makes, retrying under `policy`; returns a success response.
///
/// `build` is called once per attempt because multipart bodies cannot be cloned.
///
/// # Errors
/// `Unavailable` for transport errors, `Http` (classified) for non-success answers.
pub async fn send_with_retry<F>(
    policy: &RetryPolicy,
    operation: &str,
    build: F,
) -> ProverResult<reqwest::Response>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    policy
        .run(operation, || async {
            let response = build().send().await.map_err(|e| transport_error(operation, &e))?;
            if response.status().is_success() {
                Ok(response)
            } else {
                Err(error_from_response(operation, response).await)
            }
        })
        .await
}

/// A transport error as `Unavailable` (the URL is left out: it may carry credentials).
pub fn transport_error(operation: &str, e: &reqwest::Error) -> ProverError {
    let mut reason = e.without_url_ref_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    ProverError::Unavailable { operation: operation.to_owned(), reason }
}

trait WithoutUrl {
    fn without_url_ref_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref_string(&self) -> String {
        if self.is_timeout() {
            "timed out".to_owned()
        } else if self.is_connect() {
            "connection failed".to_owned()
        } else if self.is_body() || self.is_decode() {
            "body error".to_owned()
        } else {
            "request failed".to_owned()
        }
    }
}

/// Reads a non-success response into a classified `Http` error.
pub async fn error_from_response(operation: &str, response: reqwest::Response) -> ProverError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    let kind = classify_http_failure(status, &body);
    ProverError::Http {
        operation: operation.to_owned(),
        status,
        body: truncate(&body),
        kind,
        retry_after,
    }
}

fn truncate(body: &str) -> String {
    let body = body.trim();
    if body.len() <= MAX_ERROR_BODY {
        return body.to_owned();
    }
    let mut end = MAX_ERROR_BODY;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &body[..end], body.len())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(502, "", HttpFailureKind::Infrastructure)]
    #[case(503, "{\"message\":\"x\"}", HttpFailureKind::Infrastructure)]
    #[case(504, "", HttpFailureKind::Infrastructure)]
    #[case(429, "", HttpFailureKind::RateLimited)]
    #[case(404, "404 page not found", HttpFailureKind::Infrastructure)]
    #[case(404, "{\"message\":\"query not found\"}", HttpFailureKind::Client)]
    #[case(500, "  <!DOCTYPE html><html>", HttpFailureKind::Infrastructure)]
    #[case(500, "{\"0\":\"<\",\"1\":\"h\"}", HttpFailureKind::Infrastructure)]
    #[case(500, "{\"error\":\"pie invalid\"}", HttpFailureKind::Server)]
    #[case(400, "bad request", HttpFailureKind::Client)]
    fn classification(#[case] status: u16, #[case] body: &str, #[case] want: HttpFailureKind) {
        assert_eq!(classify_http_failure(status, body), want);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_secs(2));
        assert_eq!(p.backoff(2), Duration::from_secs(4));
        assert_eq!(p.backoff(5), Duration::from_secs(30));
    }

    fn infra() -> ProverError {
        ProverError::Unavailable { operation: "op".into(), reason: "reset".into() }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_within_the_budget() {
        let calls = AtomicU32::new(0);
        let out = RetryPolicy::default()
            .run("op", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err(infra())
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!(out, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_the_budget_is_spent() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let err = RetryPolicy::default()
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(infra())
            })
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        // Delays 2 + 4 + 8 + 16 + 30 + 30 + 30 = 120 s: the 8th attempt starts at the budget's
        // end and the next delay would pass it.
        assert_eq!(calls.load(Ordering::SeqCst), 8);
        assert!(start.elapsed() <= Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_errors_return_at_once() {
        let calls = AtomicU32::new(0);
        let _ = RetryPolicy::default()
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(ProverError::InvalidProof("x".into()))
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_hints_lengthen_the_delay() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        RetryPolicy::default()
            .run("op", || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(ProverError::Http {
                        operation: "op".into(),
                        status: 429,
                        body: String::new(),
                        kind: HttpFailureKind::RateLimited,
                        retry_after: Some(Duration::from_secs(10)),
                    })
                } else {
                    Ok(())
                }
            })
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }
}
