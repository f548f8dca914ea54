//! DataSubmission (L3): builds the blobs of a whole SNOS batch and publishes them (reference
//! §6.4, with its gaps closed).
//!
//! The reference reads the state update of block `internal_id` (a SNOS batch index, not a
//! block) and encodes only the first 4096 felts. Here the job covers the batch:
//! 1. the SNOS batch `internal_id` gives the range `start_block ..= end_block` and the
//!    Starknet version;
//! 2. each block's state update is read from the node and the updates are squashed against the
//!    state before the range (`start_block - 1`);
//! 3. the squashed diff is encoded with the rules of the batch's version (stateful and
//!    stateless compression when the version has them), and the felts are cut into 4096-felt
//!    chunks, each turned into a 131072-byte blob in evaluation form (at most
//!    `--max-num-blobs`);
//! 4. all blobs, concatenated, are stored at `blob_data_path` (`<idx>/blob_data.txt`), then
//!    `publish_state_diff` hands them to the DA client; its answer is the external id.
//!
//! Verification asks the DA client (`verify_inclusion`). Processing is idempotent: the blobs
//! are a function of the chain, the storage write overwrites, and the DA clients' publication
//! is keyed by content.
//!
//! Calldata DA (an L3 settling on Starknet, which has no blobs): the OS runs with
//! `use_kzg_da = 0`, so the state diff is part of the OS output that `update_state` carries in
//! its calldata; that transaction is the publication and its inclusion check is the
//! StateTransition's. The job then builds no blobs: it checks that the batch's stored OS output
//! has KZG-DA flag 0 and a body after the header, and completes with the external id
//! [`CALLDATA_DA`].
//!
//! DataSubmission trigger (L3): a DataSubmission job for every completed ProofRegistration job
//! (reference §7), with `block_number` = the first block of the SNOS batch and the blobs at
//! `<idx>/blob_data.txt`.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use orchestrator_da_client_interface::{DaClient, DaVerificationStatus};
use orchestrator_protocol::compression::{self, StarknetVersion, DEFAULT_MAX_NUM_BLOBS};
use starknet::core::types::StateUpdate;

use super::{proving::create_once, StageInputs, StageWorkers};
use crate::{
    config::SettlementParams,
    core::client::{
        madara::{MadaraClient, NodeStateReader},
        DatabaseClient, StorageClient,
    },
    types::{
        batch::SnosBatchQuery,
        jobs::{
            DaMetadata, JobItem, JobSpecificMetadata, JobStatus, JobType, JobVerificationStatus,
        },
        queue::WorkerTriggerType,
    },
    worker::{
        handler::{
            load_snos_batch, read_os_output, write_artifact, Attempts, JobError, JobHandlerTrait,
            OS_HEADER_LEN, USE_KZG_DA_OFFSET,
        },
        trigger::{first_unsettled_snos_batch_index, JobTrigger, TriggerError},
        Config,
    },
};

/// The external id of a DataSubmission whose data travels in the settlement calldata.
pub const CALLDATA_DA: &str = "calldata";

/// Where the blobs of SNOS batch `index` are stored.
pub fn blob_data_path(index: u64) -> String {
    format!("{index}/blob_data.txt")
}

/// What the DataSubmission handler needs.
#[derive(Clone)]
pub struct DataSubmissionContext {
    /// The Madara node (state updates, state reads for squashing and aliases).
    pub node: Arc<dyn MadaraClient>,
    /// The DA layer.
    pub da: Arc<dyn DaClient>,
    /// Artifact storage.
    pub storage: Arc<dyn StorageClient>,
    /// SNOS batches.
    pub database: Arc<dyn DatabaseClient>,
    /// Most blobs per batch.
    pub max_num_blobs: usize,
    /// Verification polling delay instead of 60 s (tests).
    pub polling_override: Option<Duration>,
    /// The state diff travels in the settlement calldata (settling on Starknet): no blobs.
    pub calldata_da: bool,
}

impl fmt::Debug for DataSubmissionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataSubmissionContext")
            .field("node", &self.node)
            .field("da", &self.da)
            .field("max_num_blobs", &self.max_num_blobs)
            .finish_non_exhaustive()
    }
}

impl DataSubmissionContext {
    /// A context with the default blob limit and polling.
    pub fn new(
        node: Arc<dyn MadaraClient>,
        da: Arc<dyn DaClient>,
        storage: Arc<dyn StorageClient>,
        database: Arc<dyn DatabaseClient>,
    ) -> Self {
        Self {
            node,
            da,
            storage,
            database,
            max_num_blobs: DEFAULT_MAX_NUM_BLOBS,
            polling_override: None,
            calldata_da: false,
        }
    }
}

/// The blobs of a SNOS batch: squash the batch's `updates` (blocks `first_block ..`), encode
/// with `version`'s rules, transform into at most `max_num_blobs` blobs. Returns the felts and
/// the blobs. Node reads failing are retryable; a diff that does not fit is fatal.
pub async fn batch_blobs(
    updates: &[StateUpdate],
    first_block: u64,
    version: StarknetVersion,
    max_num_blobs: usize,
    node: Arc<dyn MadaraClient>,
) -> Result<(Vec<starknet::core::types::Felt>, Vec<Vec<u8>>), JobError> {
    let reader = NodeStateReader::new(node);
    let out =
        compression::state_updates_to_blobs(updates, first_block, version, max_num_blobs, &reader)
            .await
            .map_err(|e| JobError::client(format!("DA data of blocks {first_block}.."), e))?;
    Ok((out.felts, out.blobs))
}

/// DataSubmission (attempts 1, verification 3 × 60 s).
#[derive(Debug, Clone)]
pub struct DataSubmissionHandler {
    ctx: DataSubmissionContext,
}

impl DataSubmissionHandler {
    /// A handler over `ctx`.
    pub fn new(ctx: DataSubmissionContext) -> Self {
        Self { ctx }
    }

    /// Calldata DA: the OS output of SNOS batch `index` must carry the diff (flag 0, a body).
    async fn check_calldata_output(&self, index: u64) -> Result<String, JobError> {
        let key = super::snos::snos_output_path(index);
        let felts = read_os_output(self.ctx.storage.as_ref(), &key).await?;
        if felts.len() <= OS_HEADER_LEN {
            return Err(JobError::fatal(format!(
                "the OS output at {key} has {} felts: no state diff after the header",
                felts.len()
            )));
        }
        if felts[USE_KZG_DA_OFFSET] != starknet::core::types::Felt::ZERO {
            return Err(JobError::fatal(format!(
                "SNOS batch {index}: calldata DA needs an OS output without KZG DA, but its flag is {:#x}",
                felts[USE_KZG_DA_OFFSET]
            )));
        }
        tracing::info!(
            snos_batch = index,
            felts = felts.len(),
            "State diff travels in the update_state calldata; no blobs"
        );
        Ok(CALLDATA_DA.to_owned())
    }
}

fn da_metadata(job: &JobItem) -> Result<DaMetadata, JobError> {
    match &job.metadata.specific {
        JobSpecificMetadata::Da(m) => Ok(m.clone()),
        _ => Err(JobError::InvalidMetadata {
            job_type: job.job_type,
            internal_id: job.internal_id,
            reason: "expected Da metadata".into(),
        }),
    }
}

#[async_trait]
impl JobHandlerTrait for DataSubmissionHandler {
    fn job_type(&self) -> JobType {
        JobType::DataSubmission
    }

    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        let mut m = da_metadata(job)?;
        let index = job.internal_id;
        let batch = load_snos_batch(self.ctx.database.as_ref(), index).await?;
        if m.block_number != batch.start_block {
            return Err(JobError::InvalidMetadata {
                job_type: job.job_type,
                internal_id: index,
                reason: format!(
                    "block_number {} is not the first block {} of SNOS batch {index}",
                    m.block_number, batch.start_block
                ),
            });
        }
        if self.ctx.calldata_da {
            let id = self.check_calldata_output(index).await?;
            m.tx_hash = Some(id.clone());
            job.metadata.specific = JobSpecificMetadata::Da(m);
            return Ok(id);
        }
        let version = StarknetVersion::parse(&batch.starknet_version).map_err(|e| {
            JobError::fatal_with(format!("SNOS batch {index}: unsupported Starknet version"), e)
        })?;
        let mut updates = Vec::with_capacity(batch.num_blocks as usize);
        for block in batch.start_block..=batch.end_block {
            let update = self
                .ctx
                .node
                .state_update(block)
                .await
                .map_err(|e| JobError::client(format!("state update of block {block}"), e))?;
            updates.push(update);
        }
        let (felts, blobs) = batch_blobs(
            &updates,
            batch.start_block,
            version,
            self.ctx.max_num_blobs,
            self.ctx.node.clone(),
        )
        .await?;
        let path = m.blob_data_path.clone().unwrap_or_else(|| blob_data_path(index));
        let data: Vec<u8> = blobs.concat();
        write_artifact(self.ctx.storage.as_ref(), &path, data.into(), "the blobs").await?;
        tracing::info!(
            snos_batch = index,
            blocks = %format!("{}..={}", batch.start_block, batch.end_block),
            felts = felts.len(),
            blobs = blobs.len(),
            %path,
            "Batch state diff encoded"
        );
        let external_id = self.ctx.da.publish_state_diff(blobs, &[0; 32]).await.map_err(|e| {
            JobError::client(format!("publishing the state diff of SNOS batch {index}"), e)
        })?;
        m.blob_data_path = Some(path);
        m.tx_hash = Some(external_id.clone());
        job.metadata.specific = JobSpecificMetadata::Da(m);
        Ok(external_id)
    }

    async fn verify_job(&self, job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        let id = job.external_id.to_string();
        if self.ctx.calldata_da && id == CALLDATA_DA {
            return Ok(JobVerificationStatus::Verified);
        }
        let status = self
            .ctx
            .da
            .verify_inclusion(&id)
            .await
            .map_err(|e| JobError::client(format!("checking the publication {id}"), e))?;
        Ok(match status {
            DaVerificationStatus::Pending => JobVerificationStatus::Pending,
            DaVerificationStatus::Verified => JobVerificationStatus::Verified,
            DaVerificationStatus::Rejected(r) => JobVerificationStatus::Rejected(r),
        })
    }

    fn attempts(&self) -> Attempts {
        Attempts::new(1, 3, Duration::from_secs(60)).polling(self.ctx.polling_override)
    }
}

// -- The trigger --

/// Creates DataSubmission jobs after ProofRegistration.
#[derive(Debug, Clone, Copy, Default)]
pub struct DataSubmissionTrigger;

#[async_trait]
impl JobTrigger for DataSubmissionTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::Stage(JobType::DataSubmission)
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let watermark = first_unsettled_snos_batch_index(&config).await?;
        let db = config.database();
        let done = db
            .get_jobs_without_successor(
                JobType::ProofRegistration,
                JobStatus::Completed,
                JobType::DataSubmission,
                None,
                watermark,
            )
            .await?;
        for job in done {
            let index = job.internal_id;
            let batch = db
                .get_snos_batches(SnosBatchQuery { indexes: vec![index], ..Default::default() })
                .await?
                .into_iter()
                .find(|b| b.index == index)
                .ok_or_else(|| {
                    TriggerError::Other(format!(
                        "SNOS batch {index} of ProofRegistration job {} does not exist",
                        job.id
                    ))
                })?;
            let m = DaMetadata {
                block_number: batch.start_block,
                blob_data_path: Some(blob_data_path(index)),
                tx_hash: None,
            };
            create_once(&config, JobType::DataSubmission, index, JobSpecificMetadata::Da(m))
                .await?;
        }
        Ok(())
    }
}

// -- Building the stage --

/// The DataSubmission handler (the node and DA clients of the pipeline) and trigger.
pub(crate) fn build(inputs: &StageInputs<'_>) -> StageWorkers {
    let StageInputs { params, clients, external } = *inputs;
    let mut ctx = DataSubmissionContext::new(
        external.node.clone(),
        external.da.clone(),
        clients.storage.clone(),
        clients.database.clone(),
    );
    ctx.max_num_blobs = params.batching.max_num_blobs;
    ctx.calldata_da = matches!(params.settlement, SettlementParams::Starknet(_));
    ctx.polling_override = params.service.verification_poll;
    workers(ctx)
}

/// The DataSubmission handler over `ctx` and the DataSubmission trigger.
pub fn workers(ctx: DataSubmissionContext) -> StageWorkers {
    (Arc::new(DataSubmissionHandler::new(ctx)), Arc::new(DataSubmissionTrigger))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use orchestrator_protocol::{
        compression::{encode::state_diff_to_felts, BYTES_PER_BLOB, FELTS_PER_BLOB},
        transform::blob_to_coefficients,
    };
    use starknet::core::types::{ContractStorageDiffItem, Felt, StateDiff, StorageEntry};

    use super::*;
    use crate::{
        config::EngineParams,
        core::client::{embedded, madara::memory::InMemoryMadara},
        types::{
            batch::{BouncerWeights, SnosBatch},
            jobs::{JobStatus, ProvingMetadata},
            Layer,
        },
        worker::{
            handler::JobHandlers,
            stages::data_submission::DataSubmissionTrigger,
            trigger::{JobTrigger, Triggers},
            Config,
        },
    };

    /// A DA layer that records what it was given.
    #[derive(Debug, Default)]
    struct RecordingDa {
        published: Mutex<Vec<Vec<Vec<u8>>>>,
    }

    #[async_trait]
    impl DaClient for RecordingDa {
        async fn publish_state_diff(
            &self,
            blobs: Vec<Vec<u8>>,
            _to: &[u8; 32],
        ) -> orchestrator_da_client_interface::DaResult<String> {
            self.check_blobs(&blobs)?;
            let mut p = self.published.lock().unwrap();
            p.push(blobs);
            Ok(format!("published-{}", p.len()))
        }

        async fn verify_inclusion(
            &self,
            id: &str,
        ) -> orchestrator_da_client_interface::DaResult<DaVerificationStatus> {
            Ok(if id.starts_with("published-") {
                DaVerificationStatus::Verified
            } else {
                DaVerificationStatus::Rejected(format!("unknown {id}"))
            })
        }
    }

    const VERSION: &str = "0.13.2";
    const CONTRACTS_PER_BLOCK: u64 = 20;
    const KEYS: u64 = 30;

    fn contract(block: u64, c: u64) -> Felt {
        Felt::from(0x10_0000 + block * 1000 + c)
    }

    fn block_diff(block: u64) -> StateDiff {
        let mut storage_diffs: Vec<ContractStorageDiffItem> = (0..CONTRACTS_PER_BLOCK)
            .map(|c| ContractStorageDiffItem {
                address: contract(block, c),
                storage_entries: (0..KEYS)
                    .map(|k| StorageEntry {
                        key: Felt::from(k + 1),
                        value: Felt::from(block * 100_000 + c * 100 + k + 1),
                    })
                    .collect(),
            })
            .collect();
        if block > 1 {
            // Overwrites key 1 of the first contract of block 1: only the last value counts.
            storage_diffs.push(ContractStorageDiffItem {
                address: contract(1, 0),
                storage_entries: vec![StorageEntry {
                    key: Felt::ONE,
                    value: Felt::from(0xbeef + block),
                }],
            });
        }
        StateDiff {
            storage_diffs,
            deprecated_declared_classes: vec![],
            declared_classes: vec![],
            deployed_contracts: vec![],
            replaced_classes: vec![],
            nonces: vec![],
        }
    }

    /// The squashed diff of blocks 1..=last, written by hand.
    fn expected_diff(last: u64) -> StateDiff {
        let mut storage_diffs = Vec::new();
        for block in 1..=last {
            for c in 0..CONTRACTS_PER_BLOCK {
                let entries = (0..KEYS)
                    .map(|k| {
                        let mut value = Felt::from(block * 100_000 + c * 100 + k + 1);
                        if block == 1 && c == 0 && k == 0 && last > 1 {
                            value = Felt::from(0xbeef + last);
                        }
                        StorageEntry { key: Felt::from(k + 1), value }
                    })
                    .collect();
                storage_diffs.push(ContractStorageDiffItem {
                    address: contract(block, c),
                    storage_entries: entries,
                });
            }
        }
        StateDiff {
            storage_diffs,
            deprecated_declared_classes: vec![],
            declared_classes: vec![],
            deployed_contracts: vec![],
            replaced_classes: vec![],
            nonces: vec![],
        }
    }

    fn decode(blob: &[u8]) -> Vec<Felt> {
        blob_to_coefficients(blob)
            .unwrap()
            .into_iter()
            .map(|fr| Felt::from_bytes_be(&fr.to_be_bytes()))
            .collect()
    }

    struct Setup {
        config: Arc<Config>,
        node: Arc<InMemoryMadara>,
        da: Arc<RecordingDa>,
        handler: DataSubmissionHandler,
        _dir: tempfile::TempDir,
    }

    /// Block 0 empty, blocks 1..=4 write 20 contracts × 30 keys each; SNOS batch 1 = 1..=4
    /// with a completed ProofRegistration job.
    async fn setup() -> Setup {
        let node = Arc::new(InMemoryMadara::new());
        node.push_block(VERSION, None);
        for b in 1..=4 {
            node.push_block(VERSION, Some(block_diff(b)));
        }
        let dir = tempfile::tempdir().unwrap();
        let clients =
            embedded::open(dir.path(), &embedded::EmbeddedOptions::default()).await.unwrap();
        let mut batch = SnosBatch::new(1, None, 1, VERSION, BouncerWeights::default());
        batch.end_block = 4;
        batch.num_blocks = 4;
        clients.database.create_snos_batch(batch).await.unwrap();
        let mut pr = JobItem::new(
            JobType::ProofRegistration,
            1,
            JobSpecificMetadata::Proving(ProvingMetadata::default()),
        );
        pr.status = JobStatus::Completed;
        clients.database.create_job(pr).await.unwrap();
        let da = Arc::new(RecordingDa::default());
        let ctx = DataSubmissionContext::new(
            node.clone(),
            da.clone(),
            clients.storage.clone(),
            clients.database.clone(),
        );
        let handler = DataSubmissionHandler::new(ctx.clone());
        let (handlers, triggers) =
            crate::worker::stages::register(workers(ctx), JobHandlers::new(), Triggers::new());
        let config =
            Arc::new(Config::new(Layer::L3, clients, handlers, triggers, EngineParams::default()));
        Setup { config, node, da, handler, _dir: dir }
    }

    async fn created_job(s: &Setup) -> JobItem {
        DataSubmissionTrigger.run(s.config.clone()).await.unwrap();
        s.config
            .database()
            .get_job_by_internal_id_and_type(1, JobType::DataSubmission)
            .await
            .unwrap()
            .expect("the trigger created the DataSubmission job")
    }

    #[tokio::test]
    async fn whole_batch_diff_is_encoded_into_two_blobs_stored_and_published() {
        let s = setup().await;
        let mut job = created_job(&s).await;
        let JobSpecificMetadata::Da(m) = &job.metadata.specific else { panic!("Da metadata") };
        assert_eq!(m.block_number, 1, "block_number is the batch's first block");
        assert_eq!(m.blob_data_path.as_deref(), Some("1/blob_data.txt"));
        // A second run creates nothing new.
        DataSubmissionTrigger.run(s.config.clone()).await.unwrap();

        let id = s.handler.process_job(&mut job).await.unwrap();
        assert_eq!(id, "published-1");

        let expected = state_diff_to_felts(&expected_diff(4), StarknetVersion::V0_13_2).unwrap();
        assert!(
            expected.len() > FELTS_PER_BLOB && expected.len() <= 2 * FELTS_PER_BLOB,
            "{} felts",
            expected.len()
        );

        let stored = s.config.storage().get_data("1/blob_data.txt").await.unwrap();
        assert_eq!(stored.len(), 2 * BYTES_PER_BLOB, "two blobs, concatenated");
        let published = s.da.published.lock().unwrap().clone();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].len(), 2);
        assert_eq!(
            published[0].concat(),
            stored.to_vec(),
            "the stored blobs are the published ones"
        );

        let mut decoded: Vec<Felt> = stored.chunks(BYTES_PER_BLOB).flat_map(decode).collect();
        assert!(decoded[expected.len()..].iter().all(|f| *f == Felt::ZERO), "zero padding");
        decoded.truncate(expected.len());
        assert_eq!(
            decoded, expected,
            "the blobs decode to the whole batch's squashed, encoded diff"
        );
        assert_eq!(decoded[0], Felt::from(4 * CONTRACTS_PER_BLOCK), "every block's contracts");

        let JobSpecificMetadata::Da(m) = &job.metadata.specific else { panic!("Da metadata") };
        assert_eq!(m.tx_hash.as_deref(), Some("published-1"));
        job.external_id = id.into();
        assert_eq!(s.handler.verify_job(&mut job).await.unwrap(), JobVerificationStatus::Verified);
    }

    #[tokio::test]
    async fn node_outage_is_retryable_and_nothing_is_published() {
        let s = setup().await;
        let mut job = created_job(&s).await;
        s.node.set_down(true);
        let e = s.handler.process_job(&mut job).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(s.da.published.lock().unwrap().is_empty());
        s.node.set_down(false);
        assert_eq!(s.handler.process_job(&mut job).await.unwrap(), "published-1");
    }

    #[tokio::test]
    async fn too_many_blobs_is_fatal() {
        let s = setup().await;
        let mut job = created_job(&s).await;
        let mut ctx = s.handler.ctx.clone();
        ctx.max_num_blobs = 1;
        let e = DataSubmissionHandler::new(ctx).process_job(&mut job).await.unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        assert!(s.da.published.lock().unwrap().is_empty());
    }
}
