#!/usr/bin/env bash
# The per-pc CFA rules in programs built without frame pointers, the
# agent's case (issue 12): tests/programs/agent-server (-O2
# -fomit-frame-pointer) and, if installed, Debian's nginx, each with the
# agent preloaded, under load (wrk, or a curl loop without it), profiled in
# wall mode at HZ for SECONDS through the agent's Unix socket with
# PROFLAB_CPU_UNWIND_RULES=verify: every stack the rules produce is
# compared with libgcc's DWARF unwind. Passes when every profile is written
# and the sampler's counters at exit (PROFLAB_CPU_UNWIND_STATS=1) show
# stacks by rules, rules checked, none that disagreed with DWARF
# (rules_mismatched=0) and none the table gave that libgcc's next frame
# contradicted (disagreed=0).
#
# Usage: tests/safety/agent-rules.sh [SECONDS=5]
#   BUILD=build|/tmp/b   the build with libproflab-agent.so and the programs
#   HZ=10000             sampling rate
# Exit 0 when all hold, 1 otherwise, 2 when something is missing.
set -u
cd "$(dirname "$0")/../.." || exit 2
SECS=${1:-5}
BUILD=${BUILD:-build}
HZ=${HZ:-10000}
AGENT=$(cd "$BUILD" 2>/dev/null && pwd)/libproflab-agent.so
PROG=$BUILD/tests/programs/agent-server
NGINX=${NGINX:-/usr/sbin/nginx}
[ -e "$AGENT" ] && [ -x "$PROG" ] || {
  echo "agent-rules: $AGENT or $PROG missing: build first" >&2
  exit 2
}
tmp=$(mktemp -d)
SRV=""
cleanup() {
  [ -n "$SRV" ] && kill -KILL "$SRV" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
port() { node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }

# load URL SECONDS: wrk if installed, else a curl loop
load() {
  if command -v wrk >/dev/null; then
    wrk -t1 -c2 -d"$2s" "$1" >/dev/null 2>&1
  else
    local end=$((SECONDS + $2))
    while [ "$SECONDS" -lt "$end" ]; do curl -s -o /dev/null "$1"; done
  fi
}

failed=0
# check NAME FILE...: the last counters line in the files
check() {
  local name=$1 line
  shift
  line=$(cat "$@" 2>/dev/null | grep -h '^proflab-unwind-stats:' | tail -n 1)
  if [ -z "$line" ]; then
    echo "agent-rules: FAIL $name: no counters at exit"
    failed=1
    return
  fi
  get() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
  local caps rules checked mism dis
  caps=$(get captures) rules=$(get rules) checked=$(get rules_checked) mism=$(get rules_mismatched) dis=$(get disagreed)
  echo "agent-rules: $name: $caps stacks, $rules by rules, $checked checked against DWARF, $mism mismatched, $dis contradicted by libgcc"
  if [ "${rules:-0}" -eq 0 ] || [ "${checked:-0}" -eq 0 ] || [ "${mism:-1}" -ne 0 ] || [ "${dis:-1}" -ne 0 ]; then
    echo "agent-rules: FAIL $name: $line"
    failed=1
  fi
}

# profile NAME PROGRAM-NAME URL: the agent's socket from its log, a profile
profile() {
  local sock="" i
  for i in $(seq 100); do
    sock=$(awk -F'"lab":"unix:' -v p="\"program\":\"$2\"" '/"agent_start"/ && index($0, p) { split($2, a, "\""); print a[1] }' "$tmp/agent.log" 2>/dev/null | tail -n 1)
    [ -n "$sock" ] && curl -s -o /dev/null "$3" && break
    sleep 0.1
  done
  if [ -z "$sock" ]; then
    echo "agent-rules: FAIL $1: no agent (see $tmp/agent.log)"
    failed=1
    return 1
  fi
  load "$3" $((SECS + 2)) &
  local lp=$!
  sleep 0.5
  curl -s --max-time $((SECS + 60)) --unix-socket "$sock" -X POST -o "$tmp/answer.json" \
    "http://agent/api/lab/cpu-profile?seconds=$SECS&hz=$HZ&mode=wall"
  wait "$lp"
  if ! grep -q '"stacks_by"' "$tmp/answer.json"; then
    echo "agent-rules: FAIL $1: $(cat "$tmp/answer.json")"
    failed=1
  fi
}

common=(LD_PRELOAD="$AGENT" LAB_ENABLE=true PROFLAB_AGENT_LOG="$tmp/agent.log" LAB_ARTIFACT_DIR="$tmp"
  LAB_TASK_ID=agent-rules PROFLAB_CPU_UNWIND_RULES=verify PROFLAB_CPU_UNWIND_STATS=1)

P=$(port)
env "${common[@]}" "$PROG" "$P" >"$tmp/server.out" 2>"$tmp/server.err" &
SRV=$!
if profile agent-server agent-server "http://127.0.0.1:$P/work"; then
  curl -s -o /dev/null "http://127.0.0.1:$P/exit/0" # exit(): the counters are printed
  wait "$SRV"
  SRV=""
  check agent-server "$tmp/server.err"
fi
[ -n "$SRV" ] && kill -KILL "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
SRV=""

if [ -x "$NGINX" ]; then
  P=$(port)
  mkdir -p "$tmp/www" "$tmp/logs"
  head -c 612 /dev/zero | tr '\0' 'x' >"$tmp/www/index.html"
  cat >"$tmp/nginx.conf" <<EOF
master_process off; worker_processes 1; pid $tmp/nginx.pid;
error_log $tmp/logs/error.log; $([ "$(id -u)" = 0 ] && echo 'user root;')
events { worker_connections 256; }
http { access_log off; server { listen 127.0.0.1:$P; root $tmp/www; } }
EOF
  : >"$tmp/agent.log"
  env "${common[@]}" "$NGINX" -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' >"$tmp/nginx.out" 2>&1 &
  SRV=$!
  if profile nginx nginx "http://127.0.0.1:$P/index.html"; then
    kill -TERM "$SRV"
    wait "$SRV"
    SRV=""
    check nginx "$tmp/nginx.out" "$tmp/logs/error.log" # nginx sends stderr to its error log
  fi
else
  echo "agent-rules: nginx not installed: agent-server only"
fi
[ "$failed" -eq 0 ] && echo "agent-rules: ok"
exit "$failed"
