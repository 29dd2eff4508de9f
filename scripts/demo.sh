#!/bin/sh
# The main job on a demo: installs what is missing, builds, makes a realistic
# base-image cache under ./demo and runs `imagecachectl report`, then `run`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
./scripts/install-deps.sh
./scripts/build.sh

demo="$top/demo"
ctl="$top/build/cli/imagecachectl"
rm -rf "$demo"
mkdir -p "$demo/instances/_base"
base="$demo/instances/_base"

fingerprint() { printf '%s' "$1" | sha1sum | cut -c1-40; }
# make_base NAME SIZE_KIB AGE: a base file with random content, its .info
# sidecar, and an mtime AGE ago (e.g. "3 days ago").
make_base() {
    head -c "$(( $2 * 1024 ))" /dev/urandom > "$base/$1"
    printf '{"sha1": "%s", "sha1-timestamp": 0}\n' "$(sha1sum "$base/$1" | cut -c1-40)" > "$base/$1.info"
    touch -d "$3" "$base/$1"
}
# make_instance NAME BACKING: an instance dir whose disk is a qcow2 overlay.
make_instance() {
    mkdir -p "$demo/instances/$1"
    qemu-img create -q -f qcow2 -F raw -b "../_base/$2" "$demo/instances/$1/disk"
}

alpine=$(fingerprint alpine-3.19)
ubuntu=$(fingerprint ubuntu-22.04)
cirros=$(fingerprint cirros-0.6.2)
centos=$(fingerprint centos-stream-9)
fedora=$(fingerprint fedora-39)
debian=$(fingerprint debian-12)

make_base "$ubuntu" 2048 "5 days ago"                  # used by instance-0001
make_base "${ubuntu}_21474836480" 1024 "5 days ago"    # resized copy used by instance-0002
make_base "$cirros" 512 "3 days ago"                   # unused for 3 days: removed
make_base "${debian}_sm" 256 "2 days ago"              # unused small variant: removed
make_base "$centos" 512 "2 hours ago"                  # unused, but only for 2 hours: kept
make_base "$fedora" 768 "4 days ago"                   # corrupt: flagged, never removed
printf 'bit rot' | dd of="$base/$fedora" bs=1 seek=4096 conv=notrunc status=none
touch -d "4 days ago" "$base/$fedora"
echo "not a base image" > "$base/ephemeral_0_20_None"  # not ours: ignored
ln -s /etc/hostname "$base/${cirros}_sm"               # symlink: skipped, never followed
make_instance instance-0001 "$ubuntu"
make_instance instance-0002 "${ubuntu}_21474836480"
make_base "$alpine" 256 "6 days ago"                   # used by a VM only the ledger knows

cat > "$demo/imagecache.conf" <<CONF
[imagecache]
instances_path=$demo/instances
host=demo-host
checksum_base_images=true
CONF

# A VM whose overlay lives outside the instances dir: only the libvirt hook's
# usage ledger knows it uses alpine. Here the hook is run by hand, as libvirtd
# would run it at "prepare" with the domain XML on stdin.
mkdir -p "$demo/elsewhere"
qemu-img create -q -f qcow2 -F raw -b "$base/$alpine" "$demo/elsewhere/vm-alpine.qcow2"
IMAGECACHE_CONFIG="$demo/imagecache.conf" "$top/build/hook/imagecache-hook" vm-alpine prepare begin - <<XML
<domain type='qemu'><name>vm-alpine</name><uuid>6f1c2b4e-0d7a-4c1e-9b1a-3d2f5e6a7b8c</uuid>
  <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
    <source file='$demo/elsewhere/vm-alpine.qcow2'/><target dev='vda' bus='virtio'/></disk></devices>
</domain>
XML

echo "== the demo cache: base files are named by the SHA-1 of their image id"
for image in alpine-3.19 ubuntu-22.04 cirros-0.6.2 centos-stream-9 fedora-39 debian-12; do
    printf '   %s  %s\n' "$(fingerprint "$image")" "$image"
done
echo "   instance-0001 boots from ubuntu-22.04, instance-0002 from its 20 GiB resize;"
echo "   vm-alpine, recorded by the libvirt hook in the usage ledger, from alpine-3.19;"
echo "   fedora-39 has rotted on disk; cirros and debian are unused for days, centos for 2 hours."
echo
echo "== imagecachectl ledger (what the hook recorded)"
"$ctl" ledger --config "$demo/imagecache.conf"
echo
# Exit status 3: the pass found a corrupt (or an in-use but absent) file, as it should here.
echo "== imagecachectl report (analyse only, changes nothing)"
status=0
"$ctl" report --config "$demo/imagecache.conf" || status=$?
echo "(exit status $status: 3 says corrupt or absent files were found)"
[ "$status" -eq 0 ] || [ "$status" -eq 3 ]
echo
echo "== imagecachectl run"
status=0
"$ctl" run --config "$demo/imagecache.conf" || status=$?
echo "(exit status $status)"
[ "$status" -eq 0 ] || [ "$status" -eq 3 ]
echo
echo "== what is left in $base"
ls -l "$base"
