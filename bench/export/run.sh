#!/bin/sh
# proflab export through a slow, cutting exec channel (issue 5's benchmark):
# a SIZE_MB JSON artifact (cpuprofile-like lines) through the test tools'
# exec simulator at its real speed (EXECSIM_SCALE=1: 1 s to start a session,
# 0.5 MB/s raw channel), for each remote helper, without cuts (F8) and with a
# cut somewhere in every session (F8 + F1). Reports time, sessions used, the
# effective rate and its ratio to the raw channel rate (goal >= 2, through
# compression), and checks every result's SHA-256.
#
#   bench/export/run.sh                       # 50 MB, helpers proflabd node sh
#   SIZE_MB=10 HELPERS=proflabd bench/export/run.sh
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SIZE_MB=${SIZE_MB:-50}
HELPERS=${HELPERS:-proflabd node sh}
RAW=0.5 # MB/s, exec-sim's F8 rate at EXECSIM_SCALE=1

[ -x "$BUILD/proflab" ] && [ -x "$BUILD/tests/tools/exec-sim" ] || {
  echo "build first: ninja -C $BUILD" >&2
  exit 1
}
command -v node >/dev/null 2>&1 || { echo "node not found (scripts/deps.sh test)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

# cpuprofile-like JSON: one node object per line
node -e '
  const fs = require("fs");
  const [file, mb] = [process.argv[1], Number(process.argv[2])];
  const fd = fs.openSync(file, "w");
  let n = 0, size = 0, x = 12345;
  const fns = ["work_build_records", "work_serialize", "work_hash", "work_sort", "on_access", "MHD_run", "uv_run", "main"];
  while (size < mb * 1e6) {
    let chunk = "";
    for (let i = 0; i < 1000; i++, n++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      chunk += `{"id":${n},"callFrame":{"functionName":"${fns[x % 8]}","scriptId":"${1000000 + (x % 7)}","url":"file:///src/app/${fns[(x >> 3) % 8]}.c","lineNumber":${x % 900},"columnNumber":0},"hitCount":${x % 50},"children":[${n + 1}]},\n`;
    }
    fs.writeSync(fd, chunk);
    size += Buffer.byteLength(chunk);
  }
  fs.closeSync(fd);' "$TMP/big.json" "$SIZE_MB"
want=$(sha256sum "$TMP/big.json" | cut -d' ' -f1)
bytes=$(stat -c %s "$TMP/big.json")

echo "export benchmark — $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  $bytes B of JSON through exec-sim at ${RAW} MB/s raw, 1 s per session start"
printf '  %-9s %-8s %8s %9s %12s %10s\n' helper faults seconds sessions "MB/s" "÷ raw"
for h in $HELPERS; do
  for f in F8 F8,F1; do
    rm -f "$TMP/out.json" "$TMP/out.json.proflab-"* "$TMP/sessions"
    t0=$(date +%s%N)
    runs=0
    rc=3
    while [ "$rc" = 3 ] && [ "$runs" -lt 10 ]; do # 3: incomplete but resumable
      runs=$((runs + 1))
      rc=0
      EXECSIM_FAULTS=$f EXECSIM_P=1 EXECSIM_SCALE=1 EXECSIM_SPAN=8000000 EXECSIM_COUNTER="$TMP/sessions" \
        PATH="$BUILD/tests/tools:$BUILD:$PATH" \
        "$BUILD/proflab" export -q --exec exec-sim --helper "$h" --timeout 10 "$TMP/big.json" "$TMP/out.json" || rc=$?
    done
    t1=$(date +%s%N)
    [ "$rc" = 0 ] || { echo "  $h $f: export failed (exit $rc)" >&2; continue; }
    [ "$(sha256sum "$TMP/out.json" | cut -d' ' -f1)" = "$want" ] || { echo "  $h $f: WRONG FILE" >&2; exit 1; }
    awk -v h="$h" -v f="$f" -v ns=$((t1 - t0)) -v b="$bytes" -v s="$(cat "$TMP/sessions")" -v raw="$RAW" 'BEGIN {
      sec = ns / 1e9; rate = b / 1e6 / sec
      printf "  %-9s %-8s %8.1f %9d %12.2f %10.2f\n", h, f, sec, s, rate, rate / raw }'
  done
done
echo "  (goal: effective rate / raw channel >= 2; every file checked against the source's SHA-256)"
