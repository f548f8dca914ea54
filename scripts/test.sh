#!/usr/bin/env bash
# `make test`: installs what the tests need (idempotent, cached outside the clone), then runs
# every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

echo "==> cargo target dir: $CARGO_TARGET_DIR"
echo "==> unit and integration tests"
cargo test --workspace --all-features --locked -- --test-threads="${TEST_THREADS:-2}"
