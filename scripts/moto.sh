#!/usr/bin/env bash
# moto server: the AWS emulator the distributed-tier tests run against (S3, SQS, SNS,
# EventBridge rules and Scheduler, IAM).
#
#   scripts/moto.sh install   install moto[server] into a cached venv (idempotent)
#   scripts/moto.sh start     install if needed, start on 127.0.0.1 unless already up; prints
#                             the endpoint (the last line of stdout)
#   scripts/moto.sh stop      stop the server this script started (pid file)
#   scripts/moto.sh status    prints the endpoint and exits 0 if it answers, 1 otherwise
#   scripts/moto.sh endpoint  prints the endpoint
#
# Port: MOTO_PORT (default 5000). The tests read MADARA_ORCHESTRATOR_TEST_AWS_ENDPOINT
# (default http://127.0.0.1:5000). moto keeps everything in memory: a restart wipes it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

MOTO_VENV="$ORCH_CACHE/moto-venv"
MOTO_PORT="${MOTO_PORT:-5000}"
MOTO_HOST=127.0.0.1
MOTO_ENDPOINT="http://$MOTO_HOST:$MOTO_PORT"
MOTO_PID_FILE="$ORCH_CACHE/moto-$MOTO_PORT.pid"
MOTO_LOG="$ORCH_CACHE/moto-$MOTO_PORT.log"
# Pinned so every machine runs the same emulator; bump deliberately.
MOTO_SPEC="${MOTO_SPEC:-moto[server]==5.1.*}"

log() { echo "==> moto: $*" >&2; }

answers() {
    # Any HTTP answer from moto's own API means the server is up.
    curl -fsS -o /dev/null --max-time 2 "$MOTO_ENDPOINT/moto-api/data.json" 2>/dev/null
}

install() {
    if [[ -x "$MOTO_VENV/bin/moto_server" ]] && [[ -f "$MOTO_VENV/.installed" ]] \
        && [[ "$(cat "$MOTO_VENV/.installed")" == "$MOTO_SPEC" ]]; then
        return 0
    fi
    log "installing $MOTO_SPEC into $MOTO_VENV (about a minute, once)"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "$MOTO_SPEC" >&2
    echo "$MOTO_SPEC" >"$MOTO_VENV/.installed"
}

start() {
    if answers; then
        log "already answering at $MOTO_ENDPOINT"
        echo "$MOTO_ENDPOINT"
        return 0
    fi
    install
    log "starting on $MOTO_ENDPOINT (log: $MOTO_LOG)"
    # setsid: the server outlives this script and is not killed with the caller's job.
    setsid "$MOTO_VENV/bin/moto_server" -H "$MOTO_HOST" -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 </dev/null &
    echo $! >"$MOTO_PID_FILE"
    for _ in $(seq 1 100); do
        if answers; then
            echo "$MOTO_ENDPOINT"
            return 0
        fi
        if ! kill -0 "$(cat "$MOTO_PID_FILE")" 2>/dev/null; then
            log "the server exited; last lines of $MOTO_LOG:"
            tail -n 20 "$MOTO_LOG" >&2
            rm -f "$MOTO_PID_FILE"
            return 1
        fi
        sleep 0.2
    done
    log "not answering after 20 s; see $MOTO_LOG"
    return 1
}

stop() {
    if [[ ! -f "$MOTO_PID_FILE" ]]; then
        log "no pid file ($MOTO_PID_FILE): nothing started by this script"
        return 0
    fi
    local pid
    pid="$(cat "$MOTO_PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        log "stopped (pid $pid)"
    fi
    rm -f "$MOTO_PID_FILE"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) if answers; then echo "$MOTO_ENDPOINT"; else exit 1; fi ;;
    endpoint) echo "$MOTO_ENDPOINT" ;;
    *) echo "usage: $0 install|start|stop|status|endpoint" >&2; exit 2 ;;
esac
