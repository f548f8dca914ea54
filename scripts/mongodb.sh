#!/usr/bin/env bash
# MongoDB-wire server for the tests: SecantusDB (PyPI `secantusdb`, a beta server on WiredTiger
# whose wheel carries the compiled library). It presents itself as a single-node replica set
# (`secantus`), so transactions and change streams work. A test tool only: nothing of the
# orchestrator depends on it, and any MongoDB server works in its place.
#
#   scripts/mongodb.sh install   install secantusdb into a cached venv (idempotent)
#   scripts/mongodb.sh start     install if needed, start on 127.0.0.1 unless a MongoDB server
#                                already answers there; prints the URL (the last line of stdout)
#   scripts/mongodb.sh stop      stop the server this script started (pid file)
#   scripts/mongodb.sh status    prints the URL and exits 0 if it answers, 1 otherwise
#   scripts/mongodb.sh endpoint  prints the URL
#
# Port: MONGODB_PORT (default 27017). Data: $ORCH_CACHE/mongodb-<port>/ (kept across restarts;
# the tests create a fresh database each and drop it). The tests read
# MADARA_ORCHESTRATOR_MONGODB_CONNECTION_URL (scripts/test.sh sets it from `start`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

MONGODB_VENV="$ORCH_CACHE/mongodb-venv"
MONGODB_PORT="${MONGODB_PORT:-27017}"
MONGODB_HOST=127.0.0.1
MONGODB_URL="mongodb://$MONGODB_HOST:$MONGODB_PORT"
MONGODB_DATA="$ORCH_CACHE/mongodb-$MONGODB_PORT"
MONGODB_PID_FILE="$ORCH_CACHE/mongodb-$MONGODB_PORT.pid"
MONGODB_LOG="$ORCH_CACHE/mongodb-$MONGODB_PORT.log"
# Pinned so every machine runs the same server; bump deliberately.
MONGODB_SPEC="${MONGODB_SPEC:-secantusdb==0.7.0b3}"

log() { echo "==> mongodb: $*" >&2; }

# A CPython the wheels exist for (3.11-3.13): python3 when it is one, else pyenv's.
pick_python() {
    local candidates=(python3 python3.13 python3.12 python3.11)
    if command -v pyenv >/dev/null; then
        local root
        root="$(pyenv root)"
        for v in 3.13 3.12 3.11; do
            for p in "$root"/versions/"$v".*/bin/python"$v"; do candidates+=("$p"); done
        done
    fi
    for p in "${candidates[@]}"; do
        if command -v "$p" >/dev/null 2>&1 \
            && "$p" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null; then
            command -v "$p"
            return 0
        fi
    done
    log "no CPython 3.11-3.13 found (secantusdb ships wheels for those only): install one (e.g. \`pyenv install 3.13\`)"
    return 1
}

# Whether a MongoDB server answers `ping` on the port: one OP_MSG over a socket, standard
# library only (no client to install).
answers() {
    local py=python3
    [[ -x "$MONGODB_VENV/bin/python" ]] && py="$MONGODB_VENV/bin/python"
    "$py" - "$MONGODB_HOST" "$MONGODB_PORT" 2>/dev/null <<'PY'
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
elements = b"\x10ping\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
doc = struct.pack("<i", len(elements) + 5) + elements + b"\x00"
body = struct.pack("<I", 0) + b"\x00" + doc
msg = struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body
try:
    with socket.create_connection((host, port), timeout=2) as s:
        s.settimeout(2)
        s.sendall(msg)
        data = b""
        while len(data) < 4 or len(data) < struct.unpack("<i", data[:4])[0]:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
except OSError:
    sys.exit(1)
sys.exit(0 if b"\x01ok\x00" + struct.pack("<d", 1.0) in data else 1)
PY
}

install() {
    if [[ -x "$MONGODB_VENV/bin/secantusd-py" ]] && [[ -f "$MONGODB_VENV/.installed" ]] \
        && [[ "$(cat "$MONGODB_VENV/.installed")" == "$MONGODB_SPEC" ]]; then
        return 0
    fi
    local python
    python="$(pick_python)"
    log "installing $MONGODB_SPEC into $MONGODB_VENV with $python (a few seconds, once)"
    rm -rf "$MONGODB_VENV"
    "$python" -m venv "$MONGODB_VENV"
    "$MONGODB_VENV/bin/pip" install --quiet --disable-pip-version-check "$MONGODB_SPEC" >&2
    [[ -x "$MONGODB_VENV/bin/secantusd-py" ]] \
        || { log "$MONGODB_SPEC installed no secantusd-py in $MONGODB_VENV/bin"; return 1; }
    echo "$MONGODB_SPEC" >"$MONGODB_VENV/.installed"
}

start() {
    if answers; then
        log "already answering at $MONGODB_URL"
        echo "$MONGODB_URL"
        return 0
    fi
    install
    mkdir -p "$MONGODB_DATA"
    log "starting on $MONGODB_URL (data: $MONGODB_DATA, log: $MONGODB_LOG)"
    # setsid: the server outlives this script and is not killed with the caller's job.
    setsid "$MONGODB_VENV/bin/secantusd-py" --host "$MONGODB_HOST" --port "$MONGODB_PORT" \
        --storage-path "$MONGODB_DATA" >"$MONGODB_LOG" 2>&1 </dev/null &
    echo $! >"$MONGODB_PID_FILE"
    for _ in $(seq 1 150); do
        if answers; then
            echo "$MONGODB_URL"
            return 0
        fi
        if ! kill -0 "$(cat "$MONGODB_PID_FILE")" 2>/dev/null; then
            log "the server exited; last lines of $MONGODB_LOG:"
            tail -n 20 "$MONGODB_LOG" >&2
            rm -f "$MONGODB_PID_FILE"
            return 1
        fi
        sleep 0.2
    done
    log "not answering after 30 s; see $MONGODB_LOG"
    return 1
}

stop() {
    if [[ ! -f "$MONGODB_PID_FILE" ]]; then
        log "no pid file ($MONGODB_PID_FILE): nothing started by this script"
        return 0
    fi
    local pid
    pid="$(cat "$MONGODB_PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        log "stopped (pid $pid)"
    fi
    rm -f "$MONGODB_PID_FILE"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) if answers; then echo "$MONGODB_URL"; else exit 1; fi ;;
    endpoint) echo "$MONGODB_URL" ;;
    *) echo "usage: $0 install|start|stop|status|endpoint" >&2; exit 2 ;;
esac
