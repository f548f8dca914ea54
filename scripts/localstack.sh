#!/usr/bin/env bash
# LocalStack (PyPI `localstack-core`, run without Docker): the AWS emulator whose EventBridge
# rules fire, so the MongoDB + LocalStack workflow test gets its worker triggers from the rules
# `orchestrator setup` creates. Services: SQS, S3, SNS, EventBridge (rules), Scheduler (its
# schedules are stored but never run), IAM (setup creates the trigger role) and KMS (the
# Ethereum KMS signer's test: moto's KMS ignores MessageType=DIGEST, see docs/settlement.md).
#
#   scripts/localstack.sh install   install localstack-core into a cached venv (idempotent)
#   scripts/localstack.sh start     install if needed, start on 127.0.0.1 unless already up;
#                                   prints the endpoint (the last line of stdout)
#   scripts/localstack.sh stop      stop the server this script started (pid file)
#   scripts/localstack.sh status    prints the endpoint and exits 0 if it answers, 1 otherwise
#   scripts/localstack.sh endpoint  prints the endpoint
#
# Needs CPython 3.13 (LOCALSTACK_PYTHON, default pyenv's 3.13.x) and root: LocalStack writes to
# /etc/localstack, /var/lib/localstack, /usr/lib/localstack and /tmp/localstack*, so one
# instance runs per machine. Port: LOCALSTACK_PORT (default 4566). The tests read
# MADARA_ORCHESTRATOR_TEST_LOCALSTACK_ENDPOINT. Everything is in memory: a restart wipes it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

LOCALSTACK_VENV="$ORCH_CACHE/localstack-venv"
LOCALSTACK_PORT="${LOCALSTACK_PORT:-4566}"
LOCALSTACK_HOST=127.0.0.1
LOCALSTACK_ENDPOINT="http://$LOCALSTACK_HOST:$LOCALSTACK_PORT"
LOCALSTACK_PID_FILE="$ORCH_CACHE/localstack-$LOCALSTACK_PORT.pid"
LOCALSTACK_LOG="$ORCH_CACHE/localstack-$LOCALSTACK_PORT.log"
LOCALSTACK_SERVICES=sqs,s3,sns,events,scheduler,iam,kms
# Pinned: with unpinned dependencies localstack-core 4.14.0 does not start (cbor2 6,
# pyopenssl/cryptography/service_identity releases newer than these). Bump deliberately.
LOCALSTACK_SPEC=("localstack-core[runtime]==4.14.0" "cbor2<6" "pyopenssl==24.3.0"
    "cryptography==44.0.3" "service_identity==24.2.0")

log() { echo "==> localstack: $*" >&2; }

# CPython 3.13: LOCALSTACK_PYTHON, else pyenv's 3.13.x, else python3.13 on PATH.
pick_python() {
    local candidates=()
    [[ -n "${LOCALSTACK_PYTHON:-}" ]] && candidates+=("$LOCALSTACK_PYTHON")
    if command -v pyenv >/dev/null; then
        local root
        root="$(pyenv root)"
        for p in "$root"/versions/3.13.*/bin/python3.13; do candidates+=("$p"); done
    fi
    candidates+=(python3.13)
    for p in "${candidates[@]}"; do
        if command -v "$p" >/dev/null 2>&1 \
            && "$p" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)' 2>/dev/null; then
            command -v "$p"
            return 0
        fi
    done
    log "localstack-core 4.14.0 needs CPython 3.13, and none was found (tried: ${candidates[*]}):"
    log "install one (\`pyenv install 3.13\`) or point LOCALSTACK_PYTHON at a python3.13"
    return 1
}

# Whether LocalStack answers and every service the tests use is up.
answers() {
    local health
    health="$(curl -fsS --max-time 2 "$LOCALSTACK_ENDPOINT/_localstack/health" 2>/dev/null)" || return 1
    local s
    for s in ${LOCALSTACK_SERVICES//,/ }; do
        grep -Eq "\"$s\": *\"(running|available)\"" <<<"$health" || return 1
    done
}

install() {
    local wanted="${LOCALSTACK_SPEC[*]}"
    if [[ -x "$LOCALSTACK_VENV/bin/python" ]] && [[ -f "$LOCALSTACK_VENV/.installed" ]] \
        && [[ "$(cat "$LOCALSTACK_VENV/.installed")" == "$wanted" ]]; then
        return 0
    fi
    local python
    python="$(pick_python)"
    log "installing ${LOCALSTACK_SPEC[0]} into $LOCALSTACK_VENV with $python (about a minute and ~500 MB, once)"
    rm -rf "$LOCALSTACK_VENV"
    "$python" -m venv "$LOCALSTACK_VENV"
    "$LOCALSTACK_VENV/bin/pip" install --quiet --disable-pip-version-check "${LOCALSTACK_SPEC[@]}" >&2
    echo "$wanted" >"$LOCALSTACK_VENV/.installed"
}

start() {
    if answers; then
        log "already answering at $LOCALSTACK_ENDPOINT"
        echo "$LOCALSTACK_ENDPOINT"
        return 0
    fi
    # One started by this script with fewer services (an older version of the list): restart it.
    if [[ -f "$LOCALSTACK_PID_FILE" ]] && kill -0 "$(cat "$LOCALSTACK_PID_FILE")" 2>/dev/null \
        && curl -fsS --max-time 2 "$LOCALSTACK_ENDPOINT/_localstack/health" >/dev/null 2>&1; then
        log "running without every service of $LOCALSTACK_SERVICES: restarting it"
        stop
        for _ in $(seq 1 50); do
            curl -sS -o /dev/null --max-time 1 "$LOCALSTACK_ENDPOINT/" 2>/dev/null || break
            sleep 0.2
        done
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        log "LocalStack without Docker must run as root (it writes to /etc/localstack, /var/lib/localstack and /usr/lib/localstack)"
        return 1
    fi
    if curl -sS -o /dev/null --max-time 2 "$LOCALSTACK_ENDPOINT/" 2>/dev/null; then
        log "something else answers on $LOCALSTACK_ENDPOINT without LocalStack's health: free port $LOCALSTACK_PORT"
        return 1
    fi
    install
    log "starting on $LOCALSTACK_ENDPOINT (services $LOCALSTACK_SERVICES, log: $LOCALSTACK_LOG)"
    # setsid: the server outlives this script and is not killed with the caller's job. DNS off
    # (no port 53), no certificate download (no network), path-style queue URLs.
    GATEWAY_LISTEN="$LOCALSTACK_HOST:$LOCALSTACK_PORT" SERVICES="$LOCALSTACK_SERVICES" \
        EAGER_SERVICE_LOADING=1 DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
        SQS_ENDPOINT_STRATEGY=path LOCALSTACK_HOST="$LOCALSTACK_HOST:$LOCALSTACK_PORT" \
        setsid "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main \
        >"$LOCALSTACK_LOG" 2>&1 </dev/null &
    echo $! >"$LOCALSTACK_PID_FILE"
    for _ in $(seq 1 300); do
        if answers; then
            echo "$LOCALSTACK_ENDPOINT"
            return 0
        fi
        if ! kill -0 "$(cat "$LOCALSTACK_PID_FILE")" 2>/dev/null; then
            log "the server exited; last lines of $LOCALSTACK_LOG:"
            tail -n 20 "$LOCALSTACK_LOG" >&2
            rm -f "$LOCALSTACK_PID_FILE"
            return 1
        fi
        sleep 0.2
    done
    log "not answering after 60 s; see $LOCALSTACK_LOG"
    return 1
}

stop() {
    if [[ ! -f "$LOCALSTACK_PID_FILE" ]]; then
        log "no pid file ($LOCALSTACK_PID_FILE): nothing started by this script"
        return 0
    fi
    local pid
    pid="$(cat "$LOCALSTACK_PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then
        # The server leads its own process group (setsid): stop the group, children included.
        kill -- "-$pid" 2>/dev/null || kill "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 -- "-$pid" 2>/dev/null
        log "stopped (pid $pid)"
    fi
    rm -f "$LOCALSTACK_PID_FILE"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) if answers; then echo "$LOCALSTACK_ENDPOINT"; else exit 1; fi ;;
    endpoint) echo "$LOCALSTACK_ENDPOINT" ;;
    *) echo "usage: $0 install|start|stop|status|endpoint" >&2; exit 2 ;;
esac
