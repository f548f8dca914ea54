#!/usr/bin/env bash
# `make bench`: the benches of orchestrator/benches (the engine) and crates/protocol/benches (the
# DA protocol, criterion), then the in-process `orchestrator blob decode` figure again as the
# last line: the decode time of one blob, (t(65 blobs) − t(1 blob))/64, next to the reference's
# O(n²) transform of a blob and their ratio, all measured in the same run of the protocol's
# blob_pipeline bench.
#
# Usage: scripts/bench.sh [all|decode] (default all: every bench; decode: only the benchmarks
# the figure is made of). Vectors: crates/test-support/vectors.
# Figures of the dev machine are in docs/da-encoding.md ("Performance").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

part="${1:-all}"
case "$part" in
  all | decode) ;;
  *) echo "bench.sh: unknown part '$part' (all or decode)" >&2; exit 2 ;;
esac
blobs=crates/test-support/vectors/da_blob/test_blob
[[ -d "$blobs" ]] || { echo "bench.sh: missing test vectors $blobs" >&2; exit 1; }

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if [[ "$part" == all ]]; then
  # package:directory of its benches
  for entry in orchestrator:orchestrator/benches orchestrator-protocol:crates/protocol/benches; do
    package="${entry%%:*}"
    for bench in "${entry#*:}"/*.rs; do
      name="$(basename "$bench" .rs)"
      echo "== cargo bench -p $package --bench $name"
      cargo bench -p "$package" --bench "$name" | tee -a "$log"
    done
  done
else
  # Criterion filter (a regex on the benchmark ids): decode/1_blob, decode/65_blobs and
  # transform/horner_biguint_64_points.
  echo "== cargo bench -p orchestrator-protocol --bench blob_pipeline -- 'decode/|horner_biguint'"
  cargo bench -p orchestrator-protocol --bench blob_pipeline -- 'decode/|horner_biguint' \
    | tee -a "$log"
fi

echo "== in-process blob decode (crates/protocol/benches/blob_pipeline.rs)"
grep '^blob decode: ' "$log" \
  || { echo "bench.sh: the blob_pipeline bench printed no 'blob decode:' line" >&2; exit 1; }
