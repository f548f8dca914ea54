//! What shadow mode needs from the Ethereum client: the state update it would send, decoded
//! and with a fee estimate, without signing anything; and the state update a transaction of the
//! live operator carried (`eth_getTransactionByHash`: its input and `blobVersionedHashes`; the
//! receipt: the fee it paid), decoded the same way so the two compare field by field.

use alloy::{
    consensus::Transaction as _, primitives::B256, providers::Provider, sol_types::SolCall,
};
use orchestrator_settlement_client_interface::{
    CallField, SettlementError, SettlementResult, StateUpdateCall, Word,
};

use crate::{
    calldata::StarknetValidityContract::{updateStateCall, updateStateKzgDACall},
    fees::{fresh_caps, gas_limit_from_estimate, BLOB_GAS_PER_BLOB, PRIORITY_FEE_WEI},
    EthereumSettlementClient,
};

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// The function and arguments of core contract calldata: `updateStateKzgDA` and `updateState`
/// by their ABI; anything else as `unknown 0x<selector>` with its words (a `calldata` field of
/// 32-byte words, the last one short when the length is not a multiple of 32).
pub fn decode_state_update_call(input: &[u8]) -> (String, Vec<CallField>) {
    let words = |values: Vec<String>, name: &str| CallField { name: name.to_owned(), values };
    if let Ok(c) = updateStateKzgDACall::abi_decode(input) {
        let output = c.programOutput.iter().map(|w| hex0x(&w.to_be_bytes::<32>())).collect();
        let proofs = c.kzgProofs.iter().map(|p| hex0x(p)).collect();
        return (
            "updateStateKzgDA".to_owned(),
            vec![words(output, "programOutput"), words(proofs, "kzgProofs")],
        );
    }
    if let Ok(c) = updateStateCall::abi_decode(input) {
        let output = c.programOutput.iter().map(|w| hex0x(&w.to_be_bytes::<32>())).collect();
        return (
            "updateState".to_owned(),
            vec![
                words(output, "programOutput"),
                words(vec![hex0x(&c.onchainDataHash.to_be_bytes::<32>())], "onchainDataHash"),
                words(vec![hex0x(&c.onchainDataSize.to_be_bytes::<32>())], "onchainDataSize"),
            ],
        );
    }
    let (selector, rest) = input.split_at(input.len().min(4));
    (
        format!("unknown {}", hex0x(selector)),
        vec![words(rest.chunks(32).map(hex0x).collect(), "calldata")],
    )
}

impl EthereumSettlementClient {
    /// The `updateStateKzgDA` transaction this client would send for the update, decoded,
    /// with its blobs' versioned hashes and the fee it would pay at the current fees
    /// (`eth_estimateGas` × (base fee + priority fee) + blob gas × blob base fee). Validation
    /// is [`Self::prepare`]'s; nothing is signed or sent. A refused gas estimate (the update
    /// already landed, or the estimate reverts) leaves the fee out with the node's reason.
    ///
    /// # Errors
    /// `InvalidInput` when the update does not validate; `Rpc` when the fees cannot be read.
    pub async fn preview_blob_update(
        &self,
        program_output: &[Word],
        blobs: &[Vec<u8>],
    ) -> SettlementResult<StateUpdateCall> {
        let prepared = self.prepare(program_output, blobs)?;
        let (function, fields) = decode_state_update_call(&prepared.calldata);
        // The fees and the request a live send would use at its first attempt.
        let (base, blob_base) = self.current_fees().await?;
        let caps = fresh_caps(base, blob_base, 0);
        let request = self.blob_request(&prepared, caps, self.chain_id().await?);
        let blob_fee =
            (blobs.len() as u128).saturating_mul(BLOB_GAS_PER_BLOB).saturating_mul(blob_base);
        let (fee_wei, fee_note) = match self.provider().estimate_gas(request).await {
            Ok(gas) => (
                Some(
                    u128::from(gas)
                        .saturating_mul(base.saturating_add(PRIORITY_FEE_WEI))
                        .saturating_add(blob_fee),
                ),
                Some(format!(
                    "estimate: {gas} gas (limit {}) at base fee {base} wei + priority {PRIORITY_FEE_WEI} wei, \
                     {} blob(s) at blob base fee {blob_base} wei",
                    gas_limit_from_estimate(gas),
                    blobs.len()
                )),
            ),
            Err(e) => (
                None,
                Some(format!(
                    "no gas estimate (the node refused it: {}); blob gas alone: {blob_fee} wei",
                    self.rpc(e)
                )),
            ),
        };
        Ok(StateUpdateCall {
            function,
            fields,
            blob_versioned_hashes: prepared
                .versioned_hashes
                .iter()
                .map(|h| hex0x(h.as_slice()))
                .collect(),
            calldata_len: prepared.calldata.len(),
            fee_wei,
            fee_note,
            tx_hash: None,
        })
    }

    /// The state update transaction `tx_hash` carried, decoded, with its blobs' versioned
    /// hashes and the fee it paid (gas used × effective gas price + blob gas used × blob gas
    /// price) once it has a receipt.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed hash; `Rpc` when the node fails or does not know it.
    pub async fn landed_state_update(&self, tx_hash: &str) -> SettlementResult<StateUpdateCall> {
        let hash: B256 = tx_hash.parse().map_err(|_| {
            SettlementError::InvalidInput(format!("{tx_hash} is not a transaction hash"))
        })?;
        let tx = self
            .provider()
            .get_transaction_by_hash(hash)
            .await
            .map_err(|e| self.rpc(e))?
            .ok_or_else(|| {
                SettlementError::Rpc(format!("transaction {tx_hash} is unknown to the node"))
            })?;
        let input = tx.input().to_vec();
        let hashes = tx
            .blob_versioned_hashes()
            .map(|h| h.iter().map(|h| hex0x(h.as_slice())).collect())
            .unwrap_or_default();
        let receipt =
            self.provider().get_transaction_receipt(hash).await.map_err(|e| self.rpc(e))?;
        let (fee_wei, fee_note) = match receipt {
            Some(r) => (
                Some(
                    u128::from(r.gas_used).saturating_mul(r.effective_gas_price).saturating_add(
                        u128::from(r.blob_gas_used.unwrap_or(0))
                            .saturating_mul(r.blob_gas_price.unwrap_or(0)),
                    ),
                ),
                None,
            ),
            None => (None, Some(format!("{tx_hash} has no receipt yet"))),
        };
        let (function, fields) = decode_state_update_call(&input);
        Ok(StateUpdateCall {
            function,
            fields,
            blob_versioned_hashes: hashes,
            calldata_len: input.len(),
            fee_wei,
            fee_note,
            tx_hash: Some(format!("{hash:#x}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Bytes, U256};

    use super::*;
    use crate::calldata::update_state_calldata;

    #[test]
    fn calls_decode_by_their_abi_and_anything_else_by_words() {
        let kzg = updateStateKzgDACall {
            programOutput: vec![U256::from(5u8), U256::from(7u8)],
            kzgProofs: vec![Bytes::from(vec![0xaa; 48])],
        }
        .abi_encode();
        let (f, fields) = decode_state_update_call(&kzg);
        assert_eq!(f, "updateStateKzgDA");
        assert_eq!(fields[0].name, "programOutput");
        assert_eq!(fields[0].values[1], format!("0x{}07", "00".repeat(31)));
        assert_eq!(fields[1].values, vec![format!("0x{}", "aa".repeat(48))]);

        let plain = update_state_calldata(&[[1; 32]], [2; 32], [3; 32]);
        let (f, fields) = decode_state_update_call(&plain);
        assert_eq!(f, "updateState");
        assert_eq!(fields[1].values, vec![format!("0x{}", "02".repeat(32))]);

        let (f, fields) = decode_state_update_call(&[0xde, 0xad, 0xbe, 0xef, 1, 2]);
        assert_eq!(f, "unknown 0xdeadbeef");
        assert_eq!(fields[0].values, vec!["0x0102".to_owned()]);
    }
}
