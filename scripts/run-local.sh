#!/usr/bin/env bash
# `make run`: builds the orchestrator and runs it on the embedded tier under ./orchestrator-data,
# with a local L1: an Anvil it starts on 127.0.0.1:8545 (unless one answers there already) with
# our core contract and mock verifier deployed. The Starknet node is expected at
# MADARA_ORCHESTRATOR_MADARA_RPC_URL (default http://127.0.0.1:9944; `scripts/devnet.sh path`
# gives a starknet-devnet); until it answers, batching logs that it waits for it.
# Override anything with MADARA_ORCHESTRATOR_* variables or extra flags: `make run ARGS="…"`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo build --locked -p orchestrator --bin orchestrator
bin="$CARGO_TARGET_DIR/debug/orchestrator"

: "${MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL:=http://127.0.0.1:8545}"
export MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

if ! curl -s -m 2 -X POST -H 'content-type: application/json' \
    --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' \
    "$MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL" >/dev/null; then
    anvil="$(scripts/anvil.sh)"
    echo "==> starting Anvil on 127.0.0.1:8545 (log: $ORCH_CACHE/anvil.log)"
    "$anvil" --host 127.0.0.1 --port 8545 --hardfork prague >"$ORCH_CACHE/anvil.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do
        curl -s -m 1 -X POST -H 'content-type: application/json' \
            --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' \
            "$MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL" >/dev/null && break
        sleep 0.2
    done
    echo "==> deploying the core contract and mock verifier"
    scripts/deploy-contracts.sh "$MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL" >/dev/null
    set -a
    # shellcheck disable=SC1091
    source "$ORCH_CACHE/contracts.env"
    set +a
fi

# Anvil's well-known first account: a local test key, never a real one.
: "${MADARA_ORCHESTRATOR_MADARA_RPC_URL:=http://127.0.0.1:9944}"
: "${MADARA_ORCHESTRATOR_RPC_FOR_SNOS:=$MADARA_ORCHESTRATOR_MADARA_RPC_URL}"
: "${MADARA_ORCHESTRATOR_MAX_BATCH_TIME_SECONDS:=60}"
: "${MADARA_ORCHESTRATOR_PROVER:=mock}"
: "${MADARA_ORCHESTRATOR_ETHEREUM_DA_RPC_URL:=$MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL}"
: "${MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY:=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80}"
: "${MADARA_ORCHESTRATOR_L1_CORE_CONTRACT_ADDRESS:=0x5FbDB2315678afecb367f032d93F642f64180aa3}"
: "${MADARA_ORCHESTRATOR_STARKNET_OPERATOR_ADDRESS:=0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266}"
export MADARA_ORCHESTRATOR_MADARA_RPC_URL MADARA_ORCHESTRATOR_RPC_FOR_SNOS \
  MADARA_ORCHESTRATOR_MAX_BATCH_TIME_SECONDS MADARA_ORCHESTRATOR_PROVER \
  MADARA_ORCHESTRATOR_ETHEREUM_DA_RPC_URL MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY \
  MADARA_ORCHESTRATOR_L1_CORE_CONTRACT_ADDRESS MADARA_ORCHESTRATOR_STARKNET_OPERATOR_ADDRESS

"$bin" setup
"$bin" run --settle-on-ethereum --da-on-ethereum "$@" &
pids+=($!)
trap 'kill -INT "${pids[-1]}" 2>/dev/null || true' INT TERM
wait "${pids[-1]}" || true
