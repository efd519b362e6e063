#!/bin/sh
# Every libFuzzer target of tests/fuzz for SECONDS each (`make fuzz`,
# FUZZ_SECONDS): run.sh (export frames and state, the inspector's HTTP head,
# WebSocket and CDP), run-readers.sh (the profile readers), run-service.sh
# (query parameters, artifact names and paths, Range/If-Range, the agent's
# settings, whole HTTP requests). Ends with one line per target:
#   <target> <executions> execs, <rate>/s
#   tests/fuzz/fuzz-all.sh [SECONDS] [OUTDIR]
# Exit: 0 no crash; 77 cannot build here; else the first script that failed.
set -u
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$(mktemp -d "${TMPDIR:-/tmp}/proflab-fuzz-all.XXXXXX")}
mkdir -p "$out"
rc=0
"$here/run.sh" "$secs" "$out/core" || rc=$?
[ "$rc" = 0 ] && { "$here/run-readers.sh" "$secs" "$out/readers" || rc=$?; }
[ "$rc" = 0 ] && { "$here/run-service.sh" "$secs" "$out/service" || rc=$?; }
echo "fuzz summary ($secs s per target; logs in $out):"
for log in "$out"/core/run-*.log "$out"/readers/run-*.log "$out"/service/run-*.log; do
  [ -f "$log" ] || continue
  t=$(basename "$log" .log | sed 's/^run-//')
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  r=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  printf '  %-16s %12s execs, %8s/s\n' "$t" "${n:-?}" "${r:-?}"
done
exit "$rc"
