//! Ethereum DA: blobs travel inside the StateTransition transaction (`updateStateKzgDA`), so
//! publishing only validates and returns [`NOT_APPLICABLE`]. Verification of an id that is a
//! transaction hash really checks the receipt: mined, succeeded, and carrying blobs.

use alloy::{
    primitives::B256,
    providers::{Provider, RootProvider},
    rpc::client::RpcClient,
    transports::http::reqwest::Client,
};
use async_trait::async_trait;
use orchestrator_da_client_interface::{
    DaClient, DaError, DaResult, DaVerificationStatus, NOT_APPLICABLE,
};
use orchestrator_utils::secret::credentials_headers;
use url::Url;

/// DA on Ethereum blobs.
#[derive(Clone)]
pub struct EthereumDaClient {
    provider: RootProvider,
    host: String,
}

impl std::fmt::Debug for EthereumDaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry an API key: only the host prints.
        f.debug_struct("EthereumDaClient").field("rpc_host", &self.host).finish()
    }
}

impl EthereumDaClient {
    /// A client of the node at `rpc_url`. Credentials in the URL
    /// (`http://user:password@host/`) go in an `Authorization: Basic` header of every request;
    /// the transport, which records its URL in a DEBUG span, gets the URL without them.
    ///
    /// # Errors
    /// The credentials do not fit in a header, or the HTTP client cannot be built.
    pub fn new(rpc_url: Url) -> DaResult<Self> {
        let host = rpc_url.host_str().unwrap_or("node").to_owned();
        let (url, headers) = credentials_headers(&rpc_url);
        let client = Client::builder().default_headers(headers).build().map_err(|e| {
            DaError::Rpc(format!("cannot build the HTTP client of the Ethereum DA RPC: {e}"))
        })?;
        Ok(Self { provider: RootProvider::new(RpcClient::new_http_with_client(client, url)), host })
    }
}

#[async_trait]
impl DaClient for EthereumDaClient {
    async fn publish_state_diff(&self, blobs: Vec<Vec<u8>>, _to: &[u8; 32]) -> DaResult<String> {
        self.check_blobs(&blobs)?;
        Ok(NOT_APPLICABLE.to_owned())
    }

    async fn verify_inclusion(&self, external_id: &str) -> DaResult<DaVerificationStatus> {
        if external_id == NOT_APPLICABLE {
            return Ok(DaVerificationStatus::Verified);
        }
        let hash: B256 = external_id.parse().map_err(|_| {
            DaError::InvalidInput(format!("{external_id} is neither NA nor a transaction hash"))
        })?;
        let receipt = self.provider.get_transaction_receipt(hash).await.map_err(|e| {
            DaError::Rpc(format!(
                "receipt of {external_id} from {}: {}",
                self.host,
                e.to_string().replace(self.host.as_str(), "node")
            ))
        })?;
        Ok(match receipt {
            None => DaVerificationStatus::Pending,
            Some(r) if !r.status() => {
                DaVerificationStatus::Rejected(format!("{external_id} reverted"))
            }
            Some(r) if r.blob_gas_used.unwrap_or(0) == 0 => {
                DaVerificationStatus::Rejected(format!("{external_id} carries no blobs"))
            }
            Some(_) => DaVerificationStatus::Verified,
        })
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_da_client_interface::Retryable;

    use super::*;

    #[tokio::test]
    async fn publish_validates_and_returns_na() {
        let c = EthereumDaClient::new("http://127.0.0.1:1".parse().unwrap()).unwrap();
        assert_eq!(c.publish_state_diff(vec![vec![0; 131_072]], &[0; 32]).await.unwrap(), "NA");
        assert!(c.publish_state_diff(vec![vec![0; 131_072]; 7], &[0; 32]).await.is_err());
        assert!(c.publish_state_diff(vec![vec![0; 10]], &[0; 32]).await.is_err());
        assert_eq!(c.verify_inclusion("NA").await.unwrap(), DaVerificationStatus::Verified);
        assert!(matches!(c.verify_inclusion("bad").await, Err(DaError::InvalidInput(_))));
        let down = c.verify_inclusion(&format!("0x{}", "11".repeat(32))).await.unwrap_err();
        assert!(down.is_retryable());
    }
}
