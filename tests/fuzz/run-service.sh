#!/bin/sh
# Builds the service-side libFuzzer targets (the parsers in front of the
# lab's HTTP API and the agent's settings) with clang and runs each for a
# bounded time over its corpus (tests/fuzz/corpus/<target>/):
#   params        query-parameter validation (src/http/params.c) with the lab's tables
#   artifact-name the artifact name gate and path resolution (src/artifact/store.c)
#   range         Range / If-Range of artifact downloads (src/lab/artifacts.c)
#   settings      the agent's settings from the environment (programs/agent/settings.c,
#                 src/lab/config.c, the inspector's address parser)
#   export-helper the remote side of `proflab export`: its stdin from an exec channel
#                 (src/export/helper.c)
#   http-request  whole requests through libmicrohttpd, the router, the guard and
#                 the lab's endpoints (lab on and lab off)
#   tests/fuzz/run-service.sh [SECONDS_PER_TARGET] [OUTDIR]
# FUZZ_SERVICE_TARGETS="params range" runs only those; FUZZ_RUNS=N stops
# each after N executions instead (then SECONDS is only an upper bound).
# Prints, per target, "fuzz: <target> <executions> execs in <s> s (<rate>/s)".
# Exit 0: no crash; 77: cannot build here (no clang/libFuzzer); else a crash
# (the reproducer is left in OUTDIR).
set -eu
secs=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${2:-$(mktemp -d "${TMPDIR:-/tmp}/proflab-fuzz-svc.XXXXXX")}
mkdir -p "$out"
command -v clang >/dev/null 2>&1 || { echo "fuzz: clang not installed" >&2; exit 77; }
command -v protoc-c >/dev/null 2>&1 || { echo "fuzz: protoc-c not installed" >&2; exit 77; }
cflags="-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
libcflags=$(echo "$cflags" | sed 's/fuzzer,/fuzzer-no-link,/')
incs="-I$root/src -I$root/include -I$root/programs/agent -I$out/gen -DPROFLAB_VERSION=\"fuzz\""

mkdir -p "$out/gen/format" "$out/obj"
protoc-c --proto_path="$root/proto" --c_out="$out/gen/format" "$root/proto/profile.proto"

# The library below the lab, compiled once into an archive (each target
# pulls what it uses). Not the heap tracker (src/heap/: it interposes malloc,
# which ASan owns) nor the pthread_create wrapper (see fuzz-cdp.c).
srcs=""
for d in common sample model symbol format metrics http artifact capture lab inspector export; do
  srcs="$srcs $(ls "$root"/src/$d/*.c)"
done
for s in "$root"/src/profile/*.c; do
  case $s in */thread_start.c) ;; *) srcs="$srcs $s" ;; esac
done
srcs="$srcs $out/gen/format/profile.pb-c.c $root/programs/agent/settings.c $here/fuzz-stubs.c"
# shellcheck disable=SC2086 # word splitting of the source list is meant
objs=$("$here/compile.sh" "$out/obj" "$out/build-lib.log" "$libcflags $incs" -- $srcs) || exit $?
rm -f "$out/libsvc.a"
# shellcheck disable=SC2086
ar rcs "$out/libsvc.a" $objs
libs="-luv -lmicrohttpd -lwslay -ljansson -lcrypto -ldw -lelf -lz -lzstd -lprotobuf-c -lpthread -ldl"

for t in ${FUZZ_SERVICE_TARGETS:-params artifact-name range settings export-helper http-request}; do
  # shellcheck disable=SC2086
  if ! clang $cflags $incs -o "$out/fuzz-$t" "$here/fuzz-$t.c" "$out/libsvc.a" $libs \
      2>"$out/build-$t.log"; then
    cat "$out/build-$t.log" >&2
    exit 1
  fi
  mkdir -p "$out/corpus-$t"
  cp "$here/corpus/$t"/* "$out/corpus-$t/"
  dict=""
  [ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
  runs=""
  [ -n "${FUZZ_RUNS:-}" ] && runs="-runs=$FUZZ_RUNS"
  echo "fuzz: $t for ${secs}s" >&2
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  (cd "$out" && ASAN_OPTIONS=detect_leaks=1 "./fuzz-$t" -max_total_time="$secs" $runs \
      -max_len=4096 -timeout=20 -rss_limit_mb=2048 $dict -print_final_stats=1 \
      "corpus-$t") >"$out/run-$t.log" 2>&1 || {
    tail -40 "$out/run-$t.log" >&2
    echo "fuzz: $t crashed; reproducer in $out" >&2
    exit 1
  }
  t1=$(date +%s.%N)
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/run-$t.log")
  grep -E "stat::number_of_executed_units" "$out/run-$t.log" >&2 || true
  awk -v t="$t" -v n="${n:-0}" -v a="$t0" -v b="$t1" \
    'BEGIN { s = b - a; printf "fuzz: %s %d execs in %.1f s (%.0f/s)\n", t, n, s, n / s }' >&2
done
