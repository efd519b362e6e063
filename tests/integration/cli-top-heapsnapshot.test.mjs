// proflab top on heap snapshots, Node's and proflab's: every Summary group
// (count, shallow size, retained size) equals what DevTools' own
// heap-snapshot code (npm chrome-devtools-frontend, run in Node by
// devtools-heap-summary.mjs) computes on the same file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { labEnv, request, scratch, GOOD_TOKEN, REPO_ROOT } from './helpers.mjs';
import { devtoolsModules, devtoolsSummary } from './devtools-heap-summary.mjs';

const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
const NO_DEVTOOLS = devtoolsModules() ? false
  : 'chrome-devtools-frontend and esbuild not installed (npm install them into tests/ or set PROFLAB_DEVTOOLS_NODE_MODULES)';
const sc = scratch();
let dir;
let nodeSnap;

before(() => {
  dir = sc.tmpDir('top-hs');
  nodeSnap = path.join(dir, 'leaky.heapsnapshot');
  // 20 Leaky objects, each holding 50 arrays of 1000 small integers (~8 KB each)
  const script = `
    class Leaky { constructor(i) { this.arrays = []; for (let k = 0; k < 50; k++) this.arrays.push(new Array(1000).fill(i + k)); } }
    globalThis.leaks = []; for (let i = 0; i < 20; i++) leaks.push(new Leaky(i));
    require('v8').writeHeapSnapshot(${JSON.stringify(nodeSnap)});`;
  execFileSync(process.execPath, ['-e', script], { stdio: 'pipe' });
});
after(() => sc.cleanup());

function topJson(file, ...args) {
  const r = spawnSync(CLI, ['top', file, '--json', '--limit', '0', ...args], { maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, r.stderr.toString());
  return JSON.parse(r.stdout.toString());
}

/** Every group of DevTools' Summary and of ours, by name (names may repeat: one per constructor location). */
function assertSameSummary(ours, dt) {
  const key = (r) => `${r.name}\u0000${r.count}\u0000${r.self}\u0000${r.retained}`;
  const a = ours.classes.map((r) => key({ name: r.name, count: r.count, self: r.shallow_bytes, retained: r.retained_bytes })).sort();
  const b = dt.rows.map(key).sort();
  const missing = b.filter((k) => !a.includes(k)), extra = a.filter((k) => !b.includes(k));
  assert.deepEqual({ missing: missing.slice(0, 10), extra: extra.slice(0, 10) }, { missing: [], extra: [] },
    `groups differ (DevTools ${b.length}, proflab ${a.length})`);
  assert.equal(ours.total_bytes, dt.total);
}

test('top on a Node snapshot: Leaky retains its arrays, every group equals DevTools\' Summary', { skip: NO_DEVTOOLS }, async () => {
  const ours = topJson(nodeSnap);
  assert.equal(ours.format, 'heapsnapshot');
  assert.equal(ours.by, 'retained');
  const leaky = ours.classes.find((r) => r.name === 'Leaky');
  assert.equal(leaky.count, 20);
  assert.ok(leaky.retained_bytes > 20 * 50 * 1000 * 4, `Leaky retains ${leaky.retained_bytes}`);
  for (let i = 1; i < ours.classes.length; i++)
    assert.ok(ours.classes[i - 1].retained_bytes >= ours.classes[i].retained_bytes, 'sorted by retained size');
  const dt = await devtoolsSummary(nodeSnap);
  assertSameSummary(ours, dt);
});

test('top on proflab\'s own snapshot after memory-leak?mb=20: every group equals DevTools\' Summary', { skip: NO_DEVTOOLS }, async () => {
  const adir = sc.tmpDir('top-hs-lab');
  const srv = await sc.start(labEnv({ LAB_ARTIFACT_DIR: adir }));
  const post = (p) => request(srv.base, p, { method: 'POST', token: GOOD_TOKEN });
  assert.equal((await post('/api/lab/memory-leak?mb=20')).status, 200);
  const r = await post('/api/lab/heap-snapshot');
  assert.equal(r.status, 200, r.text);
  const ours = topJson(r.body.path);
  const leak = ours.classes.find((c) => c.name === 'lab_memory_leak_allocate');
  assert.ok(leak, `the leak's group: ${ours.classes.map((c) => c.name).join(', ')}`);
  assert.ok(leak.shallow_bytes > 15 * 1048576, `leak group ${leak.shallow_bytes} bytes`);
  assert.equal(ours.classes[0].name, 'lab_memory_leak_allocate');
  const dt = await devtoolsSummary(r.body.path);
  assertSameSummary(ours, dt);
});

test('top on a snapshot: text output, --by self, --limit; convert refuses snapshots', () => {
  const r = spawnSync(CLI, ['top', nodeSnap, '--limit', '3']);
  assert.equal(r.status, 0, r.stderr.toString());
  const lines = r.stdout.toString().trim().split('\n');
  assert.match(lines[0], /heapsnapshot, \d+ objects, [\d.]+ MiB/);
  assert.match(lines[1], /retained +ret% +shallow +shal% +count +class/);
  assert.equal(lines.length, 2 + 3 + 1);
  assert.match(lines[5], /more classes; --limit 0 shows all/);
  const bySelf = topJson(nodeSnap, '--by', 'self');
  assert.equal(bySelf.by, 'shallow');
  for (let i = 1; i < bySelf.classes.length; i++)
    assert.ok(bySelf.classes[i - 1].shallow_bytes >= bySelf.classes[i].shallow_bytes);
  const f = spawnSync(CLI, ['convert', nodeSnap, '-o', path.join(dir, 'x.pb.gz')]);
  assert.equal(f.status, 1);
  assert.match(f.stderr.toString(), /heap snapshots: not supported by proflab convert/);
});

test('top on a broken snapshot names the offset', () => {
  const text = fs.readFileSync(nodeSnap, 'utf8');
  const bad = path.join(dir, 'bad.heapsnapshot');
  fs.writeFileSync(bad, text.replace('"edge_count":', '"edge_count":1+'));
  let r = spawnSync(CLI, ['top', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr.toString(), /offset \d+/);
  fs.writeFileSync(bad, text.slice(0, text.length >> 1));
  r = spawnSync(CLI, ['top', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr.toString(), /offset \d+: .*(truncated|end of the file)/);
});
