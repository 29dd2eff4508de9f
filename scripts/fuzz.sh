#!/bin/sh
# Builds the libFuzzer targets (clang, ASan + UBSan) in ./build-fuzz and runs each
# for N seconds: `scripts/fuzz.sh [SECONDS] [TARGET...]` (default FUZZ_SECONDS or 10,
# every target). Fails on any crash, leak, sanitizer report or broken invariant;
# the reproducer is left in build-fuzz/artifacts/. New inputs go to
# build-fuzz/corpus/<target> (the committed seeds in tests/fuzz/corpus are only read).
# Extra libFuzzer flags: FUZZ_FLAGS="-runs=1000000 -jobs=2".
set -eu
cd "$(dirname "$0")/.."
IMAGECACHE_EXTRA_PKGS="clang libfuzzer-14-dev" ./scripts/install-deps.sh --test

SECONDS_PER_TARGET="${1:-${FUZZ_SECONDS:-10}}"
[ $# -gt 0 ] && shift
TARGETS="${*:-probe domxml ledger sidecar}"
BUILD=build-fuzz

if [ ! -f "$BUILD/build.ninja" ]; then
    CC=clang meson setup "$BUILD" -Dfuzz=true -Db_lundef=false -Dwerror=true >/dev/null
fi
# Only the fuzz targets: the rest of the tree is the other builds' business.
# shellcheck disable=SC2046
meson compile -C "$BUILD" $(for t in $TARGETS; do echo "tests/fuzz/fuzz-$t"; done) \
    >"$BUILD/compile.log" 2>&1 || { cat "$BUILD/compile.log"; exit 1; }

mkdir -p "$BUILD/artifacts"
status=0
for target in $TARGETS; do
    corpus="$BUILD/corpus/$target"
    mkdir -p "$corpus"
    log="$BUILD/fuzz-$target.log"
    echo "fuzz: $target for ${SECONDS_PER_TARGET}s"
    # shellcheck disable=SC2086
    if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "$BUILD/tests/fuzz/fuzz-$target" -max_total_time="$SECONDS_PER_TARGET" \
            -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
            -artifact_prefix="$BUILD/artifacts/$target-" ${FUZZ_FLAGS:-} \
            "$corpus" "tests/fuzz/corpus/$target" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        echo "fuzz: $target ok: ${runs:-?} executions (${rate:-?}/s), corpus $(ls "$corpus" | wc -l) inputs"
    else
        echo "fuzz: $target FAILED, log $log:" >&2
        grep -E -A40 'ERROR: |==ERROR|runtime error|invariant failed|deadly signal|Test unit written' "$log" | head -80 >&2 || tail -40 "$log" >&2
        status=1
    fi
done
exit $status
