//! The core contract's past state updates, read from its `LogStateUpdate` events
//! (`eth_getLogs` on the core contract, page by page): what `orchestrator recover` rebuilds a
//! lost database from.

use alloy::{
    primitives::I256,
    providers::Provider,
    rpc::types::{Filter, Log},
    sol,
    sol_types::SolEvent,
};
use orchestrator_settlement_client_interface::{
    SettledStateUpdate, SettlementError, SettlementResult,
};

use crate::EthereumSettlementClient;

sol! {
    /// The event the core contract emits after every accepted state update.
    event LogStateUpdate(uint256 globalRoot, int256 blockNumber, uint256 blockHash);
}

/// Blocks per `eth_getLogs` query: the range most public providers accept.
pub const LOG_PAGE_BLOCKS: u64 = 10_000;

/// The state update a `LogStateUpdate` log reports; an error naming the log when it does not
/// decode or its block number is negative.
pub fn settled_update_of(log: &Log) -> SettlementResult<SettledStateUpdate> {
    let tx = log.transaction_hash.map(|h| h.to_string()).unwrap_or_default();
    let decoded = LogStateUpdate::decode_log_data(log.data()).map_err(|e| {
        SettlementError::Rpc(format!("LogStateUpdate of transaction {tx} does not decode: {e}"))
    })?;
    let block_number: I256 = decoded.blockNumber;
    let block_number = u64::try_from(block_number).map_err(|_| {
        SettlementError::Rpc(format!(
            "LogStateUpdate of transaction {tx} reports block number {block_number}, not a block"
        ))
    })?;
    Ok(SettledStateUpdate {
        block_number,
        state_root: decoded.globalRoot.to_be_bytes(),
        block_hash: decoded.blockHash.to_be_bytes(),
        tx_hash: tx,
        settlement_block: log.block_number.unwrap_or_default(),
    })
}

impl EthereumSettlementClient {
    /// Every `LogStateUpdate` of the core contract from L1 block `from_block` to the latest
    /// block, oldest first, in `eth_getLogs` queries of at most `page_blocks` blocks.
    ///
    /// # Errors
    /// `Rpc` when the node fails or a log does not decode.
    pub async fn settled_state_updates_paged(
        &self,
        from_block: u64,
        page_blocks: u64,
    ) -> SettlementResult<Vec<SettledStateUpdate>> {
        let page_blocks = page_blocks.max(1);
        let latest = self.provider().get_block_number().await.map_err(|e| self.rpc(e))?;
        let mut out = Vec::new();
        let mut start = from_block;
        while start <= latest {
            let end = start.saturating_add(page_blocks - 1).min(latest);
            let filter = Filter::new()
                .address(self.config().core_contract)
                .event_signature(LogStateUpdate::SIGNATURE_HASH)
                .from_block(start)
                .to_block(end);
            let logs = self.provider().get_logs(&filter).await.map_err(|e| {
                self.rpc(format!("eth_getLogs of the core contract, blocks {start}..={end}: {e}"))
            })?;
            for log in logs.iter().filter(|l| !l.removed) {
                out.push(settled_update_of(log)?);
            }
            start = end + 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256};

    use super::*;

    fn log(block_number: i64) -> Log {
        let event = LogStateUpdate {
            globalRoot: U256::from(7u8),
            blockNumber: I256::try_from(block_number).unwrap(),
            blockHash: U256::from(9u8),
        };
        Log {
            inner: alloy::primitives::Log { address: Address::ZERO, data: event.encode_log_data() },
            transaction_hash: Some(B256::repeat_byte(0xab)),
            block_number: Some(12),
            ..Log::default()
        }
    }

    #[test]
    fn logs_decode_to_their_update_and_a_negative_block_is_refused() {
        let u = settled_update_of(&log(41)).unwrap();
        assert_eq!(u.block_number, 41);
        assert_eq!(u.state_root, U256::from(7u8).to_be_bytes::<32>());
        assert_eq!(u.block_hash, U256::from(9u8).to_be_bytes::<32>());
        assert_eq!(u.tx_hash, format!("0x{}", "ab".repeat(32)));
        assert_eq!(u.settlement_block, 12);
        let e = settled_update_of(&log(-1)).unwrap_err().to_string();
        assert!(e.contains("block number -1") && e.contains("abab"), "{e}");
        let mut garbage = log(1);
        garbage.inner.data = alloy::primitives::LogData::new_unchecked(vec![], vec![1, 2].into());
        let e = settled_update_of(&garbage).unwrap_err().to_string();
        assert!(e.contains("does not decode"), "{e}");
    }
}
