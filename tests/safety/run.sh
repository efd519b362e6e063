#!/usr/bin/env bash
# The sampler's safety test (issue 3, "Safety"): tests/programs/safety-sampler
# profiles itself at PL_CPU_MAX_HZ while it loops over dlopen/dlclose,
# malloc/free, fork, qsort and short-lived threads, in cpu mode and in wall
# mode. A hang is a deadlock: each run is bounded by timeout(1).
#
# Usage: tests/safety/run.sh [SECONDS=30]
#   BUILD=build|build-asan   which build to use (default build; built if needed)
#   MODES="cpu wall"         which variants to run
#   RUNS=N                   run each variant N times (default 1)
#   LIMIT=S                  seconds before a run counts as hung (default 2*SECONDS+60)
# Exit 0 when every run passed; 1 otherwise. On a timeout, the threads'
# stacks (gdb if installed, else /proc/PID/task/*/stack and wchan) are
# printed before the process is killed.
set -u
cd "$(dirname "$0")/../.." || exit 2

SECS=${1:-30}
case $SECS in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
BUILD=${BUILD:-build}
MODES=${MODES:-cpu wall}
RUNS=${RUNS:-1}
BIN=$BUILD/tests/programs/safety-sampler
# time to finish after the workload: stop, join, symbolize (slower under ASan)
LIMIT=${LIMIT:-$((SECS + 60 + SECS))}

if [ ! -f "$BUILD/build.ninja" ]; then
  echo "safety: $BUILD is not configured (make build, or make test-asan for build-asan)" >&2
  exit 2
fi
ninja -C "$BUILD" tests/programs/safety-sampler >/dev/null || { echo "safety: build failed" >&2; exit 2; }
# Run a private copy: the profile is symbolized from the executable's path
# after it stops, so a rebuild during the run (another ninja) would give
# the frames names from the new file.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp "$BUILD/tests/programs/safety-sampler" "$TMP/safety-sampler" || exit 2
BIN_NAME="$BIN"
BIN=$TMP/safety-sampler

# sanitizer settings like make test-asan's (ignored by a normal build)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

dump_stacks() { # PID: what every thread of a hung process is doing
  local pid=$1 t
  echo "safety: --- threads of $pid before the kill ---"
  if command -v gdb >/dev/null 2>&1; then
    timeout 30 gdb -p "$pid" -batch -nx -ex 'set pagination off' \
      -ex 'thread apply all bt 30' 2>/dev/null | grep -E '^(Thread|#)' || true
  else
    for t in /proc/"$pid"/task/*; do
      echo "tid ${t##*/} wchan=$(cat "$t/wchan" 2>/dev/null) state=$(awk '{print $3}' "$t/stat" 2>/dev/null)"
      cat "$t/stack" 2>/dev/null | sed 's/^/    /'
    done
  fi
  echo "safety: --- end ---"
}

failed=0
for run in $(seq 1 "$RUNS"); do
  for mode in $MODES; do
    echo "safety: $BIN_NAME $SECS $mode (run $run/$RUNS, limit ${LIMIT} s)"
    t0=$(date +%s.%N)
    timeout --kill-after=10 "$LIMIT" "$BIN" "$SECS" "$mode" &
    tpid=$!
    # a watcher that dumps the stacks shortly before timeout(1) fires
    (
      sleep $((LIMIT > 30 ? LIMIT - 15 : LIMIT * 2 / 3)) || exit 0
      child=$(pgrep -P "$tpid" -x safety-sampler | head -1)
      [ -n "$child" ] && dump_stacks "$child"
    ) 2>/dev/null & # (quiet: bash reports the killed sleep as "Terminated")
    wpid=$!
    wait "$tpid"
    rc=$?
    pkill -P "$wpid" 2>/dev/null # the watcher's sleep: the watcher then exits
    wait "$wpid" 2>/dev/null
    dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    case $rc in
      0) echo "safety: PASS $mode in ${dt} s" ;;
      124 | 137)
        echo "safety: FAIL $mode: deadlock - no exit within ${LIMIT} s (timeout, exit $rc)"
        failed=1 ;;
      *)
        if [ "$rc" -gt 128 ]; then
          echo "safety: FAIL $mode: crashed with signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null)) after ${dt} s"
        else
          echo "safety: FAIL $mode: exit $rc after ${dt} s"
        fi
        failed=1 ;;
    esac
  done
done
exit $failed
