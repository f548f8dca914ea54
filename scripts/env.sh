# Sourced by the project's scripts: where caches and tools live (outside the clone, so a fresh
# clone in CI reuses them).
export ORCH_CACHE="${ORCH_CACHE:-$HOME/.cache/orchestrator}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ORCH_CACHE/target}"
export ORCH_TOOLS="$ORCH_CACHE/tools"
mkdir -p "$ORCH_CACHE" "$ORCH_TOOLS"

# Installs Debian packages as root (directly, or through sudo), refreshing the package lists
# only when the first attempt fails. Progress goes to stderr.
apt_install() {
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "apt_install: need root or sudo for: $*" >&2; return 1; }
        as_root=(sudo)
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
        || { "${as_root[@]}" apt-get update -qq >&2 \
            && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2; }
}
