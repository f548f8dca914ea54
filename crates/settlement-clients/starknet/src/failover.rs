//! Several Starknet RPC endpoints behind one starknet-rs transport (`--starknet-rpc-url a,b`):
//! each request goes to the active endpoint and moves to the next when it fails at the
//! transport level — no answer (refused, cut, timed out) or an answer that is not JSON-RPC (an
//! HTTP 5xx or 429 error page, a broken proxy). A JSON-RPC error answer (a reverted invoke, an
//! unknown transaction) is the node's answer and is returned as it is. Which endpoint goes
//! first is [`EndpointRotation`]'s: sticky on the endpoint that last answered, the primary
//! tried again [`PRIMARY_RETRY_AFTER`] after it failed.

use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_utils::failover::{EndpointRotation, PRIMARY_RETRY_AFTER};
use serde::{de::DeserializeOwned, Serialize};
use starknet::providers::{
    jsonrpc::{
        HttpTransport, HttpTransportError, JsonRpcMethod, JsonRpcResponse, JsonRpcTransport,
    },
    ProviderRequestData,
};

/// The failover transport (see the module docs).
#[derive(Debug, Clone)]
pub struct FailoverHttpTransport {
    /// Each endpoint's transport and its `host:port` (what logs show; a URL may carry a key).
    endpoints: Arc<[(HttpTransport, String)]>,
    rotation: Arc<EndpointRotation>,
}

impl FailoverHttpTransport {
    /// A transport over `endpoints` (the first is the primary), each named by `host:port`.
    ///
    /// # Panics
    /// When `endpoints` is empty.
    pub fn new(endpoints: Vec<(HttpTransport, String)>) -> Self {
        assert!(!endpoints.is_empty(), "a failover transport needs at least one endpoint");
        let rotation = Arc::new(EndpointRotation::new(endpoints.len(), PRIMARY_RETRY_AFTER));
        Self { endpoints: endpoints.into(), rotation }
    }

    /// Index of the endpoint requests go to first now.
    pub fn active(&self) -> usize {
        self.rotation.active()
    }

    fn succeeded(&self, index: usize) {
        if self.rotation.succeeded(index) {
            tracing::info!(target: "orch::settlement", endpoint = %self.endpoints[index].1, primary = index == 0, "Starknet RPC: requests go to this endpoint now");
        }
    }

    fn failed(&self, index: usize, error: &HttpTransportError) {
        self.rotation.failed(index);
        // reqwest's errors name the URL: only the kind is logged.
        let kind = match error {
            HttpTransportError::Reqwest(e) if e.is_timeout() => "timeout",
            HttpTransportError::Reqwest(e) if e.is_connect() => "connection failed",
            HttpTransportError::Reqwest(_) => "HTTP failure",
            _ => "answer not JSON-RPC",
        };
        tracing::warn!(target: "orch::settlement", endpoint = %self.endpoints[index].1, error = kind, "Starknet RPC endpoint failed");
    }

    /// What to do with endpoint `index`'s `result` (`last`: no endpoint is left to try):
    /// `Some` ends the request with it, `None` moves on to the next endpoint.
    fn settle<T>(
        &self,
        index: usize,
        result: Result<T, HttpTransportError>,
        last: bool,
    ) -> Option<Result<T, HttpTransportError>> {
        match result {
            Ok(answer) => {
                self.succeeded(index);
                Some(Ok(answer))
            }
            Err(e) if fails_over(&e) => {
                self.failed(index, &e);
                last.then_some(Err(e))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// Whether `error` is the endpoint's failure (try another) rather than the node's answer.
pub fn fails_over(error: &HttpTransportError) -> bool {
    matches!(error, HttpTransportError::Reqwest(_) | HttpTransportError::Json(_))
}

#[async_trait]
impl JsonRpcTransport for FailoverHttpTransport {
    type Error = HttpTransportError;

    async fn send_request<P, R>(
        &self,
        method: JsonRpcMethod,
        params: P,
    ) -> Result<JsonRpcResponse<R>, Self::Error>
    where
        P: Serialize + Send + Sync,
        R: DeserializeOwned + Send,
    {
        let order = self.rotation.order();
        let last = order.len() - 1;
        for (attempt, index) in order.into_iter().enumerate() {
            let result = self.endpoints[index].0.send_request(method, &params).await;
            if let Some(done) = self.settle(index, result, attempt == last) {
                return done;
            }
        }
        unreachable!("the last endpoint's result ends the request")
    }

    async fn send_requests<R>(
        &self,
        requests: R,
    ) -> Result<Vec<JsonRpcResponse<serde_json::Value>>, Self::Error>
    where
        R: AsRef<[ProviderRequestData]> + Send + Sync,
    {
        let requests = requests.as_ref();
        let order = self.rotation.order();
        let last = order.len() - 1;
        for (attempt, index) in order.into_iter().enumerate() {
            let result = self.endpoints[index].0.send_requests(requests).await;
            if let Some(done) = self.settle(index, result, attempt == last) {
                return done;
            }
        }
        unreachable!("the last endpoint's result ends the request")
    }
}
