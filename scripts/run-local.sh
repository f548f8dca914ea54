#!/usr/bin/env bash
# `make run`: builds the orchestrator and runs it on the embedded tier under ./orchestrator-data,
# with local defaults for the node, the prover and the settlement layer (override any of them
# with the usual MADARA_ORCHESTRATOR_* variables or extra flags: `make run ARGS="--port 4000"`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo build --locked -p orchestrator --bin orchestrator
bin="$CARGO_TARGET_DIR/debug/orchestrator"

# Anvil's well-known first account: a local test key, never a real one.
: "${MADARA_ORCHESTRATOR_MADARA_RPC_URL:=http://127.0.0.1:9944}"
: "${MADARA_ORCHESTRATOR_RPC_FOR_SNOS:=$MADARA_ORCHESTRATOR_MADARA_RPC_URL}"
: "${MADARA_ORCHESTRATOR_MAX_BATCH_TIME_SECONDS:=60}"
: "${MADARA_ORCHESTRATOR_PROVER:=mock}"
: "${MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL:=http://127.0.0.1:8545}"
: "${MADARA_ORCHESTRATOR_ETHEREUM_DA_RPC_URL:=$MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL}"
: "${MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY:=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80}"
: "${MADARA_ORCHESTRATOR_L1_CORE_CONTRACT_ADDRESS:=0x5FbDB2315678afecb367f032d93F642f64180aa3}"
: "${MADARA_ORCHESTRATOR_STARKNET_OPERATOR_ADDRESS:=0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266}"
export MADARA_ORCHESTRATOR_MADARA_RPC_URL MADARA_ORCHESTRATOR_RPC_FOR_SNOS \
  MADARA_ORCHESTRATOR_MAX_BATCH_TIME_SECONDS MADARA_ORCHESTRATOR_PROVER \
  MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL MADARA_ORCHESTRATOR_ETHEREUM_DA_RPC_URL \
  MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY MADARA_ORCHESTRATOR_L1_CORE_CONTRACT_ADDRESS \
  MADARA_ORCHESTRATOR_STARKNET_OPERATOR_ADDRESS

"$bin" setup
exec "$bin" run --settle-on-ethereum --da-on-ethereum "$@"
