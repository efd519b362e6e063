#!/bin/sh
# The heap tracker's malloc microbenchmark (issue 4). See README.md.
#
# Builds malloc-bench.c twice against $BUILD (plain, and linked with
# libproflab_heap), then runs, ROUNDS times, each configuration once per
# round in a rotating order:
#   glibc          plain glibc malloc
#   interposed     tracker linked, not started (interposition alone)
#   sampled-512k   tracker at T = 524288 (the default)
#   every-alloc    tracker at T = 1 (OPS_EXACT ops per thread: it is slow)
#   jemalloc, jemalloc-prof, heaptrack   when installed (libjemalloc2, heaptrack)
# and prints the median ns/op and CPU ns/op of each, and the median over
# rounds of each configuration's ratio to glibc's run of the same round.
#
#   bench/heap/run.sh                         # 7 rounds
#   ROUNDS=11 OPS=10000000 bench/heap/run.sh  # longer
#   CONFIGS="glibc interposed sampled-512k" bench/heap/run.sh   # a subset
#   BASE_LIB=/tmp/old/libproflab_heap.a bench/heap/run.sh
#       A/B: also "base-interposed" and "base-sampled-512k", the same
#       benchmark linked with another build of the tracker (an archive
#       copied before a change), run interleaved with the others;
#       BASE_CORE=/tmp/old/libproflab.a when the library's internal names
#       changed since (the old tracker links against its own libproflab)
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
ROUNDS=${ROUNDS:-7}
OPS=${OPS:-5000000}            # per thread
OPS_EXACT=${OPS_EXACT:-500000} # per thread, for T = 1 and heaptrack
THREADS=${THREADS:-2}
JEMALLOC=${JEMALLOC:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}
BASE_LIB=${BASE_LIB:-}
BASE_CORE=${BASE_CORE:-} # the libproflab.a BASE_LIB was built with (default: $BUILD's)

if ! ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^src/heap/libproflab_heap.a:'; then
  echo "$BUILD has no heap tracker: add subdir('src/heap') after the libproflab" >&2
  echo "library in meson.build (see docs/internals.md), or set BUILD" >&2
  exit 1
fi
ninja -C "$BUILD" src/heap/libproflab_heap.a libproflab.a >/dev/null
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
CFLAGS="-O2 -g -fno-omit-frame-pointer -I$ROOT/src -I$ROOT/include"
LIBS="$(pkg-config --libs libdw libcrypto zlib libuv libmicrohttpd libprotobuf-c) -lm -lpthread -ldl"
cc $CFLAGS "$ROOT/bench/heap/malloc-bench.c" -lpthread -o "$TMP/plain"
cc $CFLAGS -DWITH_HEAP "$ROOT/bench/heap/malloc-bench.c" \
  -Wl,--whole-archive "$BUILD/src/heap/libproflab_heap.a" -Wl,--no-whole-archive \
  "$BUILD/libproflab.a" $LIBS -o "$TMP/heap"
if [ -n "$BASE_LIB" ]; then
  cc $CFLAGS -DWITH_HEAP "$ROOT/bench/heap/malloc-bench.c" \
    -Wl,--whole-archive "$BASE_LIB" -Wl,--no-whole-archive \
    "${BASE_CORE:-$BUILD/libproflab.a}" $LIBS -o "$TMP/base"
fi

configs="glibc interposed sampled-512k every-alloc"
if [ -r "$JEMALLOC" ]; then
  if MALLOC_CONF=prof:true LD_PRELOAD=$JEMALLOC "$TMP/plain" --ops 1000 2>&1 | grep -qi invalid; then
    configs="$configs jemalloc"
  else
    configs="$configs jemalloc jemalloc-prof"
  fi
fi
command -v heaptrack >/dev/null 2>&1 && configs="$configs heaptrack"
[ -n "$BASE_LIB" ] && configs="$configs base-interposed base-sampled-512k"
configs=${CONFIGS:-$configs}
case " $configs " in *" glibc "*) ;; *) configs="glibc $configs" ;; esac # the ratios' reference

run() { # config -> one result line on stdout
  a="--threads $THREADS --label $1"
  case "$1" in
    glibc) "$TMP/plain" $a --ops "$OPS" ;;
    interposed) "$TMP/heap" $a --ops "$OPS" ;;
    sampled-512k) "$TMP/heap" $a --ops "$OPS" --track 524288 ;;
    every-alloc) "$TMP/heap" $a --ops "$OPS_EXACT" --track 1 ;;
    base-interposed) "$TMP/base" $a --ops "$OPS" ;;
    base-sampled-512k) "$TMP/base" $a --ops "$OPS" --track 524288 ;;
    jemalloc) LD_PRELOAD=$JEMALLOC "$TMP/plain" $a --ops "$OPS" ;;
    jemalloc-prof)
      MALLOC_CONF=prof:true,lg_prof_sample:19 LD_PRELOAD=$JEMALLOC "$TMP/plain" $a --ops "$OPS" ;;
    heaptrack)
      heaptrack -o "$TMP/ht" "$TMP/plain" $a --ops "$OPS_EXACT" 2>/dev/null | grep ' ops=' ;;
  esac
}

echo "machine: $(nproc) CPUs, $(uname -r); ops/thread: $OPS (T=1, heaptrack: $OPS_EXACT); threads: $THREADS; rounds: $ROUNDS"
: >"$TMP/results"
n=$(echo $configs | wc -w)
r=0
while [ $r -lt "$ROUNDS" ]; do
  # rotate the order each round
  set -- $configs
  i=0
  while [ $i -lt $((r % n)) ]; do c=$1; shift; set -- "$@" "$c"; i=$((i + 1)); done
  for c in "$@"; do
    line=$(run "$c")
    echo "round $r $line" >>"$TMP/results"
    rm -f "$TMP"/ht*
  done
  r=$((r + 1))
done
cp "$TMP/results" "${RESULTS:-/tmp/heap-bench-results.txt}"

awk -v configs="$configs" '
function median(a, n,   i, j, t) {
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
  round = $2; label = $3
  for (f = 4; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
  ns[label, round] = v["wall_ns"] / v["ops"]
  cpu[label, round] = v["cpu_ns"] / v["ops"]
  rounds[round] = 1
}
END {
  nc = split(configs, C, " ")
  printf "%-14s %10s %10s %14s %14s\n", "config", "ns/op", "cpu ns/op", "wall ×glibc", "cpu ×glibc"
  for (k = 1; k <= nc; k++) {
    c = C[k]; m = 0
    for (r in rounds) if ((c, r) in ns) {
      m++; a1[m] = ns[c, r]; a2[m] = cpu[c, r]
      a3[m] = ns[c, r] / ns["glibc", r]; a4[m] = cpu[c, r] / cpu["glibc", r]
    }
    if (!m) continue
    printf "%-14s %10.2f %10.2f %14.3f %14.3f\n", c, median(a1, m), median(a2, m), median(a3, m), median(a4, m)
  }
}' "$TMP/results"
echo "goal: sampled-512k <= 1.03 x glibc. Raw lines: ${RESULTS:-/tmp/heap-bench-results.txt}"
