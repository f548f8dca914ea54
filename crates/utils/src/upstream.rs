//! [`UpstreamRetry`]: how calls to the services the orchestrator reads from (the Madara node's
//! JSON-RPC, its feeder gateway, the prover's HTTP API) are retried when the path to them fails.
//!
//! The policy is set once at start-up from `--upstream-read-max-attempts`
//! (`MADARA_ORCHESTRATOR_UPSTREAM_READ_MAX_ATTEMPTS`, default 3) and
//! `--upstream-read-timeout-secs` (`MADARA_ORCHESTRATOR_UPSTREAM_READ_TIMEOUT_SECS`, default 30)
//! and handed to each client, which runs its own retry loop with it:
//!
//! - what is retried is decided by the client, always the same way: no answer (connect error,
//!   reset, timeout), HTTP 429 and HTTP 5xx. An answer of the service itself (a JSON-RPC error,
//!   a 4xx) goes back to the caller at once;
//! - the wait before attempt `n + 1` is an exponential backoff (`base_delay · 2^(n-1)`, at most
//!   `max_delay`) with "equal jitter": a uniformly random point of its upper half, so that many
//!   callers failing together do not retry together. A server's `Retry-After` is a floor;
//! - a read (every node and feeder-gateway call, the prover's GETs) has `read_timeout` in total:
//!   attempts and waits included. Uploads to the prover keep their own request timeout.
//!
//! The module has no runtime: it computes delays, the clients sleep.

use std::{
    hash::{BuildHasher, RandomState},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Default of `--upstream-read-max-attempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default of `--upstream-read-timeout-secs`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// First backoff delay.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest backoff delay.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(8);
/// Longest wait for a TCP/TLS connection within one attempt, so that a stalled connect leaves
/// time for another attempt within the read timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an [`UpstreamRetry`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamRetryError {
    /// Zero attempts would never call the service.
    #[error("the number of attempts must be at least 1 (1 = no retry)")]
    NoAttempts,
    /// A zero timeout would fail every call before it starts.
    #[error("the read timeout must be greater than zero")]
    NoTime,
}

/// How upstream calls are retried (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamRetry {
    /// Attempts per call, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Total time of one read, attempts and waits included.
    pub read_timeout: Duration,
    /// Backoff before the second attempt; doubles after each failed attempt.
    pub base_delay: Duration,
    /// Longest backoff between two attempts.
    pub max_delay: Duration,
}

impl Default for UpstreamRetry {
    /// 3 attempts, 30 s per read, backoff from 0.5 s up to 8 s.
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            read_timeout: DEFAULT_READ_TIMEOUT,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

impl UpstreamRetry {
    /// `max_attempts` attempts within `read_timeout`, with the default backoff.
    ///
    /// # Errors
    /// Zero attempts or a zero timeout.
    pub fn new(max_attempts: u32, read_timeout: Duration) -> Result<Self, UpstreamRetryError> {
        if max_attempts == 0 {
            return Err(UpstreamRetryError::NoAttempts);
        }
        if read_timeout.is_zero() {
            return Err(UpstreamRetryError::NoTime);
        }
        Ok(Self { max_attempts, read_timeout, ..Self::default() })
    }

    /// The same policy with this backoff (tests shorten it).
    pub fn with_backoff(self, base_delay: Duration, max_delay: Duration) -> Self {
        Self { base_delay, max_delay: max_delay.max(base_delay), ..self }
    }

    /// The backoff after `failed` failed attempts (1-based), before jitter.
    pub fn backoff(&self, failed: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed.saturating_sub(1).min(16));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The wait after `failed` failed attempts: the backoff with jitter, at least `hint` (a
    /// server's `Retry-After`).
    pub fn delay(&self, failed: u32, hint: Option<Duration>) -> Duration {
        let jittered = equal_jitter(self.backoff(failed));
        hint.map_or(jittered, |h| h.max(jittered))
    }

    /// Whether another attempt may start after `failed` failed attempts.
    pub fn may_retry(&self, failed: u32) -> bool {
        failed < self.max_attempts.max(1)
    }

    /// The connect timeout of one attempt: [`CONNECT_TIMEOUT`], or the read timeout when
    /// shorter.
    pub fn connect_timeout(&self) -> Duration {
        CONNECT_TIMEOUT.min(self.read_timeout)
    }
}

/// A uniformly random duration in `[d/2, d]`.
pub fn equal_jitter(d: Duration) -> Duration {
    let half = d / 2;
    let span = d - half;
    let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return d;
    }
    half + Duration::from_nanos(random_u64() % (nanos + 1))
}

/// A random number for jitter (not for cryptography): the standard library's randomly keyed
/// SipHash over a counter, so no RNG dependency is needed.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_flags() {
        let p = UpstreamRetry::default();
        assert_eq!((p.max_attempts, p.read_timeout), (3, Duration::from_secs(30)));
        assert!(p.may_retry(1) && p.may_retry(2) && !p.may_retry(3));
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        assert_eq!(
            UpstreamRetry::new(0, Duration::from_secs(1)),
            Err(UpstreamRetryError::NoAttempts)
        );
        assert_eq!(UpstreamRetry::new(2, Duration::ZERO), Err(UpstreamRetryError::NoTime));
        let one = UpstreamRetry::new(1, Duration::from_secs(1)).unwrap();
        assert!(!one.may_retry(1), "one attempt means no retry");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = UpstreamRetry::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(500));
        let got: Vec<_> = (1..=5).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500]);
        assert_eq!(p.backoff(60), Duration::from_millis(500));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_varies() {
        let p = UpstreamRetry::default()
            .with_backoff(Duration::from_millis(400), Duration::from_millis(400));
        let delays: Vec<Duration> = (0..200).map(|_| p.delay(1, None)).collect();
        assert!(delays
            .iter()
            .all(|d| (Duration::from_millis(200)..=Duration::from_millis(400)).contains(d)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "jitter spreads the delays: {} distinct", distinct.len());
    }

    #[test]
    fn a_retry_after_hint_is_a_floor() {
        let p = UpstreamRetry::default();
        assert_eq!(p.delay(1, Some(Duration::from_secs(20))), Duration::from_secs(20));
        assert!(p.delay(1, Some(Duration::from_millis(1))) >= p.backoff(1) / 2);
    }

    #[test]
    fn connect_timeout_fits_in_the_read_timeout() {
        assert_eq!(UpstreamRetry::default().connect_timeout(), CONNECT_TIMEOUT);
        let short = UpstreamRetry::new(3, Duration::from_secs(2)).unwrap();
        assert_eq!(short.connect_timeout(), Duration::from_secs(2));
    }
}
