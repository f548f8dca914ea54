//! State diff → blob felts: squash, stateful compression (aliases), stateless compression,
//! blob layout and the EIP-4844 evaluation transform.
//!
//! The stages, in pipeline order (see `docs/da-encoding.md`):
//! 1. [`squash`]: several blocks' state updates → one diff against the state before the range.
//! 2. [`encode::fill_missing_nonces`] (0.13.2 only): nonces the `da_word` needs.
//! 3. [`stateful`] (≥ 0.13.4): addresses and keys → aliases.
//! 4. [`encode`]: diff → felts (`da_word` per contract).
//! 5. [`stateless`] (≥ 0.13.3): felts → compressed felts (cairo-lang's `compression.py`).
//! 6. [`transform`](crate::transform): felts → 4096-felt chunks → blobs in evaluation form.
//!
//! Chain state the diffs do not carry is read through [`state::StateReader`].

pub mod encode;
pub mod io;
pub mod squash;
pub mod state;
pub mod stateful;
pub mod stateless;
pub mod version;

use starknet_core::types::{Felt, StateDiff, StateUpdate};

use crate::transform;
pub use crate::transform::{Blob, BYTES_PER_BLOB, FELTS_PER_BLOB};
pub use state::{MemoryState, StateReadError, StateReader};
pub use version::StarknetVersion;

/// The default maximum number of blobs per Ethereum transaction.
pub const DEFAULT_MAX_NUM_BLOBS: usize = 6;

/// A failure anywhere in the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// Squashing failed.
    #[error("squash: {0}")]
    Squash(#[from] squash::SquashError),
    /// Building the felts failed.
    #[error("encoding: {0}")]
    Encode(#[from] encode::EncodeError),
    /// Aliasing failed.
    #[error("stateful compression: {0}")]
    Stateful(#[from] stateful::StatefulError),
    /// Compressing failed.
    #[error("stateless compression: {0}")]
    Compression(#[from] stateless::CompressionError),
    /// The transform failed (e.g. too many blobs).
    #[error("blobs: {0}")]
    Transform(#[from] transform::TransformError),
    /// Compression was asked for a version without it.
    #[error("Starknet {0} has no DA compression (it starts with 0.13.3)")]
    CompressionUnsupported(StarknetVersion),
}

/// How to encode a diff into blob felts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// The Starknet version whose rules apply.
    pub version: StarknetVersion,
    /// Whether to compress: stateful (aliases, ≥ 0.13.4) and stateless (≥ 0.13.3).
    pub compress: bool,
}

impl EncodeOptions {
    /// The options the OS of `version` uses: compression whenever the version has it.
    pub fn for_version(version: StarknetVersion) -> Self {
        Self { version, compress: version.supports_stateless_compression() }
    }
}

/// One diff → the felts that go into blobs (before the transform).
///
/// `block` is the last block of the diff's range: nonces (0.13.2) and aliases (≥ 0.13.4) are
/// read there.
pub async fn diff_to_blob_felts(
    diff: &StateDiff,
    block: u64,
    options: EncodeOptions,
    reader: &dyn StateReader,
) -> Result<Vec<Felt>, PipelineError> {
    let version = options.version;
    if options.compress && !version.supports_stateless_compression() {
        return Err(PipelineError::CompressionUnsupported(version));
    }
    let mut diff = diff.clone();
    encode::fill_missing_nonces(&mut diff, block, version, reader).await?;
    if options.compress && version.uses_stateful_compression() {
        diff = stateful::alias_compress(&diff, block, reader).await?;
    }
    let felts = encode::state_diff_to_felts(&diff, version)?;
    if options.compress {
        Ok(stateless::compress(&felts)?)
    } else {
        Ok(felts)
    }
}

/// What the pipeline produced for a range of blocks.
#[derive(Debug, Clone)]
pub struct PipelineOutput {
    /// The squashed state update (before aliases).
    pub squashed: StateUpdate,
    /// The felts put into blobs (compressed when the version compresses).
    pub felts: Vec<Felt>,
    /// The blobs (evaluation form, 131072 bytes each).
    pub blobs: Vec<Blob>,
}

/// The whole pipeline for the blocks `first_block ..= first_block + updates.len() - 1`:
/// squash against `first_block - 1`, encode with the rules of `version` (compressing when it
/// does), and split into at most `max_num_blobs` blobs.
pub async fn state_updates_to_blobs(
    updates: &[StateUpdate],
    first_block: u64,
    version: StarknetVersion,
    max_num_blobs: usize,
    reader: &dyn StateReader,
) -> Result<PipelineOutput, PipelineError> {
    let squashed =
        squash::squash_state_updates(updates, first_block.checked_sub(1), reader).await?;
    let last_block = first_block + (updates.len() as u64).saturating_sub(1);
    let felts = diff_to_blob_felts(
        &squashed.state_diff,
        last_block,
        EncodeOptions::for_version(version),
        reader,
    )
    .await?;
    let blobs = transform::felts_to_blobs(&felts, max_num_blobs)?;
    Ok(PipelineOutput { squashed, felts, blobs })
}
