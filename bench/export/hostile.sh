#!/bin/sh
# proflab export through hostile exec channels (issue 14): a 4.8 MB
# .cpuprofile-like JSON through the test tools' exec simulator on an
# ECS-like link (0.5 MB/s, 0.3 s to start a session), clean and with each
# hostile fault, as a new user runs it (default options, helper probed).
# Prints the time, exit status, sessions used and the ratio to the clean
# run; checks every copy's SHA-256; for a failed run, its last stderr line.
#
#   bench/export/hostile.sh                        # build/ (BUILD=dir)
#   BEFORE=/path/to/other/build bench/export/hostile.sh  # a second column:
#       the same faults with another build's proflab and proflabd (e.g. the
#       commit before issue 14), each run cut at CAP_S seconds (default 300)
#   SIZE_MB=4.8 RATE=500000 START=0.3 ONLY='hold200 freeze' bench/export/hostile.sh
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SIM=${SIM:-$BUILD/tests/tools/exec-sim}
SIZE_MB=${SIZE_MB:-4.8}
RATE=${RATE:-500000}
START=${START:-0.3}
CAP_S=${CAP_S:-300}
ONLY=${ONLY:-}

[ -x "$BUILD/proflab" ] && [ -x "$SIM" ] || { echo "build first: ninja -C $BUILD" >&2; exit 1; }
command -v node >/dev/null 2>&1 || { echo "node not found (scripts/deps.sh test)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
mkdir "$TMP/sim"
ln -s "$SIM" "$TMP/sim/exec-sim"

# the generator of tests/tools/export-lib.mjs (makeProfile)
node -e '
  const fs = require("fs");
  const [file, size] = [process.argv[1], Number(process.argv[2]) * 1e6];
  const fns = ["work_build_records", "work_serialize", "work_hash", "work_sort", "on_access", "MHD_run", "uv_run", "main"];
  const parts = [];
  let n = 0, total = 0, x = 12345;
  while (total < size) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const line = `{"id":${n},"callFrame":{"functionName":"${fns[x % 8]}","scriptId":"${1000000 + (x % 7)}",`
      + `"url":"file:///src/app/${fns[(x >> 3) % 8]}.c","lineNumber":${x % 900},"columnNumber":0},`
      + `"hitCount":${x % 50},"children":[${n + 1}]},\n`;
    parts.push(line); total += line.length; n++;
  }
  fs.writeFileSync(file, parts.join(""));' "$TMP/src.cpuprofile" "$SIZE_MB"
want=$(sha256sum "$TMP/src.cpuprofile" | cut -d' ' -f1)
bytes=$(stat -c %s "$TMP/src.cpuprofile")

# name | survivable? | exec-sim settings
CASES='clean|yes|
info-marker|yes|EXECSIM_WRAP=120 EXECSIM_INJECT_BRACE=1
hold200|yes|EXECSIM_HOLD=200
markers|yes|EXECSIM_INJECT_BRACE=4,7
inject64k|yes|EXECSIM_WRAP=100 EXECSIM_INJECT_EVERY=65536
crlf-wrap|yes|EXECSIM_CRLF=1 EXECSIM_WRAP=80 EXECSIM_HOLD=200
pty|yes|EXECSIM_PTY=1 EXECSIM_WRAP=80 EXECSIM_HOLD=200 EXECSIM_INJECT_EVERY=262144
hold64k|yes|EXECSIM_HOLD=65536
freeze|no|EXECSIM_FREEZE=3000
inject256|no|EXECSIM_INJECT_EVERY=256
hold-all|no|EXECSIM_HOLD=8000000'

# run BUILD_DIR NAME SETTINGS: prints "milliseconds exit sessions"; the
# last stderr line goes to $TMP/msg
run() {
  b=$1 name=$2 settings=$3
  out="$TMP/out-$name"
  rm -f "$out" "$out".proflab-* "$TMP/sessions"
  t0=$(date +%s%N)
  rc=0
  env $settings EXECSIM_RATE="$RATE" EXECSIM_START="$START" EXECSIM_COUNTER="$TMP/sessions" \
    PATH="$b:$TMP/sim:$PATH" timeout -s KILL "$CAP_S" \
    "$b/proflab" export -q --exec exec-sim "$TMP/src.cpuprofile" "$out" 2>"$TMP/err" || rc=$?
  t1=$(date +%s%N)
  if [ "$rc" = 0 ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" != "$want" ]; then
    echo "$name: WRONG FILE" >&2
    exit 1
  fi
  [ "$rc" = 137 ] && echo "cut at ${CAP_S} s" >"$TMP/err"
  tail -n 1 "$TMP/err" | sed 's/^proflab export: //' | cut -c1-160 >"$TMP/msg"
  echo "$(( (t1 - t0) / 1000000 )) $rc $(cat "$TMP/sessions" 2>/dev/null || echo 0)"
}

echo "export through hostile channels — $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  $bytes B of .cpuprofile-like JSON; link ${RATE} B/s, ${START} s per session start; helper probed (auto)"
if [ -n "${BEFORE:-}" ]; then
  printf '  %-12s %-4s | %8s %4s %4s %7s | %8s %4s %4s %7s\n' fault surv "after s" exit sess "x clean" "before s" exit sess "x clean"
else
  printf '  %-12s %-4s %8s %4s %4s %8s\n' fault surv seconds exit sess "x clean"
fi
clean_a=0 clean_b=0
echo "$CASES" | while IFS='|' read -r name surv settings; do
  if [ -n "$ONLY" ] && [ "$name" != clean ]; then
    case " $ONLY " in *" $name "*) ;; *) continue;; esac
  fi
  set -- $(run "$BUILD" "$name" "$settings")
  a_ms=$1 a_rc=$2 a_s=$3 a_msg=$(cat "$TMP/msg")
  [ "$name" = clean ] && clean_a=$a_ms
  if [ -n "${BEFORE:-}" ]; then
    set -- $(run "$BEFORE" "$name" "$settings")
    b_ms=$1 b_rc=$2 b_s=$3 b_msg=$(cat "$TMP/msg")
    [ "$name" = clean ] && clean_b=$b_ms
    awk -v n="$name" -v s="$surv" -v a="$a_ms" -v ar="$a_rc" -v as="$a_s" -v ca="$clean_a" \
      -v b="$b_ms" -v br="$b_rc" -v bs="$b_s" -v cb="$clean_b" 'BEGIN {
      printf "  %-12s %-4s | %8.1f %4d %4d %7.1f | %8.1f %4d %4d %7.1f\n", n, s, a / 1000, ar, as, a / ca, b / 1000, br, bs, b / cb }'
    [ "$b_rc" = 0 ] || echo "      before: $b_msg"
  else
    awk -v n="$name" -v s="$surv" -v a="$a_ms" -v ar="$a_rc" -v as="$a_s" -v ca="$clean_a" 'BEGIN {
      printf "  %-12s %-4s %8.1f %4d %4d %8.1f\n", n, s, a / 1000, ar, as, a / ca }'
  fi
  [ "$a_rc" = 0 ] || echo "      $a_msg"
done
echo "  (every exit-0 copy checked against the source's SHA-256; exit 3 leaves resumable state)"
