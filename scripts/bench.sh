#!/bin/sh
# Runs the benchmark suite (issue 7, docs/performance.md): builds imagecache with
# buildtype=release in ./build-bench and prints one table of every case, headed
# by the machine it ran on. Run it on an idle machine, as root (case 3 reads the
# page cache of its own files with mincore, which needs ownership or root).
#
#   ./scripts/bench.sh                 all cases, full sizes (about 10 minutes)
#   ./scripts/bench.sh --quick         smoke mode: tiny sizes, seconds (CI)
#   ./scripts/bench.sh --case 1 --case 3 --scale 3 --workdir /var/tmp
#
# Environment: IMAGECACHE_BENCH_KEEP=1 keeps the scratch trees.
set -eu
cd "$(dirname "$0")/.."

# The peers the cases compare against: qemu-img (qemu-utils) and openssl. A
# missing peer is reported as n/a, so a failed install is not fatal.
IMAGECACHE_EXTRA_PKGS="qemu-utils openssl" ./scripts/install-deps.sh ||
    echo "bench: could not install the peers (qemu-utils, openssl); their rows say n/a" >&2

if [ ! -f build-bench/build.ninja ]; then
    meson setup build-bench --buildtype=release >/dev/null
fi
meson compile -C build-bench >/dev/null
# Case 2's trees (300,000 files at 10x) are kept in build-bench/trees and reused:
# deleting them is slow on a filesystem mounted with discard.
exec build-bench/bench/imagecache-bench --trees "$PWD/build-bench/trees" "$@"
