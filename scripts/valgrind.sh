#!/bin/sh
# Runs the unit suite under valgrind memcheck (the `valgrind` test setup of the root
# meson.build: --leak-check=full, definite leaks and memory errors fail the test,
# suppressions in tests/valgrind.supp) in ./build-valgrind, a plain debug build.
# Extra arguments go to `meson test` (default `--suite unit`).
set -eu
cd "$(dirname "$0")/.."
IMAGECACHE_EXTRA_PKGS="clang libfuzzer-14-dev valgrind" ./scripts/install-deps.sh --test

BUILD=build-valgrind
if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" --buildtype=debug -Dwerror=true >/dev/null
fi
meson compile -C "$BUILD" >"$BUILD/compile.log" 2>&1 || { cat "$BUILD/compile.log"; exit 1; }
[ $# -eq 0 ] && set -- --suite unit
meson test -C "$BUILD" --setup valgrind --print-errorlogs "$@"
