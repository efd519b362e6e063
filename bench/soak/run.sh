#!/bin/sh
# The soak (issue 14, docs/reliability.md): wrk on the business endpoints and
# chaos on the lab for SECONDS against the AddressSanitizer build:
#   bench/soak/run.sh [SECONDS]      (make soak: SOAK_SECONDS, default 600)
# PROFLABD picks another binary. Prints SOAK_RESULT {...}; exit 0 when clean.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-${SOAK_SECONDS:-600}}
command -v wrk >/dev/null 2>&1 || { echo "soak: wrk not installed (scripts/deps.sh test)" >&2; exit 77; }
export PROFLABD="${PROFLABD:-$root/build-asan/proflabd}"
case $PROFLABD in *asan*) export PROFLAB_SANITIZED=1 ;; esac
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=16}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
exec node "$here/soak.mjs" "$secs"
