#!/usr/bin/env bash
# The per-pc CFA rules under the sampler's safety test (issue 12): the same
# program as tests/safety/run.sh (dlopen/dlclose of a real library at a high
# rate, malloc, fork, qsort through libc, short-lived threads, profiled at
# PL_CPU_MAX_HZ in cpu and wall mode) with PROFLAB_CPU_UNWIND_RULES=verify:
# every stack the rules produce is compared with libgcc's DWARF unwind.
# Passes when run.sh passes and, for every run, the sampler's counters
# (PROFLAB_CPU_UNWIND_STATS=1, one line at exit) show stacks found by rules,
# rules checked, and no rule that disagreed with DWARF (rules_mismatched=0)
# nor any the table gave that libgcc's next frame contradicted (disagreed=0).
# A rule of a library unloaded since (dlclose, then dlopen elsewhere or of
# another library at that address) would show as a mismatch.
#
# Usage: tests/safety/rules.sh [SECONDS=30]   (BUILD, MODES, RUNS as run.sh)
set -u
cd "$(dirname "$0")/../.." || exit 2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
PROFLAB_CPU_UNWIND_RULES=verify PROFLAB_CPU_UNWIND_STATS=1 tests/safety/run.sh "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || exit "$rc"
runs=$(grep -c '^safety: PASS' "$log")
lines=$(grep -c '^proflab-unwind-stats:' "$log")
failed=0
if [ "$lines" -ne "$runs" ]; then
  echo "safety-rules: FAIL: $runs runs passed but $lines printed the sampler's counters"
  failed=1
fi
while read -r line; do
  get() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
  rules=$(get rules) checked=$(get rules_checked) mism=$(get rules_mismatched) dis=$(get disagreed)
  echo "safety-rules: stacks by rules $rules, checked against DWARF $checked, mismatched $mism, rules contradicted by libgcc $dis"
  if [ "${rules:-0}" -eq 0 ] || [ "${checked:-0}" -eq 0 ] || [ "${mism:-1}" -ne 0 ] || [ "${dis:-1}" -ne 0 ]; then
    echo "safety-rules: FAIL: $line"
    failed=1
  fi
done < <(grep '^proflab-unwind-stats:' "$log")
[ "$failed" -eq 0 ] && echo "safety-rules: ok"
exit "$failed"
