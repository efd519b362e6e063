#!/usr/bin/env bash
# The stack capture cost per sample, in instructions (callgrind), on a
# program under load with wall-mode CPU profiles at HZ of PROFILE_SECONDS,
# ROUNDS of them in one process (callgrind's counters zeroed before each and
# dumped after it: the first round pays for learning per-pc rules, the later
# ones show a process profiled before):
#   TARGET=nginx (default)  Debian's nginx (no frame pointers, master_process
#                           off) with the agent preloaded, light wrk load, the
#                           profiles asked for over the agent's Unix socket
#   TARGET=agent-server     tests/programs/agent-server (-O2
#                           -fomit-frame-pointer) with the agent preloaded,
#                           wrk on GET /work, profiles over the agent's
#                           socket; ended by GET /exit/0
#   TARGET=proflabd         proflabd itself (our code with frame pointers;
#                           libc, libcrypto, libuv, libmicrohttpd without),
#                           wrk on GET /api/work, profiles through its lab
# Reported per round: the SIGPROF handler's inclusive instructions
# (on_sigprof) per signal, the capture's (pl__unwind_capture) per capture,
# the part of it in libgcc's unwinder (_Unwind_Backtrace called from
# src/sample/unwind.c: the heap tracker's walks are not counted), how many
# captures ran DWARF at all (periodic checks included), the answer's
# stacks_by, and for the last round the sampler's own counters
# (PROFLAB_CPU_UNWIND_STATS=1, printed at exit by builds that have them:
# stacks and frames found by per-pc rules and by DWARF). The figure to
# compare before and after a change to the capture path (issue 12: "measure
# the capture cost per sample before and after"); instructions, so the
# machine's load does not move it.
#
# Under valgrind signals arrive at block boundaries and system calls, so the
# interrupted PCs lean to system-call wrappers, and a busy thread gets far
# fewer than HZ; the instructions per frame are what carries over.
# Valgrind also keeps every signal blocked in its threads' kernel masks, so
# a build that refuses threads blocking SIGPROF (SigBlk) needs the
# PROFLAB_BENCH_IGNORE_SIGBLK switch this script sets.
#
#   bench/agent/capture-cost.sh          (PROFILE_SECONDS=8 HZ=1000 ROUNDS=2)
#   BUILD=/tmp/other bench/agent/capture-cost.sh   (another build)
#   TARGET=agent-server bench/agent/capture-cost.sh
#   PROFLAB_CPU_UNWIND_RULES=off bench/agent/capture-cost.sh   (rules off)
#   KEEP=1 bench/agent/capture-cost.sh   (keep the callgrind dumps and logs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"

BUILD=${BUILD:-build}
TARGET=${TARGET:-nginx}
AGENT=${PROFLAB_AGENT_LIB:-$BUILD/libproflab-agent.so}
PROFILE_SECONDS=${PROFILE_SECONDS:-8}
HZ=${HZ:-1000}
NGINX=${NGINX:-/usr/sbin/nginx}
WORK_N=${WORK_N:-1000}
ROUNDS=${ROUNDS:-2}
TOKEN=bench-token-0123456789abcdef-XYZ
command -v valgrind >/dev/null || die "valgrind missing"
command -v callgrind_annotate >/dev/null || die "callgrind_annotate missing (valgrind)"
command -v wrk >/dev/null || die "wrk missing: scripts/deps.sh bench"
case "$TARGET" in
  nginx | agent-server)
    [ -e "$AGENT" ] || die "$AGENT missing: build first"
    AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")
    ;;
  proflabd) [ -x "$BUILD/proflabd" ] || die "$BUILD/proflabd missing: build first" ;;
  *) die "TARGET is nginx, agent-server or proflabd" ;;
esac

tmp=$(mktemp -d /tmp/proflab-bench-capture.XXXXXX)
SRV=""
cleanup() {
  [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "bench: kept $tmp (KEEP)" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$tmp/www" "$tmp/art" "$tmp/logs"
# the sampler's counters at exit (ignored by builds without them); the
# rules' mode as the caller chose
export PROFLAB_CPU_UNWIND_STATS=1
export PROFLAB_CPU_UNWIND_RULES=${PROFLAB_CPU_UNWIND_RULES:-on}
# Valgrind keeps every signal blocked in the kernel's mask of its threads
# (it delivers them itself), so a profiler that reads SigBlk refuses them
# all ("sigprof_blocked"); builds that know this switch look past it.
export PROFLAB_BENCH_IGNORE_SIGBLK=1

# The agent's Unix socket, from its agent_start line for program $1.
agent_socket() {
  awk -F'"lab":"unix:' -v prog="\"program\":\"$1\"" '/"agent_start"/ && index($0, prog) { split($2, a, "\""); print a[1] }' \
    "$tmp/agent.log" 2>/dev/null | tail -n 1 || true
}

wait_up() { # URL [SOCKET_PROGRAM]: until the URL answers (and the agent's socket is known)
  for _ in $(seq 600); do
    if curl -s -o /dev/null "$1"; then
      [ -z "${2:-}" ] && return 0
      SOCK=$(agent_socket "$2")
      [ -n "$SOCK" ] && return 0
    fi
    kill -0 "$SRV" 2>/dev/null || { cat "$tmp/logs/valgrind" >&2; die "$TARGET under callgrind exited"; }
    sleep 0.1
  done
  die "$TARGET under callgrind did not come up (see $tmp/agent.log)"
}

SOCK=""
PORT=$(free_ports 1)
vg=(valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out")
case "$TARGET" in
  nginx)
    head -c 612 /dev/zero | tr '\0' 'x' >"$tmp/www/index.html"
    cat >"$tmp/nginx.conf" <<EOF
master_process off; worker_processes 1; pid $tmp/nginx.pid;
error_log $tmp/logs/error.log; $([ "$(id -u)" = 0 ] && echo 'user root;')
events { worker_connections 256; }
http { access_log off; keepalive_requests 1000000; server { listen 127.0.0.1:$PORT; root $tmp/www; } }
EOF
    URL="http://127.0.0.1:$PORT/index.html"
    # PROFLAB_AGENT_PID: the valgrind launcher (preloaded too) execs the tool
    # under the same pid, which keeps the agent; LD_PRELOAD reaches nginx.
    sh -c 'export PROFLAB_AGENT_PID=$$; exec "$@"' sh \
      env LD_PRELOAD="$AGENT" LAB_ENABLE=true PROFLAB_AGENT_LOG="$tmp/agent.log" LAB_ARTIFACT_DIR="$tmp/art" \
      LAB_TASK_ID=bench-capture "${vg[@]}" \
      "$NGINX" -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' >"$tmp/logs/valgrind" 2>&1 &
    SRV=$!
    wait_up "$URL" nginx
    ;;
  agent-server)
    PROG=${AGENT_SERVER:-$BUILD/tests/programs/agent-server}
    [ -x "$PROG" ] || die "$PROG missing: build first"
    URL="http://127.0.0.1:$PORT/work"
    sh -c 'export PROFLAB_AGENT_PID=$$; exec "$@"' sh \
      env LD_PRELOAD="$AGENT" LAB_ENABLE=true PROFLAB_AGENT_LOG="$tmp/agent.log" LAB_ARTIFACT_DIR="$tmp/art" \
      LAB_TASK_ID=bench-capture "${vg[@]}" "$PROG" "$PORT" >"$tmp/logs/valgrind" 2>&1 &
    SRV=$!
    wait_up "http://127.0.0.1:$PORT/none" agent-server
    ;;
  proflabd)
    URL="http://127.0.0.1:$PORT/api/work?n=$WORK_N"
    env PROFLAB_LISTEN="127.0.0.1:$PORT" LAB_TASK_ID=bench-capture LAB_ENABLE=true LAB_TOKEN="$TOKEN" \
      LAB_ARTIFACT_DIR="$tmp/art" "${vg[@]}" "$BUILD/proflabd" >"$tmp/logs/valgrind" 2>&1 &
    SRV=$!
    wait_up "http://127.0.0.1:$PORT/api/health"
    ;;
esac

# ROUNDS profiles in one process; callgrind's counters zeroed before each
# and dumped after it (cg.out.N): the first round pays for learning, the
# later ones show what a process that was profiled before pays.
for r in $(seq "$ROUNDS"); do
  callgrind_control -z "$SRV" >/dev/null 2>&1
  wrk -t1 -c2 -d$((PROFILE_SECONDS + 4))s "$URL" >"$tmp/wrk.out" 2>&1 &
  WRKP=$!
  sleep 1
  if [ "$TARGET" = proflabd ]; then
    curl -s --max-time $((PROFILE_SECONDS + 120)) -X POST -H "x-lab-token: $TOKEN" -o "$tmp/profile.$r.json" \
      "http://127.0.0.1:$PORT/api/lab/cpu-profile?seconds=$PROFILE_SECONDS&hz=$HZ&mode=wall"
  else
    curl -s --max-time $((PROFILE_SECONDS + 120)) --unix-socket "$SOCK" -X POST -o "$tmp/profile.$r.json" \
      "http://agent/api/lab/cpu-profile?seconds=$PROFILE_SECONDS&hz=$HZ&mode=wall"
  fi
  wait "$WRKP" || true
  callgrind_control -d "$SRV" >/dev/null 2>&1
done
if [ "$TARGET" = agent-server ]; then
  curl -s -o /dev/null "http://127.0.0.1:$PORT/exit/0" || true # exit(): the counters are printed
else
  kill -TERM "$SRV"
fi
wait "$SRV" || true
SRV=""
cat "$tmp"/logs/* 2>/dev/null | grep -h "proflab-unwind-stats:" | tail -n 1 >"$tmp/stats.txt" || true
echo "$TARGET ($BUILD) under callgrind, wall profiles at $HZ Hz of $PROFILE_SECONDS s, $ROUNDS rounds in one process"
for r in $(seq "$ROUNDS"); do
  [ -s "$tmp/cg.out.$r" ] || die "no callgrind dump for round $r"
  callgrind_annotate --inclusive=yes --threshold=100 "$tmp/cg.out.$r" >"$tmp/cg.txt" 2>/dev/null
  [ "$r" -eq "$ROUNDS" ] && stats="$tmp/stats.txt" || stats=/dev/null
  node -e '
const fs = require("fs");
const [round, profile, cg, cgraw, statsFile] = process.argv.slice(1);
const j = JSON.parse(fs.readFileSync(profile, "utf8"));
if (j.error) {
  console.error("profile answer: " + JSON.stringify(j));
  if (j.error.code === "sigprof_blocked")
    console.error("(under valgrind every thread blocks SIGPROF in the kernel mask: this build has no PROFLAB_BENCH_IGNORE_SIGBLK)");
  process.exit(1);
}
const ir = (re) => {
  for (const line of fs.readFileSync(cg, "utf8").split("\n")) {
    const m = line.match(/^\s*([\d,]+) \([^)]*\)\s+(.*)$/);
    if (m && re.test(m[2])) return Number(m[1].replace(/,/g, ""));
  }
  return 0;
};
// calls of a function and their inclusive instructions, summed over its
// call sites in callers whose source file matches fromFile (callgrind raw
// format: names compressed as "(id) name" on first use, "(id)" afterwards;
// "calls=N ..." is followed by the line "position inclusive-cost")
const calls = (name, fromFile = /(?:)/) => {
  const names = new Map(), files = new Map();
  let fl = "", cfn = "", total = 0, cost = 0, pending = false;
  for (const line of fs.readFileSync(cgraw, "utf8").split("\n")) {
    if (pending) {
      pending = false;
      const c = line.trim().split(/\s+/);
      cost += Number(c[c.length - 1]) || 0;
      continue;
    }
    let m = line.match(/^(fl|fi|fe|cfi|cfl)=\((\d+)\)(?: (.*))?$/);
    if (m) { if (m[3]) files.set(m[2], m[3]); if (m[1] === "fl") fl = files.get(m[2]) || ""; continue; }
    m = line.match(/^cfn=\((\d+)\)(?: (.*))?$/);
    if (m) { if (m[2]) names.set(m[1], m[2]); cfn = names.get(m[1]) || ""; continue; }
    m = line.match(/^fn=\((\d+)\)(?: (.*))?$/);
    if (m) { if (m[2]) names.set(m[1], m[2]); continue; }
    m = line.match(/^calls=(\d+)/);
    if (m && cfn === name && fromFile.test(fl)) { total += Number(m[1]); pending = true; }
  }
  return { n: total, ir: cost };
};
const stats = {};
const sline = fs.readFileSync(statsFile, "utf8").trim();
for (const kv of sline.split(" ").slice(1)) { const [k, v] = kv.split("="); stats[k] = Number(v); }
const cap = calls("pl__unwind_capture");
const captures = cap.n;
const signals = j.signals;
/* the sampler DWARF walks (those of the heap tracker are not the capture) */
const dw = calls("_Unwind_Backtrace", /src\/sample\/unwind\.c$/);
const dwarfRuns = dw.n;
const h = ir(/:on_sigprof /), c = cap.ir, u = dw.ir, f = 0;
const pct = (a, b) => b ? (100 * a / b).toFixed(1) + " %" : "-";
const b = j.stacks_by;
console.log(`round ${round}: ${signals} signals, ${captures} stacks captured; answer stacks_by: without DWARF ${b.frame_pointers} (${pct(b.frame_pointers, b.frame_pointers + b.dwarf)}), DWARF ${b.dwarf}, cached callers ${b.cached_callers}, checked ${b.checked}, mismatched ${b.mismatched}`);
console.log(`  SIGPROF handler (on_sigprof, inclusive): ${(h / signals).toFixed(0)} instructions per signal`);
console.log(`  stack capture (pl__unwind_capture, inclusive): ${(c / captures).toFixed(0)} instructions per capture`);
console.log(`    in _Unwind_Backtrace: ${(u / captures).toFixed(0)} per capture; ${dwarfRuns} DWARF walks for ${captures} captures (${pct(dwarfRuns, captures)}, periodic checks included); the rest: ${((c - u) / captures).toFixed(0)} per capture`);
if (statsFile === "/dev/null") {
} else if (sline) {
  const frames = (stats.rule_frames || 0) + (stats.dwarf_frames || 0);
  console.log(`  sampler counters (this round): ${stats.captures} captures; ${stats.rules} by rules without DWARF (${pct(stats.rules, stats.captures)}), ` +
    `${stats.captures - stats.dwarf} without DWARF in all (${pct(stats.captures - stats.dwarf, stats.captures)}), ${stats.dwarf} with DWARF; ` +
    `frames: ${stats.rule_frames} by rules, ${stats.dwarf_frames} by DWARF; ` +
    `rules learned ${stats.rules_learned}, DWARF-only pcs ${stats.inexpressible} (disagreed ${stats.disagreed}), stale ${stats.stale}, checked ${stats.rules_checked}, mismatched ${stats.rules_mismatched}; ` +
    `frame pointers checked ${stats.verified}, mismatched ${stats.mismatched}`);
} else {
  console.log("  sampler counters: none (a build without PROFLAB_CPU_UNWIND_STATS)");
}
' "$r" "$tmp/profile.$r.json" "$tmp/cg.txt" "$tmp/cg.out.$r" "$stats"
done
