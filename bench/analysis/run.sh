#!/bin/sh
# `proflab top` against the JavaScript tools people use on the same files,
# in one run (issue 11's benchmark):
#   - a Node heap snapshot of >= 300 MB: proflab top vs DevTools' own
#     heap-snapshot loader run in Node (npm chrome-devtools-frontend, as
#     tests/integration/devtools-heap-summary.mjs runs it) vs memlab (npm,
#     getFullHeapFromFile) — each loads the file, computes dominators and
#     retained sizes, and makes the Summary by class;
#   - a >= 200 MB .cpuprofile: proflab top vs speedscope's importer (npm
#     speedscope, its bundle run in Node), which builds the call tree and
#     each function's self and total time.
# Wall time and peak RSS of each (GNU time: the child's ru_maxrss), CPU
# time (user + sys, all threads), and the ratios to proflab. On a busy
# machine the CPU-time ratio is the steadier figure: every tool here is one
# thread of work (Node's GC threads add a little CPU to the JS tools). Goal on the
# snapshot: proflab >= 5x faster than the fastest of the others and <= half
# that tool's peak memory.
#
# The inputs are generated once (gen-heap.mjs: v8.writeHeapSnapshot() of a
# Node heap built for it; gen-cpuprofile.mjs: a synthetic V8 profile) and
# cached in $DATA; they are made again when their generator changes. The
# JavaScript tools run with --max-old-space-size=$NODE_HEAP_MB (16 GiB) so
# that Node's default heap limit does not stop them.
#
#   bench/analysis/run.sh                     # everything, once
#   ROUNDS=3 bench/analysis/run.sh            # medians of 3
#   TOOLS="proflab devtools" PARTS=heap bench/analysis/run.sh
#   PROFLAB=/tmp/other/proflab bench/analysis/run.sh   # another build
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/analysis
BUILD=${BUILD:-$ROOT/build}
PROFLAB=${PROFLAB:-$BUILD/proflab}
DATA=${DATA:-/var/tmp/proflab-bench-analysis}
ROUNDS=${ROUNDS:-1}
PARTS=${PARTS:-heap cpu}
TOOLS=${TOOLS:-proflab devtools memlab speedscope}
HEAP_SCALE=${HEAP_SCALE:-1}
CPU_SCALE=${CPU_SCALE:-1}
NODE_HEAP_MB=${NODE_HEAP_MB:-16384}
TOOL_TIMEOUT=${TOOL_TIMEOUT:-3600}
MAX_RSS_MB=${MAX_RSS_MB:-16384} # a tool above this is stopped (a shared machine)

die() { echo "bench: $*" >&2; exit 1; }
command -v node >/dev/null 2>&1 || die "node not found (scripts/deps.sh test installs it)"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (scripts/deps.sh bench installs the time package)"
[ -x "$PROFLAB" ] || die "$PROFLAB not found: build first (make build)"
"$ROOT/scripts/npm-deps.sh" >/dev/null || die "cannot install the npm test clients (scripts/npm-deps.sh)"
"$ROOT/scripts/npm-deps.sh" bench >/dev/null || die "cannot install memlab (scripts/npm-deps.sh bench)"
mkdir -p "$DATA"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

# input FILE GENERATOR SCALE: FILE made by GENERATOR unless it is there and newer
input() {
  if [ ! -s "$1" ] || [ "$2" -nt "$1" ]; then
    echo "generating $1 (once; cached in $DATA) ..." >&2
    node --max-old-space-size=8192 "$2" "$1" "$3" >&2 || die "cannot generate $1"
  fi
}
HEAP=$DATA/heap-$HEAP_SCALE.heapsnapshot
CPU=$DATA/cpu-$CPU_SCALE.cpuprofile
case " $PARTS " in *" heap "*) input "$HEAP" "$HERE/gen-heap.mjs" "$HEAP_SCALE" ;; esac
case " $PARTS " in *" cpu "*) input "$CPU" "$HERE/gen-cpuprofile.mjs" "$CPU_SCALE" ;; esac
DT_BUNDLE=$(node "$HERE/devtools-top.mjs" --bundle) || die "cannot bundle DevTools' heap snapshot code"

NODE="node --max-old-space-size=$NODE_HEAP_MB"
# measure PART TOOL ROUND CMD...: one run; appends "part tool round wall_s rss_kb cpu_s status" to $TMP/runs
measure() {
  part=$1 tool=$2 round=$3
  shift 3
  status=ok
  # read the file once first so every tool finds it in the page cache
  cat "$( [ "$part" = heap ] && echo "$HEAP" || echo "$CPU")" >/dev/null
  /usr/bin/time -f '%e %M %U %S' -o "$TMP/time" timeout "$TOOL_TIMEOUT" "$@" \
    >"$TMP/$part-$tool.out" 2>"$TMP/$part-$tool.err" &
  pid=$!
  rm -f "$TMP/over"
  while kill -0 "$pid" 2>/dev/null; do # the tool's RSS: time -> timeout -> tool
    kb=$(ps -o rss= -p "$(pgrep -P "$(pgrep -P "$pid" | head -n 1)" | head -n 1)" 2>/dev/null || echo 0)
    if [ "${kb:-0}" -gt $((MAX_RSS_MB * 1024)) ]; then
      touch "$TMP/over"
      pkill -KILL -P "$(pgrep -P "$pid" | head -n 1)" 2>/dev/null || true
    fi
    sleep 1
  done
  if ! wait "$pid"; then
    status=failed
    grep -q 'status 124' "$TMP/time" && status=timeout
    [ -f "$TMP/over" ] && status="over-${MAX_RSS_MB}MB"
  fi
  set -- $(tail -n 1 "$TMP/time")
  echo "$part $tool $round $1 $2 $(echo "$3 $4" | awk '{printf "%.2f", $1 + $2}') $status" >>"$TMP/runs"
  printf '  %-5s %-10s round %s: %7.2f s wall, %8.1f MB peak RSS, %7.2f s CPU%s\n' "$part" "$tool" "$round" "$1" \
    "$(echo "$2" | awk '{print $1 / 1024}')" "$(echo "$3 $4" | awk '{print $1 + $2}')" \
    "$([ $status = ok ] && echo || echo " ($status: $(tail -n 2 "$TMP/$part-$tool.err" | tr '\n' ' '))")"
}

run_tool() {
  part=$1 tool=$2 round=$3
  case " $TOOLS " in *" $tool "*) ;; *) return 0 ;; esac
  case "$part/$tool" in
    heap/proflab) measure heap proflab "$round" "$PROFLAB" top "$HEAP" --limit 10 ;;
    heap/devtools) measure heap devtools "$round" $NODE "$HERE/devtools-top.mjs" "$HEAP" "$DT_BUNDLE" 10 ;;
    heap/memlab) measure heap memlab "$round" $NODE "$HERE/memlab-top.mjs" "$HEAP" 10 ;;
    cpu/proflab) measure cpu proflab "$round" "$PROFLAB" top "$CPU" --limit 10 ;;
    cpu/speedscope) measure cpu speedscope "$round" $NODE "$HERE/speedscope-top.mjs" "$CPU" 10 ;;
  esac
}

echo "proflab top vs JavaScript tools — $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs, node $(node --version), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  proflab: $PROFLAB; JavaScript tools with --max-old-space-size=$NODE_HEAP_MB"
mb() { echo "$(($(stat -c %s "$1") / 1000000)) MB"; }
case " $PARTS " in *" heap "*) echo "  heap: $HEAP, $(mb "$HEAP")" ;; esac
case " $PARTS " in *" cpu "*) echo "  cpu:  $CPU, $(mb "$CPU")" ;; esac
: >"$TMP/runs"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  for part in $PARTS; do
    case $part in
      heap) others="devtools memlab" ;;
      cpu) others="speedscope" ;;
      *) die "unknown part $part (heap, cpu)" ;;
    esac
    # proflab first on odd rounds, last on even ones
    if [ $((r % 2)) -eq 1 ]; then order="proflab $others"; else order="$others proflab"; fi
    for tool in $order; do run_tool "$part" "$tool" "$r"; done
  done
  r=$((r + 1))
done

# the same answer: the largest class (heap) or the top function (cpu) of each
for f in "$TMP"/*.out; do
  [ -s "$f" ] || continue
  case $f in
    *proflab.out) line=$(sed -n '3p' "$f") ;;
    *) line=$(sed -n '2p' "$f") ;;
  esac
  echo "  first row, $(basename "$f" .out): $(echo "$line" | tr -s ' \t' ' ' | cut -c1-100)"
done

mkdir -p "$ROOT/bench/results"
cp "$TMP/runs" "$ROOT/bench/results/analysis-$(date -u +%Y%m%dT%H%M%SZ).txt"
echo
echo "medians of $ROUNDS round(s); speed-up: the tool's wall (CPU) time / proflab's; RSS ratio: proflab's peak RSS / the tool's"
awk -v goal_speed=5 -v goal_mem=0.5 '
  function median(s,   n, a, i, t, j) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  $7 == "ok" { k = $1 SUBSEP $2; w[k] = w[k] " " $4; m[k] = m[k] " " $5; c[k] = c[k] " " $6; seen[k] = 1 }
  $7 != "ok" { bad[$1 SUBSEP $2] = $7 }
  END {
    printf "%-5s %-11s %9s %12s %9s %10s %10s %10s\n", "file", "tool", "wall s", "peak RSS MB", "CPU s", "speed-up", "(CPU)", "RSS ratio"
    split("heap cpu", parts, " ")
    split("proflab devtools memlab speedscope", tools, " ")
    for (p = 1; p <= 2; p++) {
      P = parts[p]
      if (!((P SUBSEP "proflab") in seen)) continue
      pw = median(w[P SUBSEP "proflab"]); pm = median(m[P SUBSEP "proflab"]); pc = median(c[P SUBSEP "proflab"])
      fastest = ""; fw = 0
      for (t = 1; t <= 4; t++) {
        k = P SUBSEP tools[t]
        if (k in bad) { printf "%-5s %-11s %s\n", P, tools[t], bad[k]; continue }
        if (!(k in seen)) continue
        tw = median(w[k]); tm = median(m[k]); tc = median(c[k])
        if (tools[t] == "proflab") printf "%-5s %-11s %9.2f %12.1f %9.2f %10s %10s %10s\n", P, tools[t], tw, tm / 1024, tc, "", "", ""
        else {
          printf "%-5s %-11s %9.2f %12.1f %9.2f %9.1fx %9.1fx %10.3f\n", P, tools[t], tw, tm / 1024, tc, tw / pw, tc / pc, pm / tm
          if (fastest == "" || tw < fw) { fastest = tools[t]; fw = tw; fm = tm; fc = tc }
        }
      }
      if (P == "heap" && fastest != "")
        printf "goal (heap): >= %dx faster than the fastest other tool (%s): wall %.1fx %s, CPU %.1fx %s; <= %.1f of its peak RSS: %.3f %s\n",
          goal_speed, fastest, fw / pw, ((fw / pw >= goal_speed) ? "MET" : "NOT MET"),
          fc / pc, ((fc / pc >= goal_speed) ? "MET" : "NOT MET"),
          goal_mem, pm / fm, ((pm / fm <= goal_mem) ? "MET" : "NOT MET")
    }
  }' "$TMP/runs"
