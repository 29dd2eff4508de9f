#!/bin/sh
# test-static.sh HOOK IMAGECACHECTL — two hosts on one GlusterFS volume, mounted at
# different paths. Host B's domains are recorded only in B's ledger (by the real hook fed
# domain XML; their overlays live outside the share, so no other witness knows them).
# Host A's `imagecachectl run` with zero minimum ages must keep every file B uses and
# remove the unused ones. A third host, C, has instance disks on the share whose backing
# names are spelled with C's mount path: A keeps the base file one names; another names a
# file outside any base dir that A cannot see, which is "usage unknown" (nothing removed)
# until that disk goes. TAP output; exit 77 where GlusterFS cannot run.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/gluster.sh"
mh_enter "$0" "$@"
HOOK=$(realpath "$1")
CTL=$(realpath "$2")

mh_volume 1
trap mh_teardown EXIT
T=$MH_TMP
echo "1..6"

B_USED="$(mh_sha1 img-b1) $(mh_sha1 img-b2) $(mh_sha1 img-b3)"
UNUSED="$(mh_sha1 img-u1) $(mh_sha1 img-u2)"
C_USED=$(mh_sha1 img-c1)

mh_config "$T/a.conf" hostA /srv/nova
mh_config "$T/b.conf" hostB /srv/novaB
mh_config "$T/c.conf" hostC /srv/novaC
mkdir -p "$T/b-local"

# Host A: the base files, old enough for any threshold.
mh_host hostA /srv/nova sh -c '
    mkdir -p /srv/nova/_base
    for f in '"$B_USED $UNUSED $C_USED"'; do
        head -c 4096 /dev/urandom >/srv/nova/_base/$f && touch -d "3 days ago" /srv/nova/_base/$f
    done'

# Host B: three domains, each on one of the base files, recorded by the hook at prepare.
mh_host hostB /srv/novaB sh -c '
    n=0
    for f in '"$B_USED"'; do
        n=$((n + 1))
        qemu-img create -q -f qcow2 -u -F raw -b /srv/novaB/_base/$f '"$T"'/b-local/dom$n.qcow2 1M
        . '"$HERE"'/gluster.sh
        mh_domain_xml dom$n $(cat /proc/sys/kernel/random/uuid) '"$T"'/b-local/dom$n.qcow2 |
            IMAGECACHE_CONFIG='"$T"'/b.conf IMAGECACHE_HOOK_LOG_STDERR=1 \
            '"$HOOK"' dom$n prepare begin - || exit 1
    done'

# Host C: instance disks on the share, their backing files named by C's mount path.
mh_host hostC /srv/novaC sh -c '
    mkdir -p /srv/novaC/inst-c1 /srv/novaC/inst-c2 /srv/novaC/images
    qemu-img create -q -f qcow2 -u -F raw -b /srv/novaC/_base/'"$C_USED"' /srv/novaC/inst-c1/disk 1M
    qemu-img create -q -f qcow2 -u -F raw -b /srv/novaC/images/gone /srv/novaC/inst-c2/disk 1M'

# A backing file A cannot find, in no base dir: that must block, never remove.
mh_host hostA /srv/nova sh -c '
    IMAGECACHE_CONFIG='"$T"'/a.conf '"$CTL"' run --json >'"$T"'/run-unknown.json 2>'"$T"'/run-unknown.err
    ls /srv/nova/_base >'"$T"'/after-unknown
    rm /srv/nova/inst-c2/disk'
missing=""
for f in $B_USED $UNUSED $C_USED; do grep -qx "$f" "$T/after-unknown" || missing="$missing $f"; done
if [ -z "$missing" ] && grep -q "cannot be found here" "$T/run-unknown.json"; then
    echo "ok 1 - a backing file host A cannot find blocks removal (usage unknown)"
else
    echo "not ok 1 - with a backing file host A cannot find, A removed:$missing"
    sed 's/^/# /' "$T/run-unknown.err"
fi

mh_host hostA /srv/nova sh -c '
    IMAGECACHE_CONFIG='"$T"'/a.conf '"$CTL"' run --json >'"$T"'/run.json 2>'"$T"'/run.err
    echo $? >'"$T"'/run.rc
    ls /srv/nova/_base >'"$T"'/after'
rc=$(cat "$T/run.rc")
[ "$rc" = 0 ] && echo "ok 2 - host A's run succeeds" ||
    { echo "not ok 2 - host A's run exited $rc"; sed 's/^/# /' "$T/run.err"; }

lost=""
for f in $B_USED; do grep -qx "$f" "$T/after" || lost="$lost $f"; done
n_used=$(echo $B_USED | wc -w)
n_lost=$(echo $lost | wc -w)
[ -z "$lost" ] && echo "ok 3 - host A keeps all $n_used base files of host B's domains" ||
    echo "not ok 3 - host A removed $n_lost of host B's $n_used in-use base files:$lost"

grep -qx "$C_USED" "$T/after" && echo "ok 4 - host A keeps the base file named through host C's mount path" ||
    echo "not ok 4 - host A removed the base file host C's instance names through /srv/novaC"

left=""
for f in $UNUSED; do grep -qx "$f" "$T/after" && left="$left $f"; done
[ -z "$left" ] && echo "ok 5 - host A removes the unused base files" ||
    { echo "not ok 5 - host A kept unused files:$left"; sed 's/^/# /' "$T/run.err"; }

# One removing pass per interval: B's run right after A's only reports.
mh_config "$T/a2.conf" hostA /srv/nova "shared_pass_interval_seconds=3600"
mh_config "$T/b2.conf" hostB /srv/novaB "shared_pass_interval_seconds=3600"
mh_host hostA /srv/nova sh -c 'IMAGECACHE_CONFIG='"$T"'/a2.conf '"$CTL"' run >/dev/null 2>&1'
mh_host hostB /srv/novaB sh -c '
    head -c 4096 /dev/urandom >/srv/novaB/_base/'"$(mh_sha1 img-u3)"'
    touch -d "3 days ago" /srv/novaB/_base/'"$(mh_sha1 img-u3)"'
    IMAGECACHE_CONFIG='"$T"'/b2.conf '"$CTL"' run >/dev/null 2>'"$T"'/run-b2.err
    ls /srv/novaB/_base >'"$T"'/after-b2'
if grep -qx "$(mh_sha1 img-u3)" "$T/after-b2" && grep -q "host 'hostA' ran the removal pass" "$T/run-b2.err"; then
    echo "ok 6 - within shared_pass_interval_seconds of host A's pass, host B's run only reports"
else
    echo "not ok 6 - host B's run removed or did not say why it only reported"
    sed 's/^/# /' "$T/run-b2.err"
fi
