//! HTTP routes of the mock server.

use std::{collections::HashMap, time::Instant};

use axum::{
    extract::{Multipart, Path, Query, Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    producer::{AggregationInput, ChildQuery},
    state::{
        Bucket, ChaosKind, Fault, FaultRoute, Phase, Query as StoredQuery, State as ServerState,
    },
    AppState,
};

/// Largest accepted upload (PIEs of big blocks are tens of MB).
const MAX_BODY: usize = 256 * 1024 * 1024;

pub(crate) fn router(app: AppState) -> Router {
    Router::new()
        .route("/atlantic-query", post(submit_query))
        .route("/atlantic-query/{id}", get(query_status))
        .route("/atlantic-query-by-dedup-id", get(query_by_dedup_id))
        .route("/buckets", post(create_bucket))
        .route("/buckets/close", post(close_bucket))
        .route("/buckets/{id}", get(get_bucket))
        .route("/queries/{id}/{file}", get(artifact))
        .route("/is-alive", get(|| async { Json(json!({"alive": true})) }))
        .layer(middleware::from_fn_with_state(app.clone(), check_api_key))
        .layer(middleware::from_fn_with_state(app.clone(), chaos))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

fn lock(app: &AppState) -> std::sync::MutexGuard<'_, ServerState> {
    app.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"message": message.into()}))).into_response()
}

fn fault_response(fault: Fault) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, fault.body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(fault.content_type));
    r
}

/// Answers an injected fault for `route`, if one is queued.
fn faulted(app: &AppState, route: FaultRoute) -> Option<Response> {
    lock(app).take_fault(route).map(fault_response)
}

/// With chaos on, answers a drawn share of the calls with a fault instead of handling them
/// (`/is-alive` excepted).
async fn chaos(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/is-alive" {
        return next.run(request).await;
    }
    let drawn = lock(&app).draw_chaos();
    let Some((kind, hang)) = drawn else { return next.run(request).await };
    tracing::debug!(target: "orch::mock_atlantic", path = request.uri().path(), fault = kind.name(), "Chaos fault");
    match kind {
        ChaosKind::InternalError => fault_response(Fault::status(FaultRoute::Any, 500, 1)),
        ChaosKind::Unavailable => fault_response(Fault::html(FaultRoute::Any, 503, 1)),
        ChaosKind::RateLimited => {
            let mut r = fault_response(Fault::status(FaultRoute::Any, 429, 1));
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        ChaosKind::Hang => {
            tokio::time::sleep(hang).await;
            error(StatusCode::GATEWAY_TIMEOUT, "chaos: hung past the client's timeout")
        }
        ChaosKind::Malformed => {
            let mut r = (StatusCode::OK, "{\"atlanticQuery\": {\"id\": \"01").into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    }
}

async fn check_api_key(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let expected = lock(&app).config.api_key.clone();
    // Artifacts are public (they live on another host in production).
    let public =
        request.uri().path().starts_with("/queries/") || request.uri().path() == "/is-alive";
    if let (Some(expected), false) = (expected, public) {
        let given = request.headers().get("api-key").and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong api-key");
        }
    }
    next.run(request).await
}

async fn submit_query(State(app): State<AppState>, mut multipart: Multipart) -> Response {
    if let Some(r) = faulted(&app, FaultRoute::SubmitQuery) {
        return r;
    }
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut input: Option<(String, Vec<u8>)> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return error(StatusCode::BAD_REQUEST, format!("malformed multipart body: {e}"))
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return error(StatusCode::BAD_REQUEST, format!("cannot read field {name}: {e}"))
            }
        };
        match name.as_str() {
            "pieFile" | "inputFile" | "programFile" => {
                fields.insert(format!("file:{name}"), file_name.unwrap_or_default());
                input = Some((name, bytes.to_vec()));
            }
            _ => {
                fields.insert(name, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    let Some((input_field, input)) = input else {
        return error(
            StatusCode::BAD_REQUEST,
            "one of pieFile, inputFile or programFile is required",
        );
    };
    if input.is_empty() {
        return error(StatusCode::BAD_REQUEST, format!("{input_field} is empty"));
    }
    if input_field == "pieFile" && !input.starts_with(b"PK") {
        return error(StatusCode::BAD_REQUEST, "pieFile is not a zip archive");
    }
    if input_field == "inputFile" && serde_json::from_slice::<Value>(&input).is_err() {
        return error(StatusCode::BAD_REQUEST, "inputFile is not JSON");
    }
    for required in ["result", "network", "declaredJobSize", "cairoVm", "cairoVersion"] {
        if !fields.contains_key(required) {
            return error(StatusCode::BAD_REQUEST, format!("{required} is required"));
        }
    }
    let bucket_job_index = match fields.get("bucketJobIndex").map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(i)) if i >= 1 => Some(i),
        Some(_) => {
            return error(StatusCode::BAD_REQUEST, "bucketJobIndex must be a positive integer")
        }
    };

    let mut state = lock(&app);
    let now = Instant::now();
    if let Some(dedup) = fields.get("dedupId") {
        let existing = state.queries.values().find(|q| q.dedup_id.as_ref() == Some(dedup));
        if let Some(q) = existing {
            if !matches!(state.phase(q, now), Phase::Failed(_)) {
                return (StatusCode::CREATED, Json(json!({"atlanticQueryId": q.id})))
                    .into_response();
            }
        }
    }
    if let Some(bucket_id) = fields.get("bucketId") {
        match state.buckets.get(bucket_id) {
            None => {
                return error(StatusCode::BAD_REQUEST, format!("bucket {bucket_id} does not exist"))
            }
            Some(b) if b.aggregator_query.is_some() => {
                return error(StatusCode::BAD_REQUEST, format!("bucket {bucket_id} is closed"))
            }
            Some(_) => {}
        }
    }
    if state.running(now) >= state.config.max_concurrent_jobs {
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "too many running queries");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let rate = state.config.failure_rate;
    let will_fail = rate > 0.0 && state.rng.gen_bool(rate);
    let id = state.new_id();
    let query = StoredQuery {
        id: id.clone(),
        dedup_id: fields.get("dedupId").cloned(),
        bucket_id: fields.get("bucketId").cloned(),
        bucket_job_index,
        layout: fields.get("layout").cloned(),
        network: fields.get("network").cloned(),
        result: fields.get("result").cloned().unwrap_or_default(),
        declared_job_size: fields.get("declaredJobSize").cloned(),
        created: now,
        seq: 0,
        will_fail,
        forced: None,
        is_aggregator: false,
        input,
        artifacts: HashMap::new(),
    };
    let mut query = query;
    let l2_registration = match &state.config.starknet_fact_registration {
        Some(reg) if query.result == "PROOF_VERIFICATION_ON_L2" && !will_fail => {
            // Running until its fact is registered.
            query.forced = Some(Phase::InProgress);
            Some((
                reg.clone(),
                fields.get("programHash").cloned().unwrap_or_default(),
                query.input.clone(),
            ))
        }
        _ => None,
    };
    state.insert(query);
    state.submissions.push(fields);
    tracing::info!(target: "orch::mock_atlantic", query_id = %id, will_fail, "Query received");
    if let Some((reg, program_hash, input)) = l2_registration {
        tokio::spawn(register_l2_fact(app.clone(), id.clone(), reg, program_hash, input));
    }
    (StatusCode::CREATED, Json(json!({"atlanticQueryId": id}))).into_response()
}

async fn query_status(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    if let Some(r) = faulted(&app, FaultRoute::QueryStatus) {
        return r;
    }
    let state = lock(&app);
    match state.queries.get(&id) {
        Some(q) => {
            Json(json!({"atlanticQuery": state.query_json(q, Instant::now()), "metadataUrls": []}))
                .into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("Atlantic query {id} not found")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DedupParams {
    dedup_id: String,
}

async fn query_by_dedup_id(State(app): State<AppState>, Query(p): Query<DedupParams>) -> Response {
    if let Some(r) = faulted(&app, FaultRoute::DedupLookup) {
        return r;
    }
    let state = lock(&app);
    // The latest query with this dedup id (a failed one may have been resubmitted).
    match state
        .queries
        .values()
        .filter(|q| q.dedup_id.as_deref() == Some(p.dedup_id.as_str()))
        .max_by_key(|q| q.seq)
    {
        Some(q) => {
            Json(json!({"atlanticQuery": state.query_json(q, Instant::now()), "metadataUrls": []}))
                .into_response()
        }
        None => {
            error(StatusCode::NOT_FOUND, format!("no Atlantic query with dedup id {}", p.dedup_id))
        }
    }
}

async fn create_bucket(State(app): State<AppState>, body: Option<Json<Value>>) -> Response {
    if let Some(r) = faulted(&app, FaultRoute::Buckets) {
        return r;
    }
    let Some(Json(body)) = body else {
        return error(StatusCode::BAD_REQUEST, "a JSON body is required");
    };
    let Some(version) = body.get("aggregatorVersion").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "aggregatorVersion is required");
    };
    let mut state = lock(&app);
    let id = state.new_id();
    let bucket = Bucket {
        id: id.clone(),
        aggregator_params: body.get("aggregatorParams").cloned().unwrap_or(Value::Null),
        aggregator_version: version.to_owned(),
        mock_proof: body.get("mockProof").and_then(Value::as_bool).unwrap_or(false),
        aggregator_query: None,
    };
    let json = state.bucket_json(&bucket, Instant::now());
    state.buckets.insert(id.clone(), bucket);
    tracing::info!(target: "orch::mock_atlantic", bucket_id = %id, "Bucket created");
    (StatusCode::CREATED, Json(json!({"atlanticBucket": json}))).into_response()
}

async fn get_bucket(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    if let Some(r) = faulted(&app, FaultRoute::Buckets) {
        return r;
    }
    let state = lock(&app);
    let Some(bucket) = state.buckets.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("bucket {id} not found"));
    };
    let now = Instant::now();
    let mut queries: Vec<Value> =
        state.children(&id).into_iter().map(|q| state.query_json(q, now)).collect();
    if let Some(q) = bucket.aggregator_query.as_ref().and_then(|a| state.queries.get(a)) {
        queries.push(state.query_json(q, now));
    }
    Json(json!({"bucket": state.bucket_json(bucket, now), "queries": queries})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloseParams {
    bucket_id: String,
}

async fn close_bucket(State(app): State<AppState>, Query(p): Query<CloseParams>) -> Response {
    if let Some(r) = faulted(&app, FaultRoute::Buckets) {
        return r;
    }
    let (input, query_id) = {
        let mut state = lock(&app);
        let Some(bucket) = state.buckets.get(&p.bucket_id).cloned() else {
            return error(StatusCode::NOT_FOUND, format!("bucket {} not found", p.bucket_id));
        };
        if bucket.aggregator_query.is_some() {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bucket {} is already closed", p.bucket_id),
            );
        }
        let children: Vec<ChildQuery> = state
            .children(&p.bucket_id)
            .into_iter()
            .map(|q| ChildQuery {
                query_id: q.id.clone(),
                bucket_job_index: q.bucket_job_index,
                pie_zip: q.input.clone(),
            })
            .collect();
        if children.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bucket {} has no queries", p.bucket_id),
            );
        }
        let id = state.new_id();
        let aggregator = StoredQuery {
            id: id.clone(),
            dedup_id: None,
            bucket_id: Some(p.bucket_id.clone()),
            bucket_job_index: None,
            layout: Some("recursive_with_poseidon".into()),
            network: None,
            result: "PROOF_GENERATION_AND_VERIFICATION".into(),
            declared_job_size: None,
            created: Instant::now(),
            seq: 0,
            will_fail: false,
            // Running until its artifacts (and fact registration) are there.
            forced: Some(Phase::InProgress),
            is_aggregator: true,
            input: Vec::new(),
            artifacts: HashMap::new(),
        };
        state.insert(aggregator);
        if let Some(b) = state.buckets.get_mut(&p.bucket_id) {
            b.aggregator_query = Some(id.clone());
        }
        (
            AggregationInput {
                bucket_id: p.bucket_id.clone(),
                aggregator_params: bucket.aggregator_params,
                children,
            },
            id,
        )
    };
    // The producer may take a while (a real aggregator run): run it off the async threads and
    // without the state lock, in a task of its own so that a client that goes away mid-request
    // (a crashed orchestrator) does not cancel it and leave the aggregation running forever.
    let work = {
        let app = app.clone();
        let query_id = query_id.clone();
        tokio::spawn(async move {
            let producer = app.producer.clone();
            let produced = tokio::task::spawn_blocking(move || producer.produce(&input))
                .await
                .map_err(|e| format!("producer panicked: {e}"))
                .and_then(|r| r.map_err(|e| e.to_string()));
            let produced = match (produced, &app.registrar) {
                (Ok(artifacts), Some(registrar)) => register_fact(registrar, &artifacts)
                    .await
                    .map(|()| artifacts)
                    .map_err(|e| format!("fact registration failed: {e}")),
                (other, _) => other,
            };
            lock(&app).store_aggregation(&query_id, produced);
        })
    };
    if let Err(e) = work.await {
        lock(&app).store_aggregation(&query_id, Err(format!("aggregation task failed: {e}")));
    }
    let state = lock(&app);
    tracing::info!(target: "orch::mock_atlantic", bucket_id = %p.bucket_id, %query_id, "Bucket closed");
    let Some(bucket) = state.buckets.get(&p.bucket_id) else {
        return error(StatusCode::NOT_FOUND, format!("bucket {} not found", p.bucket_id));
    };
    Json(json!({"atlanticBucket": state.bucket_json(bucket, Instant::now())})).into_response()
}

async fn artifact(
    State(app): State<AppState>,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    if let Some(r) = faulted(&app, FaultRoute::Artifacts) {
        return r;
    }
    let state = lock(&app);
    let Some(q) = state.queries.get(&id) else {
        return error(StatusCode::NOT_FOUND, "no such query");
    };
    if state.phase(q, Instant::now()) != Phase::Done {
        return error(StatusCode::NOT_FOUND, format!("query {id} has no artifacts yet"));
    }
    let bytes = match file.as_str() {
        "proof.json" => ServerState::proof_for(q),
        other => match q.artifacts.get(other) {
            Some(b) => b.clone(),
            None => return error(StatusCode::NOT_FOUND, format!("query {id} has no {other}")),
        },
    };
    let content_type = if file.ends_with(".zip") { "application/zip" } else { "application/json" };
    ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

/// Registers the fact a core contract checks for the aggregated output of `artifacts`:
/// `keccak(program_hash, keccak(output words))`, the program hash and the output read from the
/// aggregator PIE exactly as the orchestrator's Aggregator job reads them.
async fn register_fact(
    registrar: &orchestrator_gps_fact_checker::FactRegistrar,
    artifacts: &crate::ProducedArtifacts,
) -> Result<(), String> {
    use orchestrator_gps_fact_checker::fact::{
        aggregator::filter_aggregator_output, keccak256_concat, pie, program_hash::program_hash,
    };
    let parsed = pie::read_pie_bytes(&artifacts.pie_zip).map_err(|e| e.to_string())?;
    let hash = program_hash(&parsed).map_err(|e| e.to_string())?;
    let full = pie::program_output(&parsed).map_err(|e| e.to_string())?;
    let own = filter_aggregator_output(&full).map_err(|e| e.to_string())?;
    let words: Vec<[u8; 32]> = own.iter().map(|f| f.to_bytes_be()).collect();
    let output_hash = keccak256_concat(words.iter().map(|w| w.as_slice()));
    let fact = keccak256_concat([hash.to_bytes_be().as_slice(), output_hash.as_bytes().as_slice()]);
    let fact = orchestrator_gps_fact_checker::onchain::parse_fact(&fact.to_string())
        .map_err(|e| e.to_string())?;
    let tx = registrar.ensure_registered(fact).await.map_err(|e| e.to_string())?;
    tracing::info!(target: "orch::mock_atlantic", %fact, tx = ?tx, "Aggregation fact registered");
    Ok(())
}

/// Registers the fact of L2 verification query `query_id` in the Cairo `FactRegistry`, then
/// lets the query run its delays (or fails it with the reason).
async fn register_l2_fact(
    app: AppState,
    query_id: String,
    reg: crate::StarknetFactRegistration,
    program_hash: String,
    input: Vec<u8>,
) {
    use starknet_types_core::{
        felt::Felt,
        hash::{Poseidon, StarkHash},
    };
    let outcome = async {
        let program_hash = Felt::from_hex(&program_hash)
            .map_err(|_| format!("programHash {program_hash:?} is not a felt"))?;
        let output = ServerState::public_output_of_input(&input)?;
        let fact = Poseidon::hash_array(&[program_hash, Poseidon::hash_array(&output)]);
        let _one_at_a_time = app.starknet_sends.lock().await;
        orchestrator_starknet_settlement_client::testing::register_fact(
            &reg.rpc_url,
            reg.account,
            reg.private_key,
            reg.registry,
            fact,
        )
        .await
        .map(|tx| (fact, tx))
    }
    .await;
    let mut state = lock(&app);
    let Some(q) = state.queries.get_mut(&query_id) else { return };
    match outcome {
        Ok((fact, tx)) => {
            tracing::info!(target: "orch::mock_atlantic", %query_id, fact = %format!("{fact:#x}"), tx = %format!("{tx:#x}"), "L2 fact registered on Starknet");
            q.forced = None;
            q.created = Instant::now();
        }
        Err(reason) => {
            q.forced = Some(Phase::Failed(format!("L2 fact registration failed: {reason}")))
        }
    }
}
