#!/usr/bin/env bash
# `make run`: a whole local appchain stack on one machine, no cloud.
#
# Starts, on 127.0.0.1, whatever does not answer yet:
#   - Anvil (the L1, :8545, a block every 2 s) with our core contract and mock verifier deployed;
#   - starknet-devnet (the Starknet node, :9944), installed into the tool cache on first use
#     (about 20 minutes once), plus a little L2 activity: one mint transaction every
#     $ORCH_ACTIVITY_SECONDS (default 3) seconds;
#   - the mock Atlantic prover (:4001), which registers each aggregation's fact on the verifier;
# then runs `orchestrator setup` and `orchestrator run` on the embedded tier under
# ./orchestrator-data and prints the progress (blocks, batches, jobs per stage, settled block on
# L1) every 5 s until Ctrl-C, which stops everything it started.
#
# Point it at your own services with MADARA_ORCHESTRATOR_MADARA_RPC_URL,
# MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL (then also set the contract addresses) and
# MADARA_ORCHESTRATOR_ATLANTIC_SERVICE_URL; override any other setting with MADARA_ORCHESTRATOR_*
# variables or extra flags: `make run ARGS="…"`. Logs: ./orchestrator-data/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

: "${MADARA_ORCHESTRATOR_DATA_DIR:=./orchestrator-data}"
export MADARA_ORCHESTRATOR_DATA_DIR
LOGS="$MADARA_ORCHESTRATOR_DATA_DIR/logs"
mkdir -p "$LOGS"

echo "==> building orchestrator and mock-atlantic-server"
cargo build --locked -q -p orchestrator --bin orchestrator -p orchestrator-mock-atlantic-server --bin mock-atlantic-server
bin="$CARGO_TARGET_DIR/debug/orchestrator"
mock="$CARGO_TARGET_DIR/debug/mock-atlantic-server"

pids=()
orch_pid=""
cleanup() {
    trap - INT TERM EXIT
    echo
    echo "==> stopping"
    [ -n "$orch_pid" ] && kill -INT "$orch_pid" 2>/dev/null || true
    [ -n "$orch_pid" ] && wait "$orch_pid" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "==> stopped; state kept in $MADARA_ORCHESTRATOR_DATA_DIR (make clean-data removes it)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rpc URL METHOD: whether a JSON-RPC node answers METHOD with a result.
rpc() {
    curl -s -m 2 -X POST -H 'content-type: application/json' \
        --data "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":${3:-[]}}" "$1" 2>/dev/null
}
rpc_up() { rpc "$1" "$2" | grep -q '"result"'; }
wait_for() { # wait_for WHAT CMD...
    local what="$1"; shift
    for _ in $(seq 150); do "$@" && return 0; sleep 0.2; done
    echo "error: $what did not come up; see $LOGS" >&2
    exit 1
}

# The aggregations the mock prover produces are runs of the SNOS stand-in: the core contract
# must accept that program hash.
program_hash="$("$mock" --print-program-hash)"

# -- L1 --
: "${MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL:=http://127.0.0.1:8545}"
export MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL
L1="$MADARA_ORCHESTRATOR_ETHEREUM_SETTLEMENT_RPC_URL"
if ! rpc_up "$L1" eth_chainId; then
    anvil="$(scripts/anvil.sh)"
    echo "==> starting Anvil on 127.0.0.1:8545 (log: $LOGS/anvil.log)"
    "$anvil" --host 127.0.0.1 --port 8545 --hardfork osaka --block-time 2 >"$LOGS/anvil.log" 2>&1 &
    pids+=($!)
    wait_for Anvil rpc_up "$L1" eth_chainId
    echo "==> deploying the core contract (program hash $program_hash) and the mock verifier"
    scripts/deploy-contracts.sh "$L1" --program-hash "$program_hash" >/dev/null
    set -a
    # shellcheck disable=SC1091
    source "$ORCH_CACHE/contracts.env"
    set +a
fi
: "${MADARA_ORCHESTRATOR_L1_CORE_CONTRACT_ADDRESS:?set it to your core contract (or let make run start Anvil)}"
: "${MADARA_ORCHESTRATOR_MOCK_VERIFIER_ADDRESS:=0x0000000000000000000000000000000000000000}"

# -- Starknet node --
: "${MADARA_ORCHESTRATOR_MADARA_RPC_URL:=http://127.0.0.1:9944}"
NODE="$MADARA_ORCHESTRATOR_MADARA_RPC_URL"
activity=0
if ! rpc_up "$NODE" starknet_blockNumber; then
    devnet="$(scripts/devnet.sh path)"
    echo "==> starting starknet-devnet on 127.0.0.1:9944 (log: $LOGS/devnet.log)"
    "$devnet" --host 127.0.0.1 --port 9944 --seed 0 --state-archive-capacity full >"$LOGS/devnet.log" 2>&1 &
    pids+=($!)
    wait_for starknet-devnet rpc_up "$NODE" starknet_blockNumber
    activity=1
fi

# -- Prover --
: "${MADARA_ORCHESTRATOR_ATLANTIC_SERVICE_URL:=http://127.0.0.1:4001}"
ATLANTIC="$MADARA_ORCHESTRATOR_ATLANTIC_SERVICE_URL"
if ! curl -s -m 2 "$ATLANTIC/is-alive" >/dev/null 2>&1; then
    echo "==> starting the mock Atlantic prover on 127.0.0.1:4001 (log: $LOGS/mock-atlantic.log)"
    # Anvil's account 1 registers the facts: its nonces never race the operator's.
    MOCK_ATLANTIC_PROCESSING_DELAY_MS=500 MOCK_ATLANTIC_COMPLETION_DELAY_MS=1500 \
        "$mock" --port 4001 \
        --fact-registry-address "$MADARA_ORCHESTRATOR_MOCK_VERIFIER_ADDRESS" \
        --fact-registry-rpc-url "$L1" \
        --fact-registry-private-key 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d \
        >"$LOGS/mock-atlantic.log" 2>&1 &
    pids+=($!)
    wait_for "the mock Atlantic prover" curl -s -m 1 -o /dev/null "$ATLANTIC/is-alive"
fi

# -- Orchestrator settings (each overridable by its variable) --
# Anvil's well-known first account: a local test key, never a real one.
: "${MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY:=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80}"
: "${MADARA_ORCHESTRATOR_STARKNET_OPERATOR_ADDRESS:=0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266}"
: "${MADARA_ORCHESTRATOR_ETHEREUM_DA_RPC_URL:=$L1}"
: "${MADARA_ORCHESTRATOR_ETHEREUM_FINALITY_RETRY_WAIT_IN_SECS:=2}"
: "${MADARA_ORCHESTRATOR_RPC_FOR_SNOS:=$NODE}"
: "${MADARA_ORCHESTRATOR_PROVER:=atlantic}"
: "${MADARA_ORCHESTRATOR_ATLANTIC_API_KEY:=local}"
: "${MADARA_ORCHESTRATOR_ATLANTIC_ARTIFACTS_BASE_URL:=$ATLANTIC}"
: "${MADARA_ORCHESTRATOR_ATLANTIC_MOCK_FACT_HASH:=true}"
: "${MADARA_ORCHESTRATOR_ATLANTIC_RPC_NODE_URL:=$L1}"
: "${MADARA_ORCHESTRATOR_ATLANTIC_SETTLEMENT_LAYER:=ethereum}"
: "${MADARA_ORCHESTRATOR_ATLANTIC_VERIFIER_CONTRACT_ADDRESS:=$MADARA_ORCHESTRATOR_MOCK_VERIFIER_ADDRESS}"
: "${MADARA_ORCHESTRATOR_ATLANTIC_NETWORK:=TESTNET}"
: "${MADARA_ORCHESTRATOR_MAX_BATCH_TIME_SECONDS:=60}"
: "${MADARA_ORCHESTRATOR_MAX_BATCH_SIZE:=4}"
: "${MADARA_ORCHESTRATOR_MAX_BLOCKS_PER_SNOS_BATCH:=2}"
: "${MADARA_ORCHESTRATOR_EVENT_BRIDGE_INTERVAL_SECONDS:=2}"
: "${MADARA_ORCHESTRATOR_VERIFICATION_POLL_SECONDS:=2}"
# A batching run cut short (Ctrl-C, crash) holds its lock until this TTL (reference: 3600 s).
: "${MADARA_ORCHESTRATOR_BATCHING_LOCK_DURATION_SECONDS:=30}"
for v in ETHEREUM_PRIVATE_KEY STARKNET_OPERATOR_ADDRESS ETHEREUM_DA_RPC_URL ETHEREUM_FINALITY_RETRY_WAIT_IN_SECS \
    MADARA_RPC_URL RPC_FOR_SNOS PROVER ATLANTIC_API_KEY ATLANTIC_SERVICE_URL ATLANTIC_ARTIFACTS_BASE_URL \
    ATLANTIC_MOCK_FACT_HASH ATLANTIC_RPC_NODE_URL ATLANTIC_SETTLEMENT_LAYER ATLANTIC_VERIFIER_CONTRACT_ADDRESS \
    ATLANTIC_NETWORK MAX_BATCH_TIME_SECONDS MAX_BATCH_SIZE MAX_BLOCKS_PER_SNOS_BATCH \
    EVENT_BRIDGE_INTERVAL_SECONDS VERIFICATION_POLL_SECONDS BATCHING_LOCK_DURATION_SECONDS \
    L1_CORE_CONTRACT_ADDRESS; do
    export "MADARA_ORCHESTRATOR_$v"
done
if [ "$MADARA_ORCHESTRATOR_PROVER" = mock ]; then
    # The orchestrator's mock prover aggregates with the SNOS stand-in (the program hash the
    # core contract was deployed with) and registers each aggregation's fact on the mock
    # verifier itself, with the operator key.
    export MADARA_ORCHESTRATOR_MOCK_VERIFIER_ADDRESS
else
    unset MADARA_ORCHESTRATOR_MOCK_VERIFIER_ADDRESS # the mock Atlantic prover registers facts here, not the orchestrator
fi

"$bin" setup >"$LOGS/setup.log" 2>&1 || { cat "$LOGS/setup.log" >&2; exit 1; }
echo "==> orchestrator run (log: $LOGS/orchestrator.log; API http://127.0.0.1:3000, dashboard /dashboard)"
"$bin" run --settle-on-ethereum --da-on-ethereum "$@" >>"$LOGS/orchestrator.log" 2>&1 &
orch_pid=$!
API="http://127.0.0.1:${MADARA_ORCHESTRATOR_PORT:-3000}"

if [ "$activity" = 1 ]; then
    (
        i=0
        while sleep "${ORCH_ACTIVITY_SECONDS:-3}"; do
            i=$((i + 1))
            rpc "$NODE" devnet_mint "{\"address\":\"$(printf '0x7e57%08x' "$i")\",\"amount\":$((1000 + i)),\"unit\":\"FRI\"}" >/dev/null || true
        done
    ) &
    pids+=($!)
    echo "==> L2 activity: one mint transaction (one block) every ${ORCH_ACTIVITY_SECONDS:-3} s"
fi

summary() { jq -r '[.data.batches[]? | .status] | group_by(.) | map("\(.[0]) \(length)") | join(", ")' <<<"$1" 2>/dev/null; }

echo "==> progress every 5 s (Ctrl-C stops everything)"
while kill -0 "$orch_pid" 2>/dev/null; do
    tip="$(rpc "$NODE" starknet_blockNumber | jq -r '.result // "?"' 2>/dev/null || echo "?")"
    settled_hex="$(rpc "$L1" eth_call "[{\"to\":\"$MADARA_ORCHESTRATOR_L1_CORE_CONTRACT_ADDRESS\",\"data\":\"0x35befa5d\"},\"latest\"]" | jq -r '.result // empty' 2>/dev/null || true)"
    settled="?"
    if [ -n "$settled_hex" ]; then
        settled="$(python3 -c "v=int('$settled_hex',16); print(v - (1 << 256) if v >= 1 << 255 else v)" 2>/dev/null || echo "?")"
    fi
    snos="$(curl -s -m 2 "$API/batches/snos?limit=500" || true)"
    agg="$(curl -s -m 2 "$API/batches/aggregator?limit=500" || true)"
    jobs=""
    for st in LockedForProcessing PendingVerification Completed Failed; do
        n="$(curl -s -m 2 "$API/jobs?status=$st&limit=500" | jq -r '[.data.jobs[]? | .job_type] | group_by(.) | map("\(.[0])=\(length)") | join(" ")' 2>/dev/null || true)"
        [ -n "$n" ] && jobs="$jobs $st[$n]"
    done
    printf '%s  L2 tip %s | SNOS batches: %s | aggregator batches: %s | jobs:%s | settled on L1: %s\n' \
        "$(date +%T)" "$tip" "$(summary "$snos")" "$(summary "$agg")" "${jobs:- none}" "$settled"
    sleep 5
done
status=0
wait "$orch_pid" || status=$?
orch_pid=""
if [ "$status" != 0 ]; then
    echo "orchestrator exited with status $status; see $LOGS/orchestrator.log" >&2
    exit "$status"
fi
