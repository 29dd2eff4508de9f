# gluster.sh — sourced by the multihost tests: a private GlusterFS volume on loopback and
# "hosts" that mount it, each in its own mount and PID namespace.
#
# mh_enter re-runs the calling script inside a new mount, network and PID namespace, so
# glusterd listens on a loopback device nobody else sees (no port clash with anything on
# the machine), its state dirs are tmpfs/bind mounts that vanish with the namespace, and
# every process it starts dies with the namespace's init: nothing can be left behind.
# Exit 77 (skipped) where GlusterFS or namespaces are missing.

MH_VOLUME=icmh$$

mh_skip() {
    echo "1..0 # SKIP $*"
    exit 77
}

# mh_enter "$0" "$@": call first; returns only inside the namespace.
mh_enter() {
    if [ "${MH_INSIDE:-}" = 1 ]; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || mh_skip "needs root (glusterd, FUSE mounts)"
    for tool in glusterd gluster mount.glusterfs unshare ip qemu-img sha1sum; do
        command -v "$tool" >/dev/null 2>&1 || mh_skip "'$tool' not installed (scripts/install-deps.sh --test)"
    done
    [ -c /dev/fuse ] || mh_skip "no /dev/fuse"
    unshare --mount --net --pid --fork --mount-proc true 2>/dev/null || mh_skip "no namespaces here"
    script=$1
    shift
    MH_INSIDE=1 exec unshare --mount --net --pid --fork --mount-proc --propagation private \
        /bin/sh "$script" "$@"
}

# mh_volume DOCUMENTED: starts glusterd and a one-brick volume; DOCUMENTED=1 applies the
# volume settings README "Shared storage" asks for. Sets MH_TMP, MH_BRICK, MH_MOUNT_OPTS.
mh_volume() {
    documented=$1
    ip link set lo up
    MH_TMP=$(mktemp -d /tmp/ic-multihost.XXXXXX)
    MH_BRICK=$MH_TMP/brick
    mkdir -p "$MH_TMP/glusterd" "$MH_TMP/log" "$MH_TMP/run" "$MH_BRICK" /var/lib/glusterd \
        /var/log/glusterfs
    # glusterd's state, logs and sockets: private to this namespace. The CLI finds glusterd
    # through /run/glusterd.socket, so all of /run is private too: two runs at once (two
    # developers' test suites) would otherwise talk to each other's glusterd.
    mount -t tmpfs mh-run /run
    mkdir -p /run/gluster
    mount --bind "$MH_TMP/glusterd" /var/lib/glusterd
    mount --bind "$MH_TMP/log" /var/log/glusterfs
    mount --bind "$MH_TMP/run" /run/gluster
    # The hosts mount below /srv: a tmpfs, so nothing is created on the real /srv.
    mount -t tmpfs mh-srv /srv
    glusterd -N >"$MH_TMP/glusterd.out" 2>&1 &
    i=0
    until gluster --mode=script volume info >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "Bail out! glusterd did not start"; exit 1; }
        sleep 0.1
    done
    # The brick host must resolve to a local address; 'localhost' is refused.
    gluster --mode=script volume create "$MH_VOLUME" "$(hostname):$MH_BRICK" force >/dev/null ||
        { echo "Bail out! volume create failed"; exit 1; }
    if [ "$documented" = 1 ]; then
        for opt in performance.stat-prefetch performance.quick-read performance.open-behind; do
            gluster --mode=script volume set "$MH_VOLUME" $opt off >/dev/null
        done
        MH_MOUNT_OPTS="attribute-timeout=0,entry-timeout=0,negative-timeout=0"
    else
        MH_MOUNT_OPTS="defaults"
    fi
    gluster --mode=script volume start "$MH_VOLUME" >/dev/null ||
        { echo "Bail out! volume start failed"; exit 1; }
}

# mh_host NAME MOUNTPOINT CMD...: runs CMD as host NAME: in its own mount and PID
# namespace, with the volume mounted at MOUNTPOINT (only it sees that mount) and
# unmounted when CMD ends. MH_HOST and MH_MNT are set for CMD.
mh_host() {
    name=$1
    mnt=$2
    shift 2
    MH_HOST=$name MH_MNT=$mnt MH_VOLUME=$MH_VOLUME MH_MOUNT_OPTS=$MH_MOUNT_OPTS \
        unshare --mount --pid --fork --mount-proc --propagation private /bin/sh -c '
        mkdir -p "$MH_MNT" &&
        mount -t glusterfs -o "$MH_MOUNT_OPTS" "localhost:/$MH_VOLUME" "$MH_MNT" || exit 99
        "$@"
        rc=$?
        umount "$MH_MNT" || umount -l "$MH_MNT"
        exit $rc' mh-host "$@"
}

mh_teardown() {
    gluster --mode=script volume stop "$MH_VOLUME" force >/dev/null 2>&1
    gluster --mode=script volume delete "$MH_VOLUME" >/dev/null 2>&1
    # This namespace's init is our parent: everything still running here dies with it,
    # glusterd and brick processes included. Files: ours alone.
    umount /var/lib/glusterd /var/log/glusterfs /run/gluster /srv /run 2>/dev/null
    # IMAGECACHE_MULTIHOST_KEEP=DIR keeps the logs (not the brick) for a look afterwards.
    if [ -n "${IMAGECACHE_MULTIHOST_KEEP:-}" ]; then
        mkdir -p "$IMAGECACHE_MULTIHOST_KEEP"
        cp "$MH_TMP"/*.log "$MH_TMP"/*.err "$MH_TMP"/*.conf "$IMAGECACHE_MULTIHOST_KEEP"/ 2>/dev/null
    fi
    rm -rf "$MH_TMP"
}

# mh_config FILE HOST INSTANCES_PATH [EXTRA LINES]: a config for one host.
mh_config() {
    file=$1
    host=$2
    inst=$3
    shift 3
    {
        printf '[imagecache]\ninstances_path=%s\nhost=%s\n' "$inst" "$host"
        printf 'remove_unused_original_minimum_age_seconds=0\n'
        printf 'remove_unused_resized_minimum_age_seconds=0\n'
        # No libvirtd in a test host: the live-domain witness is noted as unreachable.
        printf 'libvirt_uri=qemu+unix:///system?socket=/nonexistent/libvirt-sock\n'
        for line in "$@"; do printf '%s\n' "$line"; done
    } >"$file"
}

# mh_domain_xml NAME UUID DISK: a domain with one qcow2 file disk.
mh_domain_xml() {
    printf "<domain type='qemu'><name>%s</name><uuid>%s</uuid><devices>" "$1" "$2"
    printf "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
    printf "<source file='%s'/><target dev='vda' bus='virtio'/></disk></devices></domain>\n" "$3"
}

mh_sha1() { printf '%s' "$1" | sha1sum | cut -d' ' -f1; }
