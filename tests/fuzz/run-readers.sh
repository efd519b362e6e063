#!/bin/sh
# Builds the profile readers' libFuzzer targets (tests/fuzz/fuzz-read-*.c:
# the JSON tokenizer, .cpuprofile, .heapprofile, .heapsnapshot (with the
# dominators), folded, pprof, the
# detection in front of them, and the leak analysis with the times in
# snapshot file names: leaksname) with clang and runs each for a bounded time
# over its corpus (tests/fuzz/corpus/read-<target>/):
#   tests/fuzz/run-readers.sh [SECONDS_PER_TARGET] [OUTDIR]
# FUZZ_READ_TARGETS="json pprof" runs only those; FUZZ_RUNS=N stops each
# after N executions instead (SECONDS then only an upper bound). Each target also checks
# that every writer accepts what a reader built (fuzz-read-check.h).
# Exit 0: no crash; 77: cannot build here (no clang/libFuzzer/protoc-c);
# else a crash (the reproducer is left in OUTDIR). tests/fuzz/run.sh calls it.
set -eu
secs=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${2:-$(mktemp -d "${TMPDIR:-/tmp}/proflab-fuzz-read.XXXXXX")}
mkdir -p "$out"
command -v clang >/dev/null 2>&1 || { echo "fuzz: clang not installed" >&2; exit 77; }
command -v protoc-c >/dev/null 2>&1 || { echo "fuzz: protoc-c not installed" >&2; exit 77; }
cflags="-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"

# The generated pprof code, where the sources include it from (format/profile.pb-c.h).
mkdir -p "$out/gen/format"
protoc-c --proto_path="$root/proto" --c_out="$out/gen/format" "$root/proto/profile.proto"

# Readers, writers (the targets check that they accept every model read),
# the models and the aggregation of `proflab top`: compiled once, linked
# into each target.
srcs="$root/src/format/*.c $out/gen/format/profile.pb-c.c $root/src/model/*.c \
  $root/src/common/buf.c $root/src/common/arena.c $root/src/common/sink.c \
  $root/src/common/util.c $root/src/common/radix_sort.c $root/src/analysis/top.c \
  $root/src/analysis/dominators.c $root/src/analysis/leaks.c"
# The writers, the buffers under them and the aggregation are checked
# (sanitizers, the model contract) but give the fuzzer no coverage to steer
# by: it mutates readers' input, and feedback from writing every model out
# (two thirds of read-folded's time was their comparison hooks) only slows
# it down.
cat >"$out/writers-no-coverage.txt" <<EOF
src:*/src/format/calltree.c
src:*/src/format/cpuprofile.c
src:*/src/format/folded.c
src:*/src/format/heapprofile.c
src:*/src/format/heapsnapshot.c
src:*/src/format/pprof_common.c
src:*/src/format/pprof_cpu.c
src:*/src/format/pprof_heap.c
src:*/src/common/buf.c
src:*/src/common/sink.c
src:*/src/analysis/top.c
EOF
# shellcheck disable=SC2086 # word splitting of the lists is meant
objs=$("$here/compile.sh" "$out/obj-read" "$out/build-read-lib.log" \
  "$(echo "$cflags" | sed 's/fuzzer,/fuzzer-no-link,/') -fsanitize-coverage-ignorelist=$out/writers-no-coverage.txt -I$root/src -I$root/include -I$out/gen" \
  -- $srcs) || exit $?

for t in ${FUZZ_READ_TARGETS:-json cpuprofile heapprofile heapsnapshot folded pprof profile leaksname}; do
  # shellcheck disable=SC2086 # word splitting of the object list is meant
  if ! clang $cflags -I"$root/src" -I"$root/include" -I"$out/gen" -o "$out/fuzz-read-$t" \
      "$here/fuzz-read-$t.c" $objs -lprotobuf-c -lz -lcrypto 2>"$out/build-read-$t.log"; then
    cat "$out/build-read-$t.log" >&2
    exit 1
  fi
  mkdir -p "$out/corpus-read-$t"
  cp "$here/corpus/read-$t"/* "$out/corpus-read-$t/"
  dict=""
  case $t in json|cpuprofile|heapprofile|heapsnapshot|profile) dict="-dict=$here/read-json.dict" ;; esac
  echo "fuzz: read-$t for ${secs}s" >&2
  runs=""
  [ -n "${FUZZ_RUNS:-}" ] && runs="-runs=$FUZZ_RUNS"
  # shellcheck disable=SC2086
  (cd "$out" && ASAN_OPTIONS=detect_leaks=1 "./fuzz-read-$t" -max_total_time="$secs" $runs \
      -max_len=16384 -timeout=10 -rss_limit_mb=2048 $dict -print_final_stats=1 \
      "corpus-read-$t") >"$out/run-read-$t.log" 2>&1 || {
    tail -40 "$out/run-read-$t.log" >&2
    echo "fuzz: read-$t crashed; reproducer in $out" >&2
    exit 1
  }
  grep -E "stat::number_of_executed_units" "$out/run-read-$t.log" >&2 || true
done
