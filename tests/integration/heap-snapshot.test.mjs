// POST /api/lab/heap-snapshot and the heap tracker inside proflabd: the
// answer and its file (three formats), parameters and security, the
// tracker's figures in status and /metrics, exact accounting with
// LAB_HEAP_SAMPLE_BYTES=1, the tracker switched off, bad settings at start,
// and a full disk. Under ASan the tracker observes allocations through the
// sanitizer's hooks instead of interposing malloc; everything here holds
// there too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import {
  stopChecked, runProflabd, request, assertError, labEnv, scratch, heapSnapshotByName, GOOD_TOKEN, SANITIZED,
} from './helpers.mjs';

const MiB = 1048576;
const LEAK_FN = 'lab_memory_leak_allocate';
const ARTIFACT = /^heapdump-\d{8}T\d{6}\.\d{3}Z-[A-Za-z0-9._-]+\.(heapsnapshot|heapprofile|pb\.gz)$/;
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

const sc = scratch();
const tmpDir = (tag) => sc.tmpDir(tag);
const start = (env, args) => sc.start(env, args);
const snapshot = (srv, query = '') => request(srv.base, `/api/lab/heap-snapshot${query}`, { method: 'POST', token: GOOD_TOKEN });
const status = async (srv) => (await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN })).body;
const post = (srv, p) => request(srv.base, p, { method: 'POST', token: GOOD_TOKEN });

/** Estimated bytes by allocating function in a .heapsnapshot. */
const bytesByFunction = (file) => Object.fromEntries(Object.entries(heapSnapshotByName(file)).map(([k, v]) => [k, v.bytes]));

let srv;
let dir;
before(async () => {
  dir = tmpDir('heap');
  srv = await start(labEnv({ LAB_ARTIFACT_DIR: dir }));
});
after(() => sc.cleanup());

test('heap-snapshot answers file, path, bytes, sha256, live bytes and allocations; the file is 0600 and matches', async () => {
  const r = await snapshot(srv);
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.equal(r.headers.get('x-lab-task'), srv.task);
  const b = r.body;
  assert.equal(b.task, srv.task);
  assert.match(b.file, ARTIFACT);
  assert.ok(b.file.endsWith('.heapsnapshot'), 'heapsnapshot is the default format');
  assert.equal(b.format, 'heapsnapshot');
  assert.equal(b.path, path.join(dir, b.file));
  const data = fs.readFileSync(b.path);
  assert.equal(data.length, b.bytes);
  assert.equal(sha256(data), b.sha256);
  assert.equal(fs.statSync(b.path).mode & 0o777, 0o600);
  for (const k of ['live_bytes', 'allocations', 'samples', 'stacks', 'sample_bytes', 'dropped_samples'])
    assert.equal(typeof b[k], 'number', `${k} in ${r.text}`);
  assert.equal(b.sample_bytes, 524288, 'the default sampling interval');
  const j = JSON.parse(data.toString());
  assert.ok(j.snapshot && Array.isArray(j.nodes) && Array.isArray(j.strings), 'a heap snapshot');
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.partial')), []);
});

test('format=heapprofile and format=pprof write their formats; status lists all three as heap artifacts', async () => {
  const hp = await snapshot(srv, '?format=heapprofile');
  assert.equal(hp.status, 200, hp.text);
  assert.ok(hp.body.file.endsWith('.heapprofile'));
  const prof = JSON.parse(fs.readFileSync(hp.body.path, 'utf8'));
  assert.equal(prof.head.callFrame.functionName, '(root)');
  assert.ok(Array.isArray(prof.samples));
  const pp = await snapshot(srv, '?format=pprof');
  assert.equal(pp.status, 200, pp.text);
  assert.ok(pp.body.file.endsWith('.pb.gz'));
  const raw = zlib.gunzipSync(fs.readFileSync(pp.body.path));
  assert.ok(raw.includes(Buffer.from('inuse_space')), 'a pprof heap profile');
  const st = await status(srv);
  const names = st.artifacts.map((a) => a.name);
  for (const f of [hp.body.file, pp.body.file]) assert.ok(names.includes(f), `status lists ${f}: ${names.join(', ')}`);
  for (const a of st.artifacts.filter((x) => x.name.startsWith('heapdump-'))) assert.equal(a.kind, 'heap');
});

test('status reports the tracker: running, sampling interval, live estimates and its own bounded memory', async () => {
  const h = (await status(srv)).heap;
  assert.equal(h.tracker, SANITIZED ? 'sanitizer-hooks' : 'interposed');
  assert.equal(h.sample_bytes, 524288);
  for (const k of ['live_bytes', 'live_allocations', 'allocated_bytes', 'allocations', 'samples', 'live_samples',
    'dropped_samples', 'stacks', 'tracker_bytes', 'tracker_reserved_bytes', 'snapshots_taken', 'failures'])
    assert.equal(typeof h[k], 'number', `heap.${k}`);
  assert.ok(h.tracker_bytes > 0 && h.tracker_bytes <= h.tracker_reserved_bytes, `tracker ${h.tracker_bytes} of ${h.tracker_reserved_bytes} B`);
  assert.ok(h.snapshots_taken >= 1);
  assert.equal(h.state, 'idle');
  const by = h.stacks_by;
  assert.equal(by.frame_pointers + by.dwarf - by.checked, h.samples, `stacks_by ${JSON.stringify(by)} of ${h.samples} samples`);
  assert.ok(by.checked <= by.frame_pointers / 200 + 8, `every 256th frame-pointer stack is checked: ${JSON.stringify(by)}`);
  assert.equal(by.mismatched, 0);
  if (SANITIZED) assert.equal(by.frame_pointers, 0, 'DWARF only under ASan');
  assert.equal(h.stack_capture, SANITIZED ? 'dwarf' : 'frame-pointers');
  assert.equal(h.stack_capture_fell_back, undefined);
});

test('PROFLAB_HEAP_UNWIND=verify, every allocation sampled: frame-pointer stacks of proflabd\'s own paths agree with DWARF', async () => {
  const d = tmpDir('heap-verify');
  const s = await start(labEnv({ LAB_ARTIFACT_DIR: d, LAB_HEAP_SAMPLE_BYTES: '1', PROFLAB_HEAP_UNWIND: 'verify' }));
  for (let i = 0; i < 20; i++) {
    assert.equal((await request(s.base, '/api/health')).status, 200);
    await status(s);
  }
  assert.equal((await post(s, '/api/lab/memory-leak?mb=2')).status, 200);
  const r = await snapshot(s, '?format=pprof');
  assert.equal(r.status, 200, r.text);
  assert.equal((await post(s, '/api/lab/cpu-profile?seconds=1&format=folded')).status, 200);
  assert.equal((await post(s, '/api/lab/memory-clear')).status, 200);
  const h = (await status(s)).heap;
  const by = h.stacks_by;
  assert.ok(h.samples > 1000, `${h.samples} samples`);
  assert.equal(by.dwarf, h.samples, 'verify: DWARF for every sample');
  assert.equal(by.checked, by.frame_pointers, 'verify: every frame-pointer stack checked');
  assert.equal(by.mismatched, 0, `stacks_by ${JSON.stringify(by)}`);
  assert.equal(h.stack_capture, SANITIZED ? 'dwarf' : 'verify');
  if (!SANITIZED) assert.ok(by.frame_pointers > 0.5 * h.samples, `stacks_by ${JSON.stringify(by)} of ${h.samples}`);
  await stopChecked(s);
});

test('a 64 MiB leak shows in the next snapshot under the leak function, in status and in /metrics; memory-clear removes it', async () => {
  const before = (await status(srv)).heap.live_bytes;
  assert.equal((await post(srv, '/api/lab/memory-leak?mb=64')).status, 200);
  const s = await snapshot(srv);
  const fns = bytesByFunction(s.body.path);
  const leak = fns[LEAK_FN] ?? 0;
  // 64 chunks of 1 MiB at T = 512 KiB: sd ≈ 4 % of the total
  assert.ok(Math.abs(leak - 64 * MiB) <= 0.3 * 64 * MiB, `${LEAK_FN}: ${leak} B, want ≈ ${64 * MiB}`);
  const h = (await status(srv)).heap;
  assert.ok(h.live_bytes - before >= 0.7 * 64 * MiB, `status live bytes ${before} -> ${h.live_bytes}`);
  const m = await request(srv.base, '/metrics');
  const live = Number(/^proflab_heap_live_bytes (\d+)$/m.exec(m.text)?.[1]);
  assert.ok(live >= 0.7 * 64 * MiB, `proflab_heap_live_bytes ${live}`);
  assert.match(m.text, /^proflab_lab_artifacts_total\{kind="heap"\} [1-9]\d*$/m);
  assert.match(m.text, /^proflab_heap_tracker_bytes \d+$/m);
  assert.equal((await post(srv, '/api/lab/memory-clear')).status, 200);
  const c = await snapshot(srv);
  assert.equal(bytesByFunction(c.body.path)[LEAK_FN], undefined, 'the leak is gone after memory-clear');
});

test('bad input: unknown format, unknown or repeated parameter -> 400 naming it; GET -> 405; no token -> 401; nothing written', async () => {
  const count = () => fs.readdirSync(dir).length;
  const n0 = count();
  const f = await snapshot(srv, '?format=json');
  assertError(f, 400, 'bad_parameter', 'unknown format');
  assert.match(f.body.error.message, /format/);
  assert.match(f.body.error.message, /heapsnapshot/);
  const u = await snapshot(srv, '?seconds=3');
  assertError(u, 400, 'bad_parameter', 'unknown parameter');
  assert.match(u.body.error.message, /seconds/);
  assertError(await snapshot(srv, '?format=pprof&format=pprof'), 400, 'bad_parameter', 'repeated parameter');
  const g = await request(srv.base, '/api/lab/heap-snapshot', { token: GOOD_TOKEN });
  assertError(g, 405, 'method_not_allowed', 'GET');
  assertError(await request(srv.base, '/api/lab/heap-snapshot', { method: 'POST' }), 401, 'unauthorized', 'no token');
  assert.equal(count(), n0, 'no file was written');
});

test('LAB_HEAP_SAMPLE_BYTES=1 tracks every allocation: a 5 MiB leak is exactly 5 MiB under the leak function', async () => {
  const d = tmpDir('heap-exact');
  const s = await start(labEnv({ LAB_ARTIFACT_DIR: d, LAB_HEAP_SAMPLE_BYTES: '1' }));
  assert.equal((await post(s, '/api/lab/memory-leak?mb=5')).status, 200);
  const r = await snapshot(s);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.sample_bytes, 1);
  assert.equal(bytesByFunction(r.body.path)[LEAK_FN], 5 * MiB);
  assert.equal((await post(s, '/api/lab/memory-clear')).status, 200);
  const c = await snapshot(s);
  assert.equal(bytesByFunction(c.body.path)[LEAK_FN], undefined);
  await stopChecked(s);
});

test('PROFLAB_HEAP_TRACKING=false: the tracker is off; heap-snapshot -> 503 heap_tracker_off; status says off', async () => {
  const d = tmpDir('heap-off');
  const s = await start(labEnv({ LAB_ARTIFACT_DIR: d, PROFLAB_HEAP_TRACKING: 'false' }));
  const r = await snapshot(s);
  assertError(r, 503, 'heap_tracker_off', 'tracker off');
  assert.match(r.body.error.message, /PROFLAB_HEAP_TRACKING/);
  assert.equal((await status(s)).heap.tracker, 'off');
  const m = await request(s.base, '/metrics');
  assert.doesNotMatch(m.text, /proflab_heap_live_bytes/, 'no heap figures without the tracker');
  assert.deepEqual(fs.readdirSync(d), []);
  await stopChecked(s);
});

test('bad heap settings stop start-up with a message naming them', async () => {
  for (const [env, args, re] of [
    [{ LAB_HEAP_SAMPLE_BYTES: 'lots' }, [], /LAB_HEAP_SAMPLE_BYTES/],
    [{ LAB_HEAP_SAMPLE_BYTES: '0' }, [], /LAB_HEAP_SAMPLE_BYTES/],
    [{ PROFLAB_HEAP_TRACKING: 'maybe' }, [], /PROFLAB_HEAP_TRACKING/],
    [{ PROFLAB_HEAP_UNWIND: 'frames' }, [], /PROFLAB_HEAP_UNWIND/],
    [{}, ['--heap-sample-bytes', '-5'], /--heap-sample-bytes/],
  ]) {
    const r = await runProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: tmpDir('heap-bad'), ...env }), args });
    assert.equal(r.code, 2, `exit status for ${JSON.stringify(env)} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr + r.stdout, new RegExp(GOOD_TOKEN), 'the token is not printed');
  }
});

test('a full artifact directory: 507 no_space, no file left; the tracker keeps running', async (t) => {
  const d = sc.fullTmpfs('heap-enospc');
  if (!d) return t.skip(sc.why);
  const s = await start(labEnv({ LAB_ARTIFACT_DIR: d }));
  assertError(await snapshot(s), 507, 'no_space', 'snapshot into a full directory');
  assert.deepEqual(fs.readdirSync(d), ['filler']);
  const h = (await status(s)).heap;
  assert.equal(h.failures, 1);
  assert.notEqual(h.tracker, 'off');
  fs.unlinkSync(path.join(d, 'filler'));
  const ok = await snapshot(s, '?format=pprof');
  assert.equal(ok.status, 200, ok.text);
  await stopChecked(s);
  sc.unmount(d);
});
