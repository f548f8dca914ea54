//! Starknet DA: on an L3 settling on Starknet the state diff is part of the settlement
//! calldata, so publishing only validates and returns [`NOT_APPLICABLE`] and verification is
//! immediate. This is the seam the L3 issue extends (a real calldata publication and its
//! inclusion check).

use async_trait::async_trait;
use orchestrator_da_client_interface::{DaClient, DaResult, DaVerificationStatus, NOT_APPLICABLE};

/// DA on Starknet (calldata of the settlement transaction).
#[derive(Debug, Clone, Default)]
pub struct StarknetDaClient;

#[async_trait]
impl DaClient for StarknetDaClient {
    async fn publish_state_diff(&self, blobs: Vec<Vec<u8>>, _to: &[u8; 32]) -> DaResult<String> {
        self.check_blobs(&blobs)?;
        Ok(NOT_APPLICABLE.to_owned())
    }

    async fn verify_inclusion(&self, _external_id: &str) -> DaResult<DaVerificationStatus> {
        Ok(DaVerificationStatus::Verified)
    }
}
