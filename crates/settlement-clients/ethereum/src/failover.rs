//! Several Ethereum RPC endpoints behind one transport: requests go to one endpoint at a time
//! (the active one) and move to the next when it fails at the transport level — a connection
//! refused or cut, a timeout, an HTTP 5xx or 429, a body that is not JSON-RPC. A JSON-RPC error
//! answer (a reverted call, "nonce too low", an unknown transaction) is the node's answer and
//! goes back to the caller as it is: another endpoint would say the same.
//!
//! Which endpoint goes first is [`EndpointRotation`]'s: sticky on the endpoint that last
//! answered, so consecutive reads of the transaction manager (pending nonce, then fees, then
//! send, then receipts) see one node's view instead of alternating between two nodes that may
//! disagree about the latest block; the primary (the first URL) tried again
//! [`PRIMARY_RETRY_AFTER`] after it failed and active again as soon as it answers.
//!
//! Endpoints disagreeing cannot make the transaction manager settle twice: a nonce is only ever
//! reused for a replacement of the same update, and the core contract refuses an update that
//! does not continue from its settled block.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use alloy::{
    rpc::json_rpc::{RequestPacket, ResponsePacket},
    transports::{
        http::{reqwest::Client, Http},
        RpcError, TransportError, TransportErrorKind, TransportFut,
    },
};
use orchestrator_utils::failover::EndpointRotation;
pub use orchestrator_utils::failover::PRIMARY_RETRY_AFTER;
use tower::Service;
use url::Url;

/// One endpoint: its transport and its host (what the logs name; the URL may carry a key).
#[derive(Debug, Clone)]
struct Endpoint {
    http: Http<Client>,
    host: String,
}

/// The failover transport (see the module docs).
#[derive(Debug, Clone)]
pub struct FailoverTransport {
    endpoints: Arc<[Endpoint]>,
    rotation: Arc<EndpointRotation>,
}

impl FailoverTransport {
    /// A transport over `endpoints` (the first is the primary), each with its own HTTP client
    /// (its own credentials header).
    ///
    /// # Panics
    /// When `endpoints` is empty.
    pub fn new(endpoints: Vec<(Client, Url)>) -> Self {
        assert!(!endpoints.is_empty(), "a failover transport needs at least one endpoint");
        let endpoints = endpoints
            .into_iter()
            .map(|(client, url)| Endpoint {
                http: Http::with_client(client, url.clone()),
                host: format!(
                    "{}:{}",
                    url.host_str().unwrap_or("?"),
                    url.port_or_known_default().unwrap_or(0)
                ),
            })
            .collect();
        let endpoints: Arc<[Endpoint]> = endpoints;
        let rotation = Arc::new(EndpointRotation::new(endpoints.len(), PRIMARY_RETRY_AFTER));
        Self { endpoints, rotation }
    }

    /// The same transport trying the primary again after `after` instead of
    /// [`PRIMARY_RETRY_AFTER`].
    pub fn with_primary_retry_after(mut self, after: Duration) -> Self {
        self.rotation = Arc::new(EndpointRotation::new(self.endpoints.len(), after));
        self
    }

    /// Index of the endpoint requests go to first now.
    pub fn active(&self) -> usize {
        self.rotation.active()
    }

    /// Endpoint failures so far.
    pub fn failovers(&self) -> u64 {
        self.rotation.failovers()
    }

    /// Whether the first endpoint is local (polling intervals of the client).
    pub fn is_local(&self) -> bool {
        self.endpoints[0].http.guess_local()
    }

    fn succeeded(&self, index: usize) {
        if self.rotation.succeeded(index) {
            tracing::info!(target: "orch::settlement", endpoint = %self.endpoints[index].host, primary = index == 0, "Ethereum RPC: requests go to this endpoint now");
        }
    }

    fn failed(&self, index: usize, error: &TransportError) {
        self.rotation.failed(index);
        tracing::warn!(target: "orch::settlement", endpoint = %self.endpoints[index].host, error = %scrubbed(error), "Ethereum RPC endpoint failed");
    }

    async fn request(self, req: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let order = self.rotation.order();
        let last = order.len() - 1;
        for (attempt, index) in order.into_iter().enumerate() {
            let mut http = self.endpoints[index].http.clone();
            match http.call(req.clone()).await {
                Ok(response) => {
                    self.succeeded(index);
                    return Ok(response);
                }
                Err(e) if attempt < last && fails_over(&e) => self.failed(index, &e),
                Err(e) => {
                    if fails_over(&e) {
                        self.failed(index, &e);
                    }
                    return Err(e);
                }
            }
        }
        unreachable!("the order names at least one endpoint")
    }
}

/// Whether `error` is the endpoint's failure (try another) rather than the node's answer.
pub fn fails_over(error: &TransportError) -> bool {
    match error {
        RpcError::Transport(kind) => match kind {
            TransportErrorKind::HttpError(e)
            | TransportErrorKind::HttpErrorWithRetryAfter { error: e, .. } => {
                e.status >= 500 || e.status == 429
            }
            // Connection refused or reset, timeouts, a failed body read.
            TransportErrorKind::Custom(_) | TransportErrorKind::BackendGone => true,
            _ => false,
        },
        // A 200 whose body is not JSON-RPC: a broken proxy or an error page.
        RpcError::DeserError { .. } => true,
        _ => false,
    }
}

/// The error without any URL in it (a URL may carry an API key).
fn scrubbed(error: &TransportError) -> String {
    let text = error.to_string();
    text.split_whitespace()
        .map(|w| if w.contains("://") { "<url>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Service<RequestPacket> for FailoverTransport {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RequestPacket) -> Self::Future {
        Box::pin(self.clone().request(req))
    }
}

#[cfg(test)]
mod tests {
    use alloy::transports::HttpError;

    use super::*;

    fn http(status: u16) -> TransportError {
        RpcError::Transport(TransportErrorKind::HttpError(HttpError {
            status,
            body: String::new(),
        }))
    }

    #[test]
    fn endpoint_failures_fail_over_and_node_answers_do_not() {
        assert!(fails_over(&http(502)));
        assert!(fails_over(&http(503)));
        assert!(fails_over(&http(429)));
        assert!(!fails_over(&http(400)));
        assert!(!fails_over(&http(401)));
        assert!(fails_over(&TransportErrorKind::custom_str("connection refused")));
        assert!(!fails_over(&TransportErrorKind::missing_batch_response(
            alloy::rpc::json_rpc::Id::Number(1)
        )));
    }

    fn transport(n: usize) -> FailoverTransport {
        let urls: Vec<Url> =
            (0..n).map(|i| format!("http://127.0.0.1:{}/", 9000 + i).parse().unwrap()).collect();
        FailoverTransport::new(urls.into_iter().map(|u| (Client::new(), u)).collect())
    }

    #[test]
    fn endpoint_outcomes_move_the_active_endpoint() {
        let t = transport(3).with_primary_retry_after(Duration::from_secs(60));
        t.failed(0, &http(503));
        t.succeeded(1);
        assert_eq!((t.active(), t.rotation.order()), (1, vec![1, 0, 2]));
        assert_eq!(t.failovers(), 1);
    }

    #[test]
    fn logs_never_carry_the_url() {
        let e = TransportErrorKind::custom_str(
            "error sending request for url (https://eth.example/v3/SECRETKEY)",
        );
        let s = scrubbed(&e);
        assert!(!s.contains("SECRETKEY"), "{s}");
        assert!(s.contains("<url>"), "{s}");
    }
}
