#!/bin/sh
# test-deb.sh [BUILD_DIR] — checks the Debian packages of contrib/debian (issue 8): builds
# them with dpkg-buildpackage -us -uc -b in a temporary copy of the tree (contrib/debian
# copied to ./debian there), checks the contents of both .debs (dpkg-deb -c), lintian
# (errors fail, warnings are shown), installs them into an empty root with dpkg --root
# (dependencies are the host's: --force-depends), runs the installed imagecachectl,
# purges them again (no file left behind), and deletes the temporary copy with the
# packages in it. To keep the .debs: IMAGECACHE_DEB_OUT=DIR copies them there.
# The copy works from a git clone (git ls-files) and from a release tarball without
# .git (`meson dist`; every file but build dirs).
# Needs: dpkg-dev debhelper lintian scdoc and the build dependencies; as root it installs
# what is missing with scripts/install-deps.sh. Exit 0 pass, 1 fail, 77 skip.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/imagecache-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Tools and build dependencies.
deps="scdoc debhelper dpkg-dev lintian fakeroot man-db"
if ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null \
    || ! command -v lintian >/dev/null || ! command -v scdoc >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        IMAGECACHE_EXTRA_PKGS="$deps" "$src/scripts/install-deps.sh" --test || {
            echo "SKIP: could not install $deps"; exit 77; }
    else
        echo "SKIP: needs $deps (run as root to install them)"; exit 77
    fi
fi

# A copy of the tree: in a git work tree, as git sees it (tracked and untracked files,
# not ignored ones: no build dirs); IMAGECACHE_DEB_SOURCE=head takes the last commit
# instead (git archive HEAD), with the working tree's contrib/debian. In a release
# tarball (no .git), every file except meson build dirs (those holding meson-private/).
mkdir "$work/src"
if [ "${IMAGECACHE_DEB_SOURCE:-worktree}" = head ]; then
    git -C "$src" archive HEAD | tar -C "$work/src" -xf -
elif [ "$(git -C "$src" rev-parse --show-toplevel 2>/dev/null)" = "$src" ]; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
        | tar --null -T - -cf -) | tar -C "$work/src" -xf -
else
    excludes=$(cd "$src" && find . -mindepth 2 -maxdepth 2 -type d -name meson-private \
        | sed 's|/meson-private$||; s|^|--exclude=|')
    # shellcheck disable=SC2086
    tar -C "$src" --exclude-vcs $excludes -cf - . | tar -C "$work/src" -xf -
fi
[ -f "$work/src/meson.build" ] && [ -d "$work/src/common" ] \
    || { echo "FAIL: the copy of $src holds no source tree"; exit 1; }
rm -rf "$work/src/debian"
cp -a "$src/contrib/debian" "$work/src/debian"
if ! (cd "$work/src" && dpkg-checkbuilddeps) >"$work/deps.log" 2>&1; then
    cat "$work/deps.log"
    if [ "$(id -u)" -eq 0 ]; then
        missing=$(sed -n 's/.*Unmet build dependencies: //p' "$work/deps.log" \
            | sed 's/([^)]*)//g; s/<[^>]*>//g')
        IMAGECACHE_EXTRA_PKGS="$missing" "$src/scripts/install-deps.sh" || true
    fi
    (cd "$work/src" && dpkg-checkbuilddeps) || { echo "SKIP: build dependencies missing"; exit 77; }
fi

echo "# dpkg-buildpackage -us -uc -b in $work/src"
if (cd "$work/src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    pass "dpkg-buildpackage -us -uc -b"
else
    tail -n 80 "$work/build.log"
    fail "dpkg-buildpackage"; exit 1
fi

version=$(cd "$work/src" && dpkg-parsechangelog -S Version)
if [ -n "${IMAGECACHE_DEB_OUT:-}" ]; then
    mkdir -p "$IMAGECACHE_DEB_OUT" && cp "$work"/*.deb "$IMAGECACHE_DEB_OUT"/ \
        && echo "# kept the packages in $IMAGECACHE_DEB_OUT"
fi
arch=$(dpkg --print-architecture)
main_deb=$work/imagecache_${version}_$arch.deb
plugin_deb=$work/collectd-imagecache_${version}_$arch.deb
for deb in "$main_deb" "$plugin_deb"; do
    [ -f "$deb" ] && pass "built $(basename "$deb")" || fail "no $(basename "$deb")"
done
[ "$failures" -eq 0 ] || exit 1

# Contents: what each package must hold.
contents() { dpkg-deb -c "$1" | awk '{print $6}' | sed 's|^\./|/|; s|/$||'; }
contents "$main_deb" >"$work/main.list"
contents "$plugin_deb" >"$work/plugin.list"
for path in /usr/bin/imagecachectl /etc/libvirt/hooks/qemu.d/imagecache \
    /usr/libexec/imagecache/imagecache-hook \
    /usr/share/man/man1/imagecachectl.1.gz /usr/share/man/man5/imagecache.conf.5.gz \
    /usr/share/man/man8/imagecache-hook.8.gz \
    /usr/share/doc/imagecache/examples/imagecache.conf /usr/share/doc/imagecache/copyright \
    /usr/lib/systemd/system/imagecache.service /usr/lib/systemd/system/imagecache.timer; do
    grep -qx "$path" "$work/main.list" && pass "imagecache has $path" || fail "imagecache lacks $path"
done
for path in /usr/lib/collectd/imagecache.so /usr/share/man/man5/collectd-imagecache.5.gz \
    /usr/lib/systemd/system/collectd.service.d/imagecache.conf \
    /usr/share/doc/collectd-imagecache/copyright \
    /usr/share/imagecache/grafana/imagecache-graphite.json \
    /usr/share/imagecache/grafana/imagecache-influxdb.json \
    /usr/share/imagecache/grafana/imagecache-prometheus.json \
    /usr/share/imagecache/grafana/alert-rules.json \
    /usr/share/imagecache/prometheus/imagecache-rules.yml; do
    grep -qx "$path" "$work/plugin.list" && pass "collectd-imagecache has $path" \
        || fail "collectd-imagecache lacks $path"
done
if [ -f "$src/contrib/collectd/imagecache.conf" ]; then
    grep -qx /usr/share/imagecache/collectd/imagecache.conf "$work/plugin.list" \
        && pass "collectd-imagecache has the collectd snippet" || fail "collectd-imagecache lacks the snippet"
fi
grep -qx /etc/imagecache.conf "$work/main.list" && fail "imagecache ships /etc/imagecache.conf" \
    || pass "no /etc/imagecache.conf in the package"
# The dashboards belong with the plugin that produces their metrics.
grep -q /usr/share/imagecache/grafana "$work/main.list" \
    && fail "imagecache ships the Grafana files (they belong to collectd-imagecache)" \
    || pass "no Grafana files in imagecache"
# The timer removes files: the package must not enable it on a new install, nor start it
# (dh_installsystemd without --no-enable writes "was-enabled defaults to true ... enable").
dpkg-deb -e "$main_deb" "$work/main.control"
if grep -q "was-enabled defaults to true" "$work/main.control/postinst" 2>/dev/null \
    || grep -E "(enable|start).*imagecache\.(timer|service)" "$work/main.control/postinst" 2>/dev/null; then
    fail "imagecache's postinst enables or starts imagecache.timer"
else
    pass "imagecache.timer is installed, not enabled or started"
fi
dpkg-deb -f "$plugin_deb" Depends | grep -q "imagecache (= $version)" \
    && pass "collectd-imagecache depends on imagecache (= $version)" || fail "plugin Depends"
dpkg-deb -f "$main_deb" Depends | grep -q libglib2.0-0 && pass "shlibs: imagecache depends on libglib2.0-0" \
    || fail "imagecache Depends lacks libglib2.0-0"
# Issue 15: the hook embeds GLib and PCRE2; the package names their sources.
built_using=$(dpkg-deb -f "$main_deb" Built-Using)
case "$built_using" in
    *"glib2.0 (= "*"pcre2 (= "*) pass "imagecache Built-Using: $built_using" ;;
    *) fail "imagecache Built-Using lacks glib2.0 and pcre2: '$built_using'" ;;
esac
# Issue 15: imagecachectl and the plugin no longer link json-glib.
dpkg-deb -f "$main_deb" Depends | grep -q libjson-glib && fail "imagecache depends on json-glib" \
    || pass "imagecache does not depend on json-glib"
dpkg-deb -f "$plugin_deb" Depends | grep -q libjson-glib && fail "collectd-imagecache depends on json-glib" \
    || pass "collectd-imagecache does not depend on json-glib"

# lintian: errors fail; warnings are printed for the record.
if lintian --fail-on error --tag-display-limit 0 "$work"/imagecache_*_"$arch".changes >"$work/lintian.log" 2>&1; then
    pass "lintian: no errors"
else
    fail "lintian reports errors"
fi
sed 's/^/# lintian: /' "$work/lintian.log"

# Install into an empty root, run, purge.
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/tmp"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg_root() { DPKG_ROOT=$root dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null "$@"; }
if dpkg_root -i "$main_deb" "$plugin_deb" >"$work/install.log" 2>&1; then
    pass "dpkg --root -i both packages"
else
    cat "$work/install.log"; fail "dpkg --root -i"
fi
status=$(dpkg_root -s imagecache collectd-imagecache 2>/dev/null | grep -c '^Status: install ok installed' || true)
[ "$status" = 2 ] && pass "both packages installed" || fail "dpkg status: $status of 2 installed"
[ -x "$root/usr/libexec/imagecache/imagecache-hook" ] && pass "hook installed executable" || fail "hook not installed"
[ "$(readlink "$root/etc/libvirt/hooks/qemu.d/imagecache")" = /usr/libexec/imagecache/imagecache-hook ] \
    && pass "qemu.d/imagecache links to /usr/libexec/imagecache/imagecache-hook" || fail "hook symlink"
"$root/usr/bin/imagecachectl" --help >/dev/null 2>&1 && pass "installed imagecachectl runs" \
    || fail "installed imagecachectl --help"
cfg=$work/imagecache.conf
printf '[imagecache]\ninstances_path=%s/instances\nhost=debtest\n' "$work" >"$cfg"
mkdir -p "$work/instances/_base"
"$root/usr/bin/imagecachectl" --config "$cfg" report >/dev/null 2>"$work/report.err" \
    && pass "installed imagecachectl report on an empty cache" \
    || { cat "$work/report.err"; fail "installed imagecachectl report"; }
if dpkg_root --purge collectd-imagecache imagecache >"$work/purge.log" 2>&1; then
    pass "dpkg --root --purge"
else
    cat "$work/purge.log"; fail "dpkg --root --purge"
fi
left=$(cd "$root" && find . -type f ! -path './var/lib/dpkg/*' | head -n 5)
[ -z "$left" ] && pass "purge leaves no file" || fail "left after purge: $left"

if [ "$failures" -gt 0 ]; then echo "FAIL: $failures checks failed"; exit 1; fi
echo "PASS: Debian packages"
