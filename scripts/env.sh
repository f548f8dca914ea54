# Sourced by the project's scripts: where caches and tools live (outside the clone, so a fresh
# clone in CI reuses them).
export ORCH_CACHE="${ORCH_CACHE:-$HOME/.cache/orchestrator}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ORCH_CACHE/target}"
export ORCH_TOOLS="$ORCH_CACHE/tools"
mkdir -p "$ORCH_CACHE" "$ORCH_TOOLS"
