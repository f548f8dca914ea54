//! starknet-devnet as the appchain's Starknet node: the workspace's one launcher
//! (`orchestrator_test_support::devnet`), spawned on a free 127.0.0.1 port with `--seed 0
//! --state-archive-capacity full` (historical state reads, which squashing needs), killed when
//! dropped. `ORCH_SKIP_DEVNET_TESTS=1` makes [`Devnet::start`] answer `None`.

pub use orchestrator_test_support::devnet::{binary, Devnet, DevnetConfig};
