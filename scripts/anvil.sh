#!/usr/bin/env bash
# Anvil (npm @foundry-rs/anvil) and solc-js (npm solc), the test L1 and the contract compiler.
#   scripts/anvil.sh            # installs once (idempotent), prints the anvil binary path
#   scripts/anvil.sh solcjs     # installs once, prints the solc-js package dir (require() it)
# Installs into ${ORCH_CACHE:-$HOME/.cache/orchestrator}/node; tests read the path from
# $ORCH_ANVIL_BIN or that default location and start their own instances on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ANVIL_VERSION="${ANVIL_VERSION:-}"
SOLC_VERSION="${SOLC_VERSION:-0.8.30}"
NODE_DIR="$ORCH_CACHE/node"
ANVIL_BIN="$NODE_DIR/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
SOLCJS="$NODE_DIR/node_modules/solc"

install() {
    if [ -x "$ANVIL_BIN" ] && "$ANVIL_BIN" --version >/dev/null 2>&1 && [ -f "$SOLCJS/index.js" ]; then
        return
    fi
    command -v npm >/dev/null || { echo "anvil.sh: npm is required (Node 20+)" >&2; exit 1; }
    mkdir -p "$NODE_DIR"
    [ -f "$NODE_DIR/package.json" ] || echo '{"name":"orchestrator-tools","private":true}' >"$NODE_DIR/package.json"
    echo "anvil.sh: installing @foundry-rs/anvil and solc@$SOLC_VERSION into $NODE_DIR" >&2
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error \
        "@foundry-rs/anvil${ANVIL_VERSION:+@$ANVIL_VERSION}" "solc@$SOLC_VERSION" >&2
    if [ ! -x "$ANVIL_BIN" ]; then
        # npm skips optional platform packages on some setups: ask for ours explicitly.
        npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error \
            "@foundry-rs/anvil-linux-amd64${ANVIL_VERSION:+@$ANVIL_VERSION}" >&2
    fi
    "$ANVIL_BIN" --version >&2
}

case "${1:-path}" in
    path | install) install; echo "$ANVIL_BIN" ;;
    solcjs) install; echo "$SOLCJS" ;;
    *) echo "usage: $0 [path|solcjs]" >&2; exit 2 ;;
esac
