// Builds a Node heap of a realistic shape and writes it with
// v8.writeHeapSnapshot(): `node --max-old-space-size=8192 gen-heap.mjs OUT
// [SCALE]`. Many classes (200 generated constructors, with a location each),
// unique and shared strings, arrays, closures, Maps and Sets, nested plain
// objects of a few shapes (DevTools names those "{a, b, c}"), a tree, a
// cache that holds most of it (one big retainer, as in a leak) and churn
// left to the GC. SCALE 1 writes about 330 MB.
import v8 from 'node:v8';
import fs from 'node:fs';

const out = process.argv[2];
const scale = Number(process.argv[3] || 1);
if (!out) throw new Error('usage: gen-heap.mjs OUT [SCALE]');

// a deterministic generator: the same heap every run
let seed = 12345;
const rnd = (n) => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed % n;
};

// 200 classes, each with its own constructor (new Function gives each its name)
const classes = [];
for (let i = 0; i < 200; i++) {
  const name = `Entity${i.toString(36)}${['Service', 'Record', 'Handler', 'View', 'Cache'][i % 5]}`;
  // eslint-disable-next-line no-new-func
  const C = new Function(`return class ${name} {
    constructor(id, label, parent) {
      this.id = id;
      this.label = label;
      this.parent = parent;
      this.tags = [];
      this.meta = { created: id * 7, kind: ${i}, flags: id & 15 };
    }
    describe() { return this.label + '#' + this.id; }
  }`)();
  classes.push(C);
}

const shapes = [
  (i) => ({ user: `u${i}`, email: `user${i}@example.com`, age: i % 90 }),
  (i) => ({ x: i, y: i * 2, z: i * 3, w: `w${i % 1000}` }),
  (i) => ({ method: 'GET', path: `/api/items/${i}`, status: 200 + (i % 5), ms: i % 300 }),
  (i) => ({ key: `k${i}`, value: { nested: { deep: `d${i % 5000}`, n: i } } }),
];

const root = { byClass: new Map(), index: new Map(), lists: [], closures: [], sets: [], tree: null };
globalThis.__benchHeap = root;

const N = Math.round(410_000 * scale);
for (let i = 0; i < N; i++) {
  const C = classes[rnd(classes.length)];
  const label = `item-${i}-${(i * 2654435761 >>> 0).toString(16)}`; // a unique string
  const parent = i > 0 && rnd(4) === 0 ? root.index.get(rnd(i)) : null;
  const o = new C(i, label, parent);
  o.tags.push(`tag${rnd(500)}`, `tag${rnd(500)}`); // strings from a small set
  if (rnd(3) === 0) o.record = shapes[rnd(shapes.length)](i);
  if (rnd(5) === 0) {
    const captured = { hits: i, last: label };
    o.onEvent = (e) => captured.hits + e; // a closure and its context
  }
  let list = root.byClass.get(C.name);
  if (!list) root.byClass.set(C.name, (list = []));
  list.push(o);
  root.index.set(i, o);
  if (rnd(50) === 0) root.lists.push(new Array(20 + rnd(200)).fill(i));
  if (rnd(40) === 0) root.sets.push(new Set([label, `s${i}`, i]));
  if (rnd(30) === 0) root.closures.push(() => o.describe());
  // churn: garbage the GC should not leave in the snapshot
  if (rnd(2) === 0) JSON.stringify({ i, label });
}

// a binary tree of plain objects (a deep dominator chain)
function tree(d) {
  return d === 0 ? { leaf: rnd(1000) } : { left: tree(d - 1), right: tree(d - 1), depth: d };
}
root.tree = tree(Math.max(10, Math.round(16 + Math.log2(scale))));

fs.mkdirSync(new URL('.', `file://${out}`).pathname, { recursive: true });
const tmp = `${out}.partial`;
v8.writeHeapSnapshot(tmp);
fs.renameSync(tmp, out);
process.stdout.write(`${out}: ${(fs.statSync(out).size / 1e6).toFixed(1)} MB\n`);
