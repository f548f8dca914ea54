#!/usr/bin/env bash
# starknet-devnet (crates.io), the test Starknet node.
#   scripts/devnet.sh install        # once, ~20 min; cached in $ORCH_TOOLS/devnet
#   scripts/devnet.sh path           # prints the binary path (installs if needed)
# Tests start their own instances on free ports with the binary from `path`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

VERSION="${DEVNET_VERSION:-}"
ROOT="$ORCH_TOOLS/devnet"
BIN="$ROOT/bin/starknet-devnet"

install() {
    if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
        echo "starknet-devnet: cached at $BIN ($("$BIN" --version))" >&2
        return
    fi
    echo "starknet-devnet: installing into $ROOT (about 20 minutes, once)" >&2
    # Its own target dir, so it does not evict the workspace's build cache.
    CARGO_TARGET_DIR="$ORCH_CACHE/devnet-build" cargo install starknet-devnet --locked \
        ${VERSION:+--version "$VERSION"} --root "$ROOT" >&2
    rm -rf "$ORCH_CACHE/devnet-build"
    "$BIN" --version >&2
}

case "${1:-install}" in
    install) install ;;
    path) install; echo "$BIN" ;;
    *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
