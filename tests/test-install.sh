#!/bin/sh
# test-install.sh BUILD_DIR — `meson install --destdir` into a temporary directory, then checks
# the tree an operator or packager gets (issue 8): the hook as
# <hooks_dir>/imagecache, imagecachectl in <bindir>, the four man pages (when scdoc is
# installed), the example config, the collectd snippet, the Grafana and Prometheus files,
# the systemd service + timer (checked with systemd-analyze verify), the plugin in <collectd_plugin_dir> (when collectd's headers are present), and no
# /etc/imagecache.conf (only the operator writes that one). Exit 0 pass, 1 fail.
set -eu
build=$(cd "${1:?usage: test-install.sh BUILD_DIR}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
dest=$(mktemp -d "${TMPDIR:-/tmp}/imagecache-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT INT TERM

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

meson install -C "$build" --no-rebuild --destdir "$dest" >"$dest.log" 2>&1 || {
    cat "$dest.log"; rm -f "$dest.log"; echo "FAIL: meson install"; exit 1; }
rm -f "$dest.log"

# The install paths of this build, from meson's own record of its options.
meson introspect --buildoptions "$build" >"$dest.options.json"
opt() {
    python3 -c '
import json, sys
opts = {o["name"]: o["value"] for o in json.load(sys.stdin)}
name = sys.argv[1]
value = opts[name]
if name not in ("prefix",) and not str(value).startswith("/"):
    value = opts["prefix"].rstrip("/") + "/" + value
print(value)' "$1" <"$dest.options.json"
}
prefix=$(opt prefix)
bindir=$(opt bindir)
sysconfdir=$(opt sysconfdir)
datadir=$(opt datadir)
mandir=$(opt mandir)
libdir=$(opt libdir)
hooks_dir=$(opt hooks_dir)
[ "$hooks_dir" = "$prefix/" ] && hooks_dir=$sysconfdir/libvirt/hooks/qemu.d
plugin_dir=$(opt collectd_plugin_dir)
[ "$plugin_dir" = "$prefix/" ] && plugin_dir=$libdir/collectd
unit_dir=$(opt systemd_unit_dir)
[ "$unit_dir" = "$prefix/" ] && unit_dir=$prefix/lib/systemd/system
rm -f "$dest.options.json"
echo "# prefix=$prefix sysconfdir=$sysconfdir hooks_dir=$hooks_dir plugin_dir=$plugin_dir"

check_exec() {
    if [ -f "$dest$1" ] && [ -x "$dest$1" ]; then pass "executable $1"; else fail "no executable $1"; fi
}
check_file() {
    if [ -f "$dest$1" ] && [ -s "$dest$1" ]; then pass "file $1"; else fail "no file $1"; fi
}

check_exec "$bindir/imagecachectl"
"$dest$bindir/imagecachectl" --help >/dev/null 2>&1 && pass "imagecachectl --help" || fail "imagecachectl --help"
check_exec "$hooks_dir/imagecache"
mode=$(stat -c %a "$dest$hooks_dir/imagecache" 2>/dev/null || echo none)
[ "$mode" = 755 ] && pass "hook mode 0755" || fail "hook mode is $mode, not 0755"
# The hook links GLib alone (issue 3): no libvirt, no libcrypto.
if ldd "$dest$hooks_dir/imagecache" 2>/dev/null | grep -E 'libvirt|libcrypto' >/dev/null; then
    fail "the installed hook links libvirt or libcrypto"
else
    pass "the installed hook links neither libvirt nor libcrypto"
fi
# libvirt runs everything in qemu.d: nothing else of ours may be there (no .new leftovers).
extra=$(find "$dest$hooks_dir" -mindepth 1 ! -name imagecache | head -n 1)
[ -z "$extra" ] && pass "nothing else in $hooks_dir" || fail "stray file in $hooks_dir: $extra"

[ ! -e "$dest$sysconfdir/imagecache.conf" ] && pass "no $sysconfdir/imagecache.conf installed" \
    || fail "$sysconfdir/imagecache.conf installed: run would remove files with a config nobody wrote"

check_file "$datadir/doc/imagecache/examples/imagecache.conf"
if cmp -s "$src/contrib/imagecache.conf" "$dest$datadir/doc/imagecache/examples/imagecache.conf"; then
    pass "example config is contrib/imagecache.conf"
else
    fail "installed example config differs from contrib/imagecache.conf"
fi
check_file "$datadir/doc/imagecache/logging.md"
check_file "$datadir/doc/imagecache/report.schema.json"
for f in imagecache-graphite.json imagecache-influxdb.json imagecache-prometheus.json alert-rules.json; do
    check_file "$datadir/imagecache/grafana/$f"
done
check_file "$datadir/imagecache/prometheus/imagecache-rules.yml"

# The systemd runner for hosts without collectd. systemd-analyze verify checks the
# syntax, the dependencies and that ExecStart's binary exists: the installed units
# name $bindir/imagecachectl, which is under $dest here, so verify a copy that names
# the DESTDIR binary (nothing else changed).
check_file "$unit_dir/imagecache.service"
check_file "$unit_dir/imagecache.timer"
if grep -qx "ExecStart=$bindir/imagecachectl --config $sysconfdir/imagecache.conf run --rate-limit 50M" \
    "$dest$unit_dir/imagecache.service" 2>/dev/null; then
    pass "imagecache.service runs $bindir/imagecachectl run with $sysconfdir/imagecache.conf"
else
    fail "imagecache.service ExecStart: $(grep ExecStart= "$dest$unit_dir/imagecache.service" 2>/dev/null)"
fi
# ExecStart's arguments as the installed imagecachectl parses them (a dry run on an
# empty cache with a config of its own).
unit_cfg=$(mktemp -d "${TMPDIR:-/tmp}/imagecache-unitcfg.XXXXXX")
mkdir -p "$unit_cfg/instances/_base"
printf '[imagecache]\ninstances_path=%s/instances\nhost=unit\nlibvirt_uri=test:///default\n' "$unit_cfg" \
    >"$unit_cfg/imagecache.conf"
args=$(sed -n "s|^ExecStart=$bindir/imagecachectl --config $sysconfdir/imagecache.conf ||p" \
    "$dest$unit_dir/imagecache.service")
# shellcheck disable=SC2086
if "$dest$bindir/imagecachectl" --config "$unit_cfg/imagecache.conf" $args --dry-run \
    >"$unit_cfg/out" 2>&1; then
    pass "imagecachectl accepts the service's arguments ($args)"
else
    cat "$unit_cfg/out"; fail "imagecachectl rejects the service's arguments ($args)"
fi
rm -rf "$unit_cfg"
if command -v systemd-analyze >/dev/null 2>&1; then
    units=$(mktemp -d "${TMPDIR:-/tmp}/imagecache-units.XXXXXX")
    sed "s|^ExecStart=$bindir/|ExecStart=$dest$bindir/|" "$dest$unit_dir/imagecache.service" \
        >"$units/imagecache.service"
    cp "$dest$unit_dir/imagecache.timer" "$units/"
    # other units of the host may warn too: only ours count
    if out=$(systemd-analyze verify --man=no "$units/imagecache.service" "$units/imagecache.timer" 2>&1) \
        && ! printf '%s\n' "$out" | grep -q imagecache; then
        pass "systemd-analyze verify imagecache.service imagecache.timer"
    else
        fail "systemd-analyze verify: $out"
    fi
    rm -rf "$units"
else
    echo "# systemd-analyze not installed (Debian systemd): units not verified"
fi
if [ -f "$src/contrib/collectd/imagecache.conf" ]; then
    check_file "$datadir/imagecache/collectd/imagecache.conf"
else
    echo "# contrib/collectd/imagecache.conf not written yet: snippet not checked"
fi

if command -v scdoc >/dev/null 2>&1; then
    for page in man1/imagecachectl.1 man5/imagecache.conf.5 man8/imagecache-hook.8 man5/collectd-imagecache.5; do
        f=$dest$mandir/$page
        if [ ! -s "$f" ]; then fail "no man page $mandir/$page"; continue; fi
        if grep -n '@[A-Z_]*@' "$f" >/dev/null; then fail "$page has an unsubstituted @VAR@"; fi
        # groff's own checks: any warning (bad macro, unknown escape) fails.
        warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null || true)
        if [ -n "$warnings" ]; then fail "$page renders with warnings: $warnings"; else pass "man page $page renders cleanly"; fi
    done
    LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$dest$mandir/man8/imagecache-hook.8" 2>/dev/null | col -b \
        | grep -qF "$hooks_dir/imagecache" \
        && pass "imagecache-hook(8) names the installed hook path" \
        || fail "imagecache-hook(8) does not name $hooks_dir/imagecache"
else
    echo "# scdoc not installed: man pages not built, not checked"
fi

if [ -f /usr/include/collectd/core/daemon/plugin.h ] && [ -f "$src/collectd-plugin/imagecache.c" ]; then
    check_file "$plugin_dir/imagecache.so"
    check_file "$unit_dir/collectd.service.d/imagecache.conf"
    if grep -qx "Environment=G_SLICE=always-malloc" \
        "$dest$unit_dir/collectd.service.d/imagecache.conf" 2>/dev/null; then
        pass "collectd's drop-in sets G_SLICE=always-malloc"
    else
        fail "collectd's drop-in does not set G_SLICE=always-malloc"
    fi
    if [ -f "$dest$plugin_dir/imagecache.so" ]; then
        exported=$(nm -D --defined-only "$dest$plugin_dir/imagecache.so" | awk '$2 == "T" {print $3}' | tr '\n' ' ')
        [ "$exported" = "module_register " ] && pass "plugin exports module_register only" \
            || fail "plugin exports: $exported"
    fi
else
    echo "# collectd headers absent: the plugin is not built, not checked"
fi

echo "# installed tree:"
(cd "$dest" && find . -type f -o -type l | sort | sed 's/^/#   /')
if [ "$failures" -gt 0 ]; then echo "FAIL: $failures checks failed"; exit 1; fi
echo "PASS: install tree"
