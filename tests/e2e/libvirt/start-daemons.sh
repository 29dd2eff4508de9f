#!/bin/sh
# start-daemons.sh TMP — run by e2e-libvirt.sh inside `unshare --mount`: gives
# virtlogd and libvirtd a private view of the paths a root libvirtd always uses
# (they are compiled in; hooks come from /etc/libvirt/hooks), then starts both.
# Nothing of the host's /etc/libvirt, /run or /var is written: the mounts
# exist only in this mount namespace, which ends with the last daemon.
set -eu
tmp=$1

mount --make-rprivate /
mount --bind "$tmp/etc-libvirt" /etc/libvirt
# QEMU's compiled-in user must resolve even though qemu.conf says root.
mount --bind "$tmp/passwd" /etc/passwd
mount --bind "$tmp/group" /etc/group
mount --bind "$tmp/run" /run
if ! mount -t overlay overlay \
    -o "lowerdir=/var,upperdir=$tmp/var-upper,workdir=$tmp/var-work" /var 2>/dev/null; then
    # $tmp cannot hold an overlay upper dir (it is an overlay itself): keep
    # the upper layer on a tmpfs of this namespace.
    mount -t tmpfs -o mode=0700 tmpfs "$tmp/var-tmpfs"
    mkdir "$tmp/var-tmpfs/upper" "$tmp/var-tmpfs/work"
    mount -t overlay overlay \
        -o "lowerdir=/var,upperdir=$tmp/var-tmpfs/upper,workdir=$tmp/var-tmpfs/work" /var
fi

virtlogd --daemon --config /etc/libvirt/virtlogd.conf --pid-file /run/virtlogd.pid
libvirtd --daemon --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirtd.pid
