#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer) on the nightly toolchain. See docs/reliability.md, "Fuzzing".
#
#   scripts/fuzz.sh smoke                   build every target, run each for 20 s (`make test`)
#   scripts/fuzz.sh long                    run each target for 10 minutes (`make fuzz`)
#   scripts/fuzz.sh run TARGET [SECS]       run one target (default 60 s)
#   scripts/fuzz.sh repro TARGET ARTIFACT   replay a crash, timeout or OOM input
#   scripts/fuzz.sh build                   build every target
#   scripts/fuzz.sh cmin TARGET             minimise the committed seed corpus of TARGET
#   scripts/fuzz.sh list                    the targets
#
# Each run starts from the committed seed corpus (orchestrator/fuzz/corpus/TARGET, only read)
# and keeps what it finds in $ORCH_CACHE/fuzz-corpus/TARGET. A crash (a panic included), a
# timeout (an input running over 10 s) or an out-of-memory (over 2048 MB) fails the script,
# naming the target and the artifact (orchestrator/fuzz/artifacts/TARGET/...).
#
# Environment:
#   ORCH_FUZZ_SANITIZER   sanitizer of the builds: `none` (default) or `address`
#   ORCH_FUZZ_TARGETS     space-separated subset of the targets to run
#   ORCH_FUZZ_TARGET_DIR  the cargo target dir of the light targets (default
#                         $ORCH_CACHE/fuzz-target); the engine targets use it with `-engine`
#                         appended
#   ORCH_FUZZ_ENGINE      0: leave out the targets that need the orchestrator crate (a much
#                         larger build); default 1
#   ORCH_FUZZ_ENGINE_PROFILE  `dev` or `release`: the build of the engine targets (default
#                         `release` for `long`, `dev` otherwise)
#
# The engine targets (queue_message, api_request) are built without optimisations (`cargo fuzz
# build --dev`) except for the long runs: an instrumented release build of the whole
# orchestrator crate (AWS SDKs, MongoDB, alloy, starknet, cairo-vm) takes about 44 minutes on
# 2 cores, the dev build about 13. A dev build runs about 40 times slower (tens of inputs a
# second instead of about 1,600), enough for the 20 s smoke run to exercise every route and
# queue.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

CARGO_FUZZ_VERSION=0.13.2
FUZZ_DIR=orchestrator/fuzz
FUZZ_TOOLS="$ORCH_TOOLS/cargo-fuzz"
# The fuzz builds are nightly builds with coverage instrumentation: their own target dir, so
# they never invalidate the workspace's.
LIGHT_TARGET_DIR="${ORCH_FUZZ_TARGET_DIR:-$ORCH_CACHE/fuzz-target}"
ENGINE_TARGET_DIR="$LIGHT_TARGET_DIR-engine"
# The incremental data of the dev builds would only grow the cache.
export CARGO_INCREMENTAL=0
SANITIZER="${ORCH_FUZZ_SANITIZER:-none}"
ENGINE="${ORCH_FUZZ_ENGINE:-1}"
DEFAULT_ENGINE_PROFILE=dev
[ "${1:-}" = long ] && DEFAULT_ENGINE_PROFILE=release
TIMEOUT_SECS=10
RSS_LIMIT_MB=2048

# Targets that depend only on the crates they feed, and those that drive the engine (the
# `engine` feature of the fuzz crate, which pulls in the orchestrator crate).
LIGHT_TARGETS=(state_update_blobs da_text_formats stateless_decompress blob_decode pie_fact
    snos_os_output external_runner_output atlantic_response sharp_response)
ENGINE_TARGETS=(queue_message api_request)

die() { echo "fuzz.sh: $*" >&2; exit 1; }

install_cargo_fuzz() {
    local bin="$FUZZ_TOOLS/bin/cargo-fuzz"
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
        return
    fi
    echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION into $FUZZ_TOOLS" >&2
    # A throw-away target dir: the install must not touch the workspace's or the fuzz builds'.
    local build_dir
    build_dir="$(mktemp -d)"
    CARGO_TARGET_DIR="$build_dir" cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" \
        --locked --root "$FUZZ_TOOLS" >&2
    rm -rf "$build_dir"
}

check_nightly() {
    rustup run nightly rustc --version >/dev/null 2>&1 \
        || die "fuzzing needs the nightly toolchain and \`rustup run nightly rustc\` does not" \
            "work; install it with \`rustup toolchain install nightly\`"
}

setup() {
    install_cargo_fuzz
    check_nightly
    export PATH="$FUZZ_TOOLS/bin:$PATH"
}

all_targets() {
    if [ -n "${ORCH_FUZZ_TARGETS:-}" ]; then
        echo "$ORCH_FUZZ_TARGETS"
    elif [ "$ENGINE" = 0 ]; then
        echo "${LIGHT_TARGETS[*]}"
    else
        echo "${LIGHT_TARGETS[*]} ${ENGINE_TARGETS[*]}"
    fi
}

check_target() {
    local t
    for t in "${LIGHT_TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
    if is_engine "$1"; then
        [ "$ENGINE" != 0 ] || die "target $1 needs the engine (ORCH_FUZZ_ENGINE=0 is set)"
        return 0
    fi
    die "unknown target \`$1\` (see \`scripts/fuzz.sh list\`)"
}

is_engine() {
    local t
    for t in "${ENGINE_TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

# The cargo-fuzz options of the builds of TARGET (the same options for a build and a cmin, so
# neither rebuilds the other's).
fuzz_options() {
    local opts=(--fuzz-dir "$FUZZ_DIR" --sanitizer "$SANITIZER" --debug-assertions)
    if is_engine "$1"; then
        opts+=(--features engine)
        [ "$(engine_profile)" = release ] || opts+=(--dev)
    fi
    echo "${opts[@]}"
}

engine_profile() {
    case "${ORCH_FUZZ_ENGINE_PROFILE:-$DEFAULT_ENGINE_PROFILE}" in
        dev) echo dev ;;
        release) echo release ;;
        *) die "ORCH_FUZZ_ENGINE_PROFILE must be dev or release, not \`$ORCH_FUZZ_ENGINE_PROFILE\`" ;;
    esac
}

# The target dir of TARGET's build.
target_dir() {
    if is_engine "$1"; then echo "$ENGINE_TARGET_DIR"; else echo "$LIGHT_TARGET_DIR"; fi
}

cargo_fuzz() {
    rustup run nightly cargo fuzz "$@"
}

# The fuzz binary of TARGET in its target dir.
binary() {
    local host profile=release
    host="$(rustup run nightly rustc -vV | sed -n 's/^host: //p')"
    is_engine "$1" && [ "$(engine_profile)" = dev ] && profile=debug
    echo "$(target_dir "$1")/$host/$profile/$1"
}

build() {
    local start=$SECONDS t
    # cargo-fuzz has no --locked: check the fuzz workspace's own lock file first, so a change of
    # the workspace's dependencies not carried into it fails here instead of being resolved
    # afresh from the registry on every machine.
    (cd "$FUZZ_DIR" && cargo metadata --locked --format-version 1 >/dev/null) \
        || die "$FUZZ_DIR/Cargo.lock is out of date with the workspace's dependencies: run" \
            "\`cargo metadata --format-version 1 --manifest-path $FUZZ_DIR/Cargo.toml >/dev/null\`" \
            "and commit the updated lock file"
    echo "==> building the fuzz targets (sanitizer: $SANITIZER, engine: $ENGINE, engine profile: $(engine_profile))"
    # One cargo invocation builds every light target (release); each engine target is a dev
    # build of its own, sharing its target dir with the other.
    CARGO_TARGET_DIR="$LIGHT_TARGET_DIR" cargo_fuzz build $(fuzz_options "${LIGHT_TARGETS[0]}")
    echo "==> light fuzz targets built in $((SECONDS - start)) s ($LIGHT_TARGET_DIR)"
    if [ "$ENGINE" != 0 ]; then
        start=$SECONDS
        for t in "${ENGINE_TARGETS[@]}"; do
            CARGO_TARGET_DIR="$ENGINE_TARGET_DIR" cargo_fuzz build $(fuzz_options "$t") "$t"
        done
        echo "==> engine fuzz targets built in $((SECONDS - start)) s ($ENGINE_TARGET_DIR)"
    fi
}

# Runs TARGET for SECS seconds; on failure names the target and the artifact.
run_target() {
    local target="$1" secs="$2"
    check_target "$target"
    local seeds="$FUZZ_DIR/corpus/$target" work="$ORCH_CACHE/fuzz-corpus/$target"
    local artifacts="$FUZZ_DIR/artifacts/$target"
    mkdir -p "$seeds" "$work" "$artifacts"
    local log scratch
    log="$(mktemp)"
    # The engine targets keep their embedded orchestrator in TMPDIR: one per run, removed after.
    scratch="$(mktemp -d)"
    echo "==> fuzzing $target for $secs s"
    local status=0 start=$SECONDS
    # The outer timeout only guards against a fuzzer that never stops (libFuzzer's own
    # -max_total_time ends a healthy run).
    # The binary the build made, run directly: a run never rebuilds (as `cargo fuzz run` would
    # after any change to the tree), so its time is the fuzzing time.
    TMPDIR="$scratch" timeout --signal=KILL $((secs + 300)) \
        "$(binary "$target")" "$work" "$seeds" -artifact_prefix="$artifacts/" \
        -max_total_time="$secs" -timeout="$TIMEOUT_SECS" -rss_limit_mb="$RSS_LIMIT_MB" \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    rm -rf "$scratch"
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        local artifact kind="exit status $status"
        artifact="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/Test unit written to //' || true)"
        grep -q 'ERROR: libFuzzer: timeout' "$log" && kind="timeout (an input ran over ${TIMEOUT_SECS} s)"
        grep -qE 'ERROR: libFuzzer: (out-of-memory|malloc)' "$log" && kind="out-of-memory (over ${RSS_LIMIT_MB} MB)"
        grep -qE 'ERROR: libFuzzer: deadly signal|panicked at' "$log" && kind="crash"
        [ "$status" = 137 ] && kind="hang (killed after $((secs + 300)) s)"
        echo "FUZZ FAILURE: target $target: $kind; artifact: ${artifact:-none written (log: $log)}" >&2
        [ -z "$artifact" ] || echo "  replay: scripts/fuzz.sh repro $target $artifact" >&2
        return 1
    fi
    local execs rate rss cov
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)"
    cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n 1)"
    echo "    $target: ${execs:-?} executions (${rate:-?}/s) in $((SECONDS - start)) s, $cov, peak RSS ${rss:-?} MB"
    rm -f "$log"
}

cmd="${1:-}"
case "$cmd" in
    smoke | long)
        secs=20
        [ "$cmd" = long ] && secs=600
        for t in $(all_targets); do check_target "$t"; done
        setup
        build
        failed=()
        for t in $(all_targets); do
            run_target "$t" "$secs" || failed+=("$t")
        done
        if [ "${#failed[@]}" -gt 0 ]; then
            echo "fuzz.sh: failing targets: ${failed[*]}" >&2
            exit 1
        fi
        echo "==> fuzz $cmd: every target ran ${secs} s without a crash, timeout or OOM"
        ;;
    run)
        [ -n "${2:-}" ] || die "usage: scripts/fuzz.sh run TARGET [SECS]"
        check_target "$2"
        setup
        build
        run_target "$2" "${3:-60}"
        ;;
    build)
        setup
        build
        ;;
    repro)
        [ -n "${2:-}" ] && [ -n "${3:-}" ] || die "usage: scripts/fuzz.sh repro TARGET ARTIFACT"
        check_target "$2"
        setup
        build
        "$(binary "$2")" -timeout="$TIMEOUT_SECS" -rss_limit_mb="$RSS_LIMIT_MB" "$3"
        ;;
    cmin)
        [ -n "${2:-}" ] || die "usage: scripts/fuzz.sh cmin TARGET"
        check_target "$2"
        setup
        CARGO_TARGET_DIR="$(target_dir "$2")" cargo_fuzz cmin $(fuzz_options "$2") "$2" \
            "$FUZZ_DIR/corpus/$2"
        ;;
    list)
        all_targets | tr ' ' '\n'
        ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        [ -z "$cmd" ] || exit 2
        ;;
esac
