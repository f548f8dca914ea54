//! The tables of the SQL layer, written once for every dialect with its column types.

/// The column types of a dialect.
#[derive(Debug, Clone, Copy)]
pub struct ColumnTypes {
    /// Ids.
    pub id: &'static str,
    /// 64-bit integers.
    pub int: &'static str,
    /// Names that queries compare and sort (job types, statuses), ordered bytewise.
    pub name: &'static str,
    /// Times.
    pub time: &'static str,
    /// JSON documents.
    pub json: &'static str,
}

/// Jobs, batches, block lookups and trigger pauses: tables and indexes, idempotent.
///
/// This is also the migration: every process applies it at start (`SqlDatabase::init`), so a
/// database created by an earlier version gains the tables added since (`trigger_pauses`) at
/// the next start. A change to an existing table needs its own idempotent statement here.
pub fn database(types: &ColumnTypes) -> String {
    let ColumnTypes { id, int, name, time, json } = types;
    let batches = |table: &str| {
        format!(
            r#"
CREATE TABLE IF NOT EXISTS {table} (
    id {id} PRIMARY KEY NOT NULL,
    idx {int} NOT NULL UNIQUE,
    aggregator_batch_index {int},
    status {name} NOT NULL,
    orchestrator_version TEXT NOT NULL,
    start_block {int} NOT NULL UNIQUE,
    end_block {int} NOT NULL UNIQUE,
    created_at {time} NOT NULL,
    updated_at {time} NOT NULL,
    doc {json} NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_status_idx ON {table} (status, idx);"#
        )
    };
    format!(
        r#"
CREATE TABLE IF NOT EXISTS jobs (
    id {id} PRIMARY KEY NOT NULL,
    internal_id {int} NOT NULL,
    job_type {name} NOT NULL,
    status {name} NOT NULL,
    external_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at {time} NOT NULL,
    updated_at {time} NOT NULL,
    orchestrator_version TEXT NOT NULL,
    block_number {int},
    start_block {int},
    end_block {int},
    to_settle {int},
    storage_artifacts_tagged_at {time},
    doc {json} NOT NULL,
    CONSTRAINT jobs_job_type_internal_id_key UNIQUE (job_type, internal_id)
);
CREATE INDEX IF NOT EXISTS jobs_type_status_internal_id ON jobs (job_type, status, internal_id);
CREATE INDEX IF NOT EXISTS jobs_status_internal_id ON jobs (status, internal_id);
CREATE INDEX IF NOT EXISTS jobs_storage_cleanup ON jobs (job_type, status, internal_id) WHERE storage_artifacts_tagged_at IS NULL;
CREATE INDEX IF NOT EXISTS jobs_block_number ON jobs (block_number) WHERE block_number IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_to_settle ON jobs (to_settle) WHERE to_settle IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_block_range ON jobs (start_block, end_block) WHERE start_block IS NOT NULL;
{snos}
CREATE INDEX IF NOT EXISTS snos_batches_aggregator ON snos_batches (aggregator_batch_index, idx);
{aggregator}

CREATE TABLE IF NOT EXISTS block_batch_lookups (
    block_number {int} PRIMARY KEY NOT NULL,
    snos_batch_index {int},
    aggregator_batch_index {int},
    created_at {time} NOT NULL,
    updated_at {time} NOT NULL
);
CREATE INDEX IF NOT EXISTS block_batch_lookups_snos ON block_batch_lookups (snos_batch_index);
CREATE INDEX IF NOT EXISTS block_batch_lookups_aggregator ON block_batch_lookups (aggregator_batch_index);

CREATE TABLE IF NOT EXISTS trigger_pauses (
    trigger_name {name} PRIMARY KEY NOT NULL,
    paused_by TEXT NOT NULL,
    paused_at_ms {int} NOT NULL,
    reason TEXT
);
"#,
        snos = batches("snos_batches"),
        aggregator = batches("aggregator_batches"),
    )
}

/// The `locks` table, idempotent.
pub fn locks(types: &ColumnTypes) -> String {
    let ColumnTypes { json, time, .. } = types;
    format!(
        "CREATE TABLE IF NOT EXISTS locks (
    key TEXT PRIMARY KEY NOT NULL,
    value {json} NOT NULL,
    owner TEXT,
    created_at {time} NOT NULL,
    expires_at {time} NOT NULL
)"
    )
}
