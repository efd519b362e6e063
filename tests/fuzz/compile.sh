#!/bin/sh
# Compiles C sources to objects for the fuzz scripts, as many at once as
# there are CPUs, skipping objects newer than their source:
#   tests/fuzz/compile.sh OBJDIR LOG CFLAGS -- SOURCE...
# CFLAGS is one word list (quoted by the caller). Prints the objects, one
# per line, in the order of the sources. Exit 0; 77 when clang cannot build
# libFuzzer objects here; 1 on a compile error (LOG holds clang's output).
set -eu
objdir=$1 log=$2 cflags=$3
shift 3
[ "$1" = "--" ] && shift
mkdir -p "$objdir"
: >"$log"
obj() { echo "$objdir/$(echo "$1" | tr / _).o"; }
todo=""
for s in "$@"; do
  o=$(obj "$s")
  [ -f "$o" ] && [ "$o" -nt "$s" ] || todo="$todo $s"
done
if [ -n "$todo" ]; then
  jobs=$(nproc 2>/dev/null || echo 2)
  # shellcheck disable=SC2086 # word splitting of the lists is meant
  if ! printf '%s\n' $todo | xargs -P "$jobs" -I{} sh -c \
      'o="$1/$(echo "$2" | tr / _).o"; clang $3 -c -o "$o.tmp" "$2" 2>>"$4" && mv "$o.tmp" "$o"' \
      sh "$objdir" {} "$cflags" "$log"; then
    if grep -q "fuzzer" "$log"; then
      echo "fuzz: clang cannot build libFuzzer targets here:" >&2
      tail -3 "$log" >&2
      exit 77
    fi
    cat "$log" >&2
    exit 1
  fi
fi
for s in "$@"; do obj "$s"; done
