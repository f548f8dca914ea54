#!/usr/bin/env bash
# Compiles the Cairo 0 stand-in for the Starknet OS (crates/snos-runner/cairo/os_stand_in.cairo)
# with cairo-lang's cairo-compile from the reference venv (scripts/install-pyrefs.sh).
#
# Idempotent: rewrites the compiled JSON only when it changes. CI and builds use the committed
# JSON; this script is for developers who change the program. A test of orchestrator-snos-runner
# checks that the committed JSON matches a fresh compile whenever the venv exists.
#
# Usage: scripts/compile-cairo.sh [--check]
#   --check  compile to a temporary file and fail if it differs from the committed JSON.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ORCH_PYREF_VENV:-${ORCH_CACHE:-$HOME/.cache/orchestrator}/pyref-venv}"
COMPILE="$VENV/bin/cairo-compile"
SRC="$ROOT/crates/snos-runner/cairo/os_stand_in.cairo"
OUT="$ROOT/crates/snos-runner/cairo/os_stand_in.json"

if [[ ! -x "$COMPILE" ]]; then
    echo "cairo-compile not found at $COMPILE; run scripts/install-pyrefs.sh first" >&2
    exit 1
fi

TMP="$(mktemp)"
trap 'rm -f "$TMP"' EXIT
# --no_debug_info: the debug info holds absolute paths, which would make the JSON differ
# between checkouts.
"$COMPILE" --no_debug_info "$SRC" --output "$TMP"

if [[ "${1:-}" == "--check" ]]; then
    if cmp -s "$TMP" "$OUT"; then
        echo "up to date: $OUT"
        exit 0
    fi
    echo "stale: $OUT differs from a fresh compile of $SRC (run scripts/compile-cairo.sh)" >&2
    exit 1
fi

if cmp -s "$TMP" "$OUT" 2>/dev/null; then
    echo "up to date: $OUT"
else
    cp "$TMP" "$OUT"
    echo "wrote $OUT"
fi
