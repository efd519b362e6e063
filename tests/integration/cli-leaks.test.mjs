// proflab leaks: on Node's own heap snapshots (a script with one steady
// leak of a named class among objects that come and go, snapshots written
// by v8.writeHeapSnapshot() under Node's default names), on a real proflabd
// leaking during `wrk` load at the default 512 KiB sampling (--url), and on
// bad input (too few files, a CPU profile, a garbled file, bad options).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { startProflabd, stopChecked, labEnv, GOOD_TOKEN, REPO_ROOT, SANITIZED, slow, sleep } from './helpers.mjs';

const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
const dirs = [];
function tmpDir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `pl-leaks-${tag}-`));
  dirs.push(d);
  return d;
}
after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

function run(args, opts = {}) {
  return spawnSync(CLI, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
}

// A service-like Node script: LeakyThing objects kept forever (LEAK_PER per
// step, ~0.4 KiB each), ChurnThing objects held in a cache whose size goes
// up and down, short-lived garbage; SNAPS snapshots under Node's default
// names, a little over a second apart (the names have whole seconds).
const LEAK_PER = 2000;
const SNAPS = 5;
const NODE_APP = `
const v8 = require('v8');
process.chdir(process.argv[1]);
class LeakyThing {
  constructor(i) {
    this.a0 = i; this.a1 = i; this.a2 = i; this.a3 = i; this.a4 = i; this.a5 = i; this.a6 = i;
    this.a7 = i; this.a8 = i; this.a9 = i; this.b0 = i; this.b1 = i; this.b2 = i; this.b3 = i;
    this.b4 = i; this.b5 = i; this.b6 = i; this.b7 = i; this.b8 = i; this.b9 = i; this.c0 = i;
    this.c1 = i; this.c2 = i; this.c3 = i; this.c4 = i; this.c5 = i; this.c6 = i; this.c7 = i;
    this.c8 = i; this.c9 = i; this.d0 = i; this.d1 = i; this.d2 = i; this.d3 = i; this.d4 = i;
    this.d5 = i; this.d6 = i; this.d7 = i; this.d8 = i; this.d9 = i; this.e0 = i; this.e1 = i;
    this.e2 = i; this.e3 = i; this.e4 = i; this.e5 = i; this.e6 = i; this.e7 = i; this.e8 = i;
  }
}
class ChurnThing {
  constructor(i) { this.id = i; this.payload = new Array(64).fill(i); }
}
const leaked = [];
let cache = new Map();
const cacheSizes = [9000, 2000, 12000, 1000, 7000, 3000, 10000];
let n = 0;
function step(k) {
  for (let i = 0; i < ${LEAK_PER}; i++) leaked.push(new LeakyThing(n++));
  cache = new Map();
  for (let i = 0; i < cacheSizes[k % cacheSizes.length]; i++) cache.set(i, new ChurnThing(n++));
  let garbage = [];
  for (let i = 0; i < 50000; i++) garbage.push({ x: i, s: 'g' + i });
  garbage = null;
}
(async () => {
  for (let k = 0; k < ${SNAPS}; k++) {
    step(k);
    const t0 = Date.now();
    console.log(v8.writeHeapSnapshot());
    const wait = 1100 - (Date.now() - t0);
    if (k + 1 < ${SNAPS}) await new Promise((r) => setTimeout(r, Math.max(wait, 0) + 50));
  }
})();
`;

let nodeFiles;
before(() => {
  const d = tmpDir('node');
  const out = execFileSync(process.execPath, ['-e', NODE_APP, d], { encoding: 'utf8', timeout: 120000 });
  nodeFiles = out.trim().split('\n').map((f) => path.join(d, f));
  assert.equal(nodeFiles.length, SNAPS);
  for (const f of nodeFiles) assert.match(path.basename(f), /^Heap\.\d{8}\.\d{6}\.\d+\.\d+\.\d+\.heapsnapshot$/);
});

test('Node snapshots: the leaking class ranks first as a likely leak, churn is not called a leak', () => {
  // given in reverse order: sorted by the times in their names
  const r = run(['leaks', '--json', '--limit', '0', ...[...nodeFiles].reverse()]);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.match(j.times, /Node's file names/);
  assert.deepEqual(j.snapshots.map((s) => s.file), nodeFiles);
  const top = j.sites[0];
  assert.equal(top.name, 'LeakyThing', JSON.stringify(j.sites.slice(0, 5), null, 1));
  assert.equal(top.verdict, 'likely leak');
  assert.equal(top.never_shrinks, true);
  assert.equal(top.freed_objects, 0);
  assert.equal(top.grew_intervals, SNAPS - 1);
  // LEAK_PER objects a step, each at least 7 * 8 bytes (V8 may keep some
  // fields out of object): the growth is the objects' shallow sizes
  for (let k = 0; k < SNAPS; k++) assert.equal(top.counts[k], LEAK_PER * (k + 1));
  const per = top.bytes[0] / top.counts[0];
  assert.ok(per >= 56, `bytes per LeakyThing ${per}`);
  for (let k = 0; k < SNAPS; k++) assert.equal(top.bytes[k], per * LEAK_PER * (k + 1));
  const span = (j.snapshots[SNAPS - 1].time_s - j.snapshots[0].time_s) / 60;
  const expected = (top.bytes[SNAPS - 1] - top.bytes[0]) / span;
  assert.ok(Math.abs(top.leak_rate_bytes_per_min - expected) <= 0.35 * expected,
    `rate ${top.leak_rate_bytes_per_min} vs ${expected}`);
  assert.match(top.summary, /^grows .*\/min across 5 snapshots, never shrinks: likely leak$/);

  const churn = j.sites.find((s) => s.name === 'ChurnThing');
  assert.ok(churn, 'ChurnThing listed');
  assert.equal(churn.verdict, 'churn');
  for (const s of j.sites) {
    if (s.verdict !== 'likely leak' && s.verdict !== 'possible leak') continue;
    assert.ok(!/ChurnThing|^\{x, s\}$/.test(s.name), `${s.name} called a leak`);
  }

  const t = run(['leaks', ...nodeFiles]);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /^5 snapshots over [\d.]+ s \(times from Node's file names/);
  assert.match(t.stdout, /\n {3}1 {2}likely leak .* LeakyThing\n {6}grows .*: likely leak\n/);
  assert.match(t.stdout, /not leaks[^\n]*\n(.*\n)*.*churn .*ChurnThing/);

  // --fail-on-leak: 3 when a likely leak is found
  assert.equal(run(['leaks', '--fail-on-leak', ...nodeFiles]).status, 3);
  // --interval keeps the given order; a huge --min-growth finds nothing
  const iv = JSON.parse(run(['leaks', '--json', '--interval', '2s', ...nodeFiles]).stdout);
  assert.match(iv.times, /--interval 2 s/);
  assert.equal(iv.snapshots[4].time_s, 8);
  const none = run(['leaks', '--min-growth', '1G', '--fail-on-leak', ...nodeFiles]);
  assert.equal(none.status, 0, none.stderr);
});

test('bad input: too few files, a CPU profile, a garbled file, bad options', () => {
  const d = tmpDir('bad');
  let r = run(['leaks', nodeFiles[0], nodeFiles[1]]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^proflab leaks: 2 snapshot files given: at least 3 are needed/);
  r = run(['leaks']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /three or more snapshot files, or --url/);

  const cpu = path.join(d, 'x.cpuprofile');
  fs.writeFileSync(cpu, JSON.stringify({ nodes: [{ id: 1, callFrame: { functionName: '(root)', scriptId: '0', url: '', lineNumber: -1, columnNumber: -1 }, hitCount: 1 }], startTime: 0, endTime: 1000, samples: [1], timeDeltas: [1000] }));
  r = run(['leaks', nodeFiles[0], cpu, nodeFiles[1]]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /x\.cpuprofile: a \.cpuprofile, not a heap snapshot/);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1);

  const garbled = path.join(d, 'g.heapsnapshot');
  const head = fs.readFileSync(nodeFiles[0]).subarray(0, 4000);
  fs.writeFileSync(garbled, Buffer.concat([head, Buffer.from('}}garbage')]));
  r = run(['leaks', nodeFiles[0], nodeFiles[1], garbled]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /g\.heapsnapshot: offset \d+/);

  r = run(['leaks', path.join(d, 'missing1'), path.join(d, 'missing2'), path.join(d, 'missing3')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /missing1: No such file/);

  for (const args of [['--interval', 'soon'], ['--limit', 'x'], ['--min-growth', '-1'], ['--bogus']]) {
    r = run(['leaks', ...args, ...nodeFiles]);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^proflab leaks: .*\(see proflab leaks --help\)\n$/);
  }
  r = run(['leaks', '--url', 'http://127.0.0.1:1', ...nodeFiles]);
  assert.equal(r.status, 2);
  r = run(['leaks', '--url', 'http://127.0.0.1:1', '--count', '2']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--count '2' must be a whole number from 3/);
  r = run(['leaks', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--fail-on-leak/);
});

test('the lab under wrk load: its memory leak ranks first at 512 KiB sampling, business traffic is not a leak', async (t) => {
  if (spawnSync('wrk', ['--version']).error) return t.skip('wrk is not installed (scripts/deps.sh test)');
  const artifacts = tmpDir('lab');
  const keep = tmpDir('keep');
  const srv = await startProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: artifacts, LAB_MAX_LEAK_MB: 256 }) });
  let wrk;
  try {
    // business traffic for the whole run
    const every = SANITIZED ? 4 : 2;
    const count = 5;
    wrk = spawn('wrk', ['-t1', '-c8', `-d${every * count + 2}s`, `${srv.base}/api/work?n=200`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let wrkOut = '';
    wrk.stdout.on('data', (b) => { wrkOut += b; });
    const wrkDone = new Promise((r) => wrk.on('close', r));
    await sleep(500);
    const env = { PATH: process.env.PATH, LAB_TOKEN: GOOD_TOKEN };
    for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
    const leaks = spawn(CLI, ['leaks', '--url', srv.base, '--every', `${every}s`, '--count', String(count), '--keep', keep, '--json', '--all', '--limit', '0'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    leaks.stdout.on('data', (b) => { out += b; });
    leaks.stderr.on('data', (b) => { err += b; });
    let finished = false;
    const done = new Promise((r) => leaks.on('close', r)).then((c) => { finished = true; return c; });
    // leak 6 MiB between snapshots, while wrk runs and until the last snapshot
    const started = Date.now();
    const deadline = started + slow(every * 1000 * (count - 1) + 1000);
    while (Date.now() < deadline && !finished) {
      const res = await fetch(`${srv.base}/api/lab/memory-leak?mb=2`, { method: 'POST', headers: { 'x-lab-token': GOOD_TOKEN } });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      await sleep((every * 1000) / 3);
    }
    const code = await done;
    assert.equal(code, 0, err);
    const j = JSON.parse(out);
    assert.equal(j.snapshots.length, count);
    assert.match(j.times, /taken from the lab/);
    for (const s of j.snapshots) assert.ok(fs.existsSync(s.file), s.file);
    const top = j.sites[0];
    assert.equal(top.name, 'lab_memory_leak_allocate', JSON.stringify(j.sites.slice(0, 6), null, 1));
    assert.equal(top.verdict, 'likely leak');
    assert.equal(top.freed_objects, 0);
    // about 6 MiB per interval
    const perInterval = (top.leak_rate_bytes_per_min / 60) * ((j.snapshots[count - 1].time_s - j.snapshots[0].time_s) / (count - 1));
    assert.ok(perInterval > 2 * 1048576 && perInterval < 16 * 1048576, `leak per interval ${perInterval}`);
    for (const s of j.sites.slice(1)) {
      if (s.verdict === 'likely leak') assert.fail(`${s.name} called a likely leak: ${JSON.stringify(s)}`);
    }
    // the business endpoints' allocations are freed by the end of each
    // request: at most churn, never a leak
    for (const s of j.sites) if (/^work_|^on_work/.test(s.name)) assert.ok(!/leak/.test(s.verdict), JSON.stringify(s));
    // the kept files read again as files: times from proflab's names
    const files = j.snapshots.map((s) => s.file);
    const again = run(['leaks', '--json', ...files.reverse()], { env });
    assert.equal(again.status, 0, again.stderr);
    const ja = JSON.parse(again.stdout);
    assert.match(ja.times, /proflab's file names \(UTC\)/);
    assert.equal(ja.sites[0].name, 'lab_memory_leak_allocate');
    assert.equal(ja.sites[0].verdict, 'likely leak');
    await wrkDone;
    wrk = null;
    const m = /(\d+) requests in/.exec(wrkOut);
    assert.ok(m && Number(m[1]) > 1000, `wrk load: ${wrkOut}`);
  } finally {
    if (wrk) wrk.kill('SIGTERM');
    await stopChecked(srv);
  }
});
