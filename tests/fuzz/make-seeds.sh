#!/bin/sh
# Regenerates the seed corpora under tests/fuzz/corpus/ (the files are committed;
# run this only to refresh them). Needs qemu-img and a configured build dir
# (BUILD_DIR, default ./build) for gen-ledger-seeds. Crash reproducers
# (corpus/*/crash-*) are kept: they are not made here.
set -eu
cd "$(dirname "$0")/../.."
BUILD_DIR="${BUILD_DIR:-build}"
CORPUS=tests/fuzz/corpus
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ---- probe: image headers made by qemu-img, cut to the part the probe reads ----
P="$CORPUS/probe"
mkdir -p "$P"
find "$P" -type f ! -name 'crash-*' -delete
qimg() { qemu-img create -q "$@"; }
# $1 seed name, $2 image, $3 bytes kept (the header, extensions and backing name)
keep() { head -c "$3" "$2" >"$P/$1"; }

qimg -f raw "$TMP/base.raw" 1M
qimg -f qcow2 -o compat=0.10 "$TMP/v2.qcow2" 1M
keep qcow2-v2 "$TMP/v2.qcow2" 512
qimg -f qcow2 -o compat=0.10 -u -b /var/lib/nova/instances/_base/1f6f3bba1a4e3a58bbfb3a0cf7c5f3a1f3a3a6d1 -F raw "$TMP/v2b.qcow2" 1M
keep qcow2-v2-backing-abs "$TMP/v2b.qcow2" 512
qimg -f qcow2 -o compat=1.1 "$TMP/v3.qcow2" 1M
keep qcow2-v3 "$TMP/v3.qcow2" 512
qimg -f qcow2 -o compat=1.1 -u -b ../_base/1f6f3bba1a4e3a58bbfb3a0cf7c5f3a1f3a3a6d1 -F raw "$TMP/v3rel.qcow2" 1M
keep qcow2-v3-backing-rel-fmt "$TMP/v3rel.qcow2" 1024
qimg -f qcow2 -o compat=1.1 -u -b "$TMP/base.raw" -F qcow2 "$TMP/v3q.qcow2" 1M
keep qcow2-v3-backing-qcow2 "$TMP/v3q.qcow2" 1024
qimg -f qcow2 -o compat=1.1,cluster_size=512 -u -b base -F raw "$TMP/small.qcow2" 64K
keep qcow2-v3-cluster512-whole "$TMP/small.qcow2" 4096
qimg -f qcow2 -o compat=1.1,data_file="$TMP/data.raw",data_file_raw=on "$TMP/ext.qcow2" 1M
keep qcow2-v3-data-file-ext "$TMP/ext.qcow2" 1024
# A relative data file name with a backing file too (issue 12: data file + declared format).
(cd "$TMP" && qemu-img create -q -f qcow2 -o compat=1.1,data_file=data2.raw -u -b ../_base/x -F raw rel.qcow2 1M)
keep qcow2-v3-data-file-rel-backing "$TMP/rel.qcow2" 1024
qimg -f qcow2 -o compat=1.1 -u -b 'nbd:localhost:10809' -F raw "$TMP/nbd.qcow2" 1M
keep qcow2-v3-backing-protocol "$TMP/nbd.qcow2" 1024
long=$(printf '/var/lib/nova/instances/_base/%0900d' 7)
qimg -f qcow2 -o compat=0.10 -u -b "$long" -F raw "$TMP/long.qcow2" 1M
keep qcow2-v2-backing-long "$TMP/long.qcow2" 1536
qimg -f qed "$TMP/plain.qed" 1M
keep qed "$TMP/plain.qed" 256
qimg -f qed -u -b /var/lib/nova/instances/_base/abc -F raw "$TMP/raw.qed" 1M
keep qed-backing-raw "$TMP/raw.qed" 256
qimg -f qed -u -b ../_base/abc.qcow2 -F qcow2 "$TMP/q.qed" 1M
keep qed-backing-probe "$TMP/q.qed" 256
printf 'raw disk bytes, no header' >"$P/raw-text"
printf '\353\074\220mkfs.fat\0\2\4' >"$P/raw-boot-sector"
cp tests/data/probe/*.qcow2 tests/data/probe/*.qed "$P/"

# ---- domxml: the hook's test domains, with a real instances path ----
D="$CORPUS/domxml"
mkdir -p "$D"
find "$D" -type f ! -name 'crash-*' -delete
for f in tests/data/hook/*.xml; do
    sed 's|@INSTANCES@|/var/lib/nova/instances|g' "$f" >"$D/$(basename "$f")"
done
cat >"$D/block-network-floppy.xml" <<'XML'
<domain type='kvm'>
  <name>mixed</name>
  <uuid>3F2504E0-4F89-41D3-9A0C-0305E82C3301</uuid>
  <devices>
    <disk type='block' device='disk'><source dev='/dev/vg0/lv1'/><target dev='vda'/></disk>
    <disk type='network' device='disk'><source protocol='rbd' name='vms/disk'/><target dev='vdb'/></disk>
    <disk type='file' device='floppy'><source file='/tmp/floppy.img'/><target dev='fda'/></disk>
    <disk type='file'><source file='/var/lib/nova/instances/x/disk'/><target dev='vdc'/>
      <backingStore type='file'><source file='/var/lib/nova/instances/_base/b'/>
        <backingStore type='block'><source dev='/dev/sdb'/>
          <backingStore type='file'><source file='/ignored/under/block'/></backingStore>
        </backingStore>
      </backingStore>
    </disk>
  </devices>
</domain>
XML

# ---- ledger: files written by ic_ledger_host_serialize, and the damaged test files ----
L="$CORPUS/ledger"
mkdir -p "$L"
find "$L" -type f ! -name 'crash-*' -delete
meson compile -C "$BUILD_DIR" tests/fuzz/gen-ledger-seeds >/dev/null
"$BUILD_DIR/tests/fuzz/gen-ledger-seeds" "$L"
cp tests/data/ledger/*.ledger "$L/"

# ---- sidecar: .sha1 and .info (JSON) files ----
S="$CORPUS/sidecar"
mkdir -p "$S"
find "$S" -type f ! -name 'crash-*' -delete
printf 'da39a3ee5e6b4b0d3255bfef95601890afd80709\n' >"$S/plain.sha1"
printf '  DA39A3EE5E6B4B0D3255BFEF95601890AFD80709 \r\n\n' >"$S/spaces-upper.sha1"
printf 'not a digest\n' >"$S/not-hex.sha1"
printf '{"sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1-timestamp": 1700000000}\n' >"$S/int.info"
printf '{"sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1-timestamp": 1700000000.75}' >"$S/float.info"
printf '{"sha1-timestamp": null, "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "x": [1, {"y": true}]}' >"$S/null-extra.info"
printf '{"sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}' >"$S/no-timestamp.info"
printf '{"sha1": "\\u0064a39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1-timestamp": -1e308}' >"$S/escape-negative.info"
printf '[]' >"$S/array.info"

du -sh "$CORPUS"/*
