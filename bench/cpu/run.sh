#!/usr/bin/env bash
# CPU profiler benchmark (issue 3). Two parts, in one run:
#
# 1. Cost: proflabd under wrk (GET /api/work?n=$WORK_N, real work) with
#    profiling off and on, alternating configurations every round:
#      off | proflab wall 1 kHz | proflab wall 10 kHz | proflab cpu 1 kHz |
#      gperftools 1 kHz (LD_PRELOAD libprofiler, CPUPROFILE_FREQUENCY=1000) |
#      perf record -F 1000 -g
#    Reported: median req/s and its ratio to "off" (median of per-round
#    ratios: rounds pair up in time on a noisy machine).
# 2. Accuracy: a 2-thread CPU burner (bench/cpu/burn.c) profiled by proflab's
#    cpu mode and by gperftools at 1 kHz: accounted CPU time / measured CPU.
#
#   bench/cpu/run.sh                         (make bench runs it)
#   DURATION=5 ROUNDS=3 bench/cpu/run.sh     (quicker)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
WORK_N=${WORK_N:-200}
CONNECTIONS=${CONNECTIONS:-20}
BURN_SECONDS=${BURN_SECONDS:-3}
PROFLABD=${PROFLABD:-build/proflabd}
BURN=${BURN:-build/bench/bench-cpu-burn}
LIBPROFILER=${LIBPROFILER:-/usr/lib/x86_64-linux-gnu/libprofiler.so.0}

die() { echo "bench/cpu: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk missing: scripts/deps.sh bench"
[ -x "$PROFLABD" ] && [ -x "$BURN" ] || die "build first: make build"
have_gperf=1; [ -e "$LIBPROFILER" ] || { have_gperf=0; echo "note: $LIBPROFILER missing (libgoogle-perftools4): gperftools skipped" >&2; }
have_perf=1; command -v perf >/dev/null && perf record -o /dev/null -F 99 -- true >/dev/null 2>&1 || { have_perf=0; echo "note: perf unusable here: skipped" >&2; }
have_go=1; command -v go >/dev/null || { have_go=0; echo "note: go missing: gperftools accuracy skipped" >&2; }

tmp=$(mktemp -d /tmp/proflab-bench-cpu.XXXXXX)
SRV=""; PERF=""
cleanup() {
  [ -n "$PERF" ] && kill -INT "$PERF" 2>/dev/null || true
  [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# start CONFIG: runs proflabd profiled as CONFIG on a free port; sets SRV, PORT
start() {
  local cfg=$1
  PORT=$(free_port)
  local env=(PROFLAB_LISTEN=127.0.0.1:$PORT LAB_TASK_ID=bench)
  case "$cfg" in
    off) ;;
    wall1k) env+=(PROFLAB_CPU_PROFILE=$tmp/p.pb.gz PROFLAB_CPU_PROFILE_HZ=1000) ;;
    wall10k) env+=(PROFLAB_CPU_PROFILE=$tmp/p.pb.gz PROFLAB_CPU_PROFILE_HZ=10000) ;;
    cpu1k) env+=(PROFLAB_CPU_PROFILE=$tmp/p.pb.gz PROFLAB_CPU_PROFILE_MODE=cpu PROFLAB_CPU_PROFILE_HZ=1000) ;;
    gperf) env+=(LD_PRELOAD=$LIBPROFILER CPUPROFILE=$tmp/g.prof CPUPROFILE_FREQUENCY=1000) ;;
    perf) ;;
  esac
  env "${env[@]}" "$PROFLABD" >/dev/null 2>"$tmp/err" &
  SRV=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null 2>&1 && break; sleep 0.05; done
  if [ "$cfg" = perf ]; then
    perf record -q -F 1000 -g -o "$tmp/perf.data" -p "$SRV" >/dev/null 2>&1 &
    PERF=$!
    sleep 0.5
  fi
}
stop() {
  if [ -n "$PERF" ]; then kill -INT "$PERF" 2>/dev/null || true; wait "$PERF" 2>/dev/null || true; PERF=""; fi
  kill -TERM "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; SRV=""
}

configs=(off wall1k wall10k cpu1k)
[ $have_gperf = 1 ] && configs+=(gperf)
[ $have_perf = 1 ] && configs+=(perf)
declare -A RPS
echo "cost: wrk -t1 -c$CONNECTIONS -d${DURATION}s http://127.0.0.1/api/work?n=$WORK_N, $ROUNDS rounds, configurations alternating"
for r in $(seq "$ROUNDS"); do
  for cfg in "${configs[@]}"; do
    start "$cfg"
    wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORT/api/work?n=$WORK_N" >/dev/null 2>&1 # warm-up
    rps=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PORT/api/work?n=$WORK_N" | awk '/Requests\/sec/ {print $2}')
    stop
    RPS[$cfg,$r]=$rps
    printf '  round %d %-8s %10.1f req/s\n' "$r" "$cfg" "$rps"
  done
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo
printf '%-10s %12s %10s\n' config "req/s (med)" "vs off"
for cfg in "${configs[@]}"; do
  med=$(for r in $(seq "$ROUNDS"); do echo "${RPS[$cfg,$r]}"; done | median)
  ratio=$(for r in $(seq "$ROUNDS"); do awk -v a="${RPS[$cfg,$r]}" -v b="${RPS[off,$r]}" 'BEGIN{printf "%.4f\n", a/b}'; done | median)
  printf '%-10s %12.1f %10.4f\n' "$cfg" "$med" "$ratio"
done
echo "goals: wall1k >= 0.99, wall10k >= 0.97 of off"

echo
echo "accuracy: $BURN ${BURN_SECONDS}s x 2 threads at 1 kHz; accounted CPU / measured CPU"
for r in $(seq 3); do
  ours=$(PROFLAB_SELF=1 "$BURN" "$BURN_SECONDS" 1000)
  cpu=$(echo "$ours" | sed -n 's/.*cpu_seconds=\([0-9.]*\).*/\1/p')
  acc=$(echo "$ours" | sed -n 's/.*accounted_seconds=\([0-9.]*\).*/\1/p')
  line=$(awk -v a="$acc" -v c="$cpu" 'BEGIN{printf "proflab cpu mode: %.3f s of %.3f s = %.4f", a, c, a/c}')
  if [ $have_gperf = 1 ] && [ $have_go = 1 ]; then
    g=$(CPUPROFILE=$tmp/burn.prof CPUPROFILE_FREQUENCY=1000 LD_PRELOAD=$LIBPROFILER "$BURN" "$BURN_SECONDS")
    gcpu=$(echo "$g" | sed -n 's/.*cpu_seconds=\([0-9.]*\).*/\1/p')
    gms=$(go tool pprof -top "$BURN" "$tmp/burn.prof" 2>/dev/null | sed -n 's/.* of \([0-9.]*\)\(m\?s\) total.*/\1 \2/p' | head -1)
    gsec=$(echo "$gms" | awk '{ if ($2=="ms") printf "%.4f", $1/1000; else printf "%.4f", $1 }')
    line="$line | gperftools: $(awk -v a="$gsec" -v c="$gcpu" 'BEGIN{printf "%.3f s of %.3f s = %.4f", a, c, a/c}')"
  fi
  echo "  $line"
done
echo "goal: proflab >= 0.98 (gperftools under-counts ~4x on a 250 Hz-tick kernel)"
