#!/usr/bin/env bash
# `make test`: installs what the tests need (idempotent, cached outside the clone), then runs
# every test of the workspace, then the cross-checks against independent references.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# No incremental compilation data for the test builds: a one-shot build gains nothing from it,
# and in the shared cache it grew to 30 GB and filled the disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "==> cargo target dir: $CARGO_TARGET_DIR"
echo "==> independent references (cairo-lang, ckzg)"
scripts/install-pyrefs.sh

echo "==> headless Chromium for the dashboard test"
[ "${ORCH_SKIP_BROWSER_TESTS:-0}" = 1 ] || scripts/chromium.sh

# The servers this script starts are stopped when it exits, whatever happened, and so is the
# background fuzz build.
fuzz_build_pid=""
stop_servers() {
    [ -z "$fuzz_build_pid" ] || kill -- "-$fuzz_build_pid" >/dev/null 2>&1 || kill "$fuzz_build_pid" >/dev/null 2>&1 || true
    scripts/moto.sh stop >/dev/null 2>&1 || true
    scripts/mongodb.sh stop >/dev/null 2>&1 || true
    scripts/localstack.sh stop >/dev/null 2>&1 || true
}
trap stop_servers EXIT

echo "==> moto server (AWS APIs) on 127.0.0.1"
export MADARA_ORCHESTRATOR_TEST_AWS_ENDPOINT="$(scripts/moto.sh start | tail -n 1)"

# MongoDB and LocalStack: started unless their tests are skipped or a server is already named.
# A failed start stops `make test` here (the assignment carries the script's exit status).
echo "==> MongoDB-wire server (secantusdb) on 127.0.0.1"
if [ "${ORCH_SKIP_MONGODB_TESTS:-0}" != 1 ] && [ -z "${MADARA_ORCHESTRATOR_TEST_MONGODB_URL:-}" ]; then
    mongodb_url="$(scripts/mongodb.sh start | tail -n 1)" \
        || { echo "scripts/mongodb.sh start failed (ORCH_SKIP_MONGODB_TESTS=1 skips the MongoDB tests)" >&2; exit 1; }
    export MADARA_ORCHESTRATOR_TEST_MONGODB_URL="$mongodb_url"
fi

echo "==> LocalStack (AWS APIs whose EventBridge rules fire) on 127.0.0.1"
if [ "${ORCH_SKIP_LOCALSTACK_TESTS:-0}" != 1 ] && [ -z "${MADARA_ORCHESTRATOR_TEST_LOCALSTACK_ENDPOINT:-}" ]; then
    localstack_endpoint="$(scripts/localstack.sh start | tail -n 1)" \
        || { echo "scripts/localstack.sh start failed (ORCH_SKIP_LOCALSTACK_TESTS=1 skips the LocalStack tests)" >&2; exit 1; }
    export MADARA_ORCHESTRATOR_TEST_LOCALSTACK_ENDPOINT="$localstack_endpoint"
fi

echo "==> PostgreSQL on 127.0.0.1"
export MADARA_ORCHESTRATOR_TEST_POSTGRES_URL="${MADARA_ORCHESTRATOR_TEST_POSTGRES_URL:-$(scripts/postgres.sh | tail -n 1)}"

echo "==> Anvil (L1) and solc"
scripts/anvil.sh >/dev/null

echo "==> starknet-devnet (about 20 minutes the first time, then cached)"
[ "${ORCH_SKIP_DEVNET_TESTS:-0}" = 1 ] || scripts/devnet.sh install

# Every step below runs even when an earlier one failed; the summary at the end names what failed
# and the exit status says whether anything did.
log_dir="$(mktemp -d)"
failed_steps=()

echo "==> cargo fmt --check"
cargo fmt --all --check || failed_steps+=("cargo fmt --check")

echo "==> cargo clippy -D warnings (missing docs, unused code)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings \
    || failed_steps+=("cargo clippy")

# The fuzz targets (cargo-fuzz and the nightly builds live in the cache; about 24 minutes of
# building cold, 3-5 after changes to the workspace) build in the background while the tests
# run, at the lowest CPU and I/O priority: the tests leave about one core idle (they wait on
# the services much of the time), and the build takes only what they leave. The smoke run
# below then finds the targets built.
fuzz_build_started=$SECONDS
if [ "${ORCH_SKIP_FUZZ:-0}" != 1 ]; then
    echo "==> building the fuzz targets in the background (lowest priority; log: $log_dir/fuzz-build.log)"
    set -m
    nice -n 19 ionice -c 3 scripts/fuzz.sh build >"$log_dir/fuzz-build.log" 2>&1 &
    fuzz_build_pid=$!
    set +m
fi

echo "==> unit and integration tests (every test binary, even after a failure)"
cargo test --workspace --all-features --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-2}" \
    2>&1 | tee "$log_dir/cargo-test.log" || failed_steps+=("cargo test")

echo "==> cross-checks against cairo-lang and ckzg"
scripts/pyref/check.sh 2>&1 | tee "$log_dir/pyref.log" || failed_steps+=("pyref cross-checks")

# The 20 s fuzz smoke run of every target. The two engine targets (queue_message, api_request)
# are a dev build of the whole orchestrator with coverage instrumentation (about 13 min cold);
# `ORCH_FUZZ_ENGINE=0` leaves them out.
echo "==> fuzz smoke run (20 s a target)"
if [ "${ORCH_SKIP_FUZZ:-0}" = 1 ]; then
    echo "skipped: fuzz smoke run (ORCH_SKIP_FUZZ=1)"
else
    fuzz_build_status=0
    wait "$fuzz_build_pid" || fuzz_build_status=$?
    fuzz_build_pid=""
    echo "==> background fuzz build: exit $fuzz_build_status, done $((SECONDS - fuzz_build_started)) s after it started"
    grep -E '^==> .*built in' "$log_dir/fuzz-build.log" || true
    # A failed background build is built again (in the foreground, with its errors) by the
    # smoke run, which fails if it still does not build.
    [ "$fuzz_build_status" = 0 ] || tail -n 40 "$log_dir/fuzz-build.log"
    scripts/fuzz.sh smoke 2>&1 | tee "$log_dir/fuzz.log" \
        || failed_steps+=("fuzz smoke")
fi

scripts/test-summary.sh "$log_dir/cargo-test.log" "$log_dir/pyref.log" "${failed_steps[@]}"
