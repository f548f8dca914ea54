#!/usr/bin/env bash
# Compiles the Cairo package contracts/cairo to Sierra and CASM with the crates.io Cairo
# compiler (tools/cairo-build) and writes contracts/cairo/artifacts/<Name>.contract_class.json
# (Sierra) and <Name>.compiled_contract_class.json (CASM). The artifacts are committed; tests
# never recompile. After a change, update the class hashes in
# crates/settlement-clients/starknet/src/classes.rs (the test `committed_artifacts` says which).
#
# Idempotent: the corelib and the tools are cached; an artifact is rewritten only when it
# changes.
#
# The corelib: PyPI cairo-lang ships one, but since Cairo 2.6 without its subdirectories (the
# package data lists two directory levels), so 0.14.0.1's cannot compile anything. cairo-lang
# 0.13.0's (compiler 2.4) misses only `num::traits` and the two edition preludes, which
# contracts/cairo/corelib-supplement provides. The sdist comes from PyPI through the pip of the
# reference venv (scripts/install-pyrefs.sh), checked against a pinned sha256.
#
# Usage: scripts/compile-cairo-contracts.sh [--check]
#   --check  compile into a temporary directory and fail if the committed artifacts differ.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
source scripts/env.sh

CORELIB_CAIRO_LANG="0.13.0"
CORELIB_SDIST_SHA256="2789a87d3528d6015ae361a8086360125af28abb39451dfbc8655549aebc3553"
CORELIB_DIR="$ORCH_CACHE/cairo-corelib-$CORELIB_CAIRO_LANG"
TOOLS_TARGET="$ORCH_CACHE/target-cairo-build"
ARTIFACTS="$ROOT/contracts/cairo/artifacts"

corelib() {
    if [[ -f "$CORELIB_DIR/.complete" ]]; then
        return
    fi
    scripts/install-pyrefs.sh >&2
    local venv="${ORCH_PYREF_VENV:-$ORCH_CACHE/pyref-venv}" dl
    dl="$(mktemp -d)"
    echo "compile-cairo-contracts: fetching the corelib of cairo-lang $CORELIB_CAIRO_LANG (PyPI sdist)" >&2
    "$venv/bin/python" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        "cairo-lang==$CORELIB_CAIRO_LANG" -d "$dl" >&2
    local zip="$dl/cairo-lang-$CORELIB_CAIRO_LANG.zip"
    echo "$CORELIB_SDIST_SHA256  $zip" | sha256sum -c --quiet - >&2
    rm -rf "$CORELIB_DIR"
    "$venv/bin/python" - "$zip" "$CORELIB_DIR" <<'PY'
import os, sys, zipfile
zip_path, out = sys.argv[1:]
marker = "/starkware/starknet/compiler/v1/sierra-compiler-major-1/corelib/src/"
with zipfile.ZipFile(zip_path) as z:
    for name in z.namelist():
        i = name.find(marker)
        if i < 0 or name.endswith("/"):
            continue
        dest = os.path.join(out, name[i + len(marker):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(z.read(name))
PY
    cp -r contracts/cairo/corelib-supplement/. "$CORELIB_DIR/"
    rm -rf "$dl"
    touch "$CORELIB_DIR/.complete"
}

tools() {
    # Two workspaces: the Cairo compiler (2.4.4, the corelib's) and the Sierra compiler of the
    # network (2.19.4, starknet-devnet 0.10.1's), which cargo cannot lock together.
    CARGO_TARGET_DIR="$TOOLS_TARGET" cargo build --quiet --release --locked \
        --manifest-path tools/cairo-build/Cargo.toml >&2
    CARGO_TARGET_DIR="$TOOLS_TARGET" cargo build --quiet --release --locked \
        --manifest-path tools/cairo-build/casm/Cargo.toml >&2
}

corelib
tools
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
"$TOOLS_TARGET/release/cairo-build" --corelib "$CORELIB_DIR" --project contracts/cairo --out "$OUT"
"$TOOLS_TARGET/release/cairo-build-casm" "$OUT"/*.contract_class.json

status=0
for f in "$OUT"/*.json; do
    name="$(basename "$f")"
    if cmp -s "$f" "$ARTIFACTS/$name" 2>/dev/null; then
        echo "up to date: contracts/cairo/artifacts/$name"
    elif [[ "${1:-}" == "--check" ]]; then
        echo "stale: contracts/cairo/artifacts/$name differs from a fresh compile" >&2
        status=1
    else
        mkdir -p "$ARTIFACTS"
        cp "$f" "$ARTIFACTS/$name"
        echo "wrote contracts/cairo/artifacts/$name"
    fi
done
exit "$status"
