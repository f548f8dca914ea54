//! The Cairo core contract's past state updates, read from its `LogStateUpdate` events
//! (`starknet_getEvents` on the core contract, by block ranges and continuation tokens): what
//! `orchestrator recover` rebuilds a lost database from.

use orchestrator_settlement_client_interface::{
    SettledStateUpdate, SettlementError, SettlementResult,
};
use starknet::{
    core::{
        types::{BlockId, EmittedEvent, EventFilter, Felt},
        utils::get_selector_from_name,
    },
    providers::Provider,
};

use crate::StarknetSettlementClient;

/// Blocks per `starknet_getEvents` range.
pub const EVENT_PAGE_BLOCKS: u64 = 10_000;
/// Events per `starknet_getEvents` answer (the continuation token fetches the rest).
pub const EVENT_CHUNK_SIZE: u64 = 1_000;

/// The key of the `LogStateUpdate` event (the selector of its name).
pub fn log_state_update_key() -> Felt {
    // A constant ASCII name always encodes.
    get_selector_from_name("LogStateUpdate").expect("an ASCII event name")
}

/// The state update a `LogStateUpdate` event reports (`data = [state_root, block_number,
/// block_hash]`); an error naming the transaction when it has another shape.
pub fn settled_update_of(event: &EmittedEvent) -> SettlementResult<SettledStateUpdate> {
    let tx = format!("{:#x}", event.transaction_hash);
    let [state_root, block_number, block_hash] = event.data[..] else {
        return Err(SettlementError::Rpc(format!(
            "LogStateUpdate of transaction {tx} has {} data felts, expected 3 (state_root, \
             block_number, block_hash)",
            event.data.len()
        )));
    };
    let block_number = u64::try_from(block_number).map_err(|_| {
        SettlementError::Rpc(format!(
            "LogStateUpdate of transaction {tx} reports block number {block_number:#x}, not a block"
        ))
    })?;
    Ok(SettledStateUpdate {
        block_number,
        state_root: state_root.to_bytes_be(),
        block_hash: block_hash.to_bytes_be(),
        tx_hash: tx,
        settlement_block: event.block_number.unwrap_or_default(),
    })
}

impl StarknetSettlementClient {
    /// Every `LogStateUpdate` of the core contract from Starknet block `from_block` to the
    /// latest block, oldest first: ranges of at most `page_blocks` blocks, each read in chunks
    /// of [`EVENT_CHUNK_SIZE`] events with its continuation token.
    ///
    /// # Errors
    /// `Rpc` when the node fails or an event has another shape.
    pub async fn settled_state_updates_paged(
        &self,
        from_block: u64,
        page_blocks: u64,
    ) -> SettlementResult<Vec<SettledStateUpdate>> {
        let page_blocks = page_blocks.max(1);
        let latest = self.provider().block_number().await.map_err(|e| self.provider_error(e))?;
        let key = log_state_update_key();
        let mut out = Vec::new();
        let mut start = from_block;
        while start <= latest {
            let end = start.saturating_add(page_blocks - 1).min(latest);
            let filter = EventFilter {
                from_block: Some(BlockId::Number(start)),
                to_block: Some(BlockId::Number(end)),
                address: Some(self.config().core_contract_address),
                keys: Some(vec![vec![key]]),
            };
            let mut token = None;
            loop {
                let page = self
                    .provider()
                    .get_events(filter.clone(), token.take(), EVENT_CHUNK_SIZE)
                    .await
                    .map_err(|e| self.provider_error(e))?;
                for event in &page.events {
                    out.push(settled_update_of(event)?);
                }
                match page.continuation_token {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
            start = end + 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: Vec<Felt>) -> EmittedEvent {
        EmittedEvent {
            from_address: Felt::ONE,
            keys: vec![log_state_update_key()],
            data,
            block_hash: None,
            block_number: Some(12),
            transaction_hash: Felt::from(0xabcu64),
        }
    }

    #[test]
    fn events_decode_to_their_update_and_bad_shapes_name_the_transaction() {
        let u = settled_update_of(&event(vec![Felt::from(7u8), Felt::from(41u8), Felt::from(9u8)]))
            .unwrap();
        assert_eq!(u.block_number, 41);
        assert_eq!(u.state_root, Felt::from(7u8).to_bytes_be());
        assert_eq!(u.block_hash, Felt::from(9u8).to_bytes_be());
        assert_eq!(u.tx_hash, "0xabc");
        assert_eq!(u.settlement_block, 12);
        let e = settled_update_of(&event(vec![Felt::ONE])).unwrap_err();
        assert!(e.to_string().contains("0xabc") && e.to_string().contains("1 data felts"), "{e}");
        let e = settled_update_of(&event(vec![Felt::ONE, Felt::MAX, Felt::ONE])).unwrap_err();
        assert!(e.to_string().contains("not a block"), "{e}");
    }
}
