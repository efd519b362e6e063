#!/bin/sh
# Builds the export parsers' libFuzzer targets with clang and runs each for a
# bounded time:  tests/fuzz/run.sh [SECONDS_PER_TARGET] [OUTDIR]
# Exit 0: no crash; 77: cannot build here (no clang/libFuzzer); else a crash
# (the reproducer is left in OUTDIR).
set -eu
secs=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${2:-$(mktemp -d "${TMPDIR:-/tmp}/proflab-fuzz.XXXXXX")}
mkdir -p "$out"
command -v clang >/dev/null 2>&1 || { echo "fuzz: clang not installed" >&2; exit 77; }
cflags="-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
for t in frame state; do
  if ! clang $cflags -I"$root/src" -I"$root/include" -o "$out/fuzz-$t" "$here/fuzz-$t.c" \
      "$root/src/export/frame.c" "$root/src/export/state.c" -lz -lzstd 2>"$out/build-$t.log"; then
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
  (cd "$out" && ASAN_OPTIONS=detect_leaks=1 "./fuzz-$t" -max_total_time="$secs" -max_len=8192 \
      -print_final_stats=1 "corpus-$t") >"$out/run-$t.log" 2>&1 || {
    tail -40 "$out/run-$t.log" >&2
    echo "fuzz: $t crashed; reproducer in $out" >&2
    exit 1
  }
  grep -E "stat::number_of_executed_units" "$out/run-$t.log" >&2 || true
done
