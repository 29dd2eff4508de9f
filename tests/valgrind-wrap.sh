#!/bin/sh
# The exe_wrapper of the `valgrind` test setup (root meson.build):
#   valgrind-wrap.sh VALGRIND [--option...] PROGRAM [ARG...]
# Runs PROGRAM under VALGRIND with the options when it is one of our ELF binaries;
# runs it directly when it is a script or a system interpreter (sh, python3):
# memcheck would check dash or Python, not imagecache, and the programs a script
# starts are not traced anyway.
set -eu
valgrind="$1"
shift
opts=""
while [ $# -gt 0 ]; do
    case "$1" in
    --*) opts="$opts $1"; shift ;;
    *) break ;;
    esac
done
prog="$1"
magic=$(od -An -c -N4 "$prog" 2>/dev/null | tr -d ' ' || true)
case "$prog" in
/usr/* | /bin/* | /sbin/*) magic="" ;;
esac
if [ "$magic" = '177ELF' ]; then
    # shellcheck disable=SC2086 # the options contain no spaces (meson-built paths)
    exec "$valgrind" $opts "$@"
fi
exec "$@"
