#!/usr/bin/env bash
# `make bench`: every benchmark, each part ending with one machine-readable line.
#
# Usage: scripts/bench.sh [all|decode|throughput|latency|memory|scale] (default all: every part).
#
# - decode: the in-process `orchestrator blob decode` figure: the decode time of one blob,
#   (t(65 blobs) − t(1 blob))/64, next to the reference's O(n²) transform of a blob and their
#   ratio, all measured in the same run of the protocol's blob_pipeline bench (criterion).
#   Last line `blob decode: …`. Vectors: crates/test-support/vectors.
# - throughput: orchestrator/benches/throughput.rs, the whole L2 pipeline's bookkeeping on the
#   embedded tier with instant node, prover and settlement. Last line `throughput: <n> batches/s`.
# - latency: the local stack (e2e-tests/tests/perf.rs `bench_latency`: devnet, Anvil mining every
#   second, the mock Atlantic server answering at once, `orchestrator run` on the embedded tier),
#   20 SNOS batches; p50/p99 of each stage hand-off and of last block → settled on L1. Last line
#   `latency: worst_handoff_p50=<ms> ms worst_handoff_p99=<ms> ms settle_p50=<s> s`.
# - memory: the release binary on the local stack (e2e-tests/tests/perf.rs `bench_memory`):
#   idle `orchestrator run` (VmRSS), then its peak (VmHWM) while settling aggregator batches
#   of 6 blobs each (PERF_MEMORY_BATCHES, default 2; devnet blocks filled with ERC-20
#   transfers to fresh addresses; the bench fails unless the L1 state updates carry 6 blobs).
#   Last line `memory: idle=<MiB> MiB peak_settling=<MiB> MiB`.
# - scale: orchestrator/benches/scale.rs: a year of a busy chain (SCALE_JOBS jobs, default
#   1 000 000; SCALE_BATCHES SNOS batches, default 100 000) seeded into the embedded data dir
#   $ORCH_CACHE/bench/scale-embedded and into PostgreSQL (scripts/postgres.sh; database
#   orchestrator_scale; ORCH_SKIP_POSTGRES_TESTS=1 skips it), reused while its sizes match; one
#   run of every trigger, the orphan scan and the API list routes timed on each, then
#   `orchestrator run --data-dir` started on the seeded dir (release binary) until /health
#   answers. Last lines `scale: backend=<b> worst=<name> <ms> ms data=<path or database>`.
# - all: the benches of orchestrator/benches and crates/protocol/benches (throughput included),
#   then latency and memory; the machine-readable lines of every part at the end.
#
# Figures of the dev machine: docs/performance.md (and docs/da-encoding.md for decode).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

part="${1:-all}"
case "$part" in
  all | decode | throughput | latency | memory | scale) ;;
  *) echo "bench.sh: unknown part '$part' (all, decode, throughput, latency, memory or scale)" >&2; exit 2 ;;
esac
blobs=crates/test-support/vectors/da_blob/test_blob
[[ -d "$blobs" ]] || { echo "bench.sh: missing test vectors $blobs" >&2; exit 1; }

log="$(mktemp)"
work="$(mktemp -d)"
trap 'rm -rf "$log" "$work"' EXIT

# The last line of $log starting with $1, or a failure naming the part.
last_line() {
  grep "^$1" "$log" | tail -n1 | grep . \
    || { echo "bench.sh: the $2 bench printed no '$1' line" >&2; exit 1; }
}

# The perf tests of e2e-tests need Anvil and starknet-devnet (installed once into the cache).
stack_tools() {
  scripts/anvil.sh >/dev/null
  scripts/devnet.sh path >/dev/null
}

bench_decode() {
  # Criterion filter (a regex on the benchmark ids): decode/1_blob, decode/65_blobs and
  # transform/horner_biguint_64_points.
  echo "== cargo bench -p orchestrator-protocol --bench blob_pipeline -- 'decode/|horner_biguint'"
  cargo bench --locked -p orchestrator-protocol --bench blob_pipeline -- 'decode/|horner_biguint' \
    | tee -a "$log"
}

bench_throughput() {
  echo "== cargo bench -p orchestrator --bench throughput"
  cargo bench --locked -p orchestrator --bench throughput | tee -a "$log"
}

bench_latency() {
  stack_tools
  # The debug `orchestrator` binary the stack runs, built as the workspace's tests build it
  # (same features, so the build cache is shared).
  echo "== cargo test --test it --no-run (builds target/debug/orchestrator)"
  cargo test --workspace --all-features --locked --test it --no-run
  echo "== cargo test --test perf -- --ignored bench_latency (PERF_LATENCY_BATCHES=${PERF_LATENCY_BATCHES:-10} aggregator batches)"
  cargo test --workspace --all-features --locked --test perf -- --ignored --nocapture --exact bench_latency \
    2>&1 | tee -a "$log"
}

bench_memory() {
  stack_tools
  echo "== cargo build --release -p orchestrator --bin orchestrator"
  cargo build --release --locked -p orchestrator --bin orchestrator
  local bin="$CARGO_TARGET_DIR/release/orchestrator"
  echo "== cargo test --test perf -- --ignored bench_memory (ORCH_BIN=$bin)"
  ORCH_BIN="$bin" cargo test --workspace --all-features --locked --test perf -- --ignored --nocapture \
    --exact bench_memory 2>&1 | tee -a "$log"
}

# The scale bench, then `orchestrator run` on the data dir it seeded: up once /health answers.
bench_scale() {
  local pg=""
  if [[ -z "${ORCH_SKIP_POSTGRES_TESTS:-}" ]]; then
    pg="$(scripts/postgres.sh | tail -n1)"
  fi
  echo "== cargo bench -p orchestrator --bench scale"
  SCALE_POSTGRES_URL="$pg" cargo bench --locked -p orchestrator --bench scale | tee -a "$log"
  local dir
  dir="$(last_line 'scale: backend=embedded ' scale | sed -E 's/.* data=//')"
  echo "== orchestrator run --data-dir $dir (release)"
  cargo build --release --locked -p orchestrator --bin orchestrator
  local port=3971 u=http://127.0.0.1:9 addr=0x5FbDB2315678afecb367f032d93F642f64180aa3
  "$CARGO_TARGET_DIR/release/orchestrator" run --data-dir "$dir" --port "$port" --skip-preflight \
    --settle-on-ethereum --da-on-ethereum --prover mock --snos-runner stand-in \
    --madara-rpc-url "$u" --rpc-for-snos "$u" --ethereum-rpc-url "$u" --ethereum-da-rpc-url "$u" \
    --ethereum-private-key 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 \
    --l1-core-contract-address "$addr" --starknet-operator-address "$addr" \
    --max-batch-time-seconds 3600 >"$work/scale-run.log" 2>&1 &
  local pid=$! up=""
  for _ in $(seq 1 60); do
    if curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/health"; then up=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  local failed
  failed="$(curl -s -m 10 "http://127.0.0.1:$port/jobs?status=Failed" | grep -o '"status":"Failed"' | wc -l)"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [[ -z "$up" ]]; then
    tail -n 20 "$work/scale-run.log" >&2
    echo "bench.sh: orchestrator run --data-dir $dir did not start" >&2
    exit 1
  fi
  echo "orchestrator run --data-dir $dir: started, serves the seeded jobs ($failed failed ones listed), stopped"
  # The part's machine-readable lines last.
  grep '^scale: ' "$log"
}

case "$part" in
  all)
    # package:directory of its benches
    for entry in orchestrator:orchestrator/benches orchestrator-protocol:crates/protocol/benches; do
      package="${entry%%:*}"
      for bench in "${entry#*:}"/*.rs; do
        name="$(basename "$bench" .rs)"
        [[ "$package/$name" == orchestrator/scale ]] && continue # bench_scale below
        echo "== cargo bench -p $package --bench $name"
        cargo bench --locked -p "$package" --bench "$name" | tee -a "$log"
      done
    done
    bench_scale
    bench_latency
    bench_memory
    ;;
  decode) bench_decode ;;
  throughput) bench_throughput ;;
  latency) bench_latency ;;
  memory) bench_memory ;;
  scale) bench_scale ;;
esac

echo "== results"
case "$part" in
  all)
    grep -E '^(scale|throughput|latency|memory): ' "$log" || true
    echo "== in-process blob decode (crates/protocol/benches/blob_pipeline.rs)"
    last_line 'blob decode: ' blob_pipeline
    ;;
  decode)
    echo "== in-process blob decode (crates/protocol/benches/blob_pipeline.rs)"
    last_line 'blob decode: ' blob_pipeline
    ;;
  throughput) last_line 'throughput: ' throughput ;;
  latency) last_line 'latency: ' latency ;;
  memory) last_line 'memory: ' memory ;;
  scale) grep '^scale: ' "$log" ;;
esac
