//! The HTTP retry policy the HTTP prover backends share.
//!
//! Only failures of the path to the prover are retried here: transport errors (connect, reset,
//! timeout), 429 (after its `Retry-After`), 5xx answers, and error pages that a proxy or load
//! balancer wrote instead of the prover (an HTML body, Go's plain `404 page not found`, nginx's
//! character-map JSON). Every other answer is the prover's own and goes back to the caller at
//! once: retrying a 400 for a malformed PIE cannot help, and a 402 (the account has no credits
//! left) is [`ProverError::InsufficientCredits`], which only an operator can fix.
//!
//! A request is tried at most [`RetryPolicy::max_attempts`] times
//! (`--upstream-read-max-attempts`). The wait before the next attempt grows exponentially from
//! [`RetryPolicy::base`] with jitter (a random point of its upper half, see
//! [`orchestrator_utils::upstream`]); a `Retry-After` hint is a floor. No attempt starts after
//! [`RetryPolicy::budget`]; a read (GET) also has [`RetryPolicy::read_timeout`] in total
//! (`--upstream-read-timeout-secs`), attempts and waits included. Uploads keep the client's own
//! request timeout: a PIE takes longer to send than a status to read.

use std::{future::Future, time::Duration};

use orchestrator_utils::upstream::{equal_jitter, UpstreamRetry};
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
    /// The prover failed on the request (5xx with its own body): retry, it may be transient.
    Server,
}

impl HttpFailureKind {
    /// Whether the request may be sent again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Infrastructure | Self::RateLimited | Self::Server)
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

/// Exponential backoff with jitter, a number of attempts and a total time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First delay; doubles after each failed attempt (before jitter).
    pub base: Duration,
    /// Longest single delay (before jitter).
    pub max_delay: Duration,
    /// Total time after which no new attempt starts.
    pub budget: Duration,
    /// Attempts per request, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Total time of a read (GET or HEAD), attempts and waits included; `None`: the budget
    /// and the client's request timeout only.
    pub read_timeout: Option<Duration>,
}

/// Base delay of the prover backoff (the reference's).
const PROVER_BASE: Duration = Duration::from_secs(2);
/// Longest prover backoff delay (the reference's).
const PROVER_MAX_DELAY: Duration = Duration::from_secs(30);
/// Time after which no new prover attempt starts (the reference's).
const PROVER_BUDGET: Duration = Duration::from_secs(120);

impl Default for RetryPolicy {
    /// The upstream defaults (3 attempts, reads within 30 s) with the prover's backoff: base
    /// 2 s, single delays up to 30 s, no attempt after 120 s.
    fn default() -> Self {
        Self::upstream(UpstreamRetry::default())
    }
}

impl RetryPolicy {
    /// The attempts and read timeout of `upstream` (`--upstream-read-*`) with the prover's
    /// backoff (base 2 s, delays up to 30 s, budget 120 s).
    pub fn upstream(upstream: UpstreamRetry) -> Self {
        Self {
            base: PROVER_BASE,
            max_delay: PROVER_MAX_DELAY,
            budget: PROVER_BUDGET,
            max_attempts: upstream.max_attempts.max(1),
            read_timeout: Some(upstream.read_timeout),
        }
    }

    /// A policy with this base delay and total budget, the default number of attempts and no
    /// read timeout beyond the budget (tests shorten the waits with it).
    pub fn new(base: Duration, budget: Duration) -> Self {
        Self {
            base,
            max_delay: budget.max(base),
            budget,
            max_attempts: UpstreamRetry::default().max_attempts,
            read_timeout: None,
        }
    }

    /// The same policy with `max_attempts` attempts.
    pub fn with_max_attempts(self, max_attempts: u32) -> Self {
        Self { max_attempts: max_attempts.max(1), ..self }
    }

    /// No retries: one attempt.
    pub fn none() -> Self {
        Self {
            base: Duration::ZERO,
            max_delay: Duration::ZERO,
            budget: Duration::ZERO,
            max_attempts: 1,
            read_timeout: None,
        }
    }

    /// Backoff before attempt `attempt + 1` after `attempt` failed attempts (1-based), before
    /// jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.max_delay)
    }

    /// The wait before the next attempt after `failed` failed attempts ended by `err`, or
    /// `None` when the request must give up: the error is not retryable, the attempts are
    /// spent, or the wait would end after `limit` (measured from `started`).
    fn next_delay(
        &self,
        failed: u32,
        err: &ProverError,
        started: Instant,
        limit: Duration,
    ) -> Option<Duration> {
        if !err.is_retryable() || failed >= self.max_attempts.max(1) {
            return None;
        }
        let jittered = equal_jitter(self.backoff(failed));
        let delay = err.retry_after().map_or(jittered, |hint| hint.max(jittered));
        (started.elapsed() + delay <= limit).then_some(delay)
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or the attempts or the
    /// budget are spent.
    ///
    /// # Errors
    /// The last error of `op`.
    pub async fn run<T, F, Fut>(&self, operation: &str, mut op: F) -> ProverResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ProverResult<T>>,
    {
        let started = Instant::now();
        let mut failed = 0u32;
        loop {
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            failed += 1;
            let Some(delay) = self.next_delay(failed, &err, started, self.budget) else {
                give_up(operation, failed, &err);
                return Err(err);
            };
            tracing::debug!(target: "orch::prover", operation, attempt = failed, ?delay, error = %err, "Retrying prover request");
            tokio::time::sleep(delay).await;
        }
    }
}

/// Logs why a request stops being retried (only for errors that were worth retrying).
fn give_up(operation: &str, attempts: u32, err: &ProverError) {
    if err.is_retryable() {
        tracing::warn!(target: "orch::prover", operation, attempts, error = %err, "Prover request failed; giving up for now");
    }
}

/// Whether a request only reads (its total time is bounded by the read timeout).
fn is_read(method: &reqwest::Method) -> bool {
    *method == reqwest::Method::GET || *method == reqwest::Method::HEAD
}

/// Sends the request `build` makes, retrying under `policy`; returns a success response.
///
/// `build` is called once per attempt because multipart bodies cannot be cloned. A read (GET)
/// gets what is left of the policy's read timeout as its request timeout, and is not tried
/// again once that time is spent.
///
/// # Errors
/// `Unavailable` for transport errors (and a read out of time), `InsufficientCredits` for a
/// 402, `Http` (classified) for other non-success answers.
pub async fn send_with_retry<F>(
    policy: &RetryPolicy,
    operation: &str,
    build: F,
) -> ProverResult<reqwest::Response>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    send(policy, operation, build).await.result
}

/// [`send_with_retry`], reporting the call (attempts, duration, error, bytes) of `prover` to
/// the current [`crate::observe::ProverObserver`].
///
/// # Errors
/// As [`send_with_retry`].
pub async fn send_observed<F>(
    prover: &'static str,
    policy: &RetryPolicy,
    operation: &str,
    build: F,
) -> ProverResult<reqwest::Response>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let started = Instant::now();
    let sent = send(policy, operation, build).await;
    crate::observe::report(|o| {
        o.api_call(&crate::observe::ApiCall {
            prover,
            operation,
            attempts: sent.attempts,
            elapsed: started.elapsed(),
            error: sent.result.as_ref().err(),
            bytes: sent.bytes,
        })
    });
    sent.result
}

/// What [`send`] did.
struct Sent {
    result: ProverResult<reqwest::Response>,
    attempts: u32,
    bytes: u64,
}

/// The bytes of a request body whose size is known before sending.
fn request_bytes(request: &reqwest::Request) -> u64 {
    request.body().and_then(reqwest::Body::as_bytes).map_or_else(
        || {
            request
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0)
        },
        |b| b.len() as u64,
    )
}

async fn send<F>(policy: &RetryPolicy, operation: &str, build: F) -> Sent
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let started = Instant::now();
    let mut failed = 0u32;
    let mut bytes = 0u64;
    loop {
        let (client, request) = build().build_split();
        let mut request = match request {
            Ok(r) => r,
            Err(e) => {
                let e = ProverError::Config(format!("{operation}: cannot build the request: {e}"));
                return Sent { result: Err(e), attempts: failed, bytes };
            }
        };
        bytes += request_bytes(&request);
        let read_timeout = policy.read_timeout.filter(|_| is_read(request.method()));
        if let Some(total) = read_timeout {
            let left = total.saturating_sub(started.elapsed());
            let own = request.timeout().copied().unwrap_or(left);
            *request.timeout_mut() = Some(left.min(own));
        }
        let response = client.execute(request).await;
        if let Ok(r) = &response {
            bytes += r.content_length().unwrap_or(0);
        }
        let err = match response {
            Ok(response) if response.status().is_success() => {
                return Sent { result: Ok(response), attempts: failed + 1, bytes };
            }
            Ok(response) => error_from_response(operation, response).await,
            Err(e) => transport_error(operation, &e),
        };
        failed += 1;
        let limit = read_timeout.unwrap_or(policy.budget);
        let Some(delay) = policy.next_delay(failed, &err, started, limit) else {
            give_up(operation, failed, &err);
            return Sent { result: Err(err), attempts: failed, bytes };
        };
        tracing::debug!(target: "orch::prover", operation, attempt = failed, ?delay, error = %err, "Retrying prover request");
        tokio::time::sleep(delay).await;
    }
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

/// Reads a non-success response into a classified `Http` error (`InsufficientCredits` for a
/// 402 Payment Required).
pub async fn error_from_response(operation: &str, response: reqwest::Response) -> ProverError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    if status == 402 {
        return ProverError::InsufficientCredits {
            operation: operation.to_owned(),
            body: truncate(&body),
        };
    }
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

    #[test]
    fn server_errors_are_retryable_client_errors_are_not() {
        assert!(classify_http_failure(500, "{\"error\":\"pie invalid\"}").is_retryable());
        assert!(classify_http_failure(429, "").is_retryable());
        assert!(!classify_http_failure(402, "{\"message\":\"no credits\"}").is_retryable());
        assert!(!classify_http_failure(400, "bad").is_retryable());
    }

    #[test]
    fn the_upstream_flags_set_the_attempts_and_the_read_timeout() {
        let p = RetryPolicy::upstream(
            UpstreamRetry::new(5, Duration::from_secs(7)).expect("valid upstream settings"),
        );
        assert_eq!((p.max_attempts, p.read_timeout), (5, Some(Duration::from_secs(7))));
        assert_eq!(RetryPolicy::default().max_attempts, 3);
        assert_eq!(RetryPolicy::default().read_timeout, Some(Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_within_the_attempts() {
        let calls = AtomicU32::new(0);
        let out = RetryPolicy::default()
            .run("op", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(infra())
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!(out, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_attempts() {
        let calls = AtomicU32::new(0);
        let err = RetryPolicy::default()
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(infra())
            })
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "the job level may still try later: {err}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_the_budget_is_spent() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let err = RetryPolicy::default()
            .with_max_attempts(1000)
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(infra())
            })
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        // Full delays 2 + 4 + 8 + 16 + 30 + 30 + 30 = 120 s; jitter takes each down to at most
        // half, so at least 8 attempts fit, and none starts after the budget.
        assert!(calls.load(Ordering::SeqCst) >= 8, "{calls:?}");
        assert!(start.elapsed() <= Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_spreads_the_waits_within_the_upper_half() {
        for _ in 0..20 {
            let calls = AtomicU32::new(0);
            let start = Instant::now();
            RetryPolicy::default()
                .run("op", || async {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        Err(infra())
                    } else {
                        Ok(())
                    }
                })
                .await
                .unwrap();
            let waited = start.elapsed();
            assert!(
                (Duration::from_secs(1)..=Duration::from_secs(2)).contains(&waited),
                "{waited:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_errors_return_at_once() {
        for err in [
            ProverError::InvalidProof("x".into()),
            ProverError::InsufficientCredits { operation: "op".into(), body: "{}".into() },
        ] {
            let calls = AtomicU32::new(0);
            let err = std::sync::Mutex::new(Some(err));
            let _ = RetryPolicy::default()
                .run("op", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(err.lock().unwrap().take().expect("called once"))
                })
                .await;
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
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

    /// A local HTTP/1.1 server that reads each whole request, answers it with the next
    /// scripted `(status, body)` (the last one again once the script is spent) after `delay`,
    /// closes the connection, and counts the requests.
    async fn scripted(
        answers: &[(u16, &str)],
        delay: Duration,
    ) -> (std::sync::Arc<AtomicU32>, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/q", listener.local_addr().unwrap());
        let calls = std::sync::Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let answers: Vec<(u16, String)> =
            answers.iter().map(|(s, b)| (*s, (*b).to_owned())).collect();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let n = counter.fetch_add(1, Ordering::SeqCst) as usize;
                let (status, body) = answers[n.min(answers.len() - 1)].clone();
                tokio::spawn(async move {
                    // Read the head, then as many body bytes as Content-Length says.
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    let head_end = loop {
                        let Ok(read) = stream.read(&mut buf).await else { return };
                        if read == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..read]);
                        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    while seen.len() < head_end + length {
                        let Ok(read) = stream.read(&mut buf).await else { return };
                        if read == 0 {
                            break;
                        }
                        seen.extend_from_slice(&buf[..read]);
                    }
                    tokio::time::sleep(delay).await;
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (calls, url)
    }

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy::new(Duration::from_millis(1), Duration::from_secs(10))
            .with_max_attempts(attempts)
    }

    #[tokio::test]
    async fn rate_limits_server_errors_and_proxy_pages_are_retried_until_an_answer() {
        let (calls, url) = scripted(
            &[
                (429, "{}"),
                (503, "{}"),
                (500, "{\"error\":\"busy\"}"),
                (502, "<html>"),
                (200, "{}"),
            ],
            Duration::ZERO,
        )
        .await;
        let http = reqwest::Client::new();
        let r = send_with_retry(&fast(5), "op", || http.post(&url).body("x".repeat(10_000)))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_402_is_insufficient_credits_and_sent_once() {
        let (calls, url) = scripted(&[(402, "{\"message\":\"no credits\"}")], Duration::ZERO).await;
        let http = reqwest::Client::new();
        let err = send_with_retry(&fast(3), "submit query", || http.post(&url).body("pie"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProverError::InsufficientCredits { body, .. } if body.contains("no credits")),
            "{err:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried");
    }

    #[tokio::test]
    async fn a_client_error_is_sent_once() {
        let (calls, url) = scripted(&[(400, "{\"message\":\"bad pie\"}")], Duration::ZERO).await;
        let http = reqwest::Client::new();
        let err = send_with_retry(&fast(3), "op", || http.post(&url)).await.unwrap_err();
        assert!(matches!(err, ProverError::Http { status: 400, .. }) && !err.is_retryable());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_read_ends_at_the_read_timeout_an_upload_does_not() {
        // Every answer takes 2 s; a read has 1 s in total whatever its attempts.
        let (calls, url) = scripted(&[(200, "{}")], Duration::from_secs(2)).await;
        let http = reqwest::Client::new();
        let policy = RetryPolicy { read_timeout: Some(Duration::from_secs(1)), ..fast(3) };
        let started = std::time::Instant::now();
        let err = send_with_retry(&policy, "status", || http.get(&url)).await.unwrap_err();
        assert!(matches!(err, ProverError::Unavailable { .. }) && err.is_retryable(), "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(1900), "{:?}", started.elapsed());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // An upload is not bound by the read timeout: it waits for its answer.
        let r = send_with_retry(&policy, "submit", || http.post(&url)).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    /// One call an observer was told about: `(prover, operation, attempts, error?, bytes)`.
    type Row = (&'static str, String, u32, Option<String>, u64);

    /// The calls an observer was told about.
    #[derive(Default)]
    struct Recorded(std::sync::Mutex<Vec<Row>>);

    impl crate::observe::ProverObserver for Recorded {
        fn api_call(&self, c: &crate::observe::ApiCall<'_>) {
            let error = c.error.map(ToString::to_string);
            let row = (c.prover, c.operation.to_owned(), c.attempts, error, c.bytes);
            self.0.lock().unwrap().push(row);
        }
        fn event(&self, _: &crate::observe::ProverEvent<'_>) {}
    }

    #[tokio::test]
    async fn observed_calls_report_attempts_errors_and_bytes() {
        let (_, url) = scripted(&[(503, "{}"), (200, "{\"ok\":1}")], Duration::ZERO).await;
        let (_, bad) = scripted(&[(400, "{}")], Duration::ZERO).await;
        let http = reqwest::Client::new();
        let recorded = std::sync::Arc::new(Recorded::default());
        crate::observe::scope(recorded.clone(), async {
            send_observed("atlantic", &fast(3), "submit", || http.post(&url).body("x".repeat(100)))
                .await
                .unwrap();
            send_observed("sharp", &fast(3), "get_status", || http.get(&bad)).await.unwrap_err();
        })
        .await;
        // Outside the scope, with nothing installed in this test binary, nothing is recorded.
        send_observed("sharp", &fast(1), "get_status", || http.get(&bad)).await.unwrap_err();
        let rows = recorded.0.lock().unwrap().clone();
        assert_eq!(rows.len(), 2, "{rows:?}");
        // Two uploads of 100 bytes, answers of 2 and 8 bytes.
        assert_eq!(rows[0], ("atlantic", "submit".to_owned(), 2, None, 210));
        let (prover, op, attempts, error, _) = &rows[1];
        assert_eq!((*prover, op.as_str(), *attempts), ("sharp", "get_status", 1));
        assert!(error.as_deref().is_some_and(|e| e.contains("400")), "{error:?}");
    }
}
