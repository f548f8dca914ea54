#!/usr/bin/env bash
# Deploys the test core contract and mock GPS verifier on an Ethereum node (default: a local
# Anvil on :8545; start one with "$(scripts/anvil.sh)" --port 8545 --hardfork prague) and writes
#   $ORCH_CACHE/contracts.json   {"core_contract": "0x…", "verifier": "0x…"}
#   $ORCH_CACHE/contracts.env    MADARA_ORCHESTRATOR_L1_CORE_CONTRACT_ADDRESS / _MOCK_VERIFIER_ADDRESS
# `orchestrator run` reads the env file when it is sourced or copied into .env.
#   scripts/deploy-contracts.sh [RPC_URL] [--program-hash 0x…] [--strict]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
RPC="${1:-${MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL:-http://127.0.0.1:8545}}"
shift || true
cargo run -q -p orchestrator-ethereum-settlement-client --features test-utils --example deploy -- \
    --rpc "$RPC" --out "$ORCH_CACHE/contracts.json" --env "$ORCH_CACHE/contracts.env" "$@"
cat "$ORCH_CACHE/contracts.json" "$ORCH_CACHE/contracts.env"
