#!/bin/sh
# host-load.sh STRESS HOOK CONFIG SECONDS THREADS BRICK_BASE LOCAL_DIR LOGPREFIX — one host's
# share of the stress test, run by test-stress.sh inside the host's namespaces (mh_host):
# its simulated domains and its removal passes, side by side.
set -u
STRESS=$1 HOOK=$2 CONFIG=$3 SECS=$4 THREADS=$5 BRICK_BASE=$6 LOCAL=$7 LOG=$8
export IMAGECACHE_CONFIG=$CONFIG IMAGECACHE_HOOK=$HOOK
"$STRESS" domains "$SECS" "$THREADS" "$BRICK_BASE" "$LOCAL" "$LOG-domains.log" 2>>"$LOG-hook.err" &
"$STRESS" passes "$SECS" "$LOG-passes.log" 2>>"$LOG-pass.err"
wait
