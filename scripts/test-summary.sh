#!/usr/bin/env bash
# The closing summary of `make test`: totals over every cargo test binary, the tests that failed,
# the test binaries that failed, and the steps that failed.
#   scripts/test-summary.sh CARGO_LOG PYREF_LOG [FAILED_STEP ...]
# Exits 1 when anything failed, else 0.
set -uo pipefail
cargo_log="$1"; pyref_log="$2"; shift 2
failed_steps=("$@")

# `test result: ok. 12 passed; 0 failed; 3 ignored; ...` once per test binary.
read -r passed failed ignored < <(grep -hE '^test result: ' "$cargo_log" "$pyref_log" 2>/dev/null \
    | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/' \
    | awk '{p+=$1; f+=$2; i+=$3} END {print p+0, f+0, i+0}')

echo
echo "==> summary"
failed_tests="$(grep -hE '^test .* \.\.\. FAILED$' "$cargo_log" "$pyref_log" 2>/dev/null | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | sort -u)"
if [ -n "$failed_tests" ]; then
    echo "failed tests:"
    sed 's/^/  /' <<<"$failed_tests"
fi
# cargo's own list of the test binaries that failed (`error: N targets failed:` and its lines).
failed_targets="$(sed -n '/^error: [0-9]* targets\? failed:/,/^[^ ]/p' "$cargo_log" | grep -E '^ +`' || true)"
if [ -n "$failed_targets" ]; then
    echo "failed test binaries:"
    sed 's/^ */  /' <<<"$failed_targets"
fi
# A binary that does not build or aborts prints no failing test: it shows only as a failed step.
if [ "${#failed_steps[@]}" -gt 0 ]; then
    echo "failed steps: ${failed_steps[*]}"
fi
echo "$passed passed, $failed failed, $ignored skipped"
if [ "${#failed_steps[@]}" -gt 0 ] || [ "$failed" -gt 0 ]; then
    exit 1
fi
