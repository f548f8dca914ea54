//! The HTTP API: arbitrary method, path, query, headers and body through the full router
//! (`server::router`, `tower::ServiceExt::oneshot`: the rate limiter, the trace layer, the
//! job, batch, block, admin, metrics and dashboard routes and their extractors and parameter
//! parsers) over an embedded orchestrator with the admin routes on.
//!
//! Input: one byte choosing the method, one flag byte (bit 0: the admin bearer token; bit 1: a
//! peer address; bit 2: `content-type: application/json`), then the URI (path and query) and
//! the body, separated by [`orchestrator_fuzz::SEP`]. `$JOB1` … `$JOB4` in the URI name the
//! seeded jobs.
//!
//! Checked: no panic, no hang, no server error (5xx) for any request; every JSON error answer
//! is the envelope `{"success": false, "message": …}`.
#![no_main]

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Method, Request},
};
use libfuzzer_sys::fuzz_target;
use orchestrator::types::queue::QueueType;
use orchestrator_fuzz::{
    engine::{engine, ADMIN_TOKEN},
    sections,
};
use tower::ServiceExt;

static RUNS: AtomicU64 = AtomicU64::new(0);

const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
];

fuzz_target!(|data: &[u8]| {
    let Some(([method, flags], rest)) = data.split_first_chunk::<2>() else { return };
    let engine = engine();
    let parts = sections(rest);
    let uri = engine.with_job_ids(&String::from_utf8_lossy(parts[0]));
    let body = parts.get(1).map(|b| b.to_vec()).unwrap_or_default();

    let method = METHODS[usize::from(*method) % METHODS.len()].clone();
    let head = method == Method::HEAD;
    let mut request = Request::builder().method(method);
    request = request.uri(uri.as_str());
    if flags & 1 != 0 {
        request = request.header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    }
    if flags & 4 != 0 {
        request = request.header("content-type", "application/json");
    }
    // A URI the HTTP layer would refuse never reaches the router.
    let Ok(mut request) = request.body(Body::from(body)) else { return };
    if flags & 2 != 0 {
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
    }

    let (status, json, bytes) = engine.runtime.block_on(async {
        let response = engine.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let json = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .expect("the body of an in-process answer");
        (status, json, bytes)
    });
    assert!(!status.is_server_error(), "{uri}: {status}: {}", String::from_utf8_lossy(&bytes));
    // JSON errors are the envelope (the unknown-route fallback answers plain text, a method a
    // route does not serve gets axum's empty 405, and the answer to HEAD has no body).
    if status.is_client_error() && json && !head {
        let envelope: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{uri}: {status}: not JSON ({e})"));
        assert_eq!(envelope["success"], serde_json::Value::Bool(false), "{uri}: {status}");
        assert!(envelope["message"].is_string(), "{uri}: {status}");
    }
    // The job routes queue messages: drop them now and then.
    if RUNS.fetch_add(1, Ordering::Relaxed) % 256 == 0 {
        engine.runtime.block_on(engine.drain(&QueueType::all()));
        engine.truncate_alerts();
    }
});
