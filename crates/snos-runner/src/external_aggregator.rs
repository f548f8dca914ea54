//! Runs the aggregator program through an external command (`--aggregator-runner external
//! --aggregator-command <cmd>`), the aggregation seam of `--prover sharp`: SHARP proves an
//! applicative job (the aggregator PIE) but the orchestrator must run the aggregator itself.
//! The model is the SNOS seam ([`crate::external`]).
//!
//! # Contract
//! The command line is run with `sh -c`, in a fresh empty directory that is also its output
//! directory, with stdin closed and these environment variables:
//!
//! | Variable | Value |
//! |---|---|
//! | `AGGREGATOR_BATCH` | the aggregator batch index |
//! | `AGGREGATOR_N_CHILDREN` | how many children (SNOS batches) it aggregates |
//! | `AGGREGATOR_INPUT_DIR` | the directory holding the children (below) |
//! | `AGGREGATOR_CHILDREN` | `$AGGREGATOR_INPUT_DIR/children.json` |
//! | `AGGREGATOR_LAYOUT` | the Cairo layout (`all_cairo`, ...) |
//! | `AGGREGATOR_MAX_NUM_BLOBS` | the DA segment must fit in this many blobs |
//! | `AGGREGATOR_DA_PUBLIC_KEYS` | DA public keys, comma-separated `0x` hex (may be empty) |
//! | `AGGREGATOR_OUTPUT_DIR` | the output directory (also the working directory) |
//! | `AGGREGATOR_OUTPUT` | `$AGGREGATOR_OUTPUT_DIR/cairo_pie.zip`, where the aggregator PIE goes |
//!
//! `children.json` is a JSON array, in block order, of
//! `{"index", "snos_batch", "start_block", "end_block", "task_id", "cairo_pie", "os_output"}`:
//! `index` is 1-based, `task_id` the prover's key of the child's proof (the SHARP job key),
//! `cairo_pie` and `os_output` paths relative to `$AGGREGATOR_INPUT_DIR`
//! (`child_<index>/cairo_pie.zip`, `child_<index>/os_output.json`, a JSON array of `0x` hex
//! felts: the child PIE's output segment).
//!
//! On success (exit status 0) it must have written:
//! - `cairo_pie.zip` (`$AGGREGATOR_OUTPUT`): the aggregator PIE; its output segment is
//!   `[n_children, (len + 2, program_hash, child output)…, aggregated OS output]`, the layout
//!   the Aggregator job's filter reads (`filter_aggregator_output`);
//! - `da_segment.json`: the DA segment, a JSON array of felts (`"0x…"`, decimal strings or
//!   integers), from which the StateTransition job derives the blobs.
//!
//! Exit status 75 (`EX_TEMPFAIL`) means "transient, retry later"; any other failure status is
//! deterministic. A command still running after the timeout is killed with its whole process
//! group and the run is retryable. Errors carry the tail of the command's stderr; stdout is
//! discarded.
//!
//! The `stand-in-aggregator` binary of this crate implements the contract with the stand-in
//! ([`crate::aggregator::aggregate_pies`]); it proves nothing.

use std::{ffi::OsString, path::Path, time::Duration};

use tokio::process::Command;

use crate::{command::run_command, external::parse_os_output_json, Felt, SnosRunnerError};

/// The aggregator PIE the command must write.
pub const AGGREGATOR_PIE_FILE: &str = "cairo_pie.zip";
/// The DA segment the command must write.
pub const DA_SEGMENT_FILE: &str = "da_segment.json";
/// The children description in the input directory.
pub const CHILDREN_FILE: &str = "children.json";

/// Settings of the external aggregator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAggregatorConfig {
    /// The command line, run with `sh -c`.
    pub command: String,
    /// Longest run before the command is killed.
    pub timeout: Duration,
}

/// One child of an aggregation: a proven SNOS batch.
#[derive(Clone, PartialEq, Eq)]
pub struct AggregationChildInput {
    /// The SNOS batch index.
    pub snos_batch: u64,
    /// Its first block.
    pub start_block: u64,
    /// Its last block (inclusive).
    pub end_block: u64,
    /// The prover's key of its proof (SHARP job key, mock fact).
    pub task_id: String,
    /// Its PIE, zipped.
    pub cairo_pie_zip: Vec<u8>,
    /// Its OS output (the PIE's output segment).
    pub os_output: Vec<Felt>,
}

impl std::fmt::Debug for AggregationChildInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregationChildInput")
            .field("snos_batch", &self.snos_batch)
            .field("blocks", &(self.start_block..=self.end_block))
            .field("task_id", &self.task_id)
            .field("cairo_pie_zip_bytes", &self.cairo_pie_zip.len())
            .field("os_output_len", &self.os_output.len())
            .finish()
    }
}

/// What an aggregation runs over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationInput {
    /// The aggregator batch index.
    pub batch_index: u64,
    /// Its children, in block order.
    pub children: Vec<AggregationChildInput>,
    /// The Cairo layout.
    pub layout: String,
    /// Most blobs the DA segment may take.
    pub max_num_blobs: usize,
    /// DA public keys.
    pub da_public_keys: Vec<Felt>,
}

/// What an aggregation produced.
#[derive(Clone, PartialEq, Eq)]
pub struct AggregationOutput {
    /// The aggregator PIE, zipped.
    pub cairo_pie_zip: Vec<u8>,
    /// The DA segment.
    pub da_segment: Vec<Felt>,
}

impl std::fmt::Debug for AggregationOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregationOutput")
            .field("cairo_pie_zip_bytes", &self.cairo_pie_zip.len())
            .field("da_segment_len", &self.da_segment.len())
            .finish()
    }
}

/// Spawns the configured command; see the module docs for the contract.
#[derive(Debug, Clone)]
pub struct ExternalAggregator {
    config: ExternalAggregatorConfig,
}

fn hex_list(felts: &[Felt]) -> String {
    let hex: Vec<String> = felts.iter().map(|f| format!("{f:#x}")).collect();
    serde_json::Value::from(hex).to_string()
}

/// Writes the children of `input` into `dir` (`children.json`, `child_<k>/…`).
///
/// # Errors
/// `Retryable` on a file system error (a full disk may clear).
pub fn write_inputs(input: &AggregationInput, dir: &Path) -> Result<(), SnosRunnerError> {
    let io = |what: &str, e: std::io::Error| {
        SnosRunnerError::Retryable(format!("cannot write {what} for the aggregator: {e}"))
    };
    let mut list = Vec::with_capacity(input.children.len());
    for (i, child) in input.children.iter().enumerate() {
        let index = i + 1;
        let sub = format!("child_{index}");
        std::fs::create_dir_all(dir.join(&sub)).map_err(|e| io(&sub, e))?;
        let pie = format!("{sub}/cairo_pie.zip");
        let os = format!("{sub}/os_output.json");
        std::fs::write(dir.join(&pie), &child.cairo_pie_zip).map_err(|e| io(&pie, e))?;
        std::fs::write(dir.join(&os), hex_list(&child.os_output)).map_err(|e| io(&os, e))?;
        list.push(serde_json::json!({
            "index": index,
            "snos_batch": child.snos_batch,
            "start_block": child.start_block,
            "end_block": child.end_block,
            "task_id": child.task_id,
            "cairo_pie": pie,
            "os_output": os,
        }));
    }
    std::fs::write(dir.join(CHILDREN_FILE), serde_json::Value::from(list).to_string())
        .map_err(|e| io(CHILDREN_FILE, e))
}

/// The environment of a run reading `input_dir` and writing into `output_dir`.
pub fn command_env(
    input: &AggregationInput,
    input_dir: &Path,
    output_dir: &Path,
) -> Vec<(&'static str, OsString)> {
    let keys = input.da_public_keys.iter().map(|k| format!("{k:#x}")).collect::<Vec<_>>();
    vec![
        ("AGGREGATOR_BATCH", input.batch_index.to_string().into()),
        ("AGGREGATOR_N_CHILDREN", input.children.len().to_string().into()),
        ("AGGREGATOR_INPUT_DIR", input_dir.as_os_str().to_owned()),
        ("AGGREGATOR_CHILDREN", input_dir.join(CHILDREN_FILE).into_os_string()),
        ("AGGREGATOR_LAYOUT", input.layout.clone().into()),
        ("AGGREGATOR_MAX_NUM_BLOBS", input.max_num_blobs.to_string().into()),
        ("AGGREGATOR_DA_PUBLIC_KEYS", keys.join(",").into()),
        ("AGGREGATOR_OUTPUT_DIR", output_dir.as_os_str().to_owned()),
        ("AGGREGATOR_OUTPUT", output_dir.join(AGGREGATOR_PIE_FILE).into_os_string()),
    ]
}

/// Reads what the command wrote into `dir`: the PIE (must parse, with an output segment) and
/// the DA segment.
///
/// # Errors
/// `Deterministic`, naming the file and the problem.
pub fn read_outputs(dir: &Path) -> Result<AggregationOutput, SnosRunnerError> {
    let missing = |file: &str, e: std::io::Error| {
        SnosRunnerError::Deterministic(format!(
            "the aggregator command exited 0 but did not write {file} in $AGGREGATOR_OUTPUT_DIR: {e}"
        ))
    };
    let cairo_pie_zip = std::fs::read(dir.join(AGGREGATOR_PIE_FILE))
        .map_err(|e| missing(AGGREGATOR_PIE_FILE, e))?;
    let output = crate::pie_output(&cairo_pie_zip).map_err(|e| {
        SnosRunnerError::Deterministic(format!("the aggregator's {AGGREGATOR_PIE_FILE}: {e}"))
    })?;
    if output.is_empty() {
        return Err(SnosRunnerError::Deterministic(format!(
            "the aggregator's {AGGREGATOR_PIE_FILE} has an empty output segment"
        )));
    }
    let text = std::fs::read_to_string(dir.join(DA_SEGMENT_FILE))
        .map_err(|e| missing(DA_SEGMENT_FILE, e))?;
    let da_segment = parse_os_output_json(&text).map_err(|e| {
        SnosRunnerError::Deterministic(e.replace(crate::external::OS_OUTPUT_FILE, DA_SEGMENT_FILE))
    })?;
    Ok(AggregationOutput { cairo_pie_zip, da_segment })
}

impl ExternalAggregator {
    /// An aggregator running `config.command`.
    pub fn new(config: ExternalAggregatorConfig) -> Self {
        Self { config }
    }

    /// The configured command line.
    pub fn command(&self) -> &str {
        &self.config.command
    }

    /// Runs the command over `input` (see the module docs).
    ///
    /// # Errors
    /// `Retryable`: exit 75, killed by a signal, the timeout, a file system error.
    /// `Deterministic`: any other exit status (with the stderr tail), missing or bad outputs.
    pub async fn run(
        &self,
        input: &AggregationInput,
    ) -> Result<AggregationOutput, SnosRunnerError> {
        let input_dir = tempfile::tempdir()
            .map_err(|e| SnosRunnerError::Retryable(format!("aggregator input dir: {e}")))?;
        let output_dir = tempfile::tempdir()
            .map_err(|e| SnosRunnerError::Retryable(format!("aggregator output dir: {e}")))?;
        write_inputs(input, input_dir.path())?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(&self.config.command).current_dir(output_dir.path());
        for (name, value) in command_env(input, input_dir.path(), output_dir.path()) {
            cmd.env(name, value);
        }
        run_command(cmd, "aggregator", self.config.timeout, |pid| {
            tracing::info!(
                runner = "external",
                aggregator_batch = input.batch_index,
                n_children = input.children.len(),
                pid,
                "Aggregator command started"
            );
        })
        .await?;
        read_outputs(output_dir.path())
    }
}
