#!/usr/bin/env bash
# Cross-checks the DA pipeline against independent Python references (cairo-lang, ckzg).
#
#   scripts/install-pyrefs.sh      # once: creates the venv (idempotent)
#   scripts/pyref/check.sh         # runs the cross-checks
#
# Runs the #[ignore]d `pyref_*` tests of the orchestrator's `it` test binary, which generate
# seeded inputs, compute the Rust answers and hand them to scripts/pyref/crosscheck.py.
# Fails when the venv is missing, unless ORCH_SKIP_PYREF=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${ORCH_CACHE:-$HOME/.cache/orchestrator}"
PY="${ORCH_PYREF_PYTHON:-$CACHE/pyref-venv/bin/python}"

if [ "${ORCH_SKIP_PYREF:-0}" = "1" ]; then
    echo "pyref: ORCH_SKIP_PYREF=1, skipping the Python reference cross-checks"
    exit 0
fi
if [ ! -x "$PY" ]; then
    echo "pyref: the reference venv is missing ($PY)." >&2
    echo "pyref: run scripts/install-pyrefs.sh first (or ORCH_SKIP_PYREF=1 to skip)." >&2
    exit 1
fi

export ORCH_PYREF_PYTHON="$PY"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
cd "$ROOT"
# The same features as `make test`'s `cargo test`, so nothing is rebuilt for this step.
exec cargo test --workspace --all-features --locked --test it pyref_ -- --ignored --nocapture --test-threads=1
