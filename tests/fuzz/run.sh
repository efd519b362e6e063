#!/bin/sh
# Builds the libFuzzer targets (the export parsers; the inspector's HTTP head
# parser, WebSocket layer and CDP dispatch) with clang and runs each for a bounded time:
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [OUTDIR]
# FUZZ_TARGETS="http-head ws-frames" runs only those; FUZZ_RUNS=N stops each
# after N executions instead (then SECONDS is only an upper bound). Exit 0: no crash; 77:
# cannot build here (no clang/libFuzzer); else a crash (the reproducer is
# left in OUTDIR).
set -eu
secs=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${2:-$(mktemp -d "${TMPDIR:-/tmp}/proflab-fuzz.XXXXXX")}
mkdir -p "$out"
command -v clang >/dev/null 2>&1 || { echo "fuzz: clang not installed" >&2; exit 77; }
cflags="-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
# What each target links besides tests/fuzz/fuzz-<target>.c.
sources() {
  case $1 in
    frame|state) echo "$root/src/export/frame.c $root/src/export/state.c" ;;
    http-head) echo "$root/src/http/head.c $root/src/http/framing.c" ;;
    ws-frames) echo "$root/src/inspector/websocket.c" ;;
    cdp)
      # the protocol side and everything below it that a capture reaches
      # (not profile/thread_start.c: see fuzz-cdp.c)
      for d in common sample model symbol format capture; do echo "$root"/src/$d/*.c; done
      echo "$root/src/profile/cpu_profiler.c $root/src/profile/threads.c"
      echo "$root/src/artifact/store.c $out/format/profile.pb-c.c"
      echo "$root/src/inspector/cdp.c $root/src/inspector/cdp_heap.c"
      echo "$root/src/inspector/cdp_profiler.c $root/src/inspector/cdp_runtime.c"
      echo "$root/src/inspector/protocol.c" ;;
  esac
}
libs() {
  case $1 in
    frame|state) echo "-lz -lzstd" ;;
    ws-frames) echo "-lwslay" ;;
    cdp) echo "-ldw -lelf -luv -lcrypto -lz -lprotobuf-c -ljansson -lpthread -ldl" ;;
  esac
}
# The pprof schema, compiled as the build does (src/format/meson.build).
if command -v protoc-c >/dev/null 2>&1; then
  mkdir -p "$out/format"
  protoc-c --proto_path="$root/proto" --c_out="$out/format" "$root/proto/profile.proto"
fi
for t in ${FUZZ_TARGETS:-frame state http-head ws-frames cdp}; do
  # shellcheck disable=SC2046 # word splitting of the lists is meant
  dict=""
  [ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
  if ! clang $cflags -I"$root/src" -I"$root/include" -I"$out" -DPROFLAB_VERSION='"fuzz"' -o "$out/fuzz-$t" "$here/fuzz-$t.c" \
      $(sources "$t") $(libs "$t") 2>"$out/build-$t.log"; then
    if grep -q "fuzzer" "$out/build-$t.log"; then
      echo "fuzz: clang cannot build libFuzzer targets here:" >&2
      tail -3 "$out/build-$t.log" >&2
      exit 77
    fi
    cat "$out/build-$t.log" >&2
    exit 1
  fi
  mkdir -p "$out/corpus-$t"
  cp "$here/corpus/$t"/* "$out/corpus-$t/"
  echo "fuzz: $t for ${secs}s" >&2
  runs=""
  [ -n "${FUZZ_RUNS:-}" ] && runs="-runs=$FUZZ_RUNS"
  (cd "$out" && ASAN_OPTIONS=detect_leaks=1 "./fuzz-$t" -max_total_time="$secs" $runs -max_len=8192 $dict \
      -print_final_stats=1 "corpus-$t") >"$out/run-$t.log" 2>&1 || {
    tail -40 "$out/run-$t.log" >&2
    echo "fuzz: $t crashed; reproducer in $out" >&2
    exit 1
  }
  grep -E "stat::number_of_executed_units" "$out/run-$t.log" >&2 || true
done
# The profile readers' targets: tests/fuzz/run-readers.sh (make test runs them
# from tests/integration/cli-top-fuzz.test.mjs); FUZZ_READERS=1 adds them here.
if [ "${FUZZ_READERS:-0}" = 1 ]; then "$here/run-readers.sh" "$secs" "$out/readers"; fi
