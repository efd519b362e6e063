#!/usr/bin/env bash
# The agent's stack capture cost per sample, in instructions (callgrind):
# Debian's nginx (no frame pointers, master_process off) runs under
# valgrind --tool=callgrind with the agent preloaded, light wrk load, and a
# wall-mode CPU profile at HZ for SECONDS through the agent's Unix socket.
# Reported: the SIGPROF handler's inclusive instructions (on_sigprof, which
# captures the stack) divided by the signals the profile answer counts, the
# part of it in libgcc's unwinder (_Unwind_Backtrace, _Unwind_Find_FDE), the
# mean depth of the recorded stacks, and the answer's stacks_by. The figure
# to compare before and after a change to the capture path (issue 12: "measure
# the capture cost per sample before and after"); instructions, so the
# machine's load does not move it.
#
# Under valgrind signals arrive at block boundaries and system calls, so the
# interrupted PCs lean to system-call wrappers (most of nginx's time is there
# anyway); the instructions per frame are what carries over.
#
#   bench/agent/capture-cost.sh                    (PROFILE_SECONDS=8 HZ=1000)
#   BUILD=/tmp/other bench/agent/capture-cost.sh   (another build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"

BUILD=${BUILD:-build}
AGENT=${PROFLAB_AGENT_LIB:-$BUILD/libproflab-agent.so}
PROFILE_SECONDS=${PROFILE_SECONDS:-8}
HZ=${HZ:-1000}
NGINX=${NGINX:-/usr/sbin/nginx}
command -v valgrind >/dev/null || die "valgrind missing"
command -v callgrind_annotate >/dev/null || die "callgrind_annotate missing (valgrind)"
command -v wrk >/dev/null || die "wrk missing: scripts/deps.sh bench"
[ -e "$AGENT" ] || die "$AGENT missing: build first"
AGENT=$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")

tmp=$(mktemp -d /tmp/proflab-bench-capture.XXXXXX)
SRV=""
cleanup() {
  [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/www" "$tmp/art" "$tmp/logs"
head -c 612 /dev/zero | tr '\0' 'x' >"$tmp/www/index.html"
PORT=$(free_ports 1)
cat >"$tmp/nginx.conf" <<EOF
master_process off; worker_processes 1; pid $tmp/nginx.pid;
error_log $tmp/logs/error.log; $([ "$(id -u)" = 0 ] && echo 'user root;')
events { worker_connections 256; }
http { access_log off; keepalive_requests 1000000; server { listen 127.0.0.1:$PORT; root $tmp/www; } }
EOF

# PROFLAB_AGENT_PID: the valgrind launcher (preloaded too) execs the tool
# under the same pid, which keeps the agent; LD_PRELOAD reaches nginx.
sh -c 'export PROFLAB_AGENT_PID=$$; exec "$@"' sh \
  env LD_PRELOAD="$AGENT" LAB_ENABLE=true PROFLAB_AGENT_LOG="$tmp/agent.log" LAB_ARTIFACT_DIR="$tmp/art" \
  LAB_TASK_ID=bench-capture valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
  "$NGINX" -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;' >"$tmp/logs/valgrind" 2>&1 &
SRV=$!
SOCK=""
for _ in $(seq 600); do
  SOCK=$(awk -F'"lab":"unix:' '/"agent_start"/ && /"program":"nginx"/ { split($2, a, "\""); print a[1] }' "$tmp/agent.log" 2>/dev/null | tail -n 1 || true)
  [ -n "$SOCK" ] && curl -sf -o /dev/null "http://127.0.0.1:$PORT/index.html" && break
  kill -0 "$SRV" 2>/dev/null || { cat "$tmp/logs/valgrind" >&2; die "nginx under callgrind exited"; }
  sleep 0.1
done
[ -n "$SOCK" ] || die "no agent in nginx under callgrind (see $tmp/agent.log)"
wrk -t1 -c2 -d$((PROFILE_SECONDS + 4))s "http://127.0.0.1:$PORT/index.html" >"$tmp/wrk.out" 2>&1 &
WRKP=$!
sleep 1
curl -s --max-time $((PROFILE_SECONDS + 120)) --unix-socket "$SOCK" -X POST -o "$tmp/profile.json" \
  "http://agent/api/lab/cpu-profile?seconds=$PROFILE_SECONDS&hz=$HZ&mode=wall"
wait "$WRKP" || true
kill -TERM "$SRV"
wait "$SRV" || true
SRV=""
callgrind_annotate --inclusive=yes "$tmp/cg.out" >"$tmp/cg.txt" 2>/dev/null
node -e '
const fs = require("fs");
const [profile, cg, art] = process.argv.slice(1);
const j = JSON.parse(fs.readFileSync(profile, "utf8"));
if (!j.stacks_by) { console.error("profile answer: " + JSON.stringify(j)); process.exit(1); }
const ir = (re) => {
  for (const line of fs.readFileSync(cg, "utf8").split("\n")) {
    const m = line.match(/^\s*([\d,]+) \([^)]*\)\s+(.*)$/);
    if (m && re.test(m[2])) return Number(m[1].replace(/,/g, ""));
  }
  return 0;
};
const p = JSON.parse(fs.readFileSync(`${art}/${j.file}`, "utf8"));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children || []) parent.set(c, n.id);
const depth = (id) => { let d = 0; while (parent.has(id)) { id = parent.get(id); d++; } return d; };
let frames = 0;
for (const s of p.samples) frames += depth(s);
const n = j.signals || j.samples;
const h = ir(/:on_sigprof /), u = ir(/:_Unwind_Backtrace /), f = ir(/:_Unwind_Find_FDE /);
const depthMean = frames / p.samples.length;
console.log(`nginx under callgrind, wall profile at ${j.hz} Hz for ${j.duration_ms / 1000} s: ${n} signals, ${j.samples} samples`);
console.log(`stacks_by: frame pointers ${j.stacks_by.frame_pointers}, cached callers ${j.stacks_by.cached_callers}, DWARF ${j.stacks_by.dwarf} (checked ${j.stacks_by.checked}, mismatched ${j.stacks_by.mismatched})`);
console.log(`SIGPROF handler (on_sigprof, inclusive): ${(h / n).toFixed(0)} instructions per sample`);
console.log(`  in _Unwind_Backtrace: ${(u / n).toFixed(0)} (of which _Unwind_Find_FDE ${(f / n).toFixed(0)})`);
console.log(`recorded stack depth: mean ${depthMean.toFixed(1)} frames (+ the frames of the handler itself, which DWARF walks first);` +
  ` ${(h / n / depthMean).toFixed(0)} instructions per recorded frame`);
' "$tmp/profile.json" "$tmp/cg.txt" "$tmp/art"
