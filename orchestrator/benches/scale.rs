//! The scale benchmark (issue 19, `scripts/bench.sh scale`): a year of a busy chain in the
//! database, then one run of every trigger, the orphan scan and the API list routes, timed, on
//! the embedded tier (SQLite) and on PostgreSQL.
//!
//! Seeding writes, with multi-row `INSERT`s in transactions over the crate's own schema
//! (`core::client::sql::schema`, applied by `SqlDatabase::init`), `SCALE_JOBS` jobs (default
//! 1 000 000, all six job types) and `SCALE_BATCHES` SNOS batches (default 100 000; one
//! aggregator batch per 10 SNOS batches) of `SCALE_BLOCKS_PER_BATCH` blocks (default 315: a
//! year at a block a second) with one block lookup per block, plus the open tail of a running
//! L2 pipeline: SnosRun jobs Created, LockedForProcessing and PendingVerification, proofs
//! pending and three failed, aggregations pending, one aggregator batch proven but without its
//! Aggregator job, one aggregation done but not settled, the last settlements' artifacts not
//! tagged yet. The secondary indexes are dropped during the load and rebuilt by `init`.
//!
//! The timed work runs through the real code: the triggers of an L2 configuration
//! (`stages::build_with`, mock prover, stand-in SNOS runner) plus the L3 stages' triggers over
//! the same data, `worker::orphan::scan`, and the axum router (`tower::ServiceExt::oneshot`).
//! Only the node (a chain whose tip is 20 blocks past the last batch, answering at once) and
//! the settlement client are in-process fakes. Before timing, what an earlier run created is
//! removed and the open tail written anew (jobs created after the seed, batches and lookups
//! past it, the queue, locks, the tail's jobs as seeded, the batch statuses the triggers
//! moved), so every run times the same work, also after `orchestrator run` on the data dir.
//!
//! `SCALE_EXPLAIN=1` prints the plans of the trigger queries (`docs/databases.md`),
//! `SCALE_TRACE_SQL=1` every statement with its time (sqlx's events, on stderr).
//!
//! A seeded database is reused when its marker row (`scale_bench_seed`) matches the sizes
//! asked for. The embedded data dir stays at `$ORCH_CACHE/bench/scale-embedded` (or
//! `SCALE_EMBEDDED_DIR`) for `orchestrator run --data-dir`; the PostgreSQL database is
//! `orchestrator_scale` beside the one of `SCALE_POSTGRES_URL` (no URL: PostgreSQL is skipped
//! with a line saying so). `SCALE_BACKENDS` (default `embedded,postgres`) picks the backends.
//!
//! The last lines are one per backend:
//! `scale: backend=<b> worst=<name> <ms> ms data=<path or database>`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use axum::{body::Body, http::Request, Router};
use chrono::{DateTime, Utc};
use clap::Parser;
use orchestrator::{
    cli::run::RunCmd,
    config::EngineParams,
    core::client::{
        database::DatabaseClient,
        embedded,
        madara::{BlockInfo, ContractAddresses, MadaraClient, MadaraResult},
        postgres,
        sql::{
            database::{job_row, JOB_COLUMNS},
            Dialect, Sql, SqlDatabase, SqlLock, Value,
        },
        sqlite, Clients,
    },
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchStatus, BouncerWeights, SnosBatch, SnosBatchStatus,
        },
        jobs::{
            AggregatorMetadata, CommonMetadata, DaMetadata, ExternalId, JobItem, JobMetadata,
            JobSpecificMetadata, JobStatus, JobType, ProvingInputType, ProvingMetadata,
            SnosMetadata, StateUpdateMetadata,
        },
        queue::WorkerTriggerType,
        stage, Layer, ORCHESTRATOR_VERSION,
    },
    worker::{
        orphan,
        stages::{
            build_with, data_submission::DataSubmissionTrigger, external::ExternalClients,
            proof_registration::ProofRegistrationTrigger,
        },
        trigger::{self, JobTrigger},
        Config,
    },
};
use orchestrator_settlement_client_interface::{
    BlobStateUpdate, SettlementClient, SettlementResult, SettlementVerificationStatus,
    StateUpdateOutcome, StateUpdateTxError, Word,
};
use orchestrator_utils::Secret;
use sqlx::Pool;
use starknet::core::types::{ContractStorageDiffItem, Felt, StateDiff, StateUpdate, StorageEntry};
use tower::ServiceExt;
use uuid::Uuid;

/// Starknet version of every block.
const VERSION: &str = "0.14.2";
/// SNOS batches per aggregator batch.
const SNOS_PER_AGGREGATOR: u64 = 10;
/// Blocks the node has past the last seeded batch: the batching triggers' work of one run.
const NEW_BLOCKS: u64 = 20;
/// Rows per `INSERT`.
const ROWS_PER_INSERT: usize = 1000;
/// Rows per transaction.
const ROWS_PER_TX: usize = 50_000;
/// Block lookups per `INSERT … SELECT`.
const LOOKUPS_PER_INSERT: u64 = 2_000_000;
/// Goal of every figure.
const GOAL_MS: f64 = 50.0;
/// Unix time of block 0 (one block a second from there): set per database so that its last
/// seeded block is two hours older than the seed ([`set_genesis`]).
static GENESIS: AtomicI64 = AtomicI64::new(0);

/// Anchors the chain of a database seeded at `seeded_at`.
fn set_genesis(sizes: Sizes, seeded_at: i64) {
    GENESIS.store(seeded_at - sizes.last_block() as i64 - 7200, Ordering::SeqCst);
}

fn genesis() -> i64 {
    GENESIS.load(Ordering::SeqCst)
}

/// The sizes asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sizes {
    jobs: u64,
    snos_batches: u64,
    blocks_per_batch: u64,
}

impl Sizes {
    fn from_env() -> Self {
        let var = |name: &str, default: u64| {
            std::env::var(name).ok().map_or(default, |v| {
                v.replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
            })
        };
        let sizes = Self {
            jobs: var("SCALE_JOBS", 1_000_000),
            snos_batches: var("SCALE_BATCHES", 100_000),
            blocks_per_batch: var("SCALE_BLOCKS_PER_BATCH", 315),
        };
        assert!(
            sizes.snos_batches >= 1000 && sizes.snos_batches.is_multiple_of(SNOS_PER_AGGREGATOR),
            "SCALE_BATCHES must be a multiple of {SNOS_PER_AGGREGATOR}, at least 1000 (the open tail spans 300 batches)"
        );
        assert!(sizes.blocks_per_batch >= 1, "SCALE_BLOCKS_PER_BATCH must be at least 1");
        let least = 4 * sizes.snos_batches + 2 * sizes.aggregator_batches();
        assert!(
            sizes.jobs >= least,
            "SCALE_JOBS={} is below {least}: the ProofRegistration and DataSubmission jobs must \
             cover the {} SNOS batches at least",
            sizes.jobs,
            sizes.snos_batches
        );
        sizes
    }

    fn aggregator_batches(&self) -> u64 {
        self.snos_batches / SNOS_PER_AGGREGATOR
    }

    /// The last block of the seeded batches.
    fn last_block(&self) -> u64 {
        self.snos_batches * self.blocks_per_batch - 1
    }
}

/// The shape of the seeded pipeline, in batch indexes (S SNOS batches, A aggregator batches).
#[derive(Debug, Clone, Copy)]
struct Shape {
    s: u64,
    a: u64,
    k: u64,
}

impl Shape {
    fn of(sizes: Sizes) -> Self {
        Self { s: sizes.snos_batches, a: sizes.aggregator_batches(), k: sizes.blocks_per_batch }
    }

    /// The status of SnosRun job `i`: the last 30 are open.
    fn snos_run(&self, i: u64) -> JobStatus {
        match self.s - i {
            0..=9 => JobStatus::Created,
            10..=19 => JobStatus::LockedForProcessing,
            20..=29 => JobStatus::PendingVerification,
            _ => JobStatus::Completed,
        }
    }

    /// The status of ProofCreation job `i` (`None`: not created yet, the trigger's work).
    fn proof(&self, i: u64) -> Option<JobStatus> {
        match self.s - i {
            0..=29 => None,  // SnosRun not completed
            30..=34 => None, // SnosRun completed: the ProofCreation trigger creates these 5
            35..=99 => Some(JobStatus::Created),
            100..=249 if (self.s - i) % 50 == 7 => Some(JobStatus::Failed),
            100..=249 => Some(JobStatus::PendingVerification),
            _ => Some(JobStatus::Completed),
        }
    }

    /// The status of Aggregator job `a`, and of aggregator batch `a`.
    fn aggregator(&self, a: u64) -> (Option<JobStatus>, AggregatorBatchStatus) {
        match self.a - a {
            // Proofs of these batches are not all done.
            0..=23 => (None, AggregatorBatchStatus::Closed),
            // Proven: the Aggregator trigger creates its job.
            24 => (None, AggregatorBatchStatus::Closed),
            25..=26 => (
                Some(JobStatus::PendingVerification),
                AggregatorBatchStatus::PendingAggregatorVerification,
            ),
            // Aggregated, not settled: the StateTransition trigger creates its job.
            27 => (Some(JobStatus::Completed), AggregatorBatchStatus::ReadyForStateUpdate),
            _ => (Some(JobStatus::Completed), AggregatorBatchStatus::Completed),
        }
    }

    /// Whether StateTransition job `a` exists (all are Completed), and whether its artifacts
    /// are tagged.
    fn settled(&self, a: u64) -> Option<bool> {
        (self.a - a >= 28).then_some(self.a - a >= 31)
    }

    fn snos_range(&self, i: u64) -> (u64, u64) {
        ((i - 1) * self.k, i * self.k - 1)
    }

    fn aggregator_range(&self, a: u64) -> (u64, u64) {
        let n = SNOS_PER_AGGREGATOR * self.k;
        ((a - 1) * n, a * n - 1)
    }

    fn aggregator_of(&self, i: u64) -> u64 {
        (i - 1) / SNOS_PER_AGGREGATOR + 1
    }

    /// The time block `b` was produced.
    fn time_of(&self, b: u64) -> DateTime<Utc> {
        DateTime::from_timestamp(genesis() + b as i64, 0).expect("time in range")
    }
}

// ---- rows ----

const BATCH_COLUMNS: &str = "id, idx, aggregator_batch_index, status, orchestrator_version, \
     start_block, end_block, created_at, updated_at, doc";

fn batch_row(
    id: Uuid,
    index: u64,
    aggregator: Option<u64>,
    status: &str,
    (start, end): (u64, u64),
    (created, updated): (DateTime<Utc>, DateTime<Utc>),
    doc: String,
) -> Vec<Value> {
    vec![
        Value::Uuid(id),
        Value::Int(Some(index as i64)),
        Value::Int(aggregator.map(|a| a as i64)),
        status.into(),
        ORCHESTRATOR_VERSION.into(),
        Value::Int(Some(start as i64)),
        Value::Int(Some(end as i64)),
        Value::Time(Some(created.timestamp())),
        Value::Time(Some(updated.timestamp())),
        Value::Json(doc),
    ]
}

/// A job of `job_type` for batch `index` in `status`, its times those of the batch's blocks.
fn job(
    shape: &Shape,
    job_type: JobType,
    index: u64,
    status: JobStatus,
    specific: JobSpecificMetadata,
    last_block: u64,
) -> JobItem {
    let created = shape.time_of(last_block) + chrono::Duration::seconds(60);
    let done = created + chrono::Duration::seconds(600);
    let mut common = CommonMetadata {
        orchestrator_version: ORCHESTRATOR_VERSION.to_owned(),
        ..CommonMetadata::default()
    };
    let mut external_id = ExternalId::default();
    if status != JobStatus::Created {
        common.process_attempt_no = 1;
        // Still "being processed" in the bench: not stale under its 1-year timeout.
        common.process_started_at = Some(match status {
            JobStatus::LockedForProcessing => Utc::now(),
            _ => created,
        });
        external_id = ExternalId::String(format!("{job_type}-{index}"));
    }
    if matches!(status, JobStatus::PendingVerification | JobStatus::Completed | JobStatus::Failed) {
        common.process_completed_at = Some(created + chrono::Duration::seconds(30));
        common.verification_started_at = Some(created + chrono::Duration::seconds(30));
    }
    if status == JobStatus::Completed {
        common.verification_attempt_no = 1;
        common.verification_completed_at = Some(done);
    }
    if status == JobStatus::Failed {
        common.failure_reason = Some("prover rejected the proof (bench seed)".to_owned());
    }
    JobItem {
        id: Uuid::new_v4(),
        internal_id: index,
        job_type,
        status,
        external_id,
        metadata: JobMetadata { common, specific },
        version: if status == JobStatus::Created { 0 } else { 4 },
        created_at: created,
        updated_at: if status == JobStatus::Completed { done } else { created },
    }
}

fn snos_job(shape: &Shape, i: u64, status: JobStatus) -> JobItem {
    let (start, end) = shape.snos_range(i);
    let done = status == JobStatus::Completed;
    let m = SnosMetadata {
        snos_batch_index: i,
        start_block: start,
        end_block: end,
        num_blocks: end - start + 1,
        full_output: false,
        cairo_pie_path: Some(format!("{i}/cairo_pie.zip")),
        on_chain_data_path: None,
        snos_output_path: Some(format!("{i}/snos_output.json")),
        program_output_path: Some(format!("{i}/program_output.txt")),
        snos_fact: done.then(|| format!("{:#066x}", i * 7919)),
        snos_n_steps: done.then_some(3_000_000 + i as usize),
    };
    job(shape, JobType::SnosRun, i, status, JobSpecificMetadata::Snos(m), end)
}

fn proving_job(shape: &Shape, job_type: JobType, i: u64, status: JobStatus) -> JobItem {
    let (start, end) = shape.snos_range(i.min(shape.s));
    let input = match job_type {
        JobType::ProofRegistration => ProvingInputType::Proof(format!("{i}/proof.json")),
        _ => ProvingInputType::CairoPie(format!("{i}/cairo_pie.zip")),
    };
    let m = ProvingMetadata {
        block_number: start,
        input_path: Some(input),
        ensure_on_chain_registration: None,
        download_proof: (job_type == JobType::ProofRegistration)
            .then(|| format!("{i}/proof_part2.json")),
        n_steps: Some(3_000_000 + i as usize),
        bucket_id: None,
        bucket_job_index: None,
    };
    job(shape, job_type, i, status, JobSpecificMetadata::Proving(m), end)
}

fn da_job(shape: &Shape, i: u64, status: JobStatus) -> JobItem {
    let (start, end) = shape.snos_range((i - 1) % shape.s + 1);
    let m = DaMetadata {
        block_number: start,
        blob_data_path: Some(format!("{i}/blob_data.txt")),
        tx_hash: Some(format!("{:#066x}", i * 104_729)),
    };
    job(shape, JobType::DataSubmission, i, status, JobSpecificMetadata::Da(m), end)
}

fn aggregator_job(shape: &Shape, a: u64, status: JobStatus) -> JobItem {
    let (_, end) = shape.aggregator_range(a);
    let dir = format!("artifacts/batch/{a}");
    let m = AggregatorMetadata {
        batch_num: a,
        bucket_id: None,
        ensure_on_chain_registration: None,
        download_proof: None,
        blob_data_path: Some(format!("blob/batch/{a}")),
        da_segment_path: Some(format!("{dir}/da_blob.json")),
        cairo_pie_path: Some(format!("{dir}/cairo_pie.zip")),
        snos_output_path: Some(format!("{dir}/snos_output.json")),
        program_output_path: Some(format!("{dir}/program_output.txt")),
        aggregator_query_id: Some(format!("query-{a}")),
    };
    job(shape, JobType::Aggregator, a, status, JobSpecificMetadata::Aggregator(m), end)
}

fn state_transition_job(shape: &Shape, a: u64, tagged: bool) -> JobItem {
    let (_, end) = shape.aggregator_range(a);
    let mut m = StateUpdateMetadata::for_batch(a);
    let dir = format!("artifacts/batch/{a}");
    m.snos_output_path = Some(format!("{dir}/snos_output.json"));
    m.program_output_path = Some(format!("{dir}/program_output.txt"));
    m.da_segment_path = Some(format!("{dir}/da_blob.json"));
    m.blob_data_path = Some(format!("blob/batch/{a}"));
    m.tx_hash = Some(format!("{:#066x}", a * 15_485_863));
    m.tx_nonce = Some(a);
    if tagged {
        m.storage_artifacts_tagged_at = Some(shape.time_of(end) + chrono::Duration::days(1));
    }
    job(
        shape,
        JobType::StateTransition,
        a,
        JobStatus::Completed,
        JobSpecificMetadata::StateUpdate(m),
        end,
    )
}

/// Every seeded job, in the order (type, internal id): the L2 pipeline of the batches, then the
/// rest of `sizes.jobs` as the L3 stages' history: a ProofRegistration job for every completed
/// proof, and DataSubmission jobs for the rest of the count (one for each of those and more,
/// their blocks going round the chain again), so that no L3 trigger finds work on these
/// L2 data and each reads what it would on a chain this long.
fn jobs(sizes: Sizes) -> impl Iterator<Item = JobItem> {
    let sh = Shape::of(sizes);
    let pipeline = sh.s
        + (1..=sh.s).filter(|i| sh.proof(*i).is_some()).count() as u64
        + (1..=sh.a).filter(|a| sh.aggregator(*a).0.is_some()).count() as u64
        + (1..=sh.a).filter(|a| sh.settled(*a).is_some()).count() as u64;
    let n_pr = (1..=sh.s).filter(|i| sh.proof(*i) == Some(JobStatus::Completed)).count() as u64;
    let n_da = sizes.jobs - pipeline - n_pr;
    let snos = (1..=sh.s).map(move |i| snos_job(&sh, i, sh.snos_run(i)));
    let proofs = (1..=sh.s).filter_map(move |i| {
        sh.proof(i).map(|status| proving_job(&sh, JobType::ProofCreation, i, status))
    });
    let aggs =
        (1..=sh.a).filter_map(move |a| sh.aggregator(a).0.map(|s| aggregator_job(&sh, a, s)));
    let settled =
        (1..=sh.a).filter_map(move |a| sh.settled(a).map(|t| state_transition_job(&sh, a, t)));
    let pr = (1..=n_pr)
        .map(move |i| proving_job(&sh, JobType::ProofRegistration, i, JobStatus::Completed));
    // One DataSubmission job in 200 000 failed long ago: an operator still has to look.
    let da = (1..=n_da).map(move |i| {
        da_job(&sh, i, if i % 200_000 == 1000 { JobStatus::Failed } else { JobStatus::Completed })
    });
    snos.chain(proofs).chain(aggs).chain(settled).chain(pr).chain(da)
}

fn snos_batch_rows(shape: Shape) -> impl Iterator<Item = Vec<Value>> {
    (1..=shape.s).map(move |i| {
        let (start, end) = shape.snos_range(i);
        let mut b = SnosBatch::new(
            i,
            Some(shape.aggregator_of(i)),
            start,
            VERSION,
            BouncerWeights::default(),
        );
        b.end_block = end;
        b.num_blocks = end - start + 1;
        b.status = SnosBatchStatus::SnosJobCreated;
        b.created_at = shape.time_of(start);
        b.updated_at = shape.time_of(end) + chrono::Duration::seconds(60);
        let doc = serde_json::to_string(&b).expect("batch to JSON");
        batch_row(
            b.id,
            i,
            b.aggregator_batch_index,
            b.status.as_ref(),
            (start, end),
            (b.created_at, b.updated_at),
            doc,
        )
    })
}

fn aggregator_batch_rows(shape: Shape) -> impl Iterator<Item = Vec<Value>> {
    (1..=shape.a).map(move |a| {
        let (start, end) = shape.aggregator_range(a);
        let mut b = AggregatorBatch::new(a, start, VERSION);
        b.end_block = end;
        b.num_blocks = end - start + 1;
        b.status = shape.aggregator(a).1;
        b.blob_len = 2000 + a % 1000;
        b.created_at = shape.time_of(start);
        b.updated_at = shape.time_of(end) + chrono::Duration::seconds(60);
        let doc = serde_json::to_string(&b).expect("batch to JSON");
        batch_row(b.id, a, None, b.status.as_ref(), (start, end), (b.created_at, b.updated_at), doc)
    })
}

// ---- the backends ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Embedded,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Postgres => "postgres",
        }
    }
}

/// Inserts `rows` into `table (columns)`, `ROWS_PER_INSERT` a statement, `ROWS_PER_TX` a
/// transaction.
async fn insert_rows<D: Dialect>(
    pool: &Pool<D>,
    table: &str,
    columns: &str,
    rows: impl Iterator<Item = Vec<Value>>,
) -> usize {
    let mut rows = rows.peekable();
    let mut n = 0;
    while rows.peek().is_some() {
        let mut tx = pool.begin().await.expect("begin");
        let mut in_tx = 0;
        while in_tx < ROWS_PER_TX && rows.peek().is_some() {
            let mut q = Sql::<D>::new(format!("INSERT INTO {table} ({columns}) VALUES "));
            let mut in_stmt = 0;
            while in_stmt < ROWS_PER_INSERT {
                let Some(row) = rows.next() else { break };
                q.push(if in_stmt == 0 { "(" } else { ", (" }).binds(row).push(")");
                in_stmt += 1;
            }
            q.fetch(&mut *tx).await.unwrap_or_else(|e| panic!("insert into {table}: {e}"));
            in_tx += in_stmt;
        }
        tx.commit().await.expect("commit");
        n += in_tx;
    }
    n
}

/// Runs `sql` (no values) on `pool`.
async fn exec<D: Dialect>(pool: &Pool<D>, sql: impl Into<String>) -> Vec<D::Row> {
    let sql = sql.into();
    let mut conn = pool.acquire().await.expect("connection");
    Sql::<D>::new(sql.clone()).fetch(&mut *conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The first integer column of the first row of `sql`.
async fn scalar<D: Dialect>(pool: &Pool<D>, sql: &str) -> Option<i64> {
    let rows = exec(pool, sql).await;
    rows.first().and_then(|r| D::int(r, "n").ok().flatten())
}

/// The secondary indexes of the orchestrator's tables, from the schema.
fn secondary_indexes<D: Dialect>() -> Vec<String> {
    orchestrator::core::client::sql::schema::database(&D::TYPES)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CREATE INDEX IF NOT EXISTS "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The table of the seed marker.
const MARKER_TABLE: &str = "CREATE TABLE IF NOT EXISTS scale_bench_seed (layout BIGINT NOT NULL, \
     jobs BIGINT NOT NULL, snos_batches BIGINT NOT NULL, blocks_per_batch BIGINT NOT NULL, \
     seeded_at BIGINT NOT NULL)";

/// The version of what the seed writes: a database seeded otherwise is seeded again.
const SEED_LAYOUT: i64 = 4;

/// The seed marker: the sizes the database was seeded with.
async fn marker<D: Dialect>(pool: &Pool<D>) -> Option<(Sizes, i64)> {
    exec(pool, MARKER_TABLE).await;
    let mut conn = pool.acquire().await.expect("connection");
    let rows = Sql::<D>::new(
        "SELECT layout, jobs, snos_batches, blocks_per_batch, seeded_at FROM scale_bench_seed",
    )
    .fetch(&mut *conn)
    .await
    .ok()?; // a marker of an older layout
    let row = rows.first()?;
    if D::int(row, "layout").ok().flatten() != Some(SEED_LAYOUT) {
        return None;
    }
    let get = |c: &str| D::int(row, c).ok().flatten().unwrap_or(-1);
    Some((
        Sizes {
            jobs: get("jobs") as u64,
            snos_batches: get("snos_batches") as u64,
            blocks_per_batch: get("blocks_per_batch") as u64,
        },
        get("seeded_at"),
    ))
}

/// Seeds the database of `pool` (empty, schema applied) with `sizes`; returns the seed time.
async fn seed<D: Dialect>(backend: Backend, db: &SqlDatabase<D>, sizes: Sizes) -> i64 {
    let pool = db.pool();
    let shape = Shape::of(sizes);
    let started = Instant::now();
    let seeded_at = Utc::now().timestamp();
    set_genesis(sizes, seeded_at);
    for index in secondary_indexes::<D>() {
        exec(&pool, format!("DROP INDEX IF EXISTS {index}")).await;
    }
    let n = insert_rows(&pool, "snos_batches", BATCH_COLUMNS, snos_batch_rows(shape)).await;
    let m =
        insert_rows(&pool, "aggregator_batches", BATCH_COLUMNS, aggregator_batch_rows(shape)).await;
    println!("  seeded {n} SNOS and {m} aggregator batches in {:.1?}", started.elapsed());
    let t = Instant::now();
    let n = insert_rows(
        &pool,
        "jobs",
        JOB_COLUMNS,
        jobs(sizes).map(|j| job_row(&j).expect("a jobs row")),
    )
    .await;
    println!("  seeded {n} jobs in {:.1?}", t.elapsed());
    let t = Instant::now();
    let k = sizes.blocks_per_batch;
    let agg_blocks = k * SNOS_PER_AGGREGATOR;
    let last = sizes.last_block();
    let g = genesis();
    let mut from = 0;
    while from <= last {
        let to = (from + LOOKUPS_PER_INSERT - 1).min(last);
        let sql = match backend {
            Backend::Embedded => format!(
                "WITH RECURSIVE r(b) AS (SELECT {from} UNION ALL SELECT b + 1 FROM r WHERE b < {to})
                 INSERT INTO block_batch_lookups (block_number, snos_batch_index, aggregator_batch_index, created_at, updated_at)
                 SELECT b, b / {k} + 1, b / {agg_blocks} + 1, {g} + b, {g} + b + 60 FROM r"
            ),
            Backend::Postgres => format!(
                "INSERT INTO block_batch_lookups (block_number, snos_batch_index, aggregator_batch_index, created_at, updated_at)
                 SELECT b, b / {k} + 1, b / {agg_blocks} + 1, to_timestamp({g} + b), to_timestamp({g} + b + 60)
                 FROM generate_series({from}::bigint, {to}::bigint) AS b"
            ),
        };
        exec(&pool, sql).await;
        from = to + 1;
    }
    println!("  seeded {} block lookups in {:.1?}", last + 1, t.elapsed());
    let t = Instant::now();
    db.init().await.expect("rebuilding the indexes");
    if backend == Backend::Postgres {
        exec(&pool, "ANALYZE").await;
    }
    println!("  built the indexes in {:.1?}", t.elapsed());
    exec(&pool, "DROP TABLE IF EXISTS scale_bench_seed").await;
    exec(&pool, MARKER_TABLE).await;
    exec(
        &pool,
        format!(
            "INSERT INTO scale_bench_seed (layout, jobs, snos_batches, blocks_per_batch, seeded_at) \
             VALUES ({SEED_LAYOUT}, {}, {}, {}, {seeded_at})",
            sizes.jobs, sizes.snos_batches, sizes.blocks_per_batch
        ),
    )
    .await;
    println!("  seeded in {:.1?} in all", started.elapsed());
    seeded_at
}

/// Removes what an earlier timed run created, so that every run times the same work: jobs
/// created after the seed, batches and lookups past it, statuses the triggers moved on.
async fn reset_tail<D: Dialect>(db: &SqlDatabase<D>, sizes: Sizes, seeded_at: i64) {
    let pool = db.pool();
    let shape = Shape::of(sizes);
    exec(&pool, format!("DELETE FROM jobs WHERE {} > {seeded_at}", D::secs("created_at"))).await;
    exec(&pool, format!("DELETE FROM snos_batches WHERE idx > {}", shape.s)).await;
    exec(&pool, format!("DELETE FROM aggregator_batches WHERE idx > {}", shape.a)).await;
    exec(
        &pool,
        format!("DELETE FROM block_batch_lookups WHERE block_number > {}", sizes.last_block()),
    )
    .await;
    exec(&pool, "DELETE FROM trigger_pauses").await;
    // The open tail as seeded, written anew: a run (this bench's, or `orchestrator run` on the
    // data dir) moves its jobs on, and StorageCleanup tags the last settlements.
    let (s, a) = (shape.s, shape.a);
    for (job_type, from, to) in [
        ("SnosRun", s - 299, s),
        ("ProofCreation", s - 299, s),
        ("Aggregator", a - 30, a),
        ("StateTransition", a - 30, a),
    ] {
        exec(
            &pool,
            format!(
                "DELETE FROM jobs WHERE job_type = '{job_type}' AND internal_id >= {from} \
                 AND internal_id <= {to}"
            ),
        )
        .await;
    }
    let tail = (s - 299..=s)
        .map(|i| snos_job(&shape, i, shape.snos_run(i)))
        .chain((s - 299..=s).filter_map(|i| {
            shape.proof(i).map(|st| proving_job(&shape, JobType::ProofCreation, i, st))
        }))
        .chain(
            (a - 30..=a)
                .filter_map(|a| shape.aggregator(a).0.map(|st| aggregator_job(&shape, a, st))),
        )
        .chain(
            (a - 30..=a)
                .filter_map(|a| shape.settled(a).map(|t| state_transition_job(&shape, a, t))),
        );
    insert_rows(&pool, "jobs", JOB_COLUMNS, tail.map(|j| job_row(&j).expect("a jobs row"))).await;
    // Locks a killed run left (the batching triggers would skip their work until the TTL).
    SqlLock::<D>::open(pool.clone()).await.expect("the locks table");
    exec(&pool, "DELETE FROM locks").await;
    for a in shape.a - 27..=shape.a {
        let want = shape.aggregator(a).1;
        let got = db.get_aggregator_batches(orchestrator::types::batch::AggregatorBatchQuery {
            indexes: vec![a],
            ..Default::default()
        });
        if got.await.expect("batch").first().is_some_and(|b| b.status != want) {
            db.update_aggregator_batch_status_by_index(a, want).await.expect("restore status");
        }
    }
}

/// The size of the database in bytes.
async fn data_size<D: Dialect>(backend: Backend, pool: &Pool<D>, dir: Option<&Path>) -> u64 {
    match backend {
        Backend::Embedded => {
            exec(pool, "PRAGMA wal_checkpoint(TRUNCATE)").await;
            let dir = dir.expect("data dir");
            std::fs::read_dir(dir)
                .expect("data dir")
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(sqlite::DB_FILE_NAME))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        }
        Backend::Postgres => scalar(pool, "SELECT pg_database_size(current_database()) AS n")
            .await
            .unwrap_or(0) as u64,
    }
}

// ---- query plans ----

/// `column IN (values)` as the code sends it: one value as `=`, several as `IN` (SQLite) or
/// `= ANY(ARRAY[…])` (PostgreSQL).
fn in_list(backend: Backend, column: &str, values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    match (values.len(), backend) {
        (1, _) => format!("{column} = {}", quoted[0]),
        (_, Backend::Embedded) => format!("{column} IN ({})", quoted.join(", ")),
        (_, Backend::Postgres) => format!("{column} = ANY(ARRAY[{}])", quoted.join(", ")),
    }
}

/// The statements of the triggers (and the orphan scan and block routes), as the SQL layer
/// builds them for this data, with the values of the timed run in place of the parameters.
fn trigger_queries(backend: Backend, sizes: Sizes) -> Vec<(&'static str, String)> {
    let sh = Shape::of(sizes);
    let v = ORCHESTRATOR_VERSION;
    let jobs = "SELECT id, doc FROM jobs WHERE true";
    let open: Vec<&str> = [
        JobStatus::Created,
        JobStatus::LockedForProcessing,
        JobStatus::PendingVerification,
        JobStatus::Failed,
        JobStatus::PendingRetry,
        JobStatus::VerificationFailed,
        JobStatus::VerificationTimeout,
    ]
    .iter()
    .map(|s| s.as_ref())
    .collect();
    let watermark = sh.s - 280;
    let block = sizes.last_block() / 2;
    let l2 = ["SnosRun", "ProofCreation", "Aggregator", "StateTransition"];
    let probe = match backend {
        Backend::Embedded => "",
        Backend::Postgres => " OFFSET 0",
    };
    vec![
        (
            "buffer: latest job of a type (Snos, Aggregator)",
            format!("{jobs} AND job_type = 'SnosRun' ORDER BY internal_id DESC, job_type DESC LIMIT 1"),
        ),
        (
            "buffer: oldest job of a type not Completed (Snos, Aggregator)",
            format!(
                "{jobs} AND job_type = 'SnosRun' AND {} ORDER BY +internal_id ASC, job_type ASC LIMIT 1",
                in_list(backend, "status", &open)
            ),
        ),
        (
            "failed-job halt (every stage trigger)",
            format!(
                "{jobs} AND job_type = 'SnosRun' AND {} AND orchestrator_version = '{v}' \
                 ORDER BY +internal_id ASC, job_type ASC LIMIT 1",
                in_list(backend, "status", &["Failed", "VerificationTimeout"])
            ),
        ),
        (
            "watermark: latest Completed StateTransition",
            format!(
                "{jobs} AND job_type = 'StateTransition' AND status = 'Completed' \
                 ORDER BY internal_id DESC, job_type DESC LIMIT 1"
            ),
        ),
        (
            "watermark: first SNOS batch of an aggregator batch",
            format!(
                "SELECT id, doc FROM snos_batches WHERE true AND aggregator_batch_index = {} ORDER BY idx ASC",
                sh.a - 27
            ),
        ),
        (
            "Snos: closed SNOS batches without a SnosRun job",
            format!(
                "SELECT id, doc FROM snos_batches WHERE true AND status = 'Closed' AND idx >= {watermark} \
                 AND orchestrator_version = '{v}' AND NOT EXISTS (SELECT 1 FROM jobs j \
                 WHERE j.internal_id = snos_batches.idx AND j.job_type = 'SnosRun'{probe}) ORDER BY idx ASC LIMIT 20"
            ),
        ),
        (
            "Proving: SnosRun jobs without a ProofCreation job",
            format!(
                "{jobs} AND job_type = 'SnosRun' AND status = 'Completed' AND internal_id >= {watermark} \
                 AND NOT EXISTS (SELECT 1 FROM jobs b WHERE b.internal_id = jobs.internal_id \
                 AND b.job_type = 'ProofCreation' AND b.internal_id >= {watermark}{probe}) ORDER BY internal_id ASC"
            ),
        ),
        (
            "DataSubmission (L3): ProofRegistration jobs without a DataSubmission job",
            format!(
                "{jobs} AND job_type = 'ProofRegistration' AND status = 'Completed' AND internal_id >= {watermark} \
                 AND NOT EXISTS (SELECT 1 FROM jobs b WHERE b.internal_id = jobs.internal_id \
                 AND b.job_type = 'DataSubmission' AND b.internal_id >= {watermark}{probe}) ORDER BY internal_id ASC"
            ),
        ),
        (
            "Aggregator: closed aggregator batches",
            "SELECT id, doc FROM aggregator_batches WHERE true AND status = 'Closed' ORDER BY idx ASC LIMIT 50"
                .to_owned(),
        ),
        (
            "Aggregator: proofs of the batch",
            format!(
                "{jobs} AND job_type = 'ProofCreation' AND status = 'Completed' AND internal_id >= {} \
                 AND internal_id <= {} ORDER BY internal_id ASC, job_type ASC",
                sh.s - 249,
                sh.s - 240
            ),
        ),
        (
            "UpdateState: completed Aggregator jobs after the last settled",
            format!(
                "{jobs} AND job_type = 'Aggregator' AND status = 'Completed' AND internal_id >= {} \
                 ORDER BY internal_id ASC, job_type ASC",
                sh.a - 28
            ),
        ),
        (
            "batching: latest aggregator batch",
            "SELECT id, doc FROM aggregator_batches WHERE true ORDER BY idx DESC LIMIT 1".to_owned(),
        ),
        (
            "batching: oldest aggregator batch of this version",
            format!(
                "SELECT id, doc FROM aggregator_batches WHERE true AND orchestrator_version = '{v}' \
                 ORDER BY idx ASC LIMIT 1"
            ),
        ),
        (
            "StorageCleanup: settled jobs not tagged",
            format!(
                "{jobs} AND job_type = 'StateTransition' AND status = 'Completed' AND internal_id >= 0 \
                 AND storage_artifacts_tagged_at IS NULL ORDER BY internal_id ASC, job_type ASC LIMIT 200"
            ),
        ),
        (
            "orphan scan: waiting jobs of a status",
            format!(
                "{jobs} AND {} AND status = 'Created' ORDER BY internal_id ASC, job_type ASC LIMIT 200",
                in_list(backend, "job_type", &l2)
            ),
        ),
        (
            "/jobs?status=Completed",
            format!("{jobs} AND status = 'Completed' ORDER BY internal_id ASC, job_type ASC LIMIT 50"),
        ),
        (
            "/blocks/settlement-status: aggregator batches containing a block",
            format!(
                "SELECT idx FROM aggregator_batches WHERE start_block <= {block} AND end_block >= {block}"
            ),
        ),
        (
            "/blocks/settlement-status: jobs of a block",
            format!(
                "{jobs} AND ((block_number = {block}) OR (to_settle = {block}) OR (start_block <= {block} \
                 AND end_block >= {block}) OR (job_type = 'Aggregator' AND internal_id = {})) \
                 ORDER BY job_type || '' ASC, internal_id ASC",
                block / (SNOS_PER_AGGREGATOR * sizes.blocks_per_batch) + 1
            ),
        ),
    ]
}

/// Prints the plan of every trigger query (`EXPLAIN QUERY PLAN` / `EXPLAIN (COSTS OFF)`).
async fn print_plans<D: Dialect>(backend: Backend, pool: &Pool<D>, sizes: Sizes) {
    println!("== scale: query plans ({})", backend.name());
    for (name, sql) in trigger_queries(backend, sizes) {
        println!("-- {name}");
        println!("{sql}");
        match backend {
            Backend::Embedded => {
                let rows = exec(pool, format!("EXPLAIN QUERY PLAN {sql}")).await;
                let mut depth: HashMap<i64, usize> = HashMap::new();
                for r in &rows {
                    let id = D::int(r, "id").ok().flatten().unwrap_or(0);
                    let parent = D::int(r, "parent").ok().flatten().unwrap_or(0);
                    let d = depth.get(&parent).map_or(0, |d| d + 1);
                    depth.insert(id, d);
                    let detail = D::text(r, "detail").ok().flatten().unwrap_or_default();
                    println!("  {}{detail}", "  ".repeat(d));
                }
            }
            Backend::Postgres => {
                for r in exec(pool, format!("EXPLAIN (COSTS OFF) {sql}")).await {
                    println!("  {}", D::text(&r, "QUERY PLAN").ok().flatten().unwrap_or_default());
                }
            }
        }
    }
}

// ---- the fakes ----

/// A node whose chain goes to `tip`, each block writing one storage slot, answering at once.
#[derive(Debug)]
struct TipNode {
    tip: AtomicU64,
}

impl TipNode {
    fn check(&self, block: u64) -> MadaraResult<()> {
        if block > self.tip.load(Ordering::SeqCst) {
            return Err(orchestrator::core::client::madara::MadaraError::BlockNotFound { block });
        }
        Ok(())
    }
}

#[async_trait]
impl MadaraClient for TipNode {
    async fn block_number(&self) -> MadaraResult<u64> {
        Ok(self.tip.load(Ordering::SeqCst))
    }
    async fn chain_id(&self) -> MadaraResult<Felt> {
        Ok(Felt::from_hex_unchecked("0x534e5f5345504f4c4941"))
    }
    async fn block(&self, block: u64) -> MadaraResult<BlockInfo> {
        self.check(block)?;
        Ok(BlockInfo {
            number: block,
            hash: Felt::from(0x1000 + block),
            parent_hash: Felt::from((0x1000 + block).saturating_sub(1)),
            starknet_version: VERSION.to_owned(),
            timestamp: genesis() as u64 + block,
        })
    }
    async fn state_update(&self, block: u64) -> MadaraResult<StateUpdate> {
        self.check(block)?;
        Ok(StateUpdate {
            block_hash: Felt::from(0x1000 + block),
            old_root: Felt::ZERO,
            new_root: Felt::ZERO,
            state_diff: StateDiff {
                storage_diffs: vec![ContractStorageDiffItem {
                    address: Felt::from(0x1234567u64),
                    storage_entries: vec![StorageEntry {
                        key: Felt::from(0x100 + block),
                        value: Felt::from(block + 1),
                    }],
                }],
                deprecated_declared_classes: Vec::new(),
                declared_classes: Vec::new(),
                deployed_contracts: Vec::new(),
                replaced_classes: Vec::new(),
                nonces: Vec::new(),
            },
        })
    }
    async fn storage_at(&self, block: u64, queries: &[(Felt, Felt)]) -> MadaraResult<Vec<Felt>> {
        self.check(block)?;
        Ok(vec![Felt::ZERO; queries.len()])
    }
    async fn class_hash_at(
        &self,
        block: u64,
        contracts: &[Felt],
    ) -> MadaraResult<Vec<Option<Felt>>> {
        self.check(block)?;
        Ok(vec![Some(Felt::from(0xc1a55u64)); contracts.len()])
    }
    async fn nonce_at(&self, block: u64, contracts: &[Felt]) -> MadaraResult<Vec<Felt>> {
        self.check(block)?;
        Ok(vec![Felt::ZERO; contracts.len()])
    }
    async fn bouncer_weights(&self, block: u64) -> MadaraResult<BouncerWeights> {
        self.check(block)?;
        Ok(BouncerWeights::default())
    }
    async fn contract_addresses(&self) -> MadaraResult<ContractAddresses> {
        Ok(ContractAddresses::default())
    }
}

/// A settlement layer that accepts everything at once.
#[derive(Debug, Default)]
struct InstantSettlement;

#[async_trait]
impl SettlementClient for InstantSettlement {
    async fn update_state_calldata(
        &self,
        _snos_output: Vec<Word>,
        _program_output: Vec<Word>,
        _onchain_data_hash: Word,
        _onchain_data_size: Word,
    ) -> SettlementResult<String> {
        Ok("0x1".to_owned())
    }
    async fn update_state_with_blobs(
        &self,
        _update: BlobStateUpdate,
    ) -> Result<StateUpdateOutcome, StateUpdateTxError> {
        Ok(StateUpdateOutcome {
            tx_hash: Some("0x1".to_owned()),
            block_number: Some(1),
            attempts: vec![],
        })
    }
    async fn verify_tx_inclusion(
        &self,
        _tx_hash: &str,
    ) -> SettlementResult<SettlementVerificationStatus> {
        Ok(SettlementVerificationStatus::Verified)
    }
    async fn wait_for_tx_finality(&self, _tx_hash: &str) -> SettlementResult<Option<u64>> {
        Ok(Some(1))
    }
    async fn get_last_settled_block(&self) -> SettlementResult<Option<u64>> {
        Ok(None)
    }
    async fn get_nonce(&self) -> SettlementResult<u64> {
        Ok(0)
    }
}

// ---- timing ----

/// The L2 configuration of the bench over `clients`: every stage and batching trigger of the
/// layer, the mock prover, the node and settlement fakes.
fn config(clients: Clients, node: Arc<TipNode>) -> Arc<Config> {
    const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const ADDR: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let args = [
        "run",
        "--layer",
        "l2",
        "--prover",
        "mock",
        "--madara-rpc-url",
        "http://127.0.0.1:9",
        "--rpc-for-snos",
        "http://127.0.0.1:9",
        "--settle-on-ethereum",
        "--ethereum-rpc-url",
        "http://127.0.0.1:9",
        "--ethereum-private-key",
        KEY,
        "--l1-core-contract-address",
        ADDR,
        "--starknet-operator-address",
        ADDR,
        "--da-on-ethereum",
        "--ethereum-da-rpc-url",
        "http://127.0.0.1:9",
        "--snos-runner",
        "stand-in",
        "--max-batch-time-seconds",
        "3600",
    ];
    let params =
        RunCmd::try_parse_from(args).expect("bench command line").params().expect("params");
    let external = ExternalClients::from_parts(&params, node, Arc::new(InstantSettlement))
        .expect("external clients");
    let (handlers, triggers) = build_with(&params, &clients, &external).expect("stages");
    // Open jobs of the seed are recent: the orphan scan only reads (its requeue work is not
    // what this bench measures).
    let year = Duration::from_secs(365 * 24 * 3600);
    let engine = EngineParams {
        stale_message_after: year,
        job_timeouts: stage::job_types().into_iter().map(|t| (t, year)).collect(),
        ..EngineParams::default()
    };
    Arc::new(Config::new(Layer::L2, clients, handlers, triggers, engine))
}

/// One timed figure.
#[derive(Debug)]
struct Figure {
    name: String,
    ms: f64,
    note: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times one run of `trigger` as the event worker runs it: the pause read, the failed-job
/// check, then the run (done here even when failed jobs halt it, to time its queries).
async fn time_trigger(config: &Arc<Config>, trigger: &dyn JobTrigger) -> Figure {
    let kind = trigger.trigger_type();
    let started = Instant::now();
    let paused = config.database().get_trigger_pause(kind).await.expect("pause read");
    let halted = trigger::is_halted(config, trigger).await.expect("halt check");
    let checks = started.elapsed();
    let result = trigger::run_timed(trigger, config.clone()).await;
    let total = started.elapsed();
    let mut note = format!("checks {:.1} ms", ms(checks));
    if paused.is_some() {
        note.push_str(", paused");
    }
    if halted {
        note.push_str(", halted by failed jobs (run anyway)");
    }
    if let Err(e) = result {
        note.push_str(&format!(", ERROR: {e}"));
    }
    Figure { name: format!("trigger {kind}"), ms: ms(total), note }
}

/// Times one request through the router; the answer must be 200.
async fn time_route(router: &Router, uri: &str) -> Figure {
    let req = Request::builder().uri(uri).body(Body::empty()).expect("request");
    let started = Instant::now();
    let res = router.clone().oneshot(req).await.expect("router");
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 64 << 20).await.expect("body");
    let elapsed = started.elapsed();
    assert!(status.is_success(), "GET {uri}: {status} {}", String::from_utf8_lossy(&body));
    Figure { name: format!("GET {uri}"), ms: ms(elapsed), note: format!("{} bytes", body.len()) }
}

/// Counts of the seeded tail, checked before timing: the data is what the docs say it is.
async fn describe<D: Dialect>(pool: &Pool<D>) -> String {
    let rows = exec(
        pool,
        "SELECT status, COUNT(*) AS n FROM jobs WHERE status <> 'Completed' GROUP BY status ORDER BY status",
    )
    .await;
    rows.iter()
        .map(|r| {
            format!(
                "{} {}",
                D::text(r, "status").ok().flatten().unwrap_or_default(),
                D::int(r, "n").ok().flatten().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs every figure of one backend; returns them.
async fn time_all(config: &Arc<Config>, node: &TipNode, sizes: Sizes) -> Vec<Figure> {
    let mut figures = Vec::new();
    node.tip.store(sizes.last_block() + NEW_BLOCKS, Ordering::SeqCst);
    // Batching first (the node has NEW_BLOCKS new blocks), then the stages in pipeline order,
    // then the L3 stages' triggers over the same data, then the rest.
    let mut kinds: Vec<WorkerTriggerType> =
        vec![WorkerTriggerType::AggregatorBatching, WorkerTriggerType::SnosBatching];
    kinds.extend(stage::job_types().into_iter().map(WorkerTriggerType::Stage));
    kinds.extend(WorkerTriggerType::all());
    kinds.dedup();
    let mut seen = Vec::new();
    let l3: HashMap<WorkerTriggerType, Arc<dyn JobTrigger>> = [
        (
            WorkerTriggerType::Stage(JobType::ProofRegistration),
            Arc::new(ProofRegistrationTrigger) as Arc<dyn JobTrigger>,
        ),
        (WorkerTriggerType::Stage(JobType::DataSubmission), Arc::new(DataSubmissionTrigger)),
    ]
    .into_iter()
    .collect();
    for kind in kinds {
        if seen.contains(&kind) {
            continue;
        }
        seen.push(kind);
        let trigger = config.triggers.get(kind).cloned().or_else(|| l3.get(&kind).cloned());
        match trigger {
            Some(t) => {
                let mut f = time_trigger(config, t.as_ref()).await;
                if config.triggers.get(kind).is_none() {
                    f.note.push_str(", L3 trigger on the L2 data");
                }
                figures.push(f);
            }
            None => println!("  trigger {kind}: not built in this version, nothing to time"),
        }
    }
    let started = Instant::now();
    let report = orphan::scan(config).await.expect("orphan scan");
    figures.push(Figure {
        name: "orphan scan".to_owned(),
        ms: ms(started.elapsed()),
        note: format!("healed {}, requeued {}", report.healed, report.requeued),
    });

    let router = orchestrator::server::router(config.clone());
    let shape = Shape::of(sizes);
    let mid_block = sizes.last_block() / 2;
    let settled_block = shape.aggregator_range(shape.a - 40).0 + 5;
    let tip_block = sizes.last_block() - 3;
    for uri in [
        "/jobs?status=Created".to_owned(),
        "/jobs?status=PendingVerification".to_owned(),
        "/jobs?status=Failed".to_owned(),
        "/jobs?status=Completed".to_owned(),
        "/jobs?status=Completed&job_type=StateTransition".to_owned(),
        "/batches/snos".to_owned(),
        "/batches/snos?status=Closed".to_owned(),
        "/batches/aggregator".to_owned(),
        "/batches/aggregator?status=Completed&sort=desc".to_owned(),
        format!("/blocks/settlement-status/{mid_block}"),
        format!("/blocks/settlement-status/{settled_block}"),
        format!("/blocks/settlement-status/{tip_block}"),
        format!("/jobs/block/{mid_block}/status"),
        "/dashboard/data".to_owned(),
    ] {
        figures.push(time_route(&router, &uri).await);
    }
    figures
}

/// Prints the figures of one backend.
fn print_figures(figures: &[Figure]) {
    for f in figures {
        let flag = if f.ms > GOAL_MS { "  (over 50 ms)" } else { "" };
        println!("  {:<56} {:>8.1} ms  {}{flag}", f.name, f.ms, f.note);
    }
}

/// The machine-readable line of one backend: its worst figure (spaces in the name as `_`).
fn scale_line(backend: Backend, figures: &[Figure], data: &str) -> String {
    let worst = figures.iter().max_by(|a, b| a.ms.total_cmp(&b.ms)).expect("figures");
    format!(
        "scale: backend={} worst={} {:.1} ms data={data}",
        backend.name(),
        worst.name.replace(' ', "_"),
        worst.ms
    )
}

/// Seeds (or reuses) and times the embedded tier in `dir`.
async fn embedded_tier(dir: &Path, sizes: Sizes) -> (Vec<Figure>, String) {
    println!("== scale: embedded tier (SQLite) in {}", dir.display());
    let reuse = match sqlite::open_pool(dir).await {
        Ok(pool) => {
            let m = marker(&pool).await;
            pool.close().await;
            m.filter(|(s, _)| *s == sizes)
        }
        Err(_) => None,
    };
    if reuse.is_none() && dir.exists() {
        std::fs::remove_dir_all(dir).expect("removing the old data dir");
    }
    let options = embedded::EmbeddedOptions::default();
    let clients = embedded::open(dir, &options).await.expect("embedded tier");
    let pool = sqlite::open_pool(dir).await.expect("pool");
    let db = SqlDatabase::<sqlx::Sqlite>::open(pool.clone()).await.expect("schema");
    let seeded_at = match reuse {
        Some((_, at)) => {
            println!("  reusing the seeded data dir ({sizes:?})");
            set_genesis(sizes, at);
            at
        }
        None => {
            println!("  seeding {sizes:?}");
            seed(Backend::Embedded, &db, sizes).await
        }
    };
    reset_tail(&db, sizes, seeded_at).await;
    // Messages of jobs an earlier run created (and removed above).
    exec(&pool, "DELETE FROM queue_messages").await;
    let size = data_size(Backend::Embedded, &pool, Some(dir)).await;
    print_size(size, sizes);
    println!("  open jobs: {}", describe(&pool).await);
    if std::env::var_os("SCALE_EXPLAIN").is_some() {
        print_plans(Backend::Embedded, &pool, sizes).await;
    }
    let node = Arc::new(TipNode { tip: AtomicU64::new(0) });
    let config = config(clients, node.clone());
    let figures = time_all(&config, &node, sizes).await;
    (figures, dir.display().to_string())
}

/// Seeds (or reuses) and times database `orchestrator_scale` beside the one of `url`.
async fn postgres_tier(url: &str, sizes: Sizes, scratch: &Path) -> (Vec<Figure>, String) {
    const NAME: &str = "orchestrator_scale";
    let base = postgres::open_pool(&Secret::new(url.to_owned())).await.expect("PostgreSQL");
    let pool =
        <sqlx::Postgres as Dialect>::open_sibling(&base, NAME).await.expect("bench database");
    let shown = {
        let mut u = url::Url::parse(url).expect("URL");
        let _ = u.set_password(None);
        u.set_path(NAME);
        u.to_string()
    };
    println!("== scale: PostgreSQL database {shown}");
    let reuse = marker(&pool).await.filter(|(s, _)| *s == sizes);
    if reuse.is_none() {
        exec(
            &pool,
            "DROP TABLE IF EXISTS jobs, snos_batches, aggregator_batches, block_batch_lookups, trigger_pauses, locks, scale_bench_seed",
        )
        .await;
    }
    let db = SqlDatabase::<sqlx::Postgres>::open(pool.clone()).await.expect("schema");
    let seeded_at = match reuse {
        Some((_, at)) => {
            println!("  reusing the seeded database ({sizes:?})");
            set_genesis(sizes, at);
            at
        }
        None => {
            println!("  seeding {sizes:?}");
            seed(Backend::Postgres, &db, sizes).await
        }
    };
    reset_tail(&db, sizes, seeded_at).await;
    let size = data_size(Backend::Postgres, &pool, None).await;
    print_size(size, sizes);
    println!("  open jobs: {}", describe(&pool).await);
    if std::env::var_os("SCALE_EXPLAIN").is_some() {
        print_plans(Backend::Postgres, &pool, sizes).await;
    }
    // Queue, storage and alerts of the embedded tier in a scratch dir; database and locks on
    // PostgreSQL, as `--postgres` runs.
    let _ = std::fs::remove_dir_all(scratch);
    let mut clients =
        embedded::open(scratch, &embedded::EmbeddedOptions::default()).await.expect("scratch tier");
    clients.database = Arc::new(db);
    clients.lock = Arc::new(SqlLock::<sqlx::Postgres>::open(pool.clone()).await.expect("locks"));
    let node = Arc::new(TipNode { tip: AtomicU64::new(0) });
    let config = config(clients, node.clone());
    let figures = time_all(&config, &node, sizes).await;
    (figures, shown)
}

fn print_size(bytes: u64, sizes: Sizes) {
    let rows =
        sizes.jobs + sizes.snos_batches + sizes.aggregator_batches() + sizes.last_block() + 1;
    println!(
        "  data size: {:.1} MiB ({} jobs, {} batches, {} block lookups: {:.0} bytes per job, {:.0} bytes per row)",
        bytes as f64 / (1 << 20) as f64,
        sizes.jobs,
        sizes.snos_batches + sizes.aggregator_batches(),
        sizes.last_block() + 1,
        bytes as f64 / sizes.jobs as f64,
        bytes as f64 / rows as f64,
    );
}

fn cache_dir() -> PathBuf {
    std::env::var_os("ORCH_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/orchestrator")
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    if std::env::var_os("SCALE_TRACE_SQL").is_some() {
        // Every statement with its time (sqlx's own events), to find what is slow.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("sqlx::query=debug"))
            .with_writer(std::io::stderr)
            .init();
    }
    let sizes = Sizes::from_env();
    let backends = std::env::var("SCALE_BACKENDS").unwrap_or_else(|_| "embedded,postgres".into());
    let bench_dir = cache_dir().join("bench");
    let dir = std::env::var_os("SCALE_EMBEDDED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| bench_dir.join("scale-embedded"));
    // Two workers, as on the 2-core machine of the goal.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut lines = Vec::new();
        for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            match backend {
                "embedded" => {
                    let (figures, data) = embedded_tier(&dir, sizes).await;
                    lines.push((Backend::Embedded, figures, data));
                }
                "postgres" => match std::env::var("SCALE_POSTGRES_URL") {
                    Ok(url) if !url.is_empty() => {
                        let scratch = bench_dir.join("scale-postgres-scratch");
                        let (figures, data) = postgres_tier(&url, sizes, &scratch).await;
                        lines.push((Backend::Postgres, figures, data));
                    }
                    _ => println!("== scale: PostgreSQL skipped: SCALE_POSTGRES_URL is not set"),
                },
                other => panic!("SCALE_BACKENDS: unknown backend {other:?} (embedded, postgres)"),
            }
        }
        println!("== scale: figures (goal: every figure ≤ {GOAL_MS} ms)");
        for (backend, figures, _) in &lines {
            println!(" {}:", backend.name());
            print_figures(figures);
        }
        for (backend, figures, data) in &lines {
            println!("{}", scale_line(*backend, figures, data));
        }
    });
}
