//! Which layer the appchain is: an L2 settling on Ethereum or an L3 settling on Starknet.

use serde::{Deserialize, Serialize};

/// The appchain's layer; it selects the queues, workers and triggers that run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[derive(strum::Display, strum::EnumString, strum::VariantArray, strum::EnumMessage)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum Layer {
    /// Settles on Ethereum: SNOS batches are aggregated and settled with blobs.
    #[default]
    L2,
    /// Settles on Starknet: each SNOS batch is proven, registered and settled on its own.
    L3,
}
