#!/usr/bin/env bash
# Starts a local PostgreSQL for the tests and prints its URL on stdout (everything else goes to
# stderr), e.g. `export MADARA_ORCHESTRATOR_TEST_POSTGRES_URL=$(scripts/postgres.sh)`.
#
# Idempotent: installs the Debian package if `pg_ctlcluster` is missing, creates and starts
# cluster $PG_VERSION/main (15 on the project's image) listening on 127.0.0.1:$PG_PORT, and
# creates (or fixes) a password-authenticated role with CREATEDB (tests create a fresh
# database each) and a database of the same name.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

PG_PORT="${PG_PORT:-5432}"
PG_ROLE="${ORCH_PG_ROLE:-orchestrator}"
PG_PASSWORD="${ORCH_PG_PASSWORD:-orchestrator}"
PG_DB="${ORCH_PG_DB:-orchestrator}"

log() { echo "postgres.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root (or sudo) to run: $*"; exit 1
    fi
}

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else as_root -u postgres "$@"; fi
}

if ! command -v pg_ctlcluster >/dev/null; then
    log "installing PostgreSQL (Debian package postgresql)"
    apt_install postgresql
fi

PG_VERSION="${PG_VERSION:-$(ls /usr/lib/postgresql | sort -V | tail -n1)}"
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$PG_VERSION/main"; then
    log "creating cluster $PG_VERSION/main"
    as_root pg_createcluster "$PG_VERSION" main -p "$PG_PORT" >&2
fi

# Listen on loopback only, on the expected port: a conf.d override (Debian's postgresql.conf
# includes conf.d), rewritten only when it differs.
conf_changed=0
conf_file="/etc/postgresql/$PG_VERSION/main/conf.d/orchestrator-tests.conf"
wanted="listen_addresses = '127.0.0.1'
port = $PG_PORT"
if [ "$(as_root cat "$conf_file" 2>/dev/null || true)" != "$wanted" ]; then
    printf '%s\n' "$wanted" | as_root tee "$conf_file" >/dev/null
    as_root chown postgres:postgres "$conf_file"
    conf_changed=1
fi

status="$(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $4}')"
if [ "$status" != "online" ]; then
    log "starting cluster $PG_VERSION/main"
    as_root pg_ctlcluster "$PG_VERSION" main start >&2
elif [ "$conf_changed" = 1 ]; then
    as_root pg_ctlcluster "$PG_VERSION" main restart >&2
fi

for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.2
done
pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || { log "PostgreSQL did not become ready on 127.0.0.1:$PG_PORT"; exit 1; }

psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@" >&2; }
psql_admin -d postgres <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
        CREATE ROLE "$PG_ROLE" LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    ELSE
        ALTER ROLE "$PG_ROLE" LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    END IF;
END
\$\$;
SQL
if ! as_postgres psql -X -tA -p "$PG_PORT" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    psql_admin -d postgres -c "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_ROLE\""
fi

echo "postgres://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
