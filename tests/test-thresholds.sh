#!/bin/sh
# test-thresholds.sh BUILD_DIR — contrib/collectd/thresholds.conf inside the real collectd
# (issue 8): collectd -f with the built plugin on a cache holding one corrupt base file,
# the threshold rules included as an operator would, and the logfile plugin logging
# notifications. Passes when collectd accepts the config and the threshold plugin raises a
# FAILURE on count-corrupt and on the file's gauge-corrupt. Exit 0 pass, 1 fail, 77 skip.
set -eu
build=$(cd "${1:?usage: test-thresholds.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
plugin=$build/collectd-plugin/imagecache.so
command -v collectd >/dev/null 2>&1 || { echo "SKIP: collectd not installed (collectd-core)"; exit 77; }
[ -f "$plugin" ] || { echo "SKIP: plugin not built (collectd-dev headers absent)"; exit 77; }

work=$(mktemp -d "${TMPDIR:-/tmp}/imagecache-thresholds.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/inst/_base" "$work/base"
file=$(printf 'threshold-test-image' | sha1sum | cut -c1-40)
head -c 65536 /dev/urandom >"$work/inst/_base/$file"
echo 0000000000000000000000000000000000000000 >"$work/inst/_base/$file.sha1"
printf '[imagecache]\ninstances_path=%s/inst\nhost=thresholds\nchecksum_base_images=true\nremove_unused_base_images=false\nlibvirt_uri=test:///default\n' \
    "$work" >"$work/imagecache.conf"
cat >"$work/collectd.conf" <<CONF
Hostname "thresholds-host"
FQDNLookup false
BaseDir "$work/base"
PIDFile "$work/collectd.pid"
Interval 1
TypesDB "/usr/share/collectd/types.db"
PluginDir "/usr/lib/collectd"
LoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File "$work/collectd.log"
  PrintSeverity true
</Plugin>
PluginDir "$build/collectd-plugin"
LoadPlugin imagecache
<Plugin imagecache>
  Config "$work/imagecache.conf"
  PassInterval 3600
</Plugin>
PluginDir "/usr/lib/collectd"
Include "$src/contrib/collectd/thresholds.conf"
CONF

if ! collectd -t -C "$work/collectd.conf" >"$work/check.log" 2>&1; then
    cat "$work/check.log"; echo "FAIL: collectd -t rejects the config with thresholds.conf"; exit 1
fi
echo "PASS: collectd -t accepts thresholds.conf"
collectd -f -C "$work/collectd.conf" >"$work/stdout.log" 2>&1 &
pid=$!

want_total='plugin imagecache type count (instance corrupt): Data source "value" is currently 1.000000. That is above the failure threshold'
want_file="plugin imagecache (instance $file) type gauge (instance corrupt): Data source \"value\" is currently 1.000000. That is above the failure threshold"
i=0
while [ $i -lt 30 ]; do
    if grep -qF "$want_total" "$work/collectd.log" 2>/dev/null && grep -qF "$want_file" "$work/collectd.log"; then
        break
    fi
    sleep 0.5; i=$((i + 1))
done
failures=0
for want in "$want_total" "$want_file"; do
    if grep "severity = FAILURE" "$work/collectd.log" 2>/dev/null | grep -qF "$want"; then
        echo "PASS: threshold FAILURE: $want"
    else
        echo "FAIL: no threshold FAILURE: $want"; failures=$((failures + 1))
    fi
done
if [ "$failures" -gt 0 ]; then
    sed 's/^/# /' "$work/collectd.log" "$work/stdout.log"
    exit 1
fi
echo "PASS: thresholds fire on a corrupt base file"
