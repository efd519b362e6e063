#!/usr/bin/env bash
# The agent's cost on a real service (issue 12's benchmark): Debian's nginx
# serving a small static file under wrk, in one run, configurations
# interleaved every round (who goes first rotates):
#   off        nginx alone
#   heap512k   proflab run: the agent with its lab on a Unix socket and the
#              heap tracker sampling at 512 KiB (LAB_HEAP_SAMPLE_BYTES)
#   wall1k     the same, with a 1 kHz wall-mode CPU profile of the serving
#              process running (POST /api/lab/cpu-profile over the agent's
#              Unix socket) for the whole wrk run
#   heaptrack  Debian's heaptrack on the same nginx (every allocation)
#   gperf      gperftools' heap profiler: LD_PRELOAD=libtcmalloc.so.4 +
#              HEAPPROFILE (dumps pushed out of the run by large intervals)
#   (tcmalloc  optional: libtcmalloc.so.4 without HEAPPROFILE, the allocator
#              change alone;
#    floor1k   optional: no agent, bench/cpu's floor library preloaded: a
#              ticker thread signals nginx's main thread at 1 kHz and the
#              handler does nothing — what wall1k's signals cost before any
#              stack capture; MASTER=off only)
# Goals: heap512k >= 0.98 and wall1k >= 0.95 of off's req/s (median of the
# per-round ratios to the off run of the same round), and both ahead of the
# two anchors (heaptrack, gperf).
#
# nginx runs with master_process off by default (one process serves): heaptrack
# follows the process it starts and stops tracing in forked children (checked:
# 3,001 allocations recorded with a master and a worker, ~100,000 without), so
# every configuration uses the same single-process mode. MASTER=on runs a
# master and one worker instead: the profile then goes to the worker's own
# agent (its agent_start line with forked_from = the master), and heaptrack
# only traces the master (marked in the table).
#
# Pinning (PIN=1): nginx (every thread) on SERVER_CPU after it started, wrk
# on WRK_CPU. The agent's sampler ticker moves itself off the served
# thread's CPU (docs/internals.md); heaptrack's heaptrack_interpret process is
# left unpinned. Per run: req/s, p99 latency, the nginx processes' CPU µs per
# request and the serving thread's alone, the CPU other processes used
# meanwhile (% of a core, "noisy" above NOISY), and for wall1k the profile
# answer's samples and stacks_by (frame pointers / cached callers / DWARF).
#
#   bench/agent/run.sh                                  (make bench-agent)
#   DURATION=5 ROUNDS=3 bench/agent/run.sh              (quicker)
#   CONFIGS="off heap512k wall1k" bench/agent/run.sh    (the agent only)
#   BUILD=/tmp/b-other bench/agent/run.sh               (another build)
#   MASTER=on bench/agent/run.sh                        (master + worker)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"

BUILD=${BUILD:-build}
PROFLAB=${PROFLAB:-$BUILD/proflab}
AGENT=${PROFLAB_AGENT_LIB:-$(dirname "$PROFLAB")/libproflab-agent.so}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-16}
PIN=${PIN:-1}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
MASTER=${MASTER:-off}
HEAP_SAMPLE_BYTES=${HEAP_SAMPLE_BYTES:-524288}
PROFILE_HZ=${PROFILE_HZ:-1000}
PROFILE_MODE=${PROFILE_MODE:-wall}
NOISY=${NOISY:-20}
CONFIGS=${CONFIGS:-off heap512k wall1k heaptrack gperf}
NGINX=${NGINX:-/usr/sbin/nginx}
TCMALLOC=${TCMALLOC:-/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4}
FLOOR=${FLOOR:-$(dirname "$PROFLAB")/bench/libbench-cpu-floor.so}
GOAL_HEAP=0.98
GOAL_WALL=0.95
CLK_TCK=$(getconf CLK_TCK)

command -v wrk >/dev/null || die "wrk missing: scripts/deps.sh bench"
command -v curl >/dev/null || die "curl missing: scripts/deps.sh test"
[ -x "$NGINX" ] || die "$NGINX missing (nginx-light): scripts/deps.sh bench"
[ -x "$PROFLAB" ] && [ -e "$AGENT" ] || die "$PROFLAB or $AGENT missing: build first (make build, or BUILD=dir)"
case "$MASTER" in on | off) ;; *) die "MASTER is on or off" ;; esac
read -r -a configs <<<"$CONFIGS"
for cfg in "${configs[@]}"; do
  case "$cfg" in
    off | heap512k | wall1k) ;;
    heaptrack) command -v heaptrack >/dev/null || die "heaptrack missing: scripts/deps.sh bench" ;;
    gperf | tcmalloc) [ -e "$TCMALLOC" ] || die "$TCMALLOC missing (libgoogle-perftools4): scripts/deps.sh bench" ;;
    floor1k)
      [ -e "$FLOOR" ] || die "$FLOOR missing: build first"
      [ "$MASTER" = off ] || die "floor1k signals the process that starts: MASTER=off only" ;;
    *) die "unknown configuration $cfg (off heap512k wall1k heaptrack gperf tcmalloc floor1k)" ;;
  esac
done
case " ${configs[*]} " in *" off "*) ;; *) die "CONFIGS must include off (the ratios are to it)" ;; esac

tmp=$(mktemp -d /tmp/proflab-bench-agent.XXXXXX)
WRAP="" NGX="" PROF=""
cleanup() {
  [ -n "$PROF" ] && kill "$PROF" 2>/dev/null || true
  [ -n "$NGX" ] && kill -TERM "$NGX" 2>/dev/null || true
  [ -n "$WRAP" ] && kill -TERM "$WRAP" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the site: a small static page (nginx's default page size) and an error page
mkdir -p "$tmp/www" "$tmp/art" "$tmp/ht" "$tmp/gp" "$tmp/logs"
head -c 612 /dev/zero | tr '\0' 'x' >"$tmp/www/index.html"
echo '<html><body>not here</body></html>' >"$tmp/www/404.html"

# conf PORT: the nginx configuration (daemon off comes from -g)
conf() {
  cat >"$tmp/nginx.conf" <<EOF
master_process $MASTER; worker_processes 1; pid $tmp/nginx.pid;
error_log $tmp/logs/error.log; $([ "$(id -u)" = 0 ] && echo 'user root;')
events { worker_connections 1024; }
http {
  access_log off; keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$1; root $tmp/www;
    error_page 404 /404.html;
  }
}
EOF
}

proc_ticks() { # utime+stime of process $1 (all threads), or of thread $2 of it
  local line rest
  { read -r line <"/proc/$1/${2:+task/$2/}stat"; } 2>/dev/null || { echo 0; return; }
  rest=${line##*) }
  # shellcheck disable=SC2086
  set -- $rest
  echo $((${12} + ${13}))
}
ngx_pids() { # the master (or single process) and its children
  echo "$NGX"
  local c
  for c in /proc/[0-9]*/stat; do
    local line rest
    { read -r line <"$c"; } 2>/dev/null || continue
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    [ "$2" = "$NGX" ] && { c=${c#/proc/}; echo "${c%/stat}"; }
  done
  return 0
}
ngx_ticks() { local t=0 p; for p in $(ngx_pids); do t=$((t + $(proc_ticks "$p"))); done; echo $t; }
# tree_ticks PID: utime+stime of PID and all its descendants (heaptrack's
# script: nginx, heaptrack_interpret and its compressor)
tree_ticks() {
  local top=$1 c line rest t=0
  declare -A kids=()
  for c in /proc/[0-9]*/stat; do
    { read -r line <"$c"; } 2>/dev/null || continue
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    c=${c#/proc/}
    kids[$2]+=" ${c%/stat}"
  done
  local todo=("$top") p
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    t=$((t + $(proc_ticks "$p")))
    # shellcheck disable=SC2206
    [ -n "${kids[$p]:-}" ] && todo+=(${kids[$p]})
  done
  echo $t
}

# start CFG ROUND: nginx as CFG on a free port; sets WRAP (what we started),
# NGX (nginx's master / single process), SERVING (the process that serves),
# PORT and, for the agent's configurations, SOCK (the serving process's lab).
start() {
  local cfg=$1 r=$2
  PORT=$(free_ports 1)
  conf "$PORT"
  rm -f "$tmp/nginx.pid" "$tmp/agent.log"
  : >"$tmp/logs/error.log"
  local ngx=("$NGINX" -p "$tmp" -c "$tmp/nginx.conf" -g 'daemon off;')
  case "$cfg" in
    off) "${ngx[@]}" >"$tmp/logs/out" 2>&1 & ;;
    heap512k | wall1k)
      env PROFLAB_AGENT_LIB="$AGENT" PROFLAB_AGENT_LOG="$tmp/agent.log" LAB_TASK_ID=bench-agent \
        LAB_ARTIFACT_DIR="$tmp/art" LAB_HEAP_SAMPLE_BYTES="$HEAP_SAMPLE_BYTES" \
        "$PROFLAB" run -- "${ngx[@]}" >"$tmp/logs/out" 2>&1 & ;;
    heaptrack) heaptrack -o "$tmp/ht/nginx-$r" "${ngx[@]}" >"$tmp/logs/out" 2>&1 & ;;
    gperf)
      env LD_PRELOAD="$TCMALLOC" HEAPPROFILE="$tmp/gp/nginx-$r" \
        HEAP_PROFILE_ALLOCATION_INTERVAL=1099511627776 HEAP_PROFILE_INUSE_INTERVAL=1099511627776 \
        "${ngx[@]}" >"$tmp/logs/out" 2>&1 & ;;
    tcmalloc) env LD_PRELOAD="$TCMALLOC" "${ngx[@]}" >"$tmp/logs/out" 2>&1 & ;;
    floor1k) env LD_PRELOAD="$FLOOR" PROFLAB_FLOOR_HZ="$PROFILE_HZ" PROFLAB_FLOOR_TICKER=1 "${ngx[@]}" >"$tmp/logs/out" 2>&1 & ;;
  esac
  WRAP=$!
  local i
  for i in $(seq 200); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/index.html" && [ -s "$tmp/nginx.pid" ] && break
    kill -0 "$WRAP" 2>/dev/null || { cat "$tmp/logs/out" "$tmp/logs/error.log" >&2; die "$cfg: nginx did not start"; }
    sleep 0.05
  done
  [ "$i" -lt 200 ] || die "$cfg: nginx does not answer on port $PORT"
  NGX=$(cat "$tmp/nginx.pid")
  SERVING=$NGX
  if [ "$MASTER" = on ]; then
    for i in $(seq 100); do
      SERVING=$(ngx_pids | sed -n 2p)
      [ -n "$SERVING" ] && break
      sleep 0.05
    done
  fi
  SOCK=""
  case "$cfg" in
    heap512k | wall1k)
      # the serving process's agent: its agent_start line (forked_from = the
      # master when MASTER=on: every forked process has an agent of its own)
      for i in $(seq 100); do
        SOCK=$(awk -v p="$SERVING" -F'"lab":"unix:' '
          /"agent_start"/ && ($0 ~ "\"pid\":" p "[,}]") { split($2, a, "\""); print a[1] }' "$tmp/agent.log" 2>/dev/null | tail -n 1 || true)
        [ -n "$SOCK" ] && [ -S "$SOCK" ] && break
        sleep 0.05
      done
      [ -n "$SOCK" ] || { cat "$tmp/agent.log" >&2; die "$cfg: no agent_start line for pid $SERVING"; }
      ;;
  esac
  if [ "$PIN" = 1 ]; then
    local p
    for p in $(ngx_pids); do taskset -a -p -c "$SERVER_CPU" "$p" >/dev/null; done
  fi
}

stop() {
  kill -TERM "$NGX" 2>/dev/null || true
  local i
  for i in $(seq 600); do kill -0 "$WRAP" 2>/dev/null || break; sleep 0.05; done # heaptrack: its interpreter finishes
  kill -KILL "$WRAP" 2>/dev/null || true
  wait "$WRAP" 2>/dev/null || true
  WRAP="" NGX=""
}

WRK=(wrk -t1 -c"$CONNECTIONS")
[ "$PIN" = 1 ] && WRK=(taskset -c "$WRK_CPU" "${WRK[@]}")

ms() { # wrk's latency ("812.00us", "1.23ms", "2.01s") in ms
  awk -v x="$1" 'BEGIN { v = x + 0; if (x ~ /us$/) v /= 1000; else if (x ~ /ms$/) v += 0; else if (x ~ /s$/) v *= 1000; printf "%.3f", v }'
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$root/bench/results"
csv="$root/bench/results/agent-$stamp.csv"
echo "round,config,rps,p99_ms,requests,nginx_us_per_req,serving_thread_us_per_req,with_tool_us_per_req,serving_busy_pct,wrk_cpu_pct,other_pct,samples,signals,fp,cached,dwarf,checked,mismatched" >"$csv"
cmdline="$(for v in DURATION ROUNDS CONNECTIONS PIN MASTER CONFIGS BUILD; do printf '%s=%q ' "$v" "${!v}"; done)bench/agent/run.sh"
echo "proflab agent on Debian's nginx under wrk — $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  command: $cmdline"
echo "  $("$NGINX" -v 2>&1), master_process $MASTER, 1 worker; $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2); agent $AGENT"
echo "  wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency http://127.0.0.1:PORT/index.html (612 B);" \
  "$([ "$PIN" = 1 ] && echo "nginx on CPU $SERVER_CPU, wrk on CPU $WRK_CPU" || echo unpinned); $ROUNDS rounds"

declare -A RPS P99 US TUS AUS OTHER SAMPLES SIGNALS FP CACHED DWARF
for r in $(seq "$ROUNDS"); do
  n=${#configs[@]}
  for k in $(seq 0 $((n - 1))); do
    cfg=${configs[$(((k + r - 1) % n))]}
    start "$cfg" "$r"
    "${WRK[@]}" -d"${WARMUP}s" "http://127.0.0.1:$PORT/index.html" >/dev/null 2>&1 || true
    if [ "$cfg" = wall1k ]; then
      curl -s --unix-socket "$SOCK" -X POST -o "$tmp/profile.json" \
        "http://agent/api/lab/cpu-profile?seconds=$((DURATION + 1))&hz=$PROFILE_HZ&mode=$PROFILE_MODE" &
      PROF=$!
      sleep 0.3
    fi
    s0=$(ngx_ticks); a0=$(tree_ticks "$WRAP"); t0=$(proc_ticks "$SERVING" "$SERVING"); b0=$(sys_busy_ticks)
    TIMEFORMAT='%3U %3S'
    { time "${WRK[@]}" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/index.html" >"$tmp/wrk.out"; } 2>"$tmp/wrk.time"
    b1=$(sys_busy_ticks); t1=$(proc_ticks "$SERVING" "$SERVING"); a1=$(tree_ticks "$WRAP"); s1=$(ngx_ticks)
    samples="" signals="" fp="" cached="" dwarf="" checked="" mism=""
    if [ -n "$PROF" ]; then
      wait "$PROF" || true
      PROF=""
      read -r samples signals fp cached dwarf checked mism < <(node -e '
        const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        if (!j.stacks_by) { console.error("profile answer: " + JSON.stringify(j)); process.exit(1); }
        const s = j.stacks_by;
        console.log([j.samples, j.signals, s.frame_pointers, s.cached_callers, s.dwarf, s.checked, s.mismatched].join(" "));
      ' "$tmp/profile.json") || die "wall1k: the profile failed: $(cat "$tmp/profile.json")"
      SAMPLES[$r]=$samples SIGNALS[$r]=$signals FP[$r]=$fp CACHED[$r]=$cached DWARF[$r]=$dwarf
    fi
    stop
    rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
    reqs=$(awk '/requests in/ {print $1; exit}' "$tmp/wrk.out")
    p99=$(ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")")
    [ -n "$rps" ] && [ -n "$reqs" ] || { cat "$tmp/wrk.out" >&2; die "no wrk result for $cfg (round $r)"; }
    wsec=$(awk '{print $1 + $2}' "$tmp/wrk.time")
    read -r us tus aus busy wpct other < <(awk -v s=$((s1 - s0)) -v t=$((t1 - t0)) -v a=$((a1 - a0)) -v ws="$wsec" \
      -v b=$((b1 - b0)) -v hz="$CLK_TCK" -v d="$DURATION" -v n="$reqs" 'BEGIN {
        if (a < s) a = s
        o = 100 * (b - a - ws * hz) / hz / d; if (o < 0) o = 0
        printf "%.2f %.2f %.2f %.0f %.0f %.1f\n", 1e6 * s / hz / n, 1e6 * t / hz / n, 1e6 * a / hz / n,
          100 * t / hz / d, 100 * ws / d, o }')
    RPS[$cfg,$r]=$rps P99[$cfg,$r]=$p99 US[$cfg,$r]=$us TUS[$cfg,$r]=$tus AUS[$cfg,$r]=$aus OTHER[$cfg,$r]=$other
    echo "$r,$cfg,$rps,$p99,$reqs,$us,$tus,$aus,$busy,$wpct,$other,$samples,$signals,$fp,$cached,$dwarf,$checked,$mism" >>"$csv"
    printf '  round %d %-9s %9.1f req/s p99 %7.3f ms  CPU us/req: nginx %5.2f serving thread %5.2f with tool %5.2f  serving %3d%% wrk %3d%% other %3.0f%%%s%s\n' \
      "$r" "$cfg" "$rps" "$p99" "$us" "$tus" "$aus" "$busy" "$wpct" "$other" \
      "$(awk -v o="$other" -v n="$NOISY" 'BEGIN { if (o > n) printf " (noisy)" }')" \
      "${samples:+  samples $samples, stacks by fp $fp / cached $cached / DWARF $dwarf (checked $checked, mismatched $mism)}"
  done
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratios() { # ratios A B: per-round A/B (req/s), one a line
  local r
  for r in $(seq "$ROUNDS"); do awk -v a="${RPS[$1,$r]}" -v b="${RPS[$2,$r]}" 'BEGIN{printf "%.4f\n", a/b}'; done
}
echo
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg); raw figures: ${csv#"$root"/}"
printf '%-10s %10s %8s %8s %10s %9s %9s  %s\n' config "req/s med" "vs off" "p99 ms" "CPU us/req" "CPU ratio" "thread" "goal"
declare -A RATIO
for cfg in "${configs[@]}"; do
  med=$(for r in $(seq "$ROUNDS"); do echo "${RPS[$cfg,$r]}"; done | median)
  RATIO[$cfg]=$(ratios "$cfg" off | median)
  p99=$(for r in $(seq "$ROUNDS"); do echo "${P99[$cfg,$r]}"; done | median)
  us=$(for r in $(seq "$ROUNDS"); do echo "${AUS[$cfg,$r]}"; done | median)
  cr=$(for r in $(seq "$ROUNDS"); do awk -v a="${AUS[$cfg,$r]}" -v b="${AUS[off,$r]}" 'BEGIN{printf "%.4f\n", b/a}'; done | median)
  tr=$(for r in $(seq "$ROUNDS"); do awk -v a="${TUS[$cfg,$r]}" -v b="${TUS[off,$r]}" 'BEGIN{printf "%.4f\n", b/a}'; done | median)
  goal=""
  case "$cfg" in
    heap512k) goal=">= $GOAL_HEAP: $(awk -v x="${RATIO[$cfg]}" -v g=$GOAL_HEAP 'BEGIN{print (x >= g) ? "met" : "NOT met"}')" ;;
    wall1k) goal=">= $GOAL_WALL: $(awk -v x="${RATIO[$cfg]}" -v g=$GOAL_WALL 'BEGIN{print (x >= g) ? "met" : "NOT met"}')" ;;
    heaptrack) [ "$MASTER" = on ] && goal="(traces the master only: MASTER=on)" ;;
    gperf) goal="(tcmalloc + every allocation recorded)" ;;
  esac
  printf '%-10s %10.1f %8.4f %8.3f %10.2f %9.4f %9.4f  %s\n' "$cfg" "$med" "${RATIO[$cfg]}" "$p99" "$us" "$cr" "$tr" "$goal"
done
echo "vs off: median of per-round req/s ratios; CPU us/req: nginx's processes and the tool's own (heaptrack_interpret)"
echo "per request; CPU ratio: that, off / config (median of rounds); thread: the serving thread's CPU per request,"
echo "off / config. When wrk's CPU (per run above) is near 100 % wrk is the ceiling and req/s ratios hide the"
echo "server's cost: the CPU ratios still show it."
for a in heap512k wall1k; do
  [ -n "${RATIO[$a]:-}" ] || continue
  for b in heaptrack gperf; do
    [ -n "${RATIO[$b]:-}" ] || continue
    x=$(ratios "$a" "$b" | median)
    printf 'ahead of %-9s %-8s req/s %s / %s = %.3f (median of per-round ratios): %s\n' "$b:" "$a" "$a" "$b" "$x" \
      "$(awk -v x="$x" 'BEGIN{print (x > 1) ? "met" : "NOT met"}')"
  done
done
if [ -n "${SAMPLES[1]:-}" ]; then
  echo
  echo "wall1k profile answers (the serving process's agent, ${PROFILE_HZ} Hz $PROFILE_MODE):"
  awk -v R="$ROUNDS" -v S="${SAMPLES[*]}" -v F="${FP[*]}" -v C="${CACHED[*]}" -v D="${DWARF[*]}" 'BEGIN {
    split(S, s, " "); split(F, f, " "); split(C, c, " "); split(D, d, " ")
    for (i = 1; i <= R; i++) { ts += s[i]; tf += f[i]; tc += c[i]; td += d[i] }
    t = ts; if (t == 0) t = 1
    printf "  %d samples in %d rounds; stacks_by (a capture may count in more than one): frame pointers %d (%.1f%%), cached callers %d (%.1f%%), DWARF %d (%.1f%%)\n",
      ts, R, tf, 100 * tf / t, tc, 100 * tc / t, td, 100 * td / t }'
  # the serving thread's CPU per sample beyond heap512k's: signal delivery +
  # the handler's capture (+ ring), as the served thread pays it
  if [ -n "${US[heap512k,1]:-}" ]; then
    per=$(for r in $(seq "$ROUNDS"); do
      awk -v a="${TUS[wall1k,$r]}" -v b="${TUS[heap512k,$r]}" -v rps="${RPS[wall1k,$r]}" -v d="$DURATION" \
        -v s="${SAMPLES[$r]}" -v sig="${SIGNALS[$r]}" 'BEGIN { n = sig > 0 ? sig : s; printf "%.2f\n", (a - b) * rps * d / (n * (d / (d + 1))) }'
    done)
    echo "  serving thread's CPU per sample, wall1k minus heap512k (signal + capture): median $(echo "$per" | median) us (rounds: $(echo $per))"
  fi
  if [ -n "${US[floor1k,1]:-}" ]; then
    # the same against the floor (signals at the same rate, empty handler):
    # the capture alone; and the floor against off: the signal alone
    per=$(for r in $(seq "$ROUNDS"); do
      awk -v a="${TUS[wall1k,$r]}" -v b="${TUS[floor1k,$r]}" -v rps="${RPS[wall1k,$r]}" -v d="$DURATION" \
        -v s="${SAMPLES[$r]}" -v sig="${SIGNALS[$r]}" 'BEGIN { n = sig > 0 ? sig : s; printf "%.2f\n", (a - b) * rps * d / (n * (d / (d + 1))) }'
    done)
    sig=$(for r in $(seq "$ROUNDS"); do
      awk -v a="${TUS[floor1k,$r]}" -v b="${TUS[off,$r]}" -v rps="${RPS[floor1k,$r]}" -v hz="$PROFILE_HZ" \
        'BEGIN { printf "%.2f\n", (a - b) * rps / hz }'
    done)
    echo "  of which the signal (floor1k minus off): median $(echo "$sig" | median) us (rounds: $(echo $sig));" \
      "the capture (wall1k minus floor1k): median $(echo "$per" | median) us (rounds: $(echo $per))"
  fi
fi
