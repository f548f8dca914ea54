#!/usr/bin/env bash
# Installs the independent Python references used by the DA cross-checks
# (scripts/pyref/check.sh): PyPI cairo-lang (stateless compression, fft) and ckzg (KZG).
#
# Idempotent: the venv lives at ${ORCH_CACHE:-$HOME/.cache/orchestrator}/pyref-venv and is
# left alone when both packages already import from it.
set -euo pipefail

CACHE="${ORCH_CACHE:-$HOME/.cache/orchestrator}"
VENV="$CACHE/pyref-venv"
CAIRO_LANG_VERSION="${CAIRO_LANG_VERSION:-0.14.0.1}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

check() {
    "$VENV/bin/python" - <<'PY' 2>/dev/null
import ckzg  # noqa: F401
from starkware.starknet.core.os.data_availability import compression  # noqa: F401
from starkware.python import math_utils  # noqa: F401
import os, eth_account
assert os.path.isfile(os.path.join(os.path.dirname(eth_account.__file__), "typed_transactions",
                                   "blob_transactions", "kzg_trusted_setup.txt"))
PY
}

if [ -x "$VENV/bin/python" ] && check; then
    echo "install-pyrefs: $VENV already has cairo-lang and ckzg; nothing to do"
    exit 0
fi

mkdir -p "$CACHE"
if [ ! -x "$VENV/bin/python" ]; then
    echo "install-pyrefs: creating venv $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
echo "install-pyrefs: pip-installing cairo-lang==$CAIRO_LANG_VERSION and ckzg into $VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip wheel >/dev/null
"$VENV/bin/python" -m pip install --quiet "cairo-lang==$CAIRO_LANG_VERSION" ckzg
if check; then
    echo "install-pyrefs: done ($("$VENV/bin/python" -m pip show cairo-lang ckzg 2>/dev/null | grep -E '^(Name|Version)' | paste -sd' '))"
else
    echo "install-pyrefs: installed, but the modules do not import; see the errors above" >&2
    exit 1
fi
