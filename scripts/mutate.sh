#!/bin/sh
# mutate.sh [NAME...] — breaks the safety rules on purpose, one at a time, and checks that
# the unit and stress suites notice. Each mutation of scripts/mutations.txt is applied to a
# scratch copy of this tree (never the tree itself), built in the copy's own build dir, and
# the suites run there; one line per mutation: "CAUGHT by <tests>" or "MISSED". A mutation
# whose text no longer matches the code exactly once is an error (so a refactor cannot
# silently disarm it): update the mutation with the code. Exit status 0 only when every
# mutation applied, built and was caught.
#
# A mutation may name the tests that must catch it ("tests: libvirt": the e2e deadlock
# check for asking libvirt under the lock); those run instead of the suites.
# IMAGECACHE_STRESS_SECONDS (default 5) bounds the race test per mutation;
# MUTATE_KEEP=1 keeps the scratch copy; MUTATE_SUITES overrides "--suite unit --suite stress".
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d /tmp/imagecache-mutate.XXXXXX)
cleanup() { [ -n "${MUTATE_KEEP:-}" ] && echo "kept $scratch" || rm -rf "$scratch"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

# The tree as it is now (tracked and new files, edits included), without build dirs.
(cd "$here" && git ls-files -z --cached --others --exclude-standard |
    tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$scratch"
cd "$scratch"
# The copy's own list and applier: editing the tree during a run changes nothing here.
spec=$scratch/scripts/mutations.txt
mutation="python3 $scratch/scripts/mutation.py"
git init -q . && git add -A && git -c user.name=mutate -c user.email=mutate@localhost \
    commit -qm pristine

# Warnings stay warnings here: a mutation may leave a variable unused.
meson setup build -Dwerror=false >build-setup.log 2>&1 || { cat build-setup.log; exit 1; }
meson compile -C build >build.log 2>&1 || { tail -40 build.log; echo "mutate: the unmutated tree does not build"; exit 1; }

export IMAGECACHE_STRESS_SECONDS="${IMAGECACHE_STRESS_SECONDS:-5}"
suites=${MUTATE_SUITES:---suite unit --suite stress}

# Failing test names of the last meson run, comma-separated.
failures() {
    python3 - build/meson-logs/testlog.json <<'EOF'
import json, sys
bad = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL"):
        bad.append(t["name"].split(" / ")[-1])
print(", ".join(bad))
EOF
}

# The suites pass on the unmutated tree, or nothing below means anything.
# shellcheck disable=SC2086
if ! meson test -C build --no-rebuild $suites >baseline.log 2>&1; then
    echo "mutate: the unmutated tree fails: $(failures)"
    exit 1
fi

names=$($mutation list "$spec")
[ $# -gt 0 ] && names="$*"
status=0
total=0
caught=0
for name in $names; do
    total=$((total + 1))
    git checkout -q -- . && git clean -qfd -e build -e '*.log'
    if ! out=$($mutation apply "$spec" "$name" 2>&1); then
        printf '%-28s ERROR: does not apply: %s\n' "$name" "$out"
        status=1
        continue
    fi
    if ! meson compile -C build >"build-$name.log" 2>&1; then
        printf '%-28s ERROR: does not build (%s)\n' "$name" "$scratch/build-$name.log"
        status=1
        continue
    fi
    started=$(date +%s)
    # A mutation may name the tests that must catch it (an e2e test); else the suites.
    tests=$($mutation tests "$spec" "$name")
    # shellcheck disable=SC2086
    if meson test -C build --no-rebuild ${tests:-$suites} >"test-$name.log" 2>&1; then
        printf '%-28s MISSED (%ss)\n' "$name" "$(($(date +%s) - started))"
        status=1
    else
        printf '%-28s CAUGHT by %s (%ss)\n' "$name" "$(failures)" "$(($(date +%s) - started))"
        caught=$((caught + 1))
    fi
done
git checkout -q -- .
echo "mutate: $caught of $total mutations caught"
exit $status
