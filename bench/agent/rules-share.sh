#!/usr/bin/env bash
# How stacks are captured at full speed (no valgrind): proflabd under wrk
# (GET /api/work?n=WORK_N, CONNECTIONS connections) with a wall-mode CPU
# profile at HZ for PROFILE_SECONDS through the lab (POST /api/lab/cpu-profile),
# ROUNDS times in one process (the per-pc rules are kept between profiles).
# Prints each answer's stacks_by (captured without DWARF = frame pointers,
# per-pc rules, cached callers; with DWARF for some frames) and, at exit,
# the sampler's own counters (PROFLAB_CPU_UNWIND_STATS=1: the last
# profile's stacks and frames by rules and by DWARF; builds without them
# print nothing). Issue 12: "105,372 of 169,159 stacks went through DWARF"
# is the figure this reproduces.
#
#   bench/agent/rules-share.sh                 (HZ=10000 PROFILE_SECONDS=10 ROUNDS=2)
#   BUILD=/tmp/other bench/agent/rules-share.sh
#   PROFLAB_CPU_UNWIND_RULES=off bench/agent/rules-share.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"

BUILD=${BUILD:-build}
HZ=${HZ:-10000}
SECONDS_=${PROFILE_SECONDS:-10}
ROUNDS=${ROUNDS:-2}
WORK_N=${WORK_N:-1000}
CONNECTIONS=${CONNECTIONS:-4}
TOKEN=bench-token-0123456789abcdef-XYZ
command -v wrk >/dev/null || die "wrk missing: scripts/deps.sh bench"
[ -x "$BUILD/proflabd" ] || die "$BUILD/proflabd missing: build first"

tmp=$(mktemp -d /tmp/proflab-bench-rules.XXXXXX)
SRV=""
cleanup() {
  [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
PORT=$(free_ports 1)
env PROFLAB_LISTEN="127.0.0.1:$PORT" LAB_ENABLE=true LAB_TOKEN="$TOKEN" LAB_TASK_ID=bench-rules \
  LAB_ARTIFACT_DIR="$tmp" PROFLAB_CPU_UNWIND_STATS=1 \
  PROFLAB_CPU_UNWIND_RULES="${PROFLAB_CPU_UNWIND_RULES:-on}" "$BUILD/proflabd" >"$tmp/out" 2>"$tmp/err" &
SRV=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/api/health" && break
  sleep 0.1
done
echo "proflabd ($BUILD) under wrk -c$CONNECTIONS /api/work?n=$WORK_N, wall profile at $HZ Hz for $SECONDS_ s, $ROUNDS rounds"
for r in $(seq "$ROUNDS"); do
  wrk -t1 -c"$CONNECTIONS" -d$((SECONDS_ + 3))s "http://127.0.0.1:$PORT/api/work?n=$WORK_N" >"$tmp/wrk.out" 2>&1 &
  WRKP=$!
  sleep 1
  curl -s --max-time $((SECONDS_ + 60)) -X POST -H "x-lab-token: $TOKEN" -o "$tmp/answer.json" \
    "http://127.0.0.1:$PORT/api/lab/cpu-profile?seconds=$SECONDS_&hz=$HZ&mode=wall"
  wait "$WRKP" || true
  node -e '
const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
if (!j.stacks_by) { console.log("answer: " + JSON.stringify(j)); process.exit(1); }
const b = j.stacks_by, n = b.frame_pointers + b.dwarf;
console.log(`round ${process.argv[2]}: ${j.samples} samples (${j.idle_samples} idle), stacks: ${b.frame_pointers} without DWARF (${(100 * b.frame_pointers / n).toFixed(1)} %), ${b.dwarf} with DWARF (${(100 * b.dwarf / n).toFixed(1)} %), cached callers ${b.cached_callers}, checked ${b.checked}, mismatched ${b.mismatched}${j.stack_capture_fell_back ? ", FELL BACK" : ""}`);
' "$tmp/answer.json" "$r"
done
kill -TERM "$SRV"
wait "$SRV" || true
SRV=""
grep -h 'proflab-unwind-stats:' "$tmp/err" "$tmp/out" | tail -n 1 | sed 's/^/last profile: /' || true
