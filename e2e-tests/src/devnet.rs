//! starknet-devnet as the appchain's Starknet node: the workspace's one launcher
//! (`orchestrator_test_support::devnet`), spawned on a free 127.0.0.1 port with `--seed 0
//! --state-archive-capacity full` (historical state reads, which squashing needs), killed when
//! dropped. `ORCH_SKIP_DEVNET_TESTS=1` makes [`Devnet::start`] answer `None`.
//!
//! [`StateFiller`] makes large state diffs quickly (benchmarks): one INVOKE transaction carries
//! hundreds of ERC-20 transfers to fresh addresses, one fresh storage write each, where a
//! `devnet_mint` makes one write per transaction.

use orchestrator_starknet_settlement_client::testing::{
    account, predeployed_accounts, wait_executed,
};
pub use orchestrator_test_support::devnet::{binary, Devnet, DevnetConfig};
use starknet::{
    accounts::{Account, ConnectedAccount, SingleOwnerAccount},
    core::{
        types::{Call, Felt},
        utils::get_selector_from_name,
    },
    providers::jsonrpc::{HttpTransport, JsonRpcClient},
    signers::LocalWallet,
};

/// devnet's STRK fee token (an ERC-20 whose balances are a `Map<ContractAddress, u256>`).
pub const STRK_TOKEN: Felt =
    Felt::from_hex_unchecked("0x04718f5a0fc34cc1af16a1cdee98ffb20c31f5cd61d6ab07201858f4287c938d");

/// ERC-20 `transfer` calls per INVOKE transaction of [`StateFiller`]: far below devnet's
/// execution limits (about 0.1 of the 1.1e9 L2 gas a transaction may use).
pub const TRANSFERS_PER_TRANSACTION: usize = 400;

/// The first fresh recipient address of a [`StateFiller`] (recipients count up from it).
const FIRST_RECIPIENT: u64 = 0x5eed_0000_0000;

/// Sends, from devnet's first predeployed account, INVOKE transactions that are multicalls of
/// STRK `transfer`s of 1 FRI, each to an address that never held STRK: each transfer writes the
/// recipient's balance, a storage key of the token that is new to the state (the `high` word of
/// the u256 stays 0, which is no write). Every transaction also changes the sender's balance and
/// nonce and the sequencer's balance: a few writes in all, whatever their size.
pub struct StateFiller {
    account: SingleOwnerAccount<JsonRpcClient<HttpTransport>, LocalWallet>,
    transfer: Felt,
    nonce: Felt,
    next_recipient: u64,
}

impl std::fmt::Debug for StateFiller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFiller")
            .field("account", &self.account.address())
            .field("nonce", &self.nonce)
            .field("next_recipient", &self.next_recipient)
            .finish()
    }
}

impl StateFiller {
    /// A filler sending from the first predeployed account of `devnet`.
    ///
    /// # Errors
    /// devnet does not answer, or lists no predeployed account.
    pub async fn new(devnet: &Devnet) -> Result<Self, String> {
        let sender = *predeployed_accounts(&devnet.url)
            .await?
            .first()
            .ok_or("devnet lists no predeployed account")?;
        let account = account(&devnet.url, sender.address, sender.private_key).await?;
        let nonce = account
            .get_nonce()
            .await
            .map_err(|e| format!("nonce of the predeployed account {:#x}: {e}", sender.address))?;
        let transfer = get_selector_from_name("transfer").expect("an ASCII selector");
        Ok(Self { account, transfer, nonce, next_recipient: FIRST_RECIPIENT })
    }

    /// The recipients that got a transfer so far.
    pub fn recipients(&self) -> impl Iterator<Item = Felt> {
        (FIRST_RECIPIENT..self.next_recipient).map(Felt::from)
    }

    /// Makes `fresh_writes` new storage keys of [`STRK_TOKEN`]: transfers to as many fresh
    /// recipients, [`TRANSFERS_PER_TRANSACTION`] per transaction, each transaction waited on
    /// until executed (pre-confirmed with `--block-generation-on demand`, else in a block of its
    /// own). Answers the transaction hashes.
    ///
    /// # Errors
    /// A transaction is refused, or reverts (with its reason).
    pub async fn fill_state_diff(&mut self, fresh_writes: usize) -> Result<Vec<Felt>, String> {
        let mut hashes = Vec::new();
        let mut left = fresh_writes;
        while left > 0 {
            let n = left.min(TRANSFERS_PER_TRANSACTION);
            let first = self.next_recipient;
            let calls: Vec<Call> = (first..first + n as u64)
                .map(|to| Call {
                    to: STRK_TOKEN,
                    selector: self.transfer,
                    calldata: vec![Felt::from(to), Felt::ONE, Felt::ZERO],
                })
                .collect();
            let sent =
                self.account.execute_v3(calls).nonce(self.nonce).send().await.map_err(|e| {
                    format!("an INVOKE of {n} STRK transfers (nonce {:#x}): {e}", self.nonce)
                })?;
            wait_executed(self.account.provider(), sent.transaction_hash).await?;
            self.nonce += Felt::ONE;
            self.next_recipient += n as u64;
            left -= n;
            hashes.push(sent.transaction_hash);
        }
        Ok(hashes)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Runs where devnet is installed (and not skipped): 900 transfers (3 transactions) in one
    /// block make 900 fresh balance keys of the token, the recipients' balances 1 FRI each.
    #[tokio::test]
    async fn the_filler_makes_one_fresh_storage_write_per_transfer() {
        if !binary().is_file() {
            return;
        }
        let Some(devnet) =
            Devnet::start_with(DevnetConfig::new().block_generation_on_demand()).await
        else {
            return;
        };
        let mut filler = StateFiller::new(&devnet).await.expect("a filler");
        let hashes = filler.fill_state_diff(900).await.expect("transfers");
        assert_eq!(hashes.len(), 3, "900 transfers take 3 transactions of 400 at most");
        devnet.create_block().await;
        assert_eq!(devnet.transaction_count(1).await, 3);

        let update = devnet.state_update(1).await;
        let token_writes: Vec<&serde_json::Value> = update["state_diff"]["storage_diffs"]
            .as_array()
            .expect("storage diffs")
            .iter()
            .filter(|d| {
                Felt::from_hex(d["address"].as_str().unwrap_or_default()).ok() == Some(STRK_TOKEN)
            })
            .flat_map(|d| d["storage_entries"].as_array().expect("entries").iter())
            .collect();
        let ones = token_writes.iter().filter(|e| e["value"] == "0x1").count();
        assert_eq!(ones, 900, "a balance of 1 FRI per recipient");
        // The sender's and the sequencer's balances: a few more, not one per transfer.
        assert!(token_writes.len() <= 900 + 4, "{} writes of the token", token_writes.len());
        let keys: HashSet<&str> = token_writes.iter().filter_map(|e| e["key"].as_str()).collect();
        assert_eq!(keys.len(), token_writes.len(), "every key written once");
        assert_eq!(filler.recipients().count(), 900);
        let balance = devnet
            .rpc(
                "starknet_call",
                serde_json::json!([
                    {
                        "contract_address": format!("{STRK_TOKEN:#x}"),
                        "entry_point_selector": format!("{:#x}", get_selector_from_name("balance_of").unwrap()),
                        "calldata": [format!("{:#x}", FIRST_RECIPIENT + 899)],
                    },
                    "latest"
                ]),
            )
            .await;
        assert_eq!(balance, serde_json::json!(["0x1", "0x0"]), "the last recipient's balance");
    }
}
