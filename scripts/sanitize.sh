#!/bin/sh
# Builds with AddressSanitizer + UndefinedBehaviorSanitizer in ./build-asan and runs
# the unit suite (which replays the fuzz corpora too). Any ASan, LeakSanitizer or
# UBSan report fails the test that produced it. Extra arguments go to `meson test`
# (e.g. `scripts/sanitize.sh --suite fuzz`); the default is `--suite unit`.
set -eu
cd "$(dirname "$0")/.."
IMAGECACHE_EXTRA_PKGS="clang libfuzzer-14-dev valgrind" ./scripts/install-deps.sh --test

BUILD=build-asan
if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true >/dev/null
fi
meson compile -C "$BUILD" >"$BUILD/compile.log" 2>&1 || { cat "$BUILD/compile.log"; exit 1; }

# Leaks count; UBSan stops at the first report; ASan aborts (a core-less crash the
# test harness sees). Test processes that fork (g_test_trap_subprocess, the hook)
# inherit these.
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:disable_coredump=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0"
[ $# -eq 0 ] && set -- --suite unit
meson test -C "$BUILD" --print-errorlogs "$@"
