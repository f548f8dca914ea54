#!/usr/bin/env bash
# `make run`: builds the orchestrator and runs it on the embedded tier under ./orchestrator-data.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --locked -p orchestrator --bin orchestrator
exec "$CARGO_TARGET_DIR/debug/orchestrator" run "$@"
