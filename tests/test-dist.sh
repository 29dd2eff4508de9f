#!/bin/sh
# test-dist.sh BUILD_DIR — the release tarball is a working tree (issue 14): `meson dist`
# (no .git in what it makes), unpacked in a temporary dir, then, from that tree without
# git: meson setup, the unit suite, and tests/test-deb.sh (its copy of the tree must not
# need git). Suite 'package'. Exit 0 pass, 1 fail, 77 skip.
set -eu
build=$(cd "${1:?usage: test-dist.sh BUILD_DIR}" && pwd)
command -v git >/dev/null 2>&1 || { echo "SKIP: meson dist needs git"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/imagecache-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# --allow-dirty: the tarball is made from the last commit either way.
if ! meson dist -C "$build" --no-tests --allow-dirty --formats xztar >"$work/dist.log" 2>&1; then
    cat "$work/dist.log"; echo "FAIL: meson dist"; exit 1
fi
tarball=$(ls "$build"/meson-dist/*.tar.xz | head -n 1)
echo "PASS: meson dist made $(basename "$tarball")"
tar -C "$work" -xf "$tarball"
rm -f "$build"/meson-dist/*
tree=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[ ! -e "$tree/.git" ] && echo "PASS: the tarball has no .git" || { echo "FAIL: .git in the tarball"; exit 1; }

failures=0
if (cd "$tree" && meson setup "$work/build" -Dwerror=true >"$work/setup.log" 2>&1 \
    && meson compile -C "$work/build" >"$work/compile.log" 2>&1); then
    echo "PASS: builds from the tarball"
else
    tail -n 40 "$work/setup.log" "$work/compile.log"; echo "FAIL: build from the tarball"; exit 1
fi
if meson test -C "$work/build" --suite unit --print-errorlogs >"$work/unit.log" 2>&1; then
    echo "PASS: unit suite from the tarball"
else
    tail -n 60 "$work/unit.log"; echo "FAIL: unit suite from the tarball"; failures=$((failures + 1))
fi
status=0
GIT_DIR=/nonexistent sh "$tree/tests/test-deb.sh" "$work/build" >"$work/deb.log" 2>&1 || status=$?
case $status in
0) echo "PASS: tests/test-deb.sh from the tarball" ;;
77) echo "SKIP: tests/test-deb.sh skipped from the tarball"; tail -n 3 "$work/deb.log"; exit 77 ;;
*) tail -n 60 "$work/deb.log"; echo "FAIL: tests/test-deb.sh from the tarball"; failures=$((failures + 1)) ;;
esac
[ "$failures" -eq 0 ] || exit 1
echo "PASS: the release tarball builds, tests and packages"
