//! SnosRun (reference §6.1): runs the Starknet OS — through a [`SnosRunner`] — over a SNOS
//! batch, stores the PIE, the raw OS output and the program output, and records the fact.
//!
//! The runner is either the external command (`--snos-runner external`) or the cairo-vm
//! **stand-in** (`--snos-runner stand-in`, the default), which proves nothing about execution;
//! see `docs/snos.md`. For the stand-in the handler reads the batch from the node (state
//! updates, roots, block hashes) and builds the DA data with the compression pipeline: the KZG
//! segment's blobs on L3 (KZG DA), the full-output state diff on L2.
//!
//! The Snos trigger (reference §7): creates SnosRun jobs for closed SNOS batches, oldest
//! first, within the SNOS job buffer and at or above the settlement watermark.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use orchestrator_gps_fact_checker::fact::{pie, snos_fact};
use orchestrator_protocol::compression::{
    self, io::parse_state_update, squash::squash_state_updates, StarknetVersion, StateReadError,
    StateReader,
};
use orchestrator_snos_runner::{BatchData, BlobData, SnosInput, SnosRunner};
use orchestrator_utils::Retryable;
use serde_json::{json, Value};
use starknet::core::types::{Felt, StateUpdate};
use url::Url;

use super::{StageInputs, StageWorkers};
use crate::{
    config::{SettlementParams, SnosParams},
    core::client::Clients,
    types::{
        batch::{SnosBatchQuery, SnosBatchStatus},
        jobs::{JobItem, JobSpecificMetadata, JobType, JobVerificationStatus, SnosMetadata},
        queue::WorkerTriggerType,
        Layer, ORCHESTRATOR_VERSION,
    },
    worker::{
        handler::{write_artifact, Attempts, JobError, JobHandlerTrait},
        service::{create_job_unqueued, queue_created_job},
        trigger::{available_slots, first_unsettled_snos_batch_index, JobTrigger, TriggerError},
        Config, EngineError,
    },
};

/// Delay before a job whose RPC is down is looked at again.
pub const RPC_DOWN_RETRY_DELAY: Duration = Duration::from_secs(60);
/// Timeout of one JSON-RPC call.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Storage key of the PIE of SNOS batch `index`.
pub fn cairo_pie_path(index: u64) -> String {
    format!("{index}/cairo_pie.zip")
}
/// Storage key of the raw OS output (JSON array of felts) of SNOS batch `index`.
pub fn snos_output_path(index: u64) -> String {
    format!("{index}/snos_output.json")
}
/// Storage key of the program output (bincode `Vec<[u8; 32]>`) of SNOS batch `index`.
pub fn program_output_path(index: u64) -> String {
    format!("{index}/program_output.txt")
}
/// Storage key of the on-chain data of SNOS batch `index` (configured, not written).
pub fn on_chain_data_path(index: u64) -> String {
    format!("{index}/onchain_data.json")
}

/// The metadata the Snos trigger gives a new SnosRun job.
pub fn snos_metadata(
    index: u64,
    start_block: u64,
    end_block: u64,
    full_output: bool,
) -> SnosMetadata {
    SnosMetadata {
        snos_batch_index: index,
        start_block,
        end_block,
        num_blocks: end_block.saturating_sub(start_block) + 1,
        full_output,
        cairo_pie_path: Some(cairo_pie_path(index)),
        on_chain_data_path: Some(on_chain_data_path(index)),
        snos_output_path: Some(snos_output_path(index)),
        program_output_path: Some(program_output_path(index)),
        snos_fact: None,
        snos_n_steps: None,
    }
}

/// A JSON-RPC failure: the node could not be reached or answered an error that may go away
/// (unknown block, pending data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    /// What happened.
    pub message: String,
}

/// Every failure of the SNOS RPC is taken as retryable: the node may be down, or behind the
/// batch (a block still pending); readiness is checked again before the next attempt.
impl Retryable for RpcError {
    fn is_retryable(&self) -> bool {
        true
    }
}

/// A minimal Starknet JSON-RPC client for what SnosRun reads.
#[derive(Debug, Clone)]
pub struct NodeRpc {
    url: Url,
    http: reqwest::Client,
}

impl NodeRpc {
    /// A client of `url`. Credentials in it (`http://user:password@host/`) are sent as an
    /// `Authorization: Basic` header; the URL kept (and quoted in errors) is without them.
    pub fn new(url: Url) -> Self {
        let (url, headers) = orchestrator_utils::secret::credentials_headers(&url);
        let http = reqwest::Client::builder()
            .timeout(RPC_TIMEOUT)
            .default_headers(headers)
            .build()
            .unwrap_or_default();
        Self { url, http }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let err = |m: String| RpcError { message: format!("{method} on {}: {m}", self.url) };
        let resp = self
            .http
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        let v: Value =
            resp.json().await.map_err(|e| err(format!("HTTP {status}, not JSON: {e}")))?;
        if let Some(e) = v.get("error") {
            return Err(err(format!("node error {e}")));
        }
        v.get("result").cloned().ok_or_else(|| err("response without result".into()))
    }

    /// [`Self::call`] with by-position `params`, again with the by-name `named` when the node
    /// rejects the positions as invalid params (-32602): starknet-devnet 0.10 (RPC 0.10) wants
    /// every optional trailing parameter when given by position.
    async fn call_either(
        &self,
        method: &str,
        params: Value,
        named: Value,
    ) -> Result<Value, RpcError> {
        match self.call(method, params).await {
            Err(e) if e.message.contains("\"code\":-32602") => self.call(method, named).await,
            other => other,
        }
    }

    /// `starknet_chainId`.
    pub async fn chain_id(&self) -> Result<Felt, RpcError> {
        let v = self.call("starknet_chainId", json!([])).await?;
        felt_of(&v).ok_or_else(|| RpcError { message: format!("starknet_chainId returned {v}") })
    }

    /// `starknet_getStateUpdate` of a closed block (a pending one is an error).
    pub async fn state_update(&self, block: u64) -> Result<StateUpdate, RpcError> {
        let id = json!({"block_number": block});
        let v = self
            .call_either("starknet_getStateUpdate", json!([id]), json!({"block_id": id}))
            .await?;
        parse_state_update(&v.to_string()).map_err(|e| RpcError {
            message: format!("state update of block {block} (pending or malformed): {e}"),
        })
    }
}

fn felt_of(v: &Value) -> Option<Felt> {
    v.as_str().and_then(|s| Felt::from_hex(s).ok())
}

#[async_trait]
impl StateReader for NodeRpc {
    async fn storage_at(
        &self,
        block: u64,
        queries: &[(Felt, Felt)],
    ) -> Result<Vec<Felt>, StateReadError> {
        let mut out = Vec::with_capacity(queries.len());
        for (contract, key) in queries {
            let (c, k, id) =
                (format!("{contract:#x}"), format!("{key:#x}"), json!({"block_number": block}));
            let named = json!({"contract_address": c, "key": k, "block_id": id});
            out.push(
                match self.call_either("starknet_getStorageAt", json!([c, k, id]), named).await {
                    Ok(v) => felt_of(&v)
                        .ok_or_else(|| StateReadError(format!("getStorageAt returned {v}")))?,
                    // CONTRACT_NOT_FOUND (20): an unset slot of a contract that does not exist.
                    Err(e) if e.message.contains("\"code\":20") => Felt::ZERO,
                    Err(e) => return Err(StateReadError(e.message)),
                },
            );
        }
        Ok(out)
    }

    async fn class_hash_at(
        &self,
        block: u64,
        contracts: &[Felt],
    ) -> Result<Vec<Option<Felt>>, StateReadError> {
        let mut out = Vec::with_capacity(contracts.len());
        for contract in contracts {
            let params = json!([{"block_number": block}, format!("{contract:#x}")]);
            out.push(match self.call("starknet_getClassHashAt", params).await {
                Ok(v) => Some(
                    felt_of(&v)
                        .ok_or_else(|| StateReadError(format!("getClassHashAt returned {v}")))?,
                ),
                Err(e) if e.message.contains("\"code\":20") => None,
                Err(e) => return Err(StateReadError(e.message)),
            });
        }
        Ok(out)
    }

    async fn nonce_at(&self, block: u64, contracts: &[Felt]) -> Result<Vec<Felt>, StateReadError> {
        let mut out = Vec::with_capacity(contracts.len());
        for contract in contracts {
            let params = json!([{"block_number": block}, format!("{contract:#x}")]);
            out.push(match self.call("starknet_getNonce", params).await {
                Ok(v) => {
                    felt_of(&v).ok_or_else(|| StateReadError(format!("getNonce returned {v}")))?
                }
                Err(e) if e.message.contains("\"code\":20") => Felt::ZERO,
                Err(e) => return Err(StateReadError(e.message)),
            });
        }
        Ok(out)
    }
}

/// The OS full-output encoding (`full_output = 1`, cairo-lang `output_parser.py`) of a squashed
/// diff over `start..`, with previous values read at `start - 1` (none before block 0):
/// `n_contracts, (addr, prev_nonce, new_nonce, prev_class, new_class, n_changes,
/// (key, prev, new)*)*, n_classes, (class_hash, prev_compiled = 0, compiled)*`.
pub async fn full_output_state_diff(
    diff: &starknet::core::types::StateDiff,
    start: u64,
    reader: &dyn StateReader,
) -> Result<Vec<Felt>, StateReadError> {
    #[derive(Default)]
    struct Contract {
        nonce: Option<Felt>,
        class: Option<Felt>,
        storage: BTreeMap<Felt, Felt>,
    }
    let mut contracts: BTreeMap<Felt, Contract> = BTreeMap::new();
    for item in &diff.storage_diffs {
        let c = contracts.entry(item.address).or_default();
        for e in &item.storage_entries {
            c.storage.insert(e.key, e.value);
        }
    }
    for n in &diff.nonces {
        contracts.entry(n.contract_address).or_default().nonce = Some(n.nonce);
    }
    for d in &diff.deployed_contracts {
        contracts.entry(d.address).or_default().class = Some(d.class_hash);
    }
    for r in &diff.replaced_classes {
        contracts.entry(r.contract_address).or_default().class = Some(r.class_hash);
    }
    let addresses: Vec<Felt> = contracts.keys().copied().collect();
    let keys: Vec<(Felt, Felt)> =
        contracts.iter().flat_map(|(a, c)| c.storage.keys().map(move |k| (*a, *k))).collect();
    let (prev_nonces, prev_classes, prev_values) = match start.checked_sub(1) {
        Some(prev) => (
            reader.nonce_at(prev, &addresses).await?,
            reader.class_hash_at(prev, &addresses).await?,
            reader.storage_at(prev, &keys).await?,
        ),
        None => (
            vec![Felt::ZERO; addresses.len()],
            vec![None; addresses.len()],
            vec![Felt::ZERO; keys.len()],
        ),
    };
    let mut prev_values = prev_values.into_iter();
    let mut out = vec![Felt::from(contracts.len())];
    for (i, (address, c)) in contracts.iter().enumerate() {
        let prev_nonce = prev_nonces[i];
        let prev_class = prev_classes[i].unwrap_or(Felt::ZERO);
        out.extend([
            *address,
            prev_nonce,
            c.nonce.unwrap_or(prev_nonce),
            prev_class,
            c.class.unwrap_or(prev_class),
            Felt::from(c.storage.len()),
        ]);
        for (key, value) in &c.storage {
            out.extend([*key, prev_values.next().unwrap_or(Felt::ZERO), *value]);
        }
    }
    let mut classes: Vec<(Felt, Felt)> =
        diff.declared_classes.iter().map(|d| (d.class_hash, d.compiled_class_hash)).collect();
    classes.sort();
    out.push(Felt::from(classes.len()));
    for (class_hash, compiled) in classes {
        out.extend([class_hash, Felt::ZERO, compiled]);
    }
    Ok(out)
}

/// What a run of batch `m` is given: the range, the RPC of this attempt, the OS flags
/// `(use_kzg_da, full_output)`, and the chain settings of `params` (layer, fee tokens, DA keys,
/// versioned constants) that the external runner hands to the command as `SNOS_*` variables.
pub fn snos_input(
    layer: Layer,
    params: &SnosParams,
    (use_kzg_da, full_output): (bool, bool),
    m: &SnosMetadata,
    rpc_url: Url,
    chain_id: Felt,
    batch: Option<BatchData>,
) -> SnosInput {
    SnosInput {
        start_block: m.start_block,
        end_block: m.end_block,
        rpc_url,
        layout: params.layout.to_string(),
        use_kzg_da,
        full_output,
        chain_id,
        da_public_keys: params.da_public_keys.clone(),
        is_l3: layer == Layer::L3,
        strk_fee_token_address: params.strk_fee_token_address,
        eth_fee_token_address: params.eth_fee_token_address,
        versioned_constants_path: params.versioned_constants.as_ref().map(|vc| vc.path.clone()),
        batch,
    }
}

/// The SnosRun handler.
#[derive(Debug)]
pub struct SnosJobHandler {
    layer: Layer,
    params: SnosParams,
    clients: Clients,
    runner: Arc<dyn SnosRunner>,
    max_num_blobs: usize,
    calldata_da: bool,
}

impl SnosJobHandler {
    /// A handler running `runner` with the SNOS settings `params`.
    pub fn new(
        layer: Layer,
        params: SnosParams,
        clients: Clients,
        runner: Arc<dyn SnosRunner>,
    ) -> Self {
        Self {
            layer,
            params,
            clients,
            runner,
            max_num_blobs: compression::DEFAULT_MAX_NUM_BLOBS,
            calldata_da: false,
        }
    }

    /// On L3, whether the state diff travels in the settlement calldata (settling on
    /// Starknet, which has no blobs): the OS then runs with `use_kzg_da = 0` and
    /// `full_output = 1`, so the OS output itself carries the diff. Without it (settling on
    /// Ethereum) L3 runs with KZG DA as the reference does.
    pub fn with_calldata_da(mut self, calldata_da: bool) -> Self {
        self.calldata_da = calldata_da;
        self
    }

    /// The OS flags `(use_kzg_da, full_output)` of this handler's runs.
    pub fn os_flags(&self) -> (bool, bool) {
        match self.layer {
            Layer::L3 if self.calldata_da => (false, true),
            layer => SnosInput::os_flags(layer == Layer::L3),
        }
    }

    /// Sets the blob limit of the batch's DA data (stand-in only).
    pub fn with_max_num_blobs(mut self, max_num_blobs: usize) -> Self {
        self.max_num_blobs = max_num_blobs;
        self
    }

    /// The RPC of this attempt: the backup on operator retries when there is one.
    fn rpc_url(&self, job: &JobItem) -> &Url {
        match (&self.params.backup_rpc_url, job.metadata.common.process_retry_attempt_no) {
            (Some(backup), n) if n > 0 => backup,
            _ => &self.params.rpc_url,
        }
    }

    fn metadata(job: &JobItem) -> Result<SnosMetadata, JobError> {
        match &job.metadata.specific {
            JobSpecificMetadata::Snos(m) => Ok(m.clone()),
            other => Err(JobError::InvalidMetadata {
                job_type: JobType::SnosRun,
                internal_id: job.internal_id,
                reason: format!("expected Snos metadata, got {other:?}"),
            }),
        }
    }

    /// Reads the batch from the node and builds what the stand-in writes.
    async fn batch_data(
        &self,
        node: &NodeRpc,
        m: &SnosMetadata,
        use_kzg_da: bool,
    ) -> Result<BatchData, JobError> {
        let batches = self
            .clients
            .database
            .get_snos_batches(SnosBatchQuery {
                indexes: vec![m.snos_batch_index],
                ..Default::default()
            })
            .await
            .map_err(|e| {
                JobError::client(format!("cannot load SNOS batch {}", m.snos_batch_index), e)
            })?;
        let version = match batches.first() {
            Some(b) => StarknetVersion::parse(&b.starknet_version).map_err(|e| {
                JobError::fatal_with(
                    format!("SNOS batch {}: unsupported Starknet version", m.snos_batch_index),
                    e,
                )
            })?,
            None => {
                return Err(JobError::fatal(format!("SNOS batch {} not found", m.snos_batch_index)))
            }
        };
        let mut updates = Vec::with_capacity(m.num_blocks as usize);
        for block in m.start_block..=m.end_block {
            updates.push(node.state_update(block).await?);
        }
        let prev_block_hash = match m.start_block.checked_sub(1) {
            Some(prev) => node.state_update(prev).await?.block_hash,
            None => Felt::ZERO,
        };
        let (first, last) = match (updates.first(), updates.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => {
                return Err(JobError::fatal(format!(
                    "SNOS batch {} has no blocks",
                    m.snos_batch_index
                )))
            }
        };
        let mut data = BatchData {
            initial_root: first.old_root,
            final_root: last.new_root,
            prev_block_hash,
            new_block_hash: last.block_hash,
            // Messages are not read by the stand-in: both sections are empty.
            messages_to_l1: Vec::new(),
            messages_to_l2: Vec::new(),
            blob_data: BlobData::default(),
            state_diff_section: Vec::new(),
        };
        if use_kzg_da {
            let out = compression::state_updates_to_blobs(
                &updates,
                m.start_block,
                version,
                self.max_num_blobs,
                node,
            )
            .await
            .map_err(|e| JobError::client("DA data of the batch", e))?;
            data.blob_data = BlobData { felts: out.felts, blobs: out.blobs };
        } else {
            let squashed = squash_state_updates(&updates, m.start_block.checked_sub(1), node)
                .await
                .map_err(|e| JobError::client("squashing the batch", e))?;
            data.state_diff_section =
                full_output_state_diff(&squashed.state_diff, m.start_block, node)
                    .await
                    .map_err(|e| JobError::client("reading state from the node", e))?;
        }
        Ok(data)
    }
}

#[async_trait]
impl JobHandlerTrait for SnosJobHandler {
    fn job_type(&self) -> JobType {
        JobType::SnosRun
    }

    async fn create_job(
        &self,
        internal_id: u64,
        specific: JobSpecificMetadata,
    ) -> Result<JobItem, JobError> {
        match &specific {
            JobSpecificMetadata::Snos(m)
                if m.snos_batch_index == internal_id && m.start_block <= m.end_block =>
            {
                Ok(JobItem::new(JobType::SnosRun, internal_id, specific))
            }
            other => Err(JobError::InvalidMetadata {
                job_type: JobType::SnosRun,
                internal_id,
                reason: format!(
                    "need Snos metadata of batch {internal_id} with start <= end, got {other:?}"
                ),
            }),
        }
    }

    async fn check_ready_to_process(&self, job: &JobItem) -> Result<(), Duration> {
        match NodeRpc::new(self.rpc_url(job).clone()).chain_id().await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "SNOS RPC not ready; SnosRun job requeued");
                Err(RPC_DOWN_RETRY_DELAY)
            }
        }
    }

    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        let total = std::time::Instant::now();
        let mut m = Self::metadata(job)?;
        let idx = m.snos_batch_index;
        let node = NodeRpc::new(self.rpc_url(job).clone());
        let chain_id = node.chain_id().await?;
        let (use_kzg_da, full_output) = self.os_flags();
        let batch = if self.runner.needs_batch_data() {
            Some(self.batch_data(&node, &m, use_kzg_da).await?)
        } else {
            None
        };
        let input = snos_input(
            self.layer,
            &self.params,
            (use_kzg_da, full_output),
            &m,
            self.rpc_url(job).clone(),
            chain_id,
            batch,
        );
        let rpc_wait = total.elapsed();
        let started = std::time::Instant::now();
        let out = self
            .runner
            .run(&input)
            .await
            .map_err(|e| JobError::client(format!("{} SNOS runner", self.runner.name()), e))?;
        tracing::info!(
            job_id = %job.id, snos_batch_index = idx, runner = self.runner.name(),
            n_steps = out.n_steps, elapsed_ms = started.elapsed().as_millis() as u64, "SNOS run done"
        );
        let execution = started.elapsed();

        let read =
            pie::read_pie_bytes(&out.cairo_pie_zip).map_err(|e| JobError::fatal_with("PIE", e))?;
        let fact = snos_fact(&read, &out.os_output).map_err(|e| JobError::fatal_with("fact", e))?;
        let program_output =
            pie::program_output(&read).map_err(|e| JobError::fatal_with("program output", e))?;
        let words: Vec<[u8; 32]> = program_output.iter().map(Felt::to_bytes_be).collect();
        let program_output_bytes = bincode::serialize(&words)
            .map_err(|e| JobError::fatal_with("encoding the program output", e))?;
        let os_output_json = serde_json::to_vec(
            &out.os_output.iter().map(|f| format!("{f:#x}")).collect::<Vec<_>>(),
        )
        .map_err(|e| JobError::fatal_with("encoding the OS output", e))?;

        let pie_key = m.cairo_pie_path.get_or_insert_with(|| cairo_pie_path(idx)).clone();
        let output_key = m.snos_output_path.get_or_insert_with(|| snos_output_path(idx)).clone();
        let program_key =
            m.program_output_path.get_or_insert_with(|| program_output_path(idx)).clone();
        let storage = &self.clients.storage;
        for (data, key) in [
            (out.cairo_pie_zip, &pie_key),
            (os_output_json, &output_key),
            (program_output_bytes, &program_key),
        ] {
            write_artifact(storage.as_ref(), key, Bytes::from(data), "the SNOS run's output")
                .await?;
        }
        m.snos_fact = Some(fact.to_string());
        m.snos_n_steps = Some(out.n_steps);
        job.metadata.specific = JobSpecificMetadata::Snos(m);
        let total = total.elapsed();
        crate::worker::alerts::handler_metrics(|metrics| {
            metrics.snos_timing(total, rpc_wait, execution);
        });
        Ok(idx.to_string())
    }

    async fn verify_job(&self, _job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        Ok(JobVerificationStatus::Verified)
    }

    fn attempts(&self) -> Attempts {
        Attempts::new(1, 1, Duration::from_secs(1))
    }
}

// -- The trigger --

/// Creates SnosRun jobs.
#[derive(Debug, Clone)]
pub struct SnosTrigger {
    /// Most SnosRun jobs in the window [oldest incomplete, latest] (`--snos-job-buffer-size`).
    pub buffer: u64,
    /// `--snos-full-output`, recorded in the job metadata.
    pub full_output: bool,
}

#[async_trait]
impl JobTrigger for SnosTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::Stage(JobType::SnosRun)
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let slots = available_slots(&config, JobType::SnosRun, self.buffer).await?;
        if slots == 0 {
            return Ok(());
        }
        let watermark = first_unsettled_snos_batch_index(&config).await?;
        let batches = config
            .database()
            .get_snos_batches_without_jobs(
                SnosBatchStatus::Closed,
                slots,
                Some(ORCHESTRATOR_VERSION),
                watermark,
            )
            .await?;
        for batch in batches {
            let metadata =
                snos_metadata(batch.index, batch.start_block, batch.end_block, self.full_output);
            // The batch is marked before the job is queued, so no handler can change the
            // batch before the mark lands.
            let created = match create_job_unqueued(
                &config,
                JobType::SnosRun,
                batch.index,
                JobSpecificMetadata::Snos(metadata),
            )
            .await
            {
                Ok(job) => Some(job),
                Err(EngineError::AlreadyExists { .. }) => None,
                Err(e) => {
                    return Err(TriggerError::client(
                        format!("SnosRun job for batch {}", batch.index),
                        e,
                    ))
                }
            };
            config
                .database()
                .update_snos_batch_status_by_index(batch.index, SnosBatchStatus::SnosJobCreated)
                .await?;
            if let Some(job) = created {
                queue_created_job(&config, &job).await;
            }
        }
        Ok(())
    }
}

// -- Building the stage --

/// The SnosRun handler (the SNOS runner of the pipeline) and the Snos trigger.
pub(crate) fn build(inputs: &StageInputs<'_>) -> StageWorkers {
    let StageInputs { params, clients, external } = *inputs;
    let handler = SnosJobHandler::new(
        params.layer,
        params.snos.clone(),
        clients.clone(),
        external.snos_runner.clone(),
    )
    .with_max_num_blobs(params.batching.max_num_blobs)
    .with_calldata_da(matches!(params.settlement, SettlementParams::Starknet(_)));
    let trigger = SnosTrigger {
        buffer: params.service.snos_job_buffer_size,
        full_output: params.snos.full_output,
    };
    (Arc::new(handler), Arc::new(trigger))
}

#[cfg(test)]
mod tests {
    use orchestrator_protocol::compression::MemoryState;
    use starknet::core::types::{
        ContractStorageDiffItem, DeclaredClassItem, DeployedContractItem, NonceUpdate, StateDiff,
        StorageEntry,
    };

    use super::*;

    #[tokio::test]
    async fn full_output_diff_has_previous_values() {
        let f = Felt::from;
        let diff = StateDiff {
            storage_diffs: vec![ContractStorageDiffItem {
                address: f(0x20u8),
                storage_entries: vec![
                    StorageEntry { key: f(2u8), value: f(9u8) },
                    StorageEntry { key: f(1u8), value: f(8u8) },
                ],
            }],
            deprecated_declared_classes: vec![],
            declared_classes: vec![DeclaredClassItem {
                class_hash: f(0x77u8),
                compiled_class_hash: f(0x78u8),
            }],
            deployed_contracts: vec![DeployedContractItem {
                address: f(0x10u8),
                class_hash: f(0x55u8),
            }],
            replaced_classes: vec![],
            nonces: vec![NonceUpdate { contract_address: f(0x20u8), nonce: f(4u8) }],
        };
        let mut state = MemoryState::new();
        state.storage.insert((f(0x20u8), f(1u8)), f(7u8));
        state.classes.insert(f(0x20u8), f(0x66u8));
        state.nonces.insert(f(0x20u8), f(3u8));
        let out = full_output_state_diff(&diff, 5, &state).await.unwrap();
        let want: Vec<Felt> = [
            2u8, // contracts
            0x10, 0, 0, 0, 0x55, 0, // deployed, no storage
            0x20, 3, 4, 0x66, 0x66, 2, 1, 7, 8, 2, 0, 9, // sorted keys with previous values
            1, 0x77, 0, 0x78,
        ]
        .map(f)
        .to_vec();
        assert_eq!(out, want);
        // Before block 0 everything was empty.
        let out = full_output_state_diff(&diff, 0, &state).await.unwrap();
        assert_eq!(out[7..11], [0x20u8, 0, 4, 0].map(f));
    }

    #[test]
    fn run_input_carries_the_chain_settings() {
        use crate::config::{
            choices::{CairoLayout, SnosRunnerKind},
            VersionedConstants,
        };
        let rpc: Url = "http://127.0.0.1:9/".parse().unwrap();
        let mut params = SnosParams {
            rpc_url: rpc.clone(),
            backup_rpc_url: None,
            full_output: false,
            versioned_constants: None,
            strk_fee_token_address: Felt::from(0x5afeu16),
            eth_fee_token_address: Felt::from(0xe7eu16),
            layout: CairoLayout::StarknetWithKeccak,
            prover_layout: CairoLayout::Dynamic,
            da_public_keys: vec![Felt::from(7u8)],
            runner: SnosRunnerKind::External,
            command: Some("generate-pie".into()),
            command_timeout: Duration::from_secs(60),
        };
        let m = snos_metadata(4, 10, 12, false);
        let input = snos_input(Layer::L2, &params, (false, true), &m, rpc.clone(), Felt::TWO, None);
        assert_eq!((input.start_block, input.end_block), (10, 12));
        assert_eq!(input.layout, "starknet_with_keccak");
        assert!(!input.is_l3 && !input.use_kzg_da && input.full_output);
        assert_eq!(input.strk_fee_token_address, Felt::from(0x5afeu16));
        assert_eq!(input.eth_fee_token_address, Felt::from(0xe7eu16));
        assert_eq!(input.da_public_keys, vec![Felt::from(7u8)]);
        assert_eq!(input.versioned_constants_path, None);

        // L3 settling on Starknet: still an L3 for the command, whatever the DA flags; the
        // versioned constants file of --versioned-constants is passed by path.
        params.versioned_constants = Some(VersionedConstants {
            path: "/etc/orchestrator/vc.json".into(),
            json: serde_json::json!({}),
        });
        let input = snos_input(Layer::L3, &params, (false, true), &m, rpc, Felt::TWO, None);
        assert!(input.is_l3 && !input.use_kzg_da);
        assert_eq!(
            input.versioned_constants_path.as_deref(),
            Some(std::path::Path::new("/etc/orchestrator/vc.json"))
        );
    }

    #[test]
    fn paths_follow_the_reference() {
        let m = snos_metadata(7, 10, 12, true);
        assert_eq!(m.cairo_pie_path.as_deref(), Some("7/cairo_pie.zip"));
        assert_eq!(m.snos_output_path.as_deref(), Some("7/snos_output.json"));
        assert_eq!(m.program_output_path.as_deref(), Some("7/program_output.txt"));
        assert_eq!(m.on_chain_data_path.as_deref(), Some("7/onchain_data.json"));
        assert_eq!(m.num_blocks, 3);
    }
}
