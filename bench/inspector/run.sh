#!/usr/bin/env bash
# Inspector benchmark: proflabd --inspect against node --inspect, both
# driven by chrome-remote-interface (bench/inspector/client.mjs), in one
# run. Not part of make test.
#
# 1. Heap snapshot over CDP: HeapProfiler.takeHeapSnapshot, MB/s = the
#    snapshot's bytes / (request → answer). proflabd runs with the heap
#    tracker at T = 1 and BLOCKS extra live blocks allocated by a preloaded
#    helper (bench/inspector/blocks.c: the lab's own leak is 1 MiB chunks,
#    too few snapshot nodes), which makes its snapshot about as large as
#    Node's of an empty script (~4.6 MB), the parity bench/heap/run-snapshot.sh
#    chooses with the same BLOCKS. Node: node --inspect of an idle script.
#    A fresh process per side per round, REPEAT snapshots each (the first
#    also pays for reading symbols); the order alternates every round.
#    ENABLE_PAUSE_MS (default 0): the client waits that long after
#    HeapProfiler.enable before the first snapshot, as DevTools' Memory
#    panel (enabled when opened) waits for its user's click; proflabd
#    readies the first snapshot meanwhile (symbols, samples memory).
#    Reported: first and steady (median of the later ones) MB/s, the sizes,
#    and the ratio proflabd / node (median of per-round ratios). Goal >= 10x.
#    The floor, each round too: bench/inspector/replay.mjs, a server that
#    does no work, answers with proflabd's snapshot (recorded in round 1)
#    from one prebuilt buffer; the same client's MB/s against it, divided
#    by node's, is the highest ratio any server could reach on this machine.
# 2. CPU profile under load: wrk -t1 -cCONNECTIONS on GET /api/work?n=WORK_N
#    (proflabd's, and bench/inspector/node-work.mjs doing the same work in
#    JavaScript), DURATION s with no profile ("off") and DURATION s with a
#    CDP profile at INTERVAL µs ("on", what DevTools asks): req/s and the
#    ratio on/off (median of per-round ratios), samples delivered (the
#    length of profile.samples: one per sample, whatever its weight) against
#    the nominal count (profile duration / interval), median time delta.
#
#   bench/inspector/run.sh                       # 5 rounds
#   ROUNDS=3 DURATION=5 bench/inspector/run.sh   # quicker
#   PARTS=heap BLOCKS=300000 bench/inspector/run.sh
#   PARTS=heap ENABLE_PAUSE_MS=1000 bench/inspector/run.sh
#   PARTS=cpu INTERVAL=1000 bench/inspector/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
# shellcheck source=../lib.sh
. bench/lib.sh

ROUNDS=${ROUNDS:-5}
REPEAT=${REPEAT:-5}
ENABLE_PAUSE_MS=${ENABLE_PAUSE_MS:-0}
BLOCKS=${BLOCKS:-110000}
DURATION=${DURATION:-5}
INTERVAL=${INTERVAL:-100}
WORK_N=${WORK_N:-200}
CONNECTIONS=${CONNECTIONS:-20}
PARTS=${PARTS:-"heap cpu"}
PROFLABD=${PROFLABD:-build/proflabd}
TOKEN=bench-inspector-token-0123456789

command -v node >/dev/null || die "node missing (scripts/deps.sh test)"
command -v wrk >/dev/null || die "wrk missing (scripts/deps.sh bench)"
command -v curl >/dev/null || die "curl missing"
[ -x "$PROFLABD" ] || die "$PROFLABD missing: make build"
"$PROFLABD" --help 2>&1 | grep -q -- '--inspect' || die "$PROFLABD has no --inspect"
[ -d tests/node_modules/chrome-remote-interface ] || die "chrome-remote-interface missing: scripts/npm-deps.sh"

tmp=$(mktemp -d /tmp/proflab-bench-inspector.XXXXXX)
SRV=""
cleanup() {
  [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
${CC:-cc} -O2 -g -fPIC -shared -pthread -fno-omit-frame-pointer -o "$tmp/blocks.so" bench/inspector/blocks.c ||
  die "cannot build bench/inspector/blocks.c"

wait_http() { # URL: until it answers (10 s)
  for _ in $(seq 200); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done
  die "nothing answers $1"
}

# start_proflabd heap|cpu: sets SRV, PORT, IPORT
start_proflabd() {
  read -r PORT IPORT < <(free_ports 2)
  local env=(PROFLAB_LISTEN=127.0.0.1:$PORT PROFLAB_INSPECT=127.0.0.1:$IPORT LAB_TASK_ID=bench)
  if [ "$1" = heap ]; then
    rm -f "$tmp/go" "$tmp/go.done"
    env+=(LAB_ENABLE=true LAB_TOKEN=$TOKEN LAB_ARTIFACT_DIR=$tmp LAB_HEAP_SAMPLE_BYTES=1
      LD_PRELOAD=$tmp/blocks.so PL_BENCH_BLOCKS=$BLOCKS PL_BENCH_BLOCKS_GO=$tmp/go)
  fi
  env "${env[@]}" "$PROFLABD" >/dev/null 2>"$tmp/err" &
  SRV=$!
  wait_http "http://127.0.0.1:$PORT/api/health"
  wait_http "http://127.0.0.1:$IPORT/json/version"
  if [ "$1" = heap ]; then
    : >"$tmp/go" # the tracker runs by now (started before the server listens)
    for _ in $(seq 600); do [ -e "$tmp/go.done" ] && break; sleep 0.05; done
    [ -e "$tmp/go.done" ] || die "the blocks helper did not finish"
    local live
    live=$(curl -sf -H "x-lab-token: $TOKEN" "http://127.0.0.1:$PORT/api/lab/status" |
      node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).heap.live_allocations))')
    [ "$live" -ge "$BLOCKS" ] || die "the heap tracker holds $live live allocations, fewer than BLOCKS=$BLOCKS"
  fi
}

# start_replay: sets SRV, IPORT (the recorded snapshot: $tmp/record.json)
start_replay() {
  read -r IPORT < <(free_ports 1)
  node bench/inspector/replay.mjs "$tmp/record.json" "$IPORT" >/dev/null 2>"$tmp/err" &
  SRV=$!
  wait_http "http://127.0.0.1:$IPORT/json/version"
}

# start_node heap|cpu: sets SRV, PORT, IPORT
start_node() {
  read -r PORT IPORT < <(free_ports 2)
  if [ "$1" = heap ]; then
    node --inspect=127.0.0.1:"$IPORT" -e 'setInterval(() => {}, 1e6)' >/dev/null 2>"$tmp/err" &
    SRV=$!
  else
    PORT=$PORT node --inspect=127.0.0.1:"$IPORT" bench/inspector/node-work.mjs >/dev/null 2>"$tmp/err" &
    SRV=$!
    wait_http "http://127.0.0.1:$PORT/api/health"
  fi
  wait_http "http://127.0.0.1:$IPORT/json/version"
}

stop_server() {
  kill -TERM "$SRV" 2>/dev/null || true
  # node --inspect waits for a debugger to detach; the client has closed
  for _ in $(seq 100); do kill -0 "$SRV" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$SRV" 2>/dev/null || true
  wait "$SRV" 2>/dev/null || true
  SRV=""
}

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "inspector benchmark — $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs, node $(node --version), load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. heap snapshots ------------------------------------------------------------
if [[ " $PARTS " == *" heap "* ]]; then
  echo
  echo "heap snapshot over CDP: $ROUNDS rounds, $REPEAT snapshots per fresh process, the first ${ENABLE_PAUSE_MS} ms after HeapProfiler.enable; proflabd: T = 1 + $BLOCKS blocks; node: an idle script"
  : >"$tmp/heap"
  for r in $(seq "$ROUNDS"); do
    for side in $([ $((r % 2)) -eq 1 ] && echo "proflabd node" || echo "node proflabd"); do
      if [ "$side" = proflabd ]; then start_proflabd heap; else start_node heap; fi
      record=""
      [ "$side" = proflabd ] && [ "$r" -eq 1 ] && record=$tmp/record.json
      ENABLE_PAUSE_MS=$ENABLE_PAUSE_MS node bench/inspector/client.mjs snapshot "$IPORT" "$REPEAT" $record >"$tmp/$side.out" || die "$side: the snapshot client failed"
      stop_server
    done
    start_replay
    ENABLE_PAUSE_MS=$ENABLE_PAUSE_MS node bench/inspector/client.mjs snapshot "$IPORT" "$REPEAT" >"$tmp/replay.out" || die "replay: the snapshot client failed"
    stop_server
    pf=$(head -n1 "$tmp/proflabd.out" | field mb_per_s)
    ps=$(tail -n +2 "$tmp/proflabd.out" | field mb_per_s | median)
    nf=$(head -n1 "$tmp/node.out" | field mb_per_s)
    ns=$(tail -n +2 "$tmp/node.out" | field mb_per_s | median)
    pb=$(head -n1 "$tmp/proflabd.out" | field bytes)
    nb=$(head -n1 "$tmp/node.out" | field bytes)
    pms=$(tail -n +2 "$tmp/proflabd.out" | field ms | median)
    nms=$(tail -n +2 "$tmp/node.out" | field ms | median)
    zf=$(head -n1 "$tmp/replay.out" | field mb_per_s)
    zs=$(tail -n +2 "$tmp/replay.out" | field mb_per_s | median)
    zms=$(tail -n +2 "$tmp/replay.out" | field ms | median)
    printf '  round %d  proflabd %8s B: first %7.1f MB/s, then %7.1f (%s ms)   node %8s B: first %6.1f MB/s, then %6.1f (%s ms)   no-work floor: first %7.1f MB/s, then %7.1f (%s ms)   load %s\n' \
      "$r" "$pb" "$pf" "$ps" "$pms" "$nb" "$nf" "$ns" "$nms" "$zf" "$zs" "$zms" "$(cut -d' ' -f1 /proc/loadavg)"
    echo "$pf $ps $nf $ns $zf $zs" >>"$tmp/heap"
  done
  awk '
    function med(arr, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
      return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
    }
    { pf[NR] = $1; ps[NR] = $2; nf[NR] = $3; ns[NR] = $4; rf[NR] = $1 / $3; rs[NR] = $2 / $4; zf[NR] = $5 / $3; zs[NR] = $6 / $4 }
    END {
      n = NR
      a = med(pf, n); b = med(ps, n); c = med(nf, n); d = med(ns, n)
      printf "medians: proflabd first %.1f MB/s, steady %.1f MB/s; node first %.1f MB/s, steady %.1f MB/s\n", a, b, c, d
      lo1 = rf[1]; hi1 = rf[1]; lo2 = rs[1]; hi2 = rs[1]
      for (i = 1; i <= n; i++) { if (rf[i] < lo1) lo1 = rf[i]; if (rf[i] > hi1) hi1 = rf[i]; if (rs[i] < lo2) lo2 = rs[i]; if (rs[i] > hi2) hi2 = rs[i] }
      printf "ratio proflabd / node (median of per-round ratios): first snapshot %.2fx (%.2f-%.2f), steady %.2fx (%.2f-%.2f); goal >= 10x\n", med(rf, n), lo1, hi1, med(rs, n), lo2, hi2
      printf "floor: a server doing no work / node (the most any server reaches with this client here): first %.2fx, steady %.2fx\n", med(zf, n), med(zs, n)
    }' "$tmp/heap"
fi

# ---- 2. CPU profiles under load -------------------------------------------------------
if [[ " $PARTS " == *" cpu "* ]]; then
  echo
  echo "CPU profile over CDP under load: wrk -t1 -c$CONNECTIONS -d${DURATION}s GET /api/work?n=$WORK_N; Profiler at $INTERVAL us for ${DURATION} s; $ROUNDS rounds"
  declare -A RPS SAMP DELIV DELTA
  for r in $(seq "$ROUNDS"); do
    for cfg in proflabd-off proflabd-on node-off node-on; do
      side=${cfg%-*}
      if [ "$side" = proflabd ]; then start_proflabd cpu; else start_node cpu; fi
      wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:$PORT/api/work?n=$WORK_N" >/dev/null 2>&1 # warm-up
      prof=""
      if [ "${cfg#*-}" = on ]; then
        rm -f "$tmp/ready"
        node bench/inspector/client.mjs profile "$IPORT" "$DURATION" "$INTERVAL" "$tmp/ready" >"$tmp/prof.out" 2>&1 &
        prof=$!
        for _ in $(seq 200); do [ -e "$tmp/ready" ] && break; sleep 0.05; done
        [ -e "$tmp/ready" ] || die "$cfg: the profile did not start: $(cat "$tmp/prof.out")"
      fi
      wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PORT/api/work?n=$WORK_N" >"$tmp/wrk.out" 2>&1
      line=""
      if [ -n "$prof" ]; then
        wait "$prof" || die "$cfg: the profile client failed: $(cat "$tmp/prof.out")"
        line=$(cat "$tmp/prof.out")
        SAMP[$cfg,$r]=$(echo "$line" | field samples)
        DELIV[$cfg,$r]=$(echo "$line" | field delivered)
        DELTA[$cfg,$r]=$(echo "$line" | field median_delta_us)
      fi
      stop_server
      RPS[$cfg,$r]=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
      [ -n "${RPS[$cfg,$r]}" ] || die "$cfg: no wrk result: $(cat "$tmp/wrk.out")"
      printf '  round %d %-13s %9.1f req/s%s\n' "$r" "$cfg" "${RPS[$cfg,$r]}" "${line:+   $line}"
    done
  done
  echo
  for side in proflabd node; do
    off=$(for r in $(seq "$ROUNDS"); do echo "${RPS[$side-off,$r]}"; done | median)
    on=$(for r in $(seq "$ROUNDS"); do echo "${RPS[$side-on,$r]}"; done | median)
    ratio=$(for r in $(seq "$ROUNDS"); do awk -v a="${RPS[$side-on,$r]}" -v b="${RPS[$side-off,$r]}" 'BEGIN {printf "%.4f\n", a / b}'; done | median)
    samp=$(for r in $(seq "$ROUNDS"); do echo "${SAMP[$side-on,$r]}"; done | median)
    deliv=$(for r in $(seq "$ROUNDS"); do echo "${DELIV[$side-on,$r]}"; done | median)
    delta=$(for r in $(seq "$ROUNDS"); do echo "${DELTA[$side-on,$r]}"; done | median)
    printf '%-9s req/s off %9.1f, with a %s us CDP profile %9.1f: ratio %.4f; samples %s of nominal (%s delivered; median interval %s us)\n' \
      "$side" "$off" "$INTERVAL" "$on" "$ratio" "$samp" "$deliv" "$delta"
  done
  echo "req/s ratio: median of per-round on/off ratios; delivered: profile.samples.length / (profile duration / interval)"
fi
