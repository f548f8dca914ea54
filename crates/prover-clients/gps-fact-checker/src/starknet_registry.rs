//! The fact registry of a Starknet settlement layer (L3): `is_valid(fact: felt252) -> bool` on
//! a Cairo fact registry (`contracts/cairo`'s `FactRegistry`, or a verifier with the same
//! view), called through starknet-rs, and the fact an L3's core contract checks.
//!
//! The L3 fact is `poseidon([program_hash, poseidon(program_output)])` ([`l3_fact`]): what our
//! Cairo core contract requires in `update_state` (its program hash, the output of the proven
//! program) and what the L2 verification of a proof registers.

use std::fmt;

use async_trait::async_trait;
use orchestrator_utils::secret::credentials_headers;
use starknet::{
    core::{
        types::{BlockId, BlockTag, Felt, FunctionCall, StarknetError},
        utils::get_selector_from_name,
    },
    providers::{
        jsonrpc::{HttpTransport, JsonRpcClient},
        Provider, ProviderError,
    },
};
use starknet_types_core::hash::{Poseidon, StarkHash};
use url::Url;

use crate::onchain::{redact_urls, FactCheckError, FactRegistry, B256};

/// The fact a Starknet core contract checks for `program_output` of the program
/// `program_hash`: `poseidon([program_hash, poseidon(program_output)])`.
pub fn l3_fact(program_hash: Felt, program_output: &[Felt]) -> Felt {
    Poseidon::hash_array(&[program_hash, Poseidon::hash_array(program_output)])
}

/// `fact` as the 32-byte word the [`FactRegistry`] trait takes (big-endian).
pub fn felt_to_fact(fact: Felt) -> B256 {
    B256::from(fact.to_bytes_be())
}

/// The felt of a 32-byte `fact`.
///
/// # Errors
/// `InvalidFact` when the word is not below the Starknet prime (a keccak fact usually is not a
/// felt: it cannot be registered on Starknet).
pub fn fact_to_felt(fact: B256) -> Result<Felt, FactCheckError> {
    let bytes: [u8; 32] = fact.0;
    let felt = Felt::from_bytes_be(&bytes);
    if felt.to_bytes_be() != bytes {
        return Err(FactCheckError::InvalidFact(format!(
            "{fact} (not a Starknet felt: a Starknet fact registry cannot hold it)"
        )));
    }
    Ok(felt)
}

/// `is_valid(fact)` on a Cairo fact registry over Starknet JSON-RPC, read at the pre-confirmed
/// block: the state the core contract's next `update_state` executes against.
#[derive(Clone)]
pub struct StarknetFactRegistry {
    provider: JsonRpcClient<HttpTransport>,
    address: Felt,
    /// The RPC URL without credentials (scrubbed from errors all the same).
    rpc_url: Url,
}

impl fmt::Debug for StarknetFactRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The RPC URL's path may carry an API key: only the host is shown.
        f.debug_struct("StarknetFactRegistry")
            .field("address", &format_args!("{:#x}", self.address))
            .field("rpc_host", &self.rpc_url.host_str())
            .finish()
    }
}

impl StarknetFactRegistry {
    /// A checker of the registry at `address` through the Starknet RPC at `rpc_url` (its
    /// credentials, if any, sent as an `Authorization: Basic` header, never to the transport).
    pub fn new(rpc_url: Url, address: Felt) -> Self {
        let (url, headers) = credentials_headers(&rpc_url);
        // Building fails only when the TLS backend cannot start, where the transport's own
        // default client (`HttpTransport::new`) panics as well.
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("the TLS backend starts");
        let provider = JsonRpcClient::new(HttpTransport::new_with_client(url.clone(), http));
        Self { provider, address, rpc_url: url }
    }

    /// The registry contract.
    pub fn address(&self) -> Felt {
        self.address
    }

    /// Whether `fact` is registered.
    ///
    /// # Errors
    /// `Rpc` (retryable) when the node cannot be reached or fails; `Config` (not retryable)
    /// when there is no contract at the address, or it has no `is_valid` returning a bool.
    pub async fn is_registered(&self, fact: Felt) -> Result<bool, FactCheckError> {
        let call = FunctionCall {
            contract_address: self.address,
            // A constant ASCII name: always encodes.
            entry_point_selector: get_selector_from_name("is_valid").expect("ASCII name"),
            calldata: vec![fact],
        };
        let out = self
            .provider
            .call(call, BlockId::Tag(BlockTag::PreConfirmed))
            .await
            .map_err(|e| self.error(e))?;
        match out[..] {
            [v] if v == Felt::ZERO => Ok(false),
            [v] if v == Felt::ONE => Ok(true),
            _ => Err(FactCheckError::Config(format!(
                "is_valid on {:#x} answered {out:?}, not a bool: is it a fact registry?",
                self.address
            ))),
        }
    }

    fn error(&self, e: ProviderError) -> FactCheckError {
        let address = self.address;
        match e {
            ProviderError::StarknetError(StarknetError::ContractNotFound) => {
                FactCheckError::Config(format!(
                    "no contract at {address:#x} on the Starknet settlement layer: check the \
                     fact registry address (--atlantic-verifier-contract-address) and the RPC's \
                     chain"
                ))
            }
            ProviderError::StarknetError(StarknetError::EntrypointNotFound) => {
                FactCheckError::Config(format!(
                    "the contract at {address:#x} has no is_valid entry point: it is not a \
                     fact registry"
                ))
            }
            ProviderError::StarknetError(StarknetError::ContractError(data)) => {
                FactCheckError::Config(format!(
                    "is_valid on {address:#x} failed: {}",
                    redact_urls(&format!("{:?}", data.revert_error))
                ))
            }
            e => FactCheckError::Rpc {
                operation: "is_valid (Starknet)",
                reason: scrub(&self.rpc_url, &redact_urls(&e.to_string())),
            },
        }
    }
}

/// `msg` without the RPC host (its URL is already replaced by [`redact_urls`]).
fn scrub(url: &Url, msg: &str) -> String {
    match url.host_str() {
        Some(host) => match url.port() {
            Some(port) => msg.replace(&format!("{host}:{port}"), "<rpc host>"),
            None => msg.to_owned(),
        },
        None => msg.to_owned(),
    }
}

#[async_trait]
impl FactRegistry for StarknetFactRegistry {
    async fn is_valid(&self, fact: B256) -> Result<bool, FactCheckError> {
        self.is_registered(fact_to_felt(fact)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_l3_fact_is_poseidon_many_of_the_program_hash_and_the_output_hash() {
        // starknet-crypto's `poseidon_hash_many` is what Cairo's `poseidon_hash_span` computes.
        use starknet_crypto::poseidon_hash_many;
        let output: Vec<Felt> = (1..=5u64).map(|i| Felt::from(i * 7919)).collect();
        let program_hash = Felt::from(0x1234u16);
        let want = poseidon_hash_many(&[program_hash, poseidon_hash_many(&output)]);
        assert_eq!(l3_fact(program_hash, &output), want);
        // The L2 fact is the same formula with the bootloader's program hash.
        let l2 = crate::fact::l2::l2_fact(&output);
        assert_eq!(
            felt_to_fact(l3_fact(crate::fact::l2::BOOTLOADER_PROGRAM_HASH, &output)).0,
            l2.0
        );
    }

    #[test]
    fn facts_round_trip_and_words_above_the_prime_are_refused() {
        let fact = Felt::from_hex_unchecked("0x7a3c");
        assert_eq!(fact_to_felt(felt_to_fact(fact)).unwrap(), fact);
        assert_eq!(fact_to_felt(felt_to_fact(Felt::MAX)).unwrap(), Felt::MAX);
        let err = fact_to_felt(B256::repeat_byte(0xff)).unwrap_err();
        assert!(matches!(err, FactCheckError::InvalidFact(_)), "{err}");
        assert!(err.to_string().contains("not a Starknet felt"), "{err}");
    }

    #[test]
    fn debug_shows_the_host_not_the_path_or_credentials() {
        let r = StarknetFactRegistry::new(
            "https://user:pw@node.example.com/rpc/SECRETKEY".parse().unwrap(),
            Felt::from(0xabcu16),
        );
        let shown = format!("{r:?}");
        assert!(shown.contains("0xabc") && shown.contains("node.example.com"), "{shown}");
        assert!(!shown.contains("SECRETKEY") && !shown.contains("pw"), "{shown}");
    }
}
