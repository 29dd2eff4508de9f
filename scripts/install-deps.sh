#!/bin/sh
# Installs the Debian 12 packages imagecache needs: to build and run the demo,
# and with --test also everything the test suites start (libvirtd with QEMU,
# collectd). Idempotent: apt-get runs only when something is missing.
set -eu

WANT_TEST=0
[ "${1:-}" = "--test" ] && WANT_TEST=1

# libjson-glib-dev: the tests only (they cross-check the library's JSON with it).
BUILD_PKGS="build-essential meson ninja-build pkg-config libglib2.0-dev libssl-dev libjson-glib-dev clang-format"
DEMO_PKGS="qemu-utils"
E2E_PKGS="jq python3 python3-jsonschema libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 collectd-core collectd-dev scdoc debhelper lintian dpkg-dev fakeroot man-db valgrind clang libfuzzer-14-dev influxdb influxdb-client graphite-carbon graphite-web prometheus libprotobuf-c1 libmicrohttpd12 systemd glusterfs-server glusterfs-client"
TEST_PKGS=""
[ "$WANT_TEST" = 1 ] && TEST_PKGS="$E2E_PKGS"
EXTRA_PKGS="${IMAGECACHE_EXTRA_PKGS:-}"

missing=""
for pkg in $BUILD_PKGS $DEMO_PKGS $TEST_PKGS $EXTRA_PKGS; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi

echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing >/dev/null
