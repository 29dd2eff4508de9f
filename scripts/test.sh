#!/bin/sh
# Installs what is missing, builds with warnings as errors and runs every test
# suite (unit, e2e). Extra arguments go to `meson test` (e.g. --suite unit).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test
if [ ! -f build/build.ninja ]; then
    meson setup build -Dwerror=true >/dev/null
else
    meson configure build -Dwerror=true >/dev/null
fi
meson compile -C build
meson test -C build --print-errorlogs "$@"
