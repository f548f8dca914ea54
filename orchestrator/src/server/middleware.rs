//! Middleware of every route: the request span with its trace id, per-client rate limiting,
//! and the bearer-token check of the admin routes.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{header, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;
use tracing::Instrument;

use super::{
    error::{ApiError, InternalError},
    AppState,
};

/// Request header carrying the caller's trace id (32 hex digits); echoed on every response.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

/// Longest a request may take before it is answered with a 500 (style: graceful shutdown plus
/// a request timeout).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Clients tracked before idle ones are dropped from the rate limiter.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// A trace id: 32 lowercase hex digits, not all zero (the W3C rule).
fn valid_trace_id(s: &str) -> Option<String> {
    let ok =
        s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0');
    ok.then(|| s.to_ascii_lowercase())
}

/// The caller's trace id: `x-trace-id`, else the trace id of a W3C `traceparent`, else a new one.
pub fn trace_id_of(request: &Request) -> String {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    header(TRACE_ID_HEADER)
        .and_then(valid_trace_id)
        .or_else(|| {
            // traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
            header("traceparent").and_then(|tp| tp.split('-').nth(1)).and_then(valid_trace_id)
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Opens the `http_request` span (method, route, trace id) around the request, parents it on
/// the caller's trace when OpenTelemetry export is on, records the status and the request
/// metric, logs 5xx details, and echoes the trace id in `x-trace-id`.
pub async fn trace(State(config): State<AppState>, request: Request, next: Next) -> Response {
    let trace_id = trace_id_of(&request);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "http_request",
        trace_id = %trace_id,
        method = %request.method(),
        route = %route,
        status = tracing::field::Empty,
    );
    if crate::telemetry::otlp_active() {
        set_remote_parent(&span, &trace_id);
    }
    let mut response =
        match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request).instrument(span.clone()))
            .await
        {
            Ok(response) => response,
            Err(_) => ApiError::Internal(format!("request took longer than {REQUEST_TIMEOUT:?}"))
                .into_response(),
        };
    let status = response.status();
    span.record("status", status.as_u16());
    config.metrics.http_request(&route, status.as_u16());
    if let Some(InternalError(detail)) = response.extensions().get::<InternalError>() {
        tracing::error!(parent: &span, error = %detail, "Request failed");
    } else {
        tracing::debug!(parent: &span, status = status.as_u16(), "Request served");
    }
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert(TRACE_ID_HEADER, value);
    }
    response
}

/// Makes `span` a child of a remote span in trace `trace_id`, so the collector joins the
/// caller's trace.
fn set_remote_parent(span: &tracing::Span, trace_id: &str) {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let Ok(trace_id) = TraceId::from_hex(trace_id) else {
        return;
    };
    // A random non-zero parent span id: the caller's span id is unknown with `x-trace-id`.
    let span_id =
        SpanId::from_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or([1; 8]));
    let remote =
        SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, true, TraceState::default());
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// Token buckets per client IP.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` requests on average, `burst` at once (both at least 1).
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Takes one token for `client`; false when its bucket is empty.
    pub fn allow(&self, client: IpAddr) -> bool {
        let now = Instant::now();
        // A poisoned lock only means a panic while holding it; the buckets stay usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            // Forget clients whose bucket has refilled: they lose nothing by being forgotten.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(client).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The peer IP of a request (`0.0.0.0` when the server was not started with connect info, as
/// in router tests).
fn client_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip())
}

/// Answers 429 to a client over its rate; probes are never limited.
pub async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/health") {
        return next.run(request).await;
    }
    let ip = client_ip(&request);
    if limiter.allow(ip) {
        next.run(request).await
    } else {
        tracing::debug!(client = %ip, "Rate limited");
        ApiError::TooManyRequests(format!("too many requests from {ip}; slow down")).into_response()
    }
}

/// Lets a request through only with `Authorization: Bearer <admin token>` (compared in
/// constant time); without a configured token every admin request is refused.
pub async fn require_admin(
    State(config): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = config.server.admin_token.as_ref() else {
        return ApiError::Unauthorized.into_response();
    };
    let provided = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let ok = provided.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.expose().as_bytes())));
    if ok {
        next.run(request).await
    } else {
        tracing::warn!(path = %request.uri().path(), "Admin request refused: missing or wrong bearer token");
        ApiError::Unauthorized.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_validated() {
        assert_eq!(
            valid_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(valid_trace_id("00000000000000000000000000000000"), None);
        assert_eq!(valid_trace_id("xyz"), None);
        assert_eq!(valid_trace_id("4bf92f3577b34da6a3ce929d0e0e473g"), None);
    }

    #[test]
    fn buckets_refuse_beyond_the_burst_per_client() {
        let limiter = RateLimiter::new(1, 3);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        assert!((0..3).all(|_| limiter.allow(a)));
        assert!(!limiter.allow(a));
        assert!(limiter.allow(b), "another client has its own bucket");
    }
}
