#!/usr/bin/env bash
# HTTP benchmark: proflabd vs nginx (1 worker) vs Node 20 http.createServer,
# all answering GET /api/health -> {"status":"ok"} on loopback.
#
#   bench/http/run.sh                      (what `make bench` runs)
#   DURATION=5 ROUNDS=3 bench/http/run.sh  (quicker)
#
# Environment:
#   DURATION     seconds per measured wrk run            [10]
#   ROUNDS       rounds; each round runs every server once [5]
#   WARMUP       seconds of wrk warm-up per server        [3]
#   CONNECTIONS  wrk -c                                    [50]
#   THREADS      wrk -t                                    [1]
#   PIN          1: wrk on CPU 0, servers on CPU 1 (taskset) [0]
#   PROFLABD     binary to measure                         [build/proflabd]
#   PROFLABD_ARGS extra options for it (e.g. --no-request-log)
#   PROFLABD_STDOUT where its JSON log goes [/dev/null]; a file keeps its
#                shutdown line if it dies mid-run (but costs page-cache writes)
#   NOISY        flag runs where other processes used > this % of a core [20]
#
# Per run it records req/s, p99 latency (wrk --latency), and the server's CPU
# time per request: utime+stime from /proc/PID/stat of every server process
# (nginx: master and worker) before and after the run, divided by the
# requests wrk completed. With one wrk thread on a 2-core machine, wrk itself
# is often the ceiling for the fast servers; CPU µs/request is the figure
# that still separates them, and the wrk CPU% column shows when that happens.
# Raw per-run numbers go to bench/results/http-<UTC timestamp>.csv.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-1}
PIN=${PIN:-0}
PROFLABD=${PROFLABD:-build/proflabd}
PROFLABD_ARGS=${PROFLABD_ARGS:-}
PROFLABD_STDOUT=${PROFLABD_STDOUT:-/dev/null}
PATH_UNDER_TEST=/api/health
NOISY=${NOISY:-20} # a run is "noisy" when other processes used more than this % of a core
GOAL_NGINX=0.95
GOAL_NODE=2

# shellcheck source=../lib.sh
. "$here/../lib.sh" # die, free_ports, proc_cpu_ticks, sys_busy_ticks

for v in DURATION ROUNDS WARMUP CONNECTIONS THREADS; do
  case "${!v}" in '' | *[!0-9]*) die "$v must be a positive integer (got '${!v}')" ;; esac
  [ "${!v}" -gt 0 ] || die "$v must be a positive integer (got '${!v}')"
done

command -v wrk >/dev/null 2>&1 ||
  die "wrk not found: install it with 'scripts/deps.sh bench' (Debian package wrk) or run 'make bench'"
NGINX=$(command -v nginx 2>/dev/null || true)
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
[ -n "$NGINX" ] ||
  die "nginx not found: install it with 'scripts/deps.sh bench' (Debian package nginx-light) or run 'make bench'"
command -v node >/dev/null 2>&1 || die "node not found: install Node 20 ('scripts/deps.sh test')"
command -v curl >/dev/null 2>&1 || die "curl not found: install it ('scripts/deps.sh test')"
command -v ps >/dev/null 2>&1 || die "ps not found (Debian package procps)"
[ -x "$PROFLABD" ] || die "$PROFLABD not built: run 'make build' first"
if [ "$PIN" = 1 ]; then
  command -v taskset >/dev/null 2>&1 || die "PIN=1 needs taskset (util-linux)"
  WRK_PIN=(taskset -c 0)
  SRV_PIN=(taskset -c 1)
else
  WRK_PIN=()
  SRV_PIN=()
fi

CLK_TCK=$(getconf CLK_TCK)
tmp=$(mktemp -d /tmp/proflab-bench.XXXXXX)
SERVERS=(proflabd nginx node)
declare -A PID PORT

# --- clean-up: every server we started, whatever way we leave -------------
cleanup() {
  local rc=$? name pid
  trap - EXIT INT TERM
  if [ -n "${WRK_PID:-}" ]; then kill -TERM "$WRK_PID" 2>/dev/null || true; fi
  for name in "${SERVERS[@]}"; do
    pid=${PID[$name]:-}
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for name in "${SERVERS[@]}"; do
    pid=${PID[$name]:-}
    [ -n "$pid" ] || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# --- free loopback ports ---------------------------------------------------
# Ask the kernel for three ephemeral ports (bound at once so they differ),
# then release them for the servers.
read -r p1 p2 p3 < <(free_ports 3)
PORT[proflabd]=$p1
PORT[nginx]=$p2
PORT[node]=$p3

# --- start the servers -----------------------------------------------------
# proflabd: lab off, request logging ON (the real configuration), logs to /dev/null.
# shellcheck disable=SC2086
env LAB_ENABLE=false LAB_TASK_ID=bench PROFLAB_LISTEN="127.0.0.1:${PORT[proflabd]}" \
  "${SRV_PIN[@]}" "$PROFLABD" $PROFLABD_ARGS >"$PROFLABD_STDOUT" 2>"$tmp/proflabd.err" &
PID[proflabd]=$!

# nginx: 1 worker (plus its idle master), access log written to /dev/null,
# every path inside $tmp so it runs as root without /etc/nginx or port 80.
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log /dev/null;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  # proflabd and Node never close a busy keep-alive connection; nor does this
  # (the default, 1000, would make wrk reconnect every 1000 requests).
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:${PORT[nginx]};
    location = $PATH_UNDER_TEST {
      default_type application/json;
      add_header x-lab-task bench;
      return 200 '{"status":"ok"}';
    }
  }
}
EOF
"${SRV_PIN[@]}" "$NGINX" -p "$tmp/nginx/" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" \
  >/dev/null 2>"$tmp/nginx.err" &
PID[nginx]=$!

LAB_TASK_ID=bench PORT="${PORT[node]}" "${SRV_PIN[@]}" node "$here/node-server.mjs" \
  >/dev/null 2>"$tmp/node.err" &
PID[node]=$!

url() { echo "http://127.0.0.1:${PORT[$1]}$PATH_UNDER_TEST"; }

wait_ready() {
  local name=$1
  for _ in $(seq 1 100); do
    if ! kill -0 "${PID[$name]}" 2>/dev/null; then
      cat "$tmp/$name.err" "$tmp/nginx/error.log" 2>/dev/null | tail -n 20 >&2
      die "$name exited during start-up"
    fi
    curl -sf -o /dev/null "$(url "$name")" && return 0
    sleep 0.1
  done
  die "$name did not answer $(url "$name") within 10 s"
}
for s in "${SERVERS[@]}"; do wait_ready "$s"; done

# Check the three answer alike (status, content-type, x-lab-task, body).
for s in "${SERVERS[@]}"; do
  out=$(curl -si "$(url "$s")" | tr -d '\r')
  grep -qi '^content-type: application/json' <<<"$out" || die "$s: no content-type application/json"
  grep -qi '^x-lab-task: ' <<<"$out" || die "$s: no x-lab-task header"
  [ "$(tail -n 1 <<<"$out")" = '{"status":"ok"}' ] || die "$s: unexpected body"
done

# --- measuring -------------------------------------------------------------
server_pids() { # the process and its children (nginx: master + worker)
  echo "${PID[$1]}"
  ps -o pid= --ppid "${PID[$1]}" 2>/dev/null || true
}
cpu_ticks() { # utime+stime (all threads) of every process of the server
  local total=0 p t
  for p in $(server_pids "$1"); do
    t=$(proc_cpu_ticks "$p" 2>/dev/null) || continue
    total=$((total + t))
  done
  echo "$total"
}

# run_wrk NAME SECONDS OUTFILE: wrk's output to OUTFILE; wrk's own CPU
# seconds (user+sys) to OUTFILE.time. wrk runs in the background and we
# `wait` for it so that Ctrl-C reaches our trap at once (a foreground wrk
# would swallow SIGINT, print its summary, and the script would go on).
children_ticks() { # cutime+cstime of this shell: CPU of the children it reaped
  local line rest
  read -r line <"/proc/$$/stat"
  rest=${line##*) }
  # shellcheck disable=SC2086
  set -- $rest
  echo $((${14} + ${15}))
}
server_check() { # die with its exit status and stderr if server $1 is gone
  local rc=0
  kill -0 "${PID[$1]}" 2>/dev/null && return 0
  wait "${PID[$1]}" 2>/dev/null || rc=$?
  PID[$1]=
  echo "bench: $1 exited (status $rc$([ "$rc" -gt 128 ] && echo ", signal $(kill -l $((rc - 128)))")); its stderr:" >&2
  tail -n 20 "$tmp/$1.err" >&2
  [ "$1" = nginx ] && tail -n 20 "$tmp/nginx/error.log" >&2
  if [ "$1" = proflabd ]; then
    if [ "$PROFLABD_STDOUT" = /dev/null ]; then
      echo "bench: (status 0: a clean shutdown, e.g. on SIGTERM/SIGINT from elsewhere; rerun with PROFLABD_STDOUT=FILE to keep its log)" >&2
    else
      grep -v '"event":"request"' "$PROFLABD_STDOUT" | tail -n 5 >&2 || true
    fi
  fi
  die "$1 died during the benchmark"
}
WRK_PID=
run_wrk() {
  local t0 t1
  t0=$(children_ticks)
  "${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2"s --latency "$(url "$1")" >"$3" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || { server_check "$1"; die "wrk failed against $1: $(tail -n 3 "$3")"; }
  WRK_PID=
  t1=$(children_ticks)
  echo $((t1 - t0)) >"$3.time"
}

to_ms() { # wrk latency like 812.00us, 1.23ms, 1.01s, 1.5m -> ms
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}

# Is the machine quiet? Other processes' CPU over one second, before we load it.
b0=$(sys_busy_ticks)
sleep 1
b1=$(sys_busy_ticks)
idle_other=$(((b1 - b0) * 100 / CLK_TCK))
if [ "$idle_other" -gt "$NOISY" ]; then
  echo "bench: warning: before the runs other processes already use ${idle_other}% of a core; numbers will be noisy" >&2
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
csv=bench/results/http-$stamp.csv
echo "round,order,server,duration_s,requests,req_per_s,p99_ms,server_cpu_ticks,server_cpu_us_per_req,server_cpu_pct,wrk_cpu_pct,other_cpu_pct,non_2xx,socket_errors" >"$csv"

echo "proflab HTTP benchmark — $(date -u '+%Y-%m-%d %H:%M:%SZ')"
echo "  machine: $(nproc) CPUs, $(uname -sr); $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2); nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'); node $(node --version)"
echo "  load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency GET $PATH_UNDER_TEST, $ROUNDS rounds, servers alternating; warm-up ${WARMUP}s each; pinned: $([ "$PIN" = 1 ] && echo 'wrk CPU0, servers CPU1' || echo no)"
echo "  proflabd ($PROFLABD${PROFLABD_ARGS:+ $PROFLABD_ARGS}) :${PORT[proflabd]}  lab off, JSON log -> $PROFLABD_STDOUT"
echo "  nginx 1 worker :${PORT[nginx]}  access_log /dev/null;  node http.createServer :${PORT[node]}  no log"
echo

for s in "${SERVERS[@]}"; do
  printf '  warm-up %-8s ' "$s"
  run_wrk "$s" "$WARMUP" "$tmp/warm-$s.out"
  grep -m1 'Requests/sec' "$tmp/warm-$s.out" | awk '{printf "%s req/s\n", $2}'
done
echo

n=${#SERVERS[@]}
for r in $(seq 1 "$ROUNDS"); do
  for k in $(seq 0 $((n - 1))); do
    s=${SERVERS[$(((r - 1 + k) % n))]} # rotate who goes first each round
    out=$tmp/r$r-$s.out
    c0=$(cpu_ticks "$s")
    b0=$(sys_busy_ticks)
    run_wrk "$s" "$DURATION" "$out"
    b1=$(sys_busy_ticks)
    c1=$(cpu_ticks "$s")
    server_check "$s"
    reqs=$(awk '/requests in/ {print $1; exit}' "$out")
    secs=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4; exit}' "$out")
    rps=$(awk '/^Requests\/sec/ {print $2; exit}' "$out")
    p99raw=$(awk '$1 == "99%" {print $2; exit}' "$out")
    non2xx=$(awk -F': *' '/Non-2xx/ {print $2; exit}' "$out")
    sockerr=$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10; exit}' "$out")
    if [ -z "$reqs" ] || [ -z "$rps" ] || [ -z "$p99raw" ] || [ "$reqs" -le 0 ]; then
      cat "$out" >&2
      die "could not read wrk's output for $s (round $r)"
    fi
    p99=$(to_ms "$p99raw")
    ticks=$((c1 - c0))
    read -r wt <"$out.time"
    line=$(awk -v r="$r" -v k="$((k + 1))" -v s="$s" -v secs="$secs" -v reqs="$reqs" -v rps="$rps" \
      -v p99="$p99" -v t="$ticks" -v hz="$CLK_TCK" -v wt="$wt" -v busy="$((b1 - b0))" \
      -v n2="${non2xx:-0}" -v se="${sockerr:-0}" 'BEGIN {
        cpu_s = t / hz
        other = 100 * (busy - t - wt) / hz / secs; if (other < 0) other = 0
        printf "%d,%d,%s,%.2f,%d,%.2f,%.3f,%d,%.2f,%.1f,%.1f,%.1f,%d,%d", r, k, s, secs, reqs, rps, p99, t,
          cpu_s * 1e6 / reqs, 100 * cpu_s / secs, 100 * wt / hz / secs, other, n2, se }')
    echo "$line" >>"$csv"
    awk -F, -v noisy="$NOISY" '{printf "  round %d  %-8s %8.0f req/s  p99 %6.2f ms  %6.2f CPU µs/req  CPU%%: server %5.1f  wrk %5.1f  other %5.1f%s%s\n",
      $1, $3, $6, $7, $9, $10, $11, $12, ($12 > noisy ? "  (noisy)" : ""),
      ($13 + $14 > 0 ? "  ERRORS: non-2xx " $13 ", socket " $14 : "")}' <<<"$line"
  done
done
echo

# --- summary ---------------------------------------------------------------
awk -F, -v ncpu="$(nproc)" -v noisy="$NOISY" -v gn="$GOAL_NGINX" -v gd="$GOAL_NODE" -v rounds="$ROUNDS" '
  function median(list,   a, m, i, j, t) {
    m = split(list, a, " ")
    for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  NR == 1 { next }
  {
    rps[$3] = rps[$3] " " $6; p99[$3] = p99[$3] " " $7; cpu[$3] = cpu[$3] " " $9
    scpu[$3] = scpu[$3] " " $10; wcpu[$3] = wcpu[$3] " " $11; ocpu = ocpu " " $12; errs += $13 + $14; if ($12 > noisy) noisyruns++
    R[$1, $3] = $6; C[$1, $3] = $9
  }
  END {
    printf "%-10s %12s %12s %16s %14s %11s\n", "server", "req/s", "p99 ms", "CPU µs/request", "server CPU %", "wrk CPU %"
    printf "%-10s %12s %12s %16s %14s %11s\n", "", "(median)", "(median)", "(median)", "(median)", "(median)"
    split("proflabd nginx node", order, " ")
    for (i = 1; i <= 3; i++) {
      s = order[i]
      printf "%-10s %12.0f %12.2f %16.2f %14.1f %11.1f\n", s, median(rps[s]), median(p99[s]), median(cpu[s]), median(scpu[s]), median(wcpu[s])
    }
    for (r = 1; r <= rounds; r++) {
      rn = rn " " R[r, "proflabd"] / R[r, "nginx"];  rd = rd " " R[r, "proflabd"] / R[r, "node"]
      cn = cn " " C[r, "proflabd"] / C[r, "nginx"];  cd = cd " " C[r, "proflabd"] / C[r, "node"]
    }
    mrn = median(rn); mrd = median(rd); mcn = median(cn); mcd = median(cd)
    print ""
    print "ratios (median of the per-round ratios; rounds pair up in time):"
    printf "  req/s          proflabd/nginx %5.2fx   goal >= %.2fx: %s\n", mrn, gn, (mrn >= gn ? "MET" : "NOT MET")
    printf "  req/s          proflabd/node  %5.2fx   goal >= %.2fx: %s\n", mrd, gd, (mrd >= gd ? "MET" : "NOT MET")
    printf "  CPU µs/request proflabd/nginx %5.2fx   (lower is better; <= %.2fx is the CPU-side equivalent of the nginx goal: %s)\n", mcn, 1 / gn, (mcn <= 1 / gn ? "met" : "not met")
    printf "  CPU µs/request proflabd/node  %5.2fx   (lower is better; <= %.2fx is the CPU-side equivalent of the node goal: %s)\n", mcd, 1 / gd, (mcd <= 1 / gd ? "met" : "not met")
    print ""
    print "note: wrk runs one thread (-t1). When its CPU % is near 100 it, not the server, is the"
    print "ceiling, and req/s of the fast servers converge; server CPU µs/request then tells them apart."
    printf "other processes used a median %.1f%% of a core during the runs (%s CPUs in all).\n", median(ocpu), ncpu
    if (noisyruns > 0) printf "WARNING: %d of %d runs had other processes using > %d%% of a core (marked noisy): the machine was\nnot quiet; server and wrk shared CPUs with them, so treat these figures as rough and run again.\n", noisyruns, NR - 1, noisy
    if (errs > 0) print "WARNING: some runs had non-2xx answers or socket errors (see the CSV); their req/s is suspect."
  }' "$csv"
echo
echo "raw per-run numbers: $csv"
