#!/bin/bash
# e2e-libvirt.sh HOOK IMAGECACHECTL [DEADLOCK_PASS] — the hook, the ledger and `reconcile` against a real
# libvirtd running QEMU under TCG. The test starts its own virtlogd and libvirtd in a
# private mount namespace (see tests/e2e/libvirt/start-daemons.sh), installs the built hook
# there, starts three small domains and checks what `imagecachectl` sees; then it stops
# everything it started and removes its files. Exit 0 all passed, 1 a check failed,
# 77 libvirtd cannot run here (not root, packages missing, no mount namespaces).
set -u

HOOK=${1:-${IMAGECACHE_HOOK:-}}
CTL=${2:-${IMAGECACHECTL:-}}
DEADLOCK_PASS=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$HERE/e2e/libvirt

passed=0
failed=0
skipped=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
# Under CI (CI=true) install-deps has installed everything: a skip there hides a
# broken setup, so it is a failure.
skip_check() {
    if [ "${CI:-}" = true ]; then
        fail "$* (a skip is a failure under CI=true)"
    else
        echo "SKIP: $*"
        skipped=$((skipped + 1))
    fi
}
skip_all() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $* (a skip is a failure under CI=true)"
        exit 1
    fi
    echo "SKIP: $*"
    exit 77
}

# ---- can libvirtd run here at all? ----

[ -n "$HOOK" ] && [ -x "$HOOK" ] || { echo "usage: $0 HOOK IMAGECACHECTL" >&2; exit 2; }
[ -n "$CTL" ] && [ -x "$CTL" ] || { echo "usage: $0 HOOK IMAGECACHECTL" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || skip_all "needs root (libvirtd runs QEMU as root here)"
for tool in libvirtd virtlogd virsh qemu-system-x86_64 qemu-img jq unshare mount sha1sum; do
    command -v "$tool" >/dev/null 2>&1 || skip_all "'$tool' not installed (see scripts/install-deps.sh --test)"
done
[ -d /etc/libvirt ] || skip_all "/etc/libvirt missing (libvirt0 not installed?)"
unshare --mount --propagation private true 2>/dev/null || skip_all "no mount namespaces here"

started_at=$(date +%s)
TMP=$(mktemp -d /tmp/ic-e2e-libvirt.XXXXXX)
SOCK_RW=$TMP/run/libvirt/libvirt-sock
URI="qemu+unix:///system?socket=$SOCK_RW"
URI_RO="qemu+unix:///system?socket=$TMP/run/libvirt/libvirt-sock-ro"
# Never the host's libvirtd, whatever a tool defaults to.
export LIBVIRT_DEFAULT_URI=$URI
export LC_ALL=C
unset IMAGECACHE_CONFIG

vsh() { virsh --quiet -c "$URI" "$@"; }

# Stops a daemon (or QEMU) by its pid file, TERM then KILL; a zombie counts as gone.
stop_pid_file() {
    local file=$1 pid state i
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null) || return 0
    case $pid in '' | *[!0-9]*) return 0 ;; esac
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        state=$(ps -o stat= -p "$pid" 2>/dev/null) || return 0
        case $state in Z*) return 0 ;; esac
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
}

cleanup() {
    set +e
    if [ -S "$SOCK_RW" ]; then
        for uuid in $(vsh list --uuid 2>/dev/null); do
            vsh destroy "$uuid" >/dev/null 2>&1
        done
    fi
    stop_pid_file "$TMP/run/libvirtd.pid"
    for qemu_pid in "$TMP"/run/libvirt/qemu/*.pid; do
        stop_pid_file "$qemu_pid"
    done
    stop_pid_file "$TMP/run/virtlogd.pid"
    if [ -n "${IC_E2E_KEEP:-}" ]; then
        echo "# kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# @TMP@, @HOST@, @URI@, @NAME@, @UUID@, @DISK@ in a template.
render() {
    local template=$1 out=$2
    shift 2
    local script="s|@TMP@|$TMP|g"
    while [ $# -gt 0 ]; do
        script="$script;s|@$1@|$2|g"
        shift 2
    done
    sed "$script" "$template" >"$out"
}

# ---- the daemons' private world, with the hook installed before they start ----

mkdir -p "$TMP/etc-libvirt/hooks/qemu.d" "$TMP/run" "$TMP/var-upper" "$TMP/var-work" \
    "$TMP/var-tmpfs" "$TMP/hook" "$TMP/inst/_base" "$TMP/elsewhere"
cp "$DATA/qemu.conf" "$TMP/etc-libvirt/qemu.conf"
render "$DATA/libvirtd.conf.in" "$TMP/etc-libvirt/libvirtd.conf"
render "$DATA/virtlogd.conf.in" "$TMP/etc-libvirt/virtlogd.conf"
cp "$HOOK" "$TMP/hook/imagecache-hook"
render "$DATA/hook-wrapper.sh.in" "$TMP/etc-libvirt/hooks/qemu.d/imagecache"
render "$DATA/snapshot-hook.sh.in" "$TMP/etc-libvirt/hooks/qemu.d/zz-snapshot"
chmod 0755 "$TMP/etc-libvirt/hooks/qemu.d/imagecache" "$TMP/etc-libvirt/hooks/qemu.d/zz-snapshot"
cp /etc/passwd "$TMP/passwd"
cp /etc/group "$TMP/group"
getent passwd libvirt-qemu >/dev/null ||
    echo "libvirt-qemu:x:64055:64055:imagecache e2e:/nonexistent:/usr/sbin/nologin" >>"$TMP/passwd"
getent group libvirt-qemu >/dev/null || echo "libvirt-qemu:x:64055:" >>"$TMP/group"

render "$DATA/config.in" "$TMP/local.conf" HOST e2e-local URI "$URI_RO"
# The second host shares the instances dir and ledger; its libvirt is not this one.
render "$DATA/config.in" "$TMP/other.conf" HOST e2e-other URI \
    "qemu+unix:///system?socket=$TMP/no-such-libvirt-sock"

if ! unshare --mount --propagation private -- sh "$DATA/start-daemons.sh" "$TMP" \
    >"$TMP/start.log" 2>&1; then
    cat "$TMP/start.log"
    skip_all "libvirtd could not be started in a private mount namespace"
fi
for i in $(seq 1 100); do
    [ -S "$SOCK_RW" ] && vsh uri >/dev/null 2>&1 && break
    sleep 0.2
done
if ! vsh uri >/dev/null 2>&1; then
    tail -n 20 "$TMP/libvirtd.log" 2>/dev/null
    skip_all "libvirtd did not come up (log above)"
fi
pass "libvirtd and virtlogd running in a private namespace, hook installed"

# ---- images: three chains into <instances>/_base ----

BASE=$TMP/inst/_base
A=$(printf 'e2e-image-a' | sha1sum | cut -c1-40)
B=$(printf 'e2e-image-b' | sha1sum | cut -c1-40)
C=$(printf 'e2e-image-c' | sha1sum | cut -c1-40)
R=$(printf 'e2e-image-remote' | sha1sum | cut -c1-40)
UUID_A=1c0e2e00-0000-4000-8000-00000000000a
UUID_B=1c0e2e00-0000-4000-8000-00000000000b
UUID_C=1c0e2e00-0000-4000-8000-00000000000c
UUID_R=1c0e2e00-0000-4000-8000-0000000000ff

img() { qemu-img create -q "$@" >/dev/null; }
for sha in "$A" "$B" "$C" "$R"; do
    img -f raw "$BASE/$sha" 1M
done
img -f qcow2 -F raw -b "$BASE/$C" "$BASE/${C}_1"
mkdir -p "$TMP/inst/$UUID_A" "$TMP/inst/$UUID_B" "$TMP/inst/$UUID_C"
img -f qcow2 -F raw -b "$BASE/$A" "$TMP/inst/$UUID_A/disk"
(cd "$TMP/inst/$UUID_B" && img -f qcow2 -F raw -b "../_base/$B" disk)
img -f qcow2 -F qcow2 -b "$BASE/${C}_1" "$TMP/inst/$UUID_C/disk"
# The remote host's domain runs elsewhere: its overlay is not in this host's instances dir.
img -f qcow2 -F raw -b "$BASE/$R" "$TMP/elsewhere/disk"

declare -A NAME=([a]=ic-e2e-a [b]=ic-e2e-b [c]=ic-e2e-c)
declare -A UUID=([a]=$UUID_A [b]=$UUID_B [c]=$UUID_C)
# The ledger names base files by their name in the base dir (format 2: hosts mount the
# share at different paths).
declare -A EXPECT=([a]="$A" [b]="$B" [c]="$C ${C}_1")

ctl() { "$CTL" --config "$TMP/local.conf" "$@"; }
ctl_other() { "$CTL" --config "$TMP/other.conf" "$@"; }

# ledger_files CONFIG_FILE HOST UUID: the base files the ledger lists, space-separated,
# "absent" when the domain is not there, "error" when the ledger cannot be shown.
ledger_files() {
    local json
    json=$("$CTL" --config "$1" ledger --json 2>>"$TMP/ctl.log") || true
    [ -n "$json" ] || { echo error; return; }
    jq -r --arg h "$2" --arg u "$3" '
        [.hosts[] | select(.host == $h) | .domains[] | select(.uuid == $u)]
        | if length == 0 then "absent" else (.[0].base_files | join(" ")) end' <<<"$json"
}

# expect_ledger WHAT CONFIG HOST UUID EXPECTED
expect_ledger() {
    local got
    got=$(ledger_files "$2" "$3" "$4")
    if [ "$got" = "$5" ]; then
        pass "$1"
    else
        fail "$1: expected '$5', ledger says '$got'"
    fi
}

# expect_jq WHAT JSON FILTER: passes when jq's FILTER holds for JSON.
expect_jq() {
    if jq -e "$3" <<<"$2" >/dev/null 2>&1; then
        pass "$1"
    else
        fail "$1: $(head -c 800 <<<"$2")"
    fi
}

# ---- start: recorded at prepare (before QEMU), listed while running ----

for vm in a b c; do
    render "$DATA/domain.xml.in" "$TMP/${NAME[$vm]}.xml" NAME "${NAME[$vm]}" \
        UUID "${UUID[$vm]}" DISK "$TMP/inst/${UUID[$vm]}/disk"
    if vsh define "$TMP/${NAME[$vm]}.xml" >/dev/null && vsh start "${NAME[$vm]}" >/dev/null; then
        pass "domain ${NAME[$vm]} started"
    else
        fail "domain ${NAME[$vm]} did not start"
        tail -n 5 "$TMP/var-upper/log/libvirt/qemu/${NAME[$vm]}.log" 2>/dev/null
    fi
done

for vm in a b c; do
    snap=$TMP/at-prepare/${NAME[$vm]}
    printf '[imagecache]\ninstances_path = %s\nhost = e2e-local\nledger_dir = %s\n' \
        "$TMP/inst" "$snap" >"$TMP/snap-$vm.conf"
    if [ -d "$snap" ]; then
        expect_ledger "${NAME[$vm]} in the ledger at 'prepare begin', before QEMU runs" \
            "$TMP/snap-$vm.conf" e2e-local "${UUID[$vm]}" "${EXPECT[$vm]}"
    else
        fail "${NAME[$vm]}: no ledger snapshot at 'prepare begin' (hooks did not run?)"
    fi
    expect_ledger "${NAME[$vm]} in the ledger while running, with its base files" \
        "$TMP/local.conf" e2e-local "${UUID[$vm]}" "${EXPECT[$vm]}"
done

# ---- report: the live domain seen by the ledger and by libvirt ----

report=$(ctl report --json 2>>"$TMP/ctl.log")
row() { jq -c --arg n "$1" '.images[] | select(.name == $n)' <<<"$report"; }
if [ -z "$report" ]; then
    fail "imagecachectl report --json printed nothing"
else
    a_row=$(row "$A")
    expect_jq "report: base file of ${NAME[a]} active, witnessed by the ledger" "$a_row" \
        '.verdict == "active" and (.witnesses | index("ledger"))'
    # The ledger and libvirt name it ic-e2e-a, the instances dir by its UUID dir: one user.
    expect_jq "report: ${NAME[a]} counts once, by name, though its instance dir names its UUID" \
        "$a_row" '.local_users == 1 and .users == ["ic-e2e-a"] and (.witnesses | index("instances_dir"))'
    if jq -e '.notes[] | select(.code == "libvirt_unsupported")' <<<"$report" >/dev/null; then
        skip_check "report: imagecachectl built without libvirt"
    else
        expect_jq "report: base file of ${NAME[a]} witnessed by libvirt's live domains" \
            "$a_row" '.witnesses | index("libvirt")'
    fi
    expect_jq "report: both files of the two-level chain of ${NAME[c]} active" "$report" \
        "[.images[] | select(.name == \"$C\" or .name == \"${C}_1\") | .verdict]
         == [\"active\", \"active\"]"
fi

# ---- reconcile: a deleted ledger entry comes back from the live domains ----

if ctl reconcile --help >/dev/null 2>&1; then
    UUID_GONE=1c0e2e00-0000-4000-8000-0000000000ee
    render "$DATA/domain.xml.in" "$TMP/gone.xml" NAME ic-e2e-gone UUID "$UUID_GONE" \
        DISK "$TMP/elsewhere/disk"
    rm -f "$TMP/inst/_ledger/e2e-local.ledger"
    expect_ledger "ledger file deleted while ${NAME[b]} runs" \
        "$TMP/local.conf" e2e-local "$UUID_B" absent
    if out=$(ctl reconcile 2>&1); then
        pass "imagecachectl reconcile succeeded"
    else
        fail "imagecachectl reconcile failed: $out"
    fi
    echo "$out" | sed 's/^/# /'
    for vm in a b c; do
        expect_ledger "reconcile restored ${NAME[$vm]}" \
            "$TMP/local.conf" e2e-local "${UUID[$vm]}" "${EXPECT[$vm]}"
    done
    # A release the hook missed: an entry for a domain that is not running.
    IMAGECACHE_CONFIG=$TMP/local.conf "$HOOK" ic-e2e-gone prepare begin - \
        <"$TMP/gone.xml" 2>>"$TMP/hook-by-hand.log"
    expect_ledger "an entry for a domain that is not running" \
        "$TMP/local.conf" e2e-local "$UUID_GONE" "$R"
    if out=$(ctl reconcile 2>&1) && grep -q "^dropped  ic-e2e-gone" <<<"$out"; then
        pass "reconcile says it dropped the domain that is not running"
    else
        fail "reconcile did not report the dropped domain: $out"
    fi
    expect_ledger "reconcile dropped the domain that is not running" \
        "$TMP/local.conf" e2e-local "$UUID_GONE" absent
    if out=$(ctl reconcile --dry-run 2>&1) && grep -q ': 0 changes' <<<"$out"; then
        pass "a second reconcile finds nothing to change"
    else
        fail "second reconcile: $out"
    fi
    if out=$(ctl_other reconcile 2>&1); then
        fail "reconcile with libvirt unreachable succeeded: $out"
    elif grep -q "cannot connect to libvirt at 'qemu+unix:///system?socket=$TMP/no-such" <<<"$out"; then
        pass "reconcile with libvirt unreachable fails, naming the URI"
    else
        fail "reconcile with libvirt unreachable: unexpected message: $out"
    fi
else
    skip_check "imagecachectl has no 'reconcile' command yet"
fi

# ---- two hosts sharing the ledger dir ----

render "$DATA/domain.xml.in" "$TMP/remote.xml" NAME ic-e2e-remote UUID "$UUID_R" \
    DISK "$TMP/elsewhere/disk"
run_hook_as_other() {
    IMAGECACHE_CONFIG=$TMP/other.conf IMAGECACHE_HOOK_LOG_STDERR=1 \
        "$HOOK" ic-e2e-remote "$1" "$2" - <"$TMP/remote.xml" 2>>"$TMP/hook-other.log"
}
if run_hook_as_other prepare begin && run_hook_as_other started begin; then
    pass "the other host's hook recorded its domain"
else
    fail "the other host's hook failed (see $TMP/hook-other.log)"
fi
expect_ledger "the other host's domain is in the shared ledger" \
    "$TMP/local.conf" e2e-other "$UUID_R" "$R"
report=$(ctl report --json 2>>"$TMP/ctl.log")
expect_jq "report: the other host's domain is a remote user" "$(row "$R")" \
    '.verdict == "active" and .local_users == 0 and .remote_users == 1
     and (.users | index("ic-e2e-remote@e2e-other"))'
report=$(ctl_other report --json 2>>"$TMP/ctl.log")
# (Its instances dir is shared too, so that witness names the instance as a local user.)
expect_jq "report on the other host: ${NAME[a]} is a remote user there" "$(row "$A")" \
    '.verdict == "active" and .remote_users == 1 and (.users | index("ic-e2e-a@e2e-local"))'
expect_jq "report on the other host says its libvirt was not consulted" "$report" \
    'any(.notes[]; .code == "libvirt_unreachable" and .witness == "libvirt")'
if run_hook_as_other release end; then
    expect_ledger "the other host's domain dropped at release" \
        "$TMP/local.conf" e2e-other "$UUID_R" absent
else
    fail "the other host's hook failed at release"
fi

# ---- destroy: dropped at release ----

vsh destroy "${NAME[a]}" >/dev/null || fail "virsh destroy ${NAME[a]}"
expect_ledger "${NAME[a]} gone from the ledger after destroy" \
    "$TMP/local.conf" e2e-local "$UUID_A" absent
expect_ledger "${NAME[b]} still in the ledger" \
    "$TMP/local.conf" e2e-local "$UUID_B" "${EXPECT[b]}"
for vm in b c; do
    vsh destroy "${NAME[$vm]}" >/dev/null || fail "virsh destroy ${NAME[$vm]}"
done
count=$(ctl ledger --json 2>>"$TMP/ctl.log" |
    jq '[.hosts[] | select(.host == "e2e-local") | .domains[]] | length')
if [ "$count" = 0 ]; then
    pass "no domain of this host left in the ledger after all were destroyed"
else
    fail "$count domains of this host left in the ledger"
fi
for vm in a b c; do
    vsh undefine "${NAME[$vm]}" >/dev/null 2>&1
done

# ---- the hook's own account ----

if grep -qiE 'error|warning|critical' "$TMP/hook.log" 2>/dev/null; then
    fail "the hook logged problems: $(head -c 600 "$TMP/hook.log")"
else
    pass "the hook logged no error under libvirtd"
fi
if [ -s "$TMP/ctl.log" ]; then
    echo "# imagecachectl stderr:"
    sed 's/^/#   /' "$TMP/ctl.log"
fi

# ---- deadlock: a pass holds the usage lock while a VM starts ----
# libvirtd runs the prepare hook while it holds the domain's lock, and the hook waits for
# the usage lock (shared). A pass that asked libvirt anything while holding that lock
# exclusively would wait for the domain lock: pass, start and every later start hang.
# deadlock-pass pauses holding the lock until the hook of a starting domain is waiting
# for it, then goes on: the start must complete within the bound the README documents
# and the pass must complete. Every wait here is bounded; a hang is killed and failed.

# What a VM start may wait at most for a pass (the protocol's bounds, as the README
# documents them), plus QEMU's own start under TCG.
read -r START_BOUND PREPARE_WAIT < <("$DEADLOCK_PASS" --start-bound "$TMP/local.conf" 2>/dev/null ||
    echo 30 20)
START_MARGIN=20
deadlock_check() {
    local dl=$TMP/deadlock unused pass_pid start_pid i t0 waited rc ms hook_seen
    mkdir -p "$dl"
    unused=$(printf 'e2e-image-unused' | sha1sum | cut -c1-40)
    img -f raw "$BASE/$unused" 1M
    touch -d '3 days ago' "$BASE/$unused"
    # A real run that removes (the pass only takes the lock with something to remove).
    sed 's/^remove_unused_base_images = .*/remove_unused_base_images = true/' \
        "$TMP/local.conf" >"$dl/run.conf"
    render "$DATA/domain.xml.in" "$dl/dom.xml" NAME ic-e2e-deadlock UUID "$UUID_A" \
        DISK "$TMP/inst/$UUID_A/disk"
    vsh define "$dl/dom.xml" >/dev/null || { fail "deadlock: cannot define the domain"; return; }

    "$DEADLOCK_PASS" "$dl/run.conf" "$dl/locked" "$dl/go" $((START_BOUND + START_MARGIN + 30)) \
        >"$dl/pass.log" 2>&1 &
    pass_pid=$!
    for i in $(seq 1 300); do
        [ -e "$dl/locked" ] && break
        kill -0 "$pass_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -e "$dl/locked" ]; then
        fail "deadlock: the pass never held the usage lock: $(tail -n 5 "$dl/pass.log")"
        kill "$pass_pid" 2>/dev/null
        wait "$pass_pid" 2>/dev/null
        return
    fi

    t0=$(date +%s%N)
    (
        vsh start ic-e2e-deadlock >"$dl/start.out" 2>&1
        echo "$? $((($(date +%s%N) - t0) / 1000000))" >"$dl/start.rc"
    ) &
    start_pid=$!
    # The hook of that start is waiting for the lock (or 10 s passed): let the pass go on.
    hook_seen=no
    for i in $(seq 1 100); do
        pgrep -f "imagecache-hook ic-e2e-deadlock prepare" >/dev/null && hook_seen=yes && break
        sleep 0.1
    done
    sleep 0.5
    touch "$dl/go"
    if [ "$hook_seen" = yes ]; then
        pass "deadlock: the start's prepare hook ran while the pass held the usage lock"
    else
        fail "deadlock: no prepare hook seen within 10 s of virsh start (the check proves nothing)"
    fi

    # Both finish within the bound, or it is a hang.
    waited=0
    while [ ! -e "$dl/start.rc" ] && [ "$waited" -lt $(((START_BOUND + START_MARGIN) * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    for i in $(seq 1 100); do
        kill -0 "$pass_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pass_pid" 2>/dev/null; then
        fail "deadlock: the pass still holds the usage lock after the start's bound plus 10 s (hang); killing it"
        sed 's/^/#   /' "$dl/pass.log"
        kill -KILL "$pass_pid" 2>/dev/null
        wait "$pass_pid" 2>/dev/null
    else
        wait "$pass_pid" && rc=0 || rc=$?
        if [ "$rc" -eq 0 ]; then
            pass "deadlock: the pass holding the lock during a VM start completed"
        else
            fail "deadlock: the pass failed ($rc): $(tail -n 3 "$dl/pass.log")"
        fi
    fi
    # With the pass gone the lock is free: a start that was stuck finishes now.
    for i in $(seq 1 300); do
        [ -e "$dl/start.rc" ] && break
        sleep 0.1
    done
    wait "$start_pid" 2>/dev/null
    if [ ! -e "$dl/start.rc" ]; then
        fail "deadlock: virsh start never returned, even after the pass was gone"
    else
        read -r rc ms <"$dl/start.rc"
        if [ "$rc" -ne 0 ]; then
            fail "deadlock: virsh start failed: $(cat "$dl/start.out")"
        elif [ "$ms" -gt $(((START_BOUND + START_MARGIN) * 1000)) ]; then
            fail "deadlock: virsh start took $ms ms, over the bound of $START_BOUND s (+$START_MARGIN s for QEMU)"
        elif [ "$ms" -ge $((PREPARE_WAIT * 1000)) ]; then
            # Within the bound only because the hook gave up on the lock and recorded
            # without it: the pass held it that long (asked libvirt under it?).
            fail "deadlock: virsh start took $ms ms: its hook waited out prepare_lock_wait_seconds ($PREPARE_WAIT s) for a pass that should hold the lock for milliseconds"
        else
            pass "deadlock: virsh start completed in $ms ms while a pass held the lock (bound $START_BOUND s + $START_MARGIN s)"
        fi
    fi
    sed 's/^/# /' "$dl/pass.log"
    vsh destroy ic-e2e-deadlock >/dev/null 2>&1
    vsh undefine ic-e2e-deadlock >/dev/null 2>&1
}
if [ -n "$DEADLOCK_PASS" ] && [ -x "$DEADLOCK_PASS" ]; then
    deadlock_check
else
    skip_check "deadlock: no deadlock-pass program given (third argument)"
fi

echo "# $passed passed, $failed failed, $skipped skipped in $(($(date +%s) - started_at)) s"
[ "$failed" -eq 0 ]
