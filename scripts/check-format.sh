#!/bin/sh
# check-format.sh — every C file git tracks is as clang-format (.clang-format) writes it.
# CI runs it; `clang-format -i FILE` mends a file it names.
set -eu
cd "$(dirname "$0")/.."
if git ls-files -z '*.c' '*.h' | xargs -0 clang-format --dry-run --Werror; then
    echo "check-format: ok: every tracked C file is clang-format clean"
else
    echo "check-format: FAILED: run clang-format -i on the files above" >&2
    exit 1
fi
