// memlab (npm) on a .heapsnapshot, in Node: its own loading path,
// @memlab/heap-analysis getFullHeapFromFile() (parse, shortest paths,
// dominators and retained sizes), then a Summary by class like DevTools'
// and `proflab top`'s, through memlab's node API: per class (constructor
// name for objects and closures' "Function", "(type)" otherwise) count,
// shallow size and retained size, counting a node only when no node of its
// class dominates it. `node memlab-top.mjs FILE [N]` prints the top N rows.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { getFullHeapFromFile } = require('@memlab/heap-analysis');
const { config } = require('@memlab/core');

const file = process.argv[2];
const limit = Number(process.argv[3] || 20);
config.muteConsole = true; // memlab's progress lines: not part of the work

const t0 = performance.now();
const heap = await getFullHeapFromFile(file);
const t1 = performance.now();

const n = heap.nodes.length;
const cls = new Uint32Array(n), dom = new Int32Array(n);
const self = new Float64Array(n), ret = new Float64Array(n);
const names = [], byName = new Map();
heap.nodes.forEach((node) => {
  const t = node.type;
  const name = t === 'object' || t === 'native' ? node.name : t === 'closure' ? 'Function' : `(${t})`;
  let k = byName.get(name);
  if (k === undefined) byName.set(name, (k = names.push(name) - 1));
  const i = node.nodeIndex;
  cls[i] = k;
  self[i] = node.self_size;
  ret[i] = node.retainedSize;
  const d = node.dominatorNode;
  dom[i] = d && d.nodeIndex !== i ? d.nodeIndex : -1;
});
// the dominator tree's children, then a walk counting a class's retained
// size only at its outermost nodes
const first = new Uint32Array(n + 1), kid = new Uint32Array(n);
for (let v = 0; v < n; v++) if (dom[v] >= 0) first[dom[v] + 1]++;
for (let v = 0; v < n; v++) first[v + 1] += first[v];
const pos = first.slice(0, n);
for (let v = 0; v < n; v++) if (dom[v] >= 0) kid[pos[dom[v]]++] = v;
const rows = names.map((name) => ({ name, count: 0, self: 0, retained: 0 }));
const open = new Uint32Array(names.length);
const stack = [];
for (let v = 0; v < n; v++) if (dom[v] < 0) stack.push(v);
while (stack.length) {
  const v = stack.pop();
  if (v < 0) { open[cls[~v]]--; continue; }
  const r = rows[cls[v]];
  r.count++;
  r.self += self[v];
  if (!open[cls[v]]) {
    r.retained += ret[v];
    open[cls[v]]++;
    stack.push(~v);
  }
  for (let i = first[v]; i < first[v + 1]; i++) stack.push(kid[i]);
}
rows.sort((a, b) => b.retained - a.retained);
const t2 = performance.now();
process.stdout.write(`${n} nodes, ${rows.length} classes\n`);
for (const r of rows.slice(0, limit)) process.stdout.write(`${r.retained}\t${r.self}\t${r.count}\t${r.name}\n`);
process.stderr.write(`memlab phases: getFullHeapFromFile ${((t1 - t0) / 1000).toFixed(2)} s, summary ${((t2 - t1) / 1000).toFixed(2)} s\n`);
