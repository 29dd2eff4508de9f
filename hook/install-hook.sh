#!/bin/sh
# install-hook.sh BUILT_HOOK HOOKS_DIR — meson install script: installs the hook as
# <HOOKS_DIR>/imagecache (libvirt >= 6.5 runs every executable in qemu.d; meson cannot
# rename an installed executable). HOOKS_DIR is absolute; DESTDIR is honoured.
set -eu
src=$1
dir=${DESTDIR:-}$2
if [ -n "${MESON_INSTALL_DRY_RUN:-}" ]; then
    echo "Would install $src to $dir/imagecache"
    exit 0
fi
install -d -m 0755 "$dir"
# Copy then rename: libvirt may run the old hook while we replace it.
install -m 0755 "$src" "$dir/.imagecache.new"
mv -f "$dir/.imagecache.new" "$dir/imagecache"
echo "Installing $src to $dir/imagecache"
