// Writes a synthetic V8 .cpuprofile (the format `node --cpu-prof` writes,
// compact JSON in V8's field order): `node gen-cpuprofile.mjs OUT [SCALE]`.
// A real `node --cpu-prof` run would need many minutes of deep, varied
// stacks to reach 200 MB, so the call tree is generated: 6,000 functions in
// 300 scripts, a tree grown by random descent to depth 60 (a million
// call-tree nodes, as a large service's long profile has), and 5.2 million
// samples at 100 µs along a walk over the tree (see below). SCALE 1 writes
// about 220 MB.
import fs from 'node:fs';

const out = process.argv[2];
const scale = Number(process.argv[3] || 1);
if (!out) throw new Error('usage: gen-cpuprofile.mjs OUT [SCALE]');

let seed = 4242;
const rnd = (n) => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed % n;
};

const NFUNC = 6000, NSCRIPT = 300;
const verbs = ['handle', 'parse', 'render', 'load', 'compute', 'resolve', 'encode', 'decode', 'visit', 'flush'];
const nouns = ['Request', 'Order', 'Token', 'Buffer', 'Node', 'Query', 'Frame', 'Session', 'Record', 'Stream'];
const funcs = [];
for (let i = 0; i < NFUNC; i++) {
  const s = rnd(NSCRIPT);
  funcs.push({
    functionName: i % 17 === 0 ? '' : `${verbs[i % 10]}${nouns[(i / 10 | 0) % 10]}${i}`,
    scriptId: String(s + 10),
    url: `file:///srv/app/src/${['lib', 'routes', 'models', 'util'][s % 4]}/module${s}.js`,
    lineNumber: rnd(2000),
    columnNumber: rnd(80),
  });
}

const NNODES = Math.round(1_000_000 * scale), NSAMPLES = Math.round(5_200_000 * scale);
// the tree: parent and function per node; node 0 is (root), 1 (program), 2 (idle), 3 (garbage collector)
const parent = new Int32Array(NNODES), fn = new Int32Array(NNODES), depth = new Uint8Array(NNODES);
const kids = [[1, 2, 3], [], [], []];
parent.fill(-1);
for (let i = 1; i < 4; i++) parent[i] = 0, fn[i] = -1 - i;
fn[0] = -1;
let count = 4;
while (count < NNODES) {
  // descend from the root along random children, then add a new child
  let v = 0;
  for (;;) {
    const ks = kids[v];
    const stop = depth[v] >= 59 || ks.length === 0 || rnd(ks.length + 2) === 0;
    if (stop) break;
    const k = ks[rnd(ks.length)];
    if (k < 4) break;
    v = k;
  }
  const c = count++;
  parent[c] = v;
  fn[c] = rnd(4) === 0 && v > 3 ? (fn[v] + 1 + rnd(30)) % NFUNC : rnd(NFUNC); // related code calls nearby code
  depth[c] = depth[v] + 1;
  kids[v].push(c);
  kids.push([]);
}
// samples: a walk over the tree, as a program's time moves (a sample is
// mostly in the same stack as the one before, or one call deeper or
// shallower; now and then somewhere else, often a hot path; idle and GC runs)
const hits = new Uint32Array(NNODES), samples = new Uint32Array(NSAMPLES);
const hot = Array.from({ length: 200 }, () => 4 + rnd(NNODES - 4));
let cur = 4;
for (let i = 0; i < NSAMPLES; i++) {
  const r = rnd(1000);
  if (r < 550) {
    /* the same stack */
  } else if (r < 700) {
    const ks = kids[cur];
    if (ks.length) cur = ks[rnd(ks.length)];
  } else if (r < 850) {
    if (parent[cur] > 3) cur = parent[cur];
  } else if (r < 880) {
    cur = 2 + rnd(2); // idle or GC
  } else if (r < 960) {
    cur = hot[rnd(hot.length)];
  } else {
    cur = 4 + rnd(NNODES - 4);
  }
  samples[i] = cur;
  hits[cur]++;
}

const fd = fs.openSync(`${out}.partial`, 'w');
let buf = '';
const put = (s) => {
  buf += s;
  if (buf.length > 1 << 20) fs.writeSync(fd, buf), (buf = '');
};
const special = { '-1': '(root)', '-2': '(program)', '-3': '(idle)', '-4': '(garbage collector)' };
put('{"nodes":[');
for (let v = 0; v < NNODES; v++) {
  const f = fn[v] < 0 ? { functionName: special[fn[v]], scriptId: '0', url: '', lineNumber: -1, columnNumber: -1 } : funcs[fn[v]];
  put(`${v ? ',' : ''}{"id":${v + 1},"callFrame":{"functionName":${JSON.stringify(f.functionName)},"scriptId":"${f.scriptId}",` +
    `"url":${JSON.stringify(f.url)},"lineNumber":${f.lineNumber},"columnNumber":${f.columnNumber}},"hitCount":${hits[v]}`);
  if (kids[v].length) put(`,"children":[${kids[v].map((k) => k + 1).join(',')}]`);
  put('}');
}
const start = 1_700_000_000_000;
put(`],"startTime":${start},"endTime":${start + NSAMPLES * 100},"samples":[`);
for (let i = 0; i < NSAMPLES; i++) put(`${i ? ',' : ''}${samples[i] + 1}`);
put('],"timeDeltas":[');
for (let i = 0; i < NSAMPLES; i++) put(`${i ? ',' : ''}${90 + rnd(21)}`);
put(']}');
fs.writeSync(fd, buf);
fs.closeSync(fd);
fs.renameSync(`${out}.partial`, out);
process.stdout.write(`${out}: ${(fs.statSync(out).size / 1e6).toFixed(1)} MB\n`);
