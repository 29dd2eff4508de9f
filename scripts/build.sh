#!/bin/sh
# Configures (once) and builds imagecache in ./build. Extra arguments go to
# `meson setup` the first time (e.g. -Dwerror=true).
set -eu
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
    meson setup build "$@" >/dev/null
fi
meson compile -C build >/dev/null
