#!/bin/sh
# imagecachectl given a new user's bad input: a clear one-line error, exit
# status 2, and nothing removed. Usage: test-cli.sh IMAGECACHECTL
set -u
ctl="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
n=0

# expect STATUS PATTERN ARGS...: the command exits STATUS and stderr matches PATTERN.
expect() {
    want_status=$1 pattern=$2
    shift 2
    n=$((n + 1))
    "$ctl" "$@" >"$tmp/out" 2>"$tmp/err"
    status=$?
    if [ "$status" -eq "$want_status" ] && grep -q -- "$pattern" "$tmp/err"; then
        echo "ok $n - $*"
    else
        echo "not ok $n - $* (exit $status, stderr: $(head -c 300 "$tmp/err"))"
        failures=$((failures + 1))
    fi
}

mkdir -p "$tmp/inst/_base"
old="$tmp/inst/_base/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
echo data >"$old"
touch -d "30 days ago" "$old"
printf '[imagecache]\ninstances_path=%s\nhost=clitest\n' "$tmp/inst" >"$tmp/good.conf"
printf '[imagecache]\ninstances_path=%s\nremove_unused_base_image=true\n' "$tmp/inst" >"$tmp/typo.conf"

echo "1..7"
expect 2 "run takes no arguments, got 'dry-run'" run dry-run --config "$tmp/good.conf"
expect 2 "config file '$tmp/missing.conf'" report --config "$tmp/missing.conf"
expect 2 "unknown key 'remove_unused_base_image'" run --config "$tmp/typo.conf"
expect 2 "Unknown option --dryrun" run --dryrun --config "$tmp/good.conf"
expect 2 "unknown command 'rnu'" rnu
expect 1 "is not a base file" report --config "$tmp/good.conf" --explain nosuchfile
n=$((n + 1))
if [ -f "$old" ]; then echo "ok $n - nothing was removed"; else echo "not ok $n - a file was removed"; failures=$((failures + 1)); fi
[ "$failures" -eq 0 ]
