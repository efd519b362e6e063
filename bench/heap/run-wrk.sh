#!/usr/bin/env bash
# proflabd under wrk with the heap tracker on vs off (issue 4's goal: on/off
# req/s >= 0.99). Two proflabd on loopback, both with the lab on, one with
# PROFLAB_HEAP_TRACKING=false; each round runs wrk against both, alternating
# who goes first, and records req/s and the server's CPU µs per request
# (utime+stime from /proc/PID/stat), plus what other processes used.
#
#   bench/heap/run-wrk.sh
#   DURATION=10 ROUNDS=7 PATH_UNDER_TEST='/api/work?n=500' bench/heap/run-wrk.sh
#
# Environment: DURATION s per run [5], ROUNDS [5], WARMUP s [2],
# CONNECTIONS [20], PATH_UNDER_TEST [/api/work?n=200] (an endpoint that
# allocates: it builds, serializes, hashes and sorts records), SAMPLE_BYTES
# (LAB_HEAP_SAMPLE_BYTES for the tracked one) [524288], PROFLABD [build/proflabd].
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-20}
PATH_UNDER_TEST=${PATH_UNDER_TEST:-/api/work?n=200}
SAMPLE_BYTES=${SAMPLE_BYTES:-524288}
PROFLABD=${PROFLABD:-build/proflabd}
TOKEN=bench-token-0123456789abcdef

# shellcheck source=../lib.sh
. "$root/bench/lib.sh" # die, free_ports, proc_cpu_ticks, sys_busy_ticks
command -v wrk >/dev/null 2>&1 || die "wrk not found: 'scripts/deps.sh bench' installs it"
command -v curl >/dev/null 2>&1 || die "curl not found"
[ -x "$PROFLABD" ] || die "$PROFLABD not built: run 'make build'"

tmp=$(mktemp -d /tmp/proflab-heapwrk.XXXXXX)
declare -A PID PORT
cleanup() {
  local rc=$? n
  for n in on off; do [ -n "${PID[$n]:-}" ] && kill -TERM "${PID[$n]}" 2>/dev/null || true; done
  for n in on off; do [ -n "${PID[$n]:-}" ] && wait "${PID[$n]}" 2>/dev/null || true; done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r PORT[on] PORT[off] < <(free_ports 2)
for n in on off; do
  mkdir -p "$tmp/$n"
  track=true
  [ "$n" = off ] && track=false
  env LAB_ENABLE=true LAB_TOKEN=$TOKEN LAB_ARTIFACT_DIR="$tmp/$n" LAB_TASK_ID="bench-$n" \
    PROFLAB_HEAP_TRACKING=$track LAB_HEAP_SAMPLE_BYTES="$SAMPLE_BYTES" PROFLAB_REQUEST_LOG=false \
    PROFLAB_LISTEN="127.0.0.1:${PORT[$n]}" "$PROFLABD" >/dev/null 2>"$tmp/$n.err" &
  PID[$n]=$!
done
url() { echo "http://127.0.0.1:${PORT[$1]}$PATH_UNDER_TEST"; }
for n in on off; do
  ok=
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "$(url "$n")" && { ok=1; break; }
    sleep 0.1
  done
  [ -n "$ok" ] || { cat "$tmp/$n.err" >&2; die "proflabd ($n) did not answer"; }
done
tracker=$(curl -sf -H "x-lab-token: $TOKEN" "http://127.0.0.1:${PORT[on]}/api/lab/status" |
  node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>{const h=JSON.parse(s).heap;console.log(h.tracker+" T="+h.sample_bytes)})')
off_state=$(curl -sf -H "x-lab-token: $TOKEN" "http://127.0.0.1:${PORT[off]}/api/lab/status" |
  node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>console.log(JSON.parse(s).heap.tracker))')
[ "$off_state" = off ] || die "the untracked proflabd reports tracker '$off_state'"

CLK_TCK=$(getconf CLK_TCK)

echo "proflabd heap tracker on vs off under wrk — $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs"
echo "  wrk -t1 -c$CONNECTIONS -d${DURATION}s GET $PATH_UNDER_TEST; $ROUNDS rounds, alternating; tracked: $tracker"
for n in on off; do wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}"s "$(url "$n")" >/dev/null; done
: >"$tmp/rows"
for r in $(seq 1 "$ROUNDS"); do
  order="on off"
  [ $((r % 2)) -eq 0 ] && order="off on"
  for n in $order; do
    c0=$(proc_cpu_ticks "${PID[$n]}"); b0=$(sys_busy_ticks); t0=$(date +%s%N)
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}"s "$(url "$n")" >"$tmp/out"
    c1=$(proc_cpu_ticks "${PID[$n]}"); b1=$(sys_busy_ticks); t1=$(date +%s%N)
    kill -0 "${PID[$n]}" 2>/dev/null || { cat "$tmp/$n.err" >&2; die "proflabd ($n) died"; }
    reqs=$(awk '/requests in/ {print $1; exit}' "$tmp/out")
    rps=$(awk '/^Requests\/sec/ {print $2; exit}' "$tmp/out")
    grep -q 'Non-2xx' "$tmp/out" && die "non-2xx answers from $n: $(cat "$tmp/out")"
    us=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v q="$reqs" 'BEGIN {printf "%.2f", t / hz * 1e6 / q}')
    printf '  round %d  %-3s %9.0f req/s  %7s CPU µs/req  machine busy %5.1f%% of %d CPUs\n' "$r" "$n" "$rps" "$us" \
      "$(awk -v b=$((b1 - b0)) -v hz="$CLK_TCK" -v ns=$((t1 - t0)) -v c="$(nproc)" 'BEGIN {print 100 * b / hz / (ns / 1e9) / c}')" "$(nproc)"
    echo "$r $n $rps $us" >>"$tmp/rows"
  done
done
awk '
  { rps[$1, $2] = $3; us[$1, $2] = $4; if ($1 > n) n = $1 }
  function sort(a, m,   i, j, t) { for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
  END {
    for (r = 1; r <= n; r++) { q[r] = rps[r, "on"] / rps[r, "off"]; c[r] = us[r, "on"] / us[r, "off"] }
    sort(q, n); sort(c, n)
    mq = (n % 2) ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
    mc = (n % 2) ? c[(n + 1) / 2] : (c[n / 2] + c[n / 2 + 1]) / 2
    printf "\nreq/s on/off: median %.3f (range %.3f-%.3f; goal >= 0.99)   CPU per request on/off: median %.3f (range %.3f-%.3f)\n", mq, q[1], q[n], mc, c[1], c[n]
  }' "$tmp/rows"
