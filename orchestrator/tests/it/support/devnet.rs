//! starknet-devnet for the `it` tests: the workspace's one launcher
//! (`orchestrator_test_support::devnet`: `--seed 0 --state-archive-capacity full` by default,
//! skipped with `ORCH_SKIP_DEVNET_TESTS=1`), and block hashes read as felts.

use starknet::core::types::Felt;

pub use orchestrator_test_support::devnet::{Devnet, DevnetConfig};

/// Block hashes as [`Felt`]s (the launcher knows no Starknet types).
pub trait BlockHashes {
    /// The hash of closed block `n`.
    fn block_hash(&self, n: u64) -> impl std::future::Future<Output = Felt>;
}

impl BlockHashes for Devnet {
    async fn block_hash(&self, n: u64) -> Felt {
        let block = self.block(n).await;
        block["block_hash"]
            .as_str()
            .and_then(|h| Felt::from_hex(h).ok())
            .unwrap_or_else(|| panic!("block {n} without a hash: {block}"))
    }
}
