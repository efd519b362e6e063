#!/bin/sh
# Heap snapshot write speed: proflab vs Node's v8.writeHeapSnapshot(), same
# run, same machine, alternating.
#
# proflab: bench-heap-snapshot (snapshot-bench.c) keeps BLOCKS live blocks
# tracked with T = 1 and writes REPEAT .heapsnapshot files in one process,
# timing copy + symbolize + write each time (the first snapshot also reads
# the modules' symbols; later ones find them cached, as in a service that
# takes snapshot after snapshot). Node: a fresh `node` writes REPEAT
# snapshots of its own heap (about 4 MB for an empty script). BLOCKS'
# default makes proflab's file about as large as Node's.
#
# Per round it prints both sides' MB/s; at the end the medians and the
# ratios proflab / Node (first snapshot, and steady state = the median of
# the later ones).
#
#   bench/heap/run-snapshot.sh                   # 5 rounds
#   ROUNDS=9 BLOCKS=500000 bench/heap/run-snapshot.sh
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
ROUNDS=${ROUNDS:-5}
REPEAT=${REPEAT:-5}
BLOCKS=${BLOCKS:-110000}
BIN=$BUILD/bench/bench-heap-snapshot

command -v node >/dev/null 2>&1 || { echo "node not found (scripts/deps.sh test installs it)" >&2; exit 1; }
ninja -C "$BUILD" bench/bench-heap-snapshot >/dev/null || { echo "cannot build $BIN" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

node_run() {
  node -e '
    const v8 = require("v8"), fs = require("fs");
    const [dir, repeat] = [process.argv[1], Number(process.argv[2])];
    for (let i = 1; i <= repeat; i++) {
      const f = `${dir}/node-${i}.heapsnapshot`;
      const t = process.hrtime.bigint();
      v8.writeHeapSnapshot(f);
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      const b = fs.statSync(f).size;
      console.log(`run=${i} bytes=${b} total_ms=${ms.toFixed(1)} mb_per_s=${(b / 1e6 / (ms / 1e3)).toFixed(1)}`);
      fs.unlinkSync(f);
    }' "$TMP" "$REPEAT"
}
ours_run() {
  "$BIN" --blocks "$BLOCKS" --repeat "$REPEAT" --out "$TMP/ours.heapsnapshot"
}
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

echo "heap snapshot speed — $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs, node $(node --version), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  proflab: $BLOCKS live blocks (T = 1), $REPEAT snapshots per process; node: $REPEAT snapshots of an empty script's heap"
: >"$TMP/summary"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  if [ $((r % 2)) -eq 1 ]; then ours_run >"$TMP/o"; node_run >"$TMP/n"; else node_run >"$TMP/n"; ours_run >"$TMP/o"; fi
  of=$(head -n1 "$TMP/o" | field mb_per_s)
  os=$(tail -n +2 "$TMP/o" | field mb_per_s | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  nf=$(head -n1 "$TMP/n" | field mb_per_s)
  ns=$(tail -n +2 "$TMP/n" | field mb_per_s | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  ob=$(head -n1 "$TMP/o" | field bytes)
  nb=$(head -n1 "$TMP/n" | field bytes)
  printf '  round %d  proflab %s B: first %6.1f MB/s, then %6.1f   node %s B: first %6.1f MB/s, then %6.1f   load %s\n' \
    "$r" "$ob" "$of" "$os" "$nb" "$nf" "$ns" "$(cut -d' ' -f1 /proc/loadavg)"
  echo "$of $os $nf $ns" >>"$TMP/summary"
  r=$((r + 1))
done
awk '
  function med(col,   n, i, j, t, v) {
    n = 0
    for (i = 1; i <= NR; i++) v[++n] = row[i, col]
    for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  { for (c = 1; c <= 4; c++) row[NR, c] = $c; rf[NR] = $1 / $3; rs[NR] = $2 / $4 }
  END {
    printf "\nmedians: proflab first %.1f MB/s, steady %.1f MB/s; node first %.1f MB/s, steady %.1f MB/s\n", med(1), med(2), med(3), med(4)
    n = NR
    for (i = 2; i <= n; i++) { t = rf[i]; for (j = i - 1; j >= 1 && rf[j] > t; j--) rf[j + 1] = rf[j]; rf[j + 1] = t }
    for (i = 2; i <= n; i++) { t = rs[i]; for (j = i - 1; j >= 1 && rs[j] > t; j--) rs[j + 1] = rs[j]; rs[j + 1] = t }
    mf = (n % 2) ? rf[(n + 1) / 2] : (rf[n / 2] + rf[n / 2 + 1]) / 2
    ms = (n % 2) ? rs[(n + 1) / 2] : (rs[n / 2] + rs[n / 2 + 1]) / 2
    printf "ratio proflab / node (median of per-round ratios): first snapshot %.2fx (range %.2f-%.2f), steady %.2fx (range %.2f-%.2f); goal >= 10x\n", mf, rf[1], rf[n], ms, rs[1], rs[n]
  }' "$TMP/summary"
