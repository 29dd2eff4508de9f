#!/bin/sh
# Installs the Debian 12 packages imagecache needs to build and test.
# Idempotent: packages already present are left alone; apt-get runs only
# when something is missing.
set -eu

BUILD_PKGS="build-essential meson ninja-build pkg-config libglib2.0-dev libssl-dev libjson-glib-dev clang-format"
TEST_PKGS="qemu-utils jq"
EXTRA_PKGS="${IMAGECACHE_EXTRA_PKGS:-}"

missing=""
for pkg in $BUILD_PKGS $TEST_PKGS $EXTRA_PKGS; do
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
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
