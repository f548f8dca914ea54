#!/usr/bin/env bash
# `make bench`: the criterion benches of orchestrator/benches, then a whole
# `orchestrator blob decode` process (release binary, a mainnet blob) under hyperfine, next to
# `orchestrator --version` (bare process start of the same binary).
#
# Usage: scripts/bench.sh [all|criterion|process] (default all: both parts).
# Environment: BENCH_RUNS (hyperfine runs, 200). Vectors: crates/test-support/vectors.
# Figures of the dev machine are in docs/da-encoding.md ("Performance").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

part="${1:-all}"
case "$part" in
  all | criterion | process) ;;
  *) echo "bench.sh: unknown part '$part' (all, criterion or process)" >&2; exit 2 ;;
esac
testdata=crates/test-support/vectors
runs="${BENCH_RUNS:-200}"
state_update="$testdata/da_blob/state_update/178.txt"
nonces="$testdata/da_blob/nonces/178.txt"

for f in "$state_update" "$nonces"; do
  [[ -f "$f" ]] || { echo "bench.sh: missing test vector $f" >&2; exit 1; }
done

if [[ "$part" != process ]]; then
  for bench in orchestrator/benches/*.rs; do
    name="$(basename "$bench" .rs)"
    echo "== cargo bench -p orchestrator --bench $name"
    cargo bench -p orchestrator --bench "$name"
  done
fi
[[ "$part" != criterion ]] || exit 0

echo "== orchestrator blob decode (release binary, hyperfine)"
# hyperfine from Debian's packages (nothing to do when it is on the PATH).
command -v hyperfine >/dev/null || { echo "== installing Debian hyperfine"; apt_install hyperfine; }
cargo build -p orchestrator --bin orchestrator --release
bin="$CARGO_TARGET_DIR/release/orchestrator"
# How the binary is linked decides most of its start time (orchestrator/build.rs).
echo "== $(file -b "$bin" | cut -d, -f1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Block 178 (Starknet 0.13.2) fits one blob: one line of 262144 hex characters.
"$bin" blob encode --state-update "$state_update" --nonces "$nonces" \
  --starknet-version 0.13.2 >"$work/blob.txt"
[[ "$(wc -l <"$work/blob.txt")" -eq 1 ]] || { echo "bench.sh: expected one blob" >&2; exit 1; }
"$bin" blob decode --blob "$work/blob.txt" >"$work/felts.txt"
[[ "$(wc -l <"$work/felts.txt")" -eq 4096 ]] || { echo "bench.sh: expected 4096 felts" >&2; exit 1; }

hyperfine --warmup 20 -N --runs "$runs" \
  "$bin blob decode --blob $work/blob.txt" \
  "$bin --version"
