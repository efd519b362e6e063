// POST /api/lab/cpu-profile on one server: the success answer and the
// artifact it names (for each format), the loop serving during a profile,
// one profile at a time (409 busy + Retry-After), /api/lab/status during and
// after, and bad parameters.
//
// Artifact store, shutdown and whole-run cases (each needs its own server):
// cpu-profile-artifacts.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import {
  startProflabd, stopChecked, request, assertError, labEnv, GOOD_TOKEN, slow, sleep,
} from './helpers.mjs';

const MAX_SECONDS = 3;
const EXT = { cpuprofile: 'cpuprofile', pprof: 'pb.gz', folded: 'folded' };
const JAM_FN = 'lab_event_loop_jam_spin';

let srv;
let dir;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-cpuprof-'));
  srv = await startProflabd({
    env: labEnv({ LAB_ARTIFACT_DIR: dir, LAB_MAX_PROFILE_SECONDS: MAX_SECONDS, LAB_MAX_JAM_MS: 2000 }),
  });
});
after(async () => {
  await stopChecked(srv);
  fs.rmSync(dir, { recursive: true, force: true });
});

const status = async () => {
  const r = await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN });
  assert.equal(r.status, 200, r.text);
  return r.body;
};
/** POST a profile; the answer comes when it is written (seconds + write time). */
const profile = (query, seconds = 1) => request(srv.base, `/api/lab/cpu-profile${query}`,
  { method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(seconds * 1000 + 20000) });
/** Wait until the server logged that the profile started (the sampler is armed). */
const started = (n) => srv.waitForLine(
  (l) => l.event === 'lab_cpu_profile_start' && srv.lines.filter((x) => x.event === 'lab_cpu_profile_start').length >= n,
  slow(5000));
let nStarted = 0;

// cpu-<YYYYMMDDTHHMMSS.mmmZ>-<task>.<ext>
function parseName(name, task, ext) {
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^cpu-(\\d{4})(\\d{2})(\\d{2})T(\\d{2})(\\d{2})(\\d{2})\\.(\\d{3})Z-${esc(task)}\\.${esc(ext)}$`).exec(name);
  assert.ok(m, `artifact name ${name} does not match cpu-<YYYYMMDDTHHMMSS.mmmZ>-${task}.${ext}`);
  const [, Y, M, D, h, mi, s, ms] = m.map(Number);
  return Date.UTC(Y, M - 1, D, h, mi, s, ms);
}

/** Everything the success answer promises about the file it names. */
function checkAnswer(res, { format, mode = 'wall', hz = 1000, seconds = 1, tSent, tDone }) {
  assert.equal(res.status, 200, res.text);
  const b = res.body;
  assert.ok(b, `not JSON: ${res.text}`);
  assert.equal(typeof b.task, 'string');
  assert.ok(b.task.length > 0);
  assert.equal(b.format, format);
  assert.equal(b.mode, mode);
  assert.equal(b.hz, hz);
  assert.ok(Math.abs(b.interval_us - 1e6 / hz) < 0.01, `interval_us ${b.interval_us} for hz=${hz}`);
  assert.ok(Number.isInteger(b.samples) && b.samples > 0, `samples ${b.samples}`);
  // every sample but an idle one had its stack captured, with or without DWARF
  const by = b.stacks_by;
  assert.equal(by.frame_pointers + by.dwarf, b.samples - b.idle_samples, `stacks_by ${JSON.stringify(by)}`);
  assert.ok(by.cached_callers <= b.samples, `stacks_by ${JSON.stringify(by)}`);
  // proflabd is built with frame pointers: they agree with DWARF
  assert.ok(by.mismatched * 20 < by.checked || by.mismatched < 3, `stacks_by ${JSON.stringify(by)}`);
  assert.equal(b.stack_capture_fell_back, undefined);
  // the timer ends the profile after `seconds` (libuv counts whole ms from
  // the loop's time, updated when the profile starts); the write follows
  assert.ok(b.duration_ms >= seconds * 1000 - 2, `duration_ms ${b.duration_ms} for seconds=${seconds}: shorter than asked`);
  assert.ok(b.duration_ms <= seconds * 1000 + slow(1000), `duration_ms ${b.duration_ms} for seconds=${seconds}`);

  // the file
  const created = parseName(b.file, b.task, EXT[format]);
  assert.ok(created >= tSent - 2000 && created <= tDone + 1000,
    `time in the name ${new Date(created).toISOString()} is not between the request ${new Date(tSent).toISOString()} and the answer (UTC?)`);
  assert.equal(b.path, path.join(dir, b.file));
  const st = fs.statSync(b.path);
  assert.ok(st.isFile());
  assert.equal(st.mode & 0o777, 0o600, `mode ${(st.mode & 0o777).toString(8)}`);
  assert.equal(b.bytes, st.size, 'bytes = size on disk');
  const data = fs.readFileSync(b.path);
  assert.equal(b.sha256, crypto.createHash('sha256').update(data).digest('hex'), 'sha256 of the file');
  assert.ok(!fs.existsSync(`${b.path}.partial`), '.partial left beside the artifact');
  return data;
}

/** A profile of `seconds` with a jam of jamMs inside it, so it has real stacks. */
async function profileWithJam(query, seconds, jamMs) {
  const tSent = Date.now();
  const p = profile(query, seconds);
  await started(++nStarted);
  const jam = await request(srv.base, `/api/lab/event-loop-jam?ms=${jamMs}`, { method: 'POST', token: GOOD_TOKEN });
  assert.equal(jam.status, 200, jam.text);
  const res = await p;
  return { res, tSent, tDone: Date.now() };
}

test('format=cpuprofile (default): answer fields match the file; valid .cpuprofile JSON with the jam function', async () => {
  const { res, tSent, tDone } = await profileWithJam('?seconds=2', 2, 300);
  const data = checkAnswer(res, { format: 'cpuprofile', seconds: 2, tSent, tDone });
  const p = JSON.parse(data.toString('utf8'));
  assert.ok(Array.isArray(p.nodes) && p.nodes.length >= 1, 'nodes');
  assert.ok(Array.isArray(p.samples), 'samples');
  assert.ok(Array.isArray(p.timeDeltas), 'timeDeltas');
  assert.equal(p.samples.length, p.timeDeltas.length, 'one time delta per sample');
  // the writer emits one sample per sampling period: a sample of weight w
  // (w - 1 timer overruns) is written w times
  assert.equal(p.samples.length, res.body.weight, 'samples in the file = weight in the answer');
  assert.ok(Number.isFinite(p.startTime) && p.startTime > 0, `startTime ${p.startTime}`);
  assert.ok(p.endTime >= p.startTime, `endTime ${p.endTime} < startTime ${p.startTime}`);
  const ids = new Set(p.nodes.map((n) => n.id));
  for (const s of p.samples) assert.ok(ids.has(s), `sample ${s} is not a node id`);
  const names = p.nodes.map((n) => n.callFrame && n.callFrame.functionName);
  assert.equal(names[0], '(root)');
  for (const n of p.nodes) assert.ok(n.callFrame.functionName, `node ${n.id} has an empty function name`);
  assert.ok(names.includes('(idle)'), 'an idle loop shows (idle)');
  assert.ok(names.includes(JAM_FN), `the jam function is in the profile: ${names.join(', ')}`);
  const sum = p.timeDeltas.reduce((a, d) => a + d, 0);
  assert.ok(sum > 0 && p.startTime + sum <= p.endTime + 1, 'time deltas stay within start..end');
});

test('format=pprof: a gzip file (magic 1f 8b) that inflates to a profile naming the jam function', async () => {
  const { res, tSent, tDone } = await profileWithJam('?seconds=2&format=pprof', 2, 300);
  const data = checkAnswer(res, { format: 'pprof', seconds: 2, tSent, tDone });
  assert.equal(data[0], 0x1f);
  assert.equal(data[1], 0x8b);
  const pb = zlib.gunzipSync(data);
  assert.ok(pb.length > 0);
  assert.ok(pb.includes(Buffer.from(JAM_FN)), 'the string table names the jam function');
  assert.ok(pb.includes(Buffer.from('cpu')) && pb.includes(Buffer.from('nanoseconds')), 'cpu/nanoseconds sample type');
});

test('format=folded: text lines "frame;frame;... weight" including the jam function', async () => {
  const { res, tSent, tDone } = await profileWithJam('?seconds=2&format=folded', 2, 300);
  const data = checkAnswer(res, { format: 'folded', seconds: 2, tSent, tDone });
  const text = data.toString('utf8');
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const lines = text.split('\n').filter((l) => l.length);
  assert.ok(lines.length >= 2, `lines: ${lines.length}`);
  let weight = 0;
  for (const l of lines) {
    const m = /^(\S.*) (\d+)$/.exec(l);
    assert.ok(m, `not a folded line: ${JSON.stringify(l)}`);
    weight += Number(m[2]);
  }
  assert.equal(weight, res.body.weight, 'the weights add up to the answer\'s weight');
  assert.ok(lines.some((l) => l.split(' ')[0] === '(idle)' || l.startsWith('(idle) ')), '(idle) line');
  assert.ok(lines.some((l) => l.includes(JAM_FN)), 'a stack through the jam function');
});

test('mode=cpu&hz=250: the answer reports mode, hz and a 4000 us interval', async () => {
  const tSent = Date.now();
  // something to burn CPU on the loop thread so cpu mode gets samples
  const p = profile('?seconds=1&mode=cpu&hz=250&format=folded');
  await started(++nStarted);
  await request(srv.base, '/api/lab/event-loop-jam?ms=500', { method: 'POST', token: GOOD_TOKEN });
  const res = await p;
  checkAnswer(res, { format: 'folded', mode: 'cpu', hz: 250, tSent, tDone: Date.now() });
});

test('during a 2 s profile: /api/health answers fast, a second profile gets 409 busy + Retry-After, status says running; after: idle and listed', async () => {
  const before = await status();
  assert.equal(before.profiler.state, 'idle');
  const p = profile('?seconds=2&format=folded', 2);
  await started(++nStarted);
  const tStart = performance.now();

  const during = await status();
  assert.equal(during.profiler.state, 'running', JSON.stringify(during.profiler));
  assert.equal(during.profiler.format, 'folded');
  assert.equal(during.profiler.mode, 'wall');
  assert.ok(during.profiler.until, 'until');

  // one at a time
  const busy = await request(srv.base, '/api/lab/cpu-profile?seconds=1', { method: 'POST', token: GOOD_TOKEN });
  assertError(busy, 409, 'busy', 'second profile');
  const ra = busy.headers.get('retry-after');
  assert.match(ra || '', /^\d+$/, `Retry-After ${ra}`);
  assert.ok(Number(ra) >= 1 && Number(ra) <= 3, `Retry-After ${ra} for a 2 s profile`);

  // the loop keeps serving
  const lat = [];
  for (let i = 0; i < 5; i++) {
    const h = await request(srv.base, '/api/health');
    assert.equal(h.status, 200, h.text);
    lat.push(h.ms);
    await sleep(100);
  }
  assert.ok(Math.max(...lat) < slow(100), `/api/health during a profile took ${lat.map((x) => x.toFixed(1)).join(', ')} ms`);
  assert.ok(performance.now() - tStart < 1900, 'these checks ran while the profile ran');

  const res = await p;
  assert.equal(res.status, 200, res.text);
  const afterSt = await status();
  assert.equal(afterSt.profiler.state, 'idle');
  assert.equal(afterSt.profiler.profiles_taken, before.profiler.profiles_taken + 1);
  const listed = afterSt.artifacts.find((a) => a.name === res.body.file);
  assert.ok(listed, `${res.body.file} not in status.artifacts: ${JSON.stringify(afterSt.artifacts)}`);
  assert.equal(listed.bytes, res.body.bytes);
  assert.equal(listed.kind, 'cpu');
  // the busy request did not start anything
  assert.ok(!srv.lines.some((l) => l.event === 'request' && l.path === '/api/lab/cpu-profile' && l.status === 409 && l.samples), 'no samples for the 409');
});

test('bad parameters: 422 for out-of-range numbers, 400 for bad choices; the message names the parameter; nothing is written', async () => {
  const filesBefore = fs.readdirSync(dir).sort();
  const taken = (await status()).profiler.profiles_taken;
  const cases = [
    ['?seconds=0', 422, 'out_of_range', 'seconds', [/LAB_MAX_PROFILE_SECONDS/]],
    [`?seconds=${MAX_SECONDS + 1}`, 422, 'out_of_range', 'seconds', [/LAB_MAX_PROFILE_SECONDS/, new RegExp(`\\b${MAX_SECONDS}\\b`)]],
    ['?seconds=100000', 422, 'out_of_range', 'seconds', [/LAB_MAX_PROFILE_SECONDS/]],
    ['?seconds=1&format=xml', 400, 'bad_parameter', 'format', [/xml/, /cpuprofile/, /pprof/, /folded/]],
    ['?seconds=1&mode=foo', 400, 'bad_parameter', 'mode', [/foo/, /wall/, /cpu/]],
    ['?seconds=1&hz=0', 422, 'out_of_range', 'hz', [/10000/]],
    ['?seconds=1&hz=20000', 422, 'out_of_range', 'hz', [/10000/]],
    ['?seconds=abc', 400, 'bad_parameter', 'seconds', []],
    ['?seconds=1&bogus=1', 400, 'bad_parameter', 'bogus', []],
  ];
  for (const [q, st, code, param, extra] of cases) {
    const r = await request(srv.base, `/api/lab/cpu-profile${q}`, { method: 'POST', token: GOOD_TOKEN });
    assertError(r, st, code, q);
    assert.match(r.body.error.message, new RegExp(`'${param}'`), `${q}: message should name ${param}: ${r.body.error.message}`);
    for (const re of extra) assert.match(r.body.error.message, re, `${q}: ${r.body.error.message}`);
  }
  const st = await status();
  assert.equal(st.profiler.state, 'idle');
  assert.equal(st.profiler.profiles_taken, taken);
  assert.deepEqual(fs.readdirSync(dir).sort(), filesBefore, 'no file was written');
});

test('without the token: 401, no profile starts', async () => {
  const r = await request(srv.base, '/api/lab/cpu-profile?seconds=1', { method: 'POST' });
  assertError(r, 401, 'unauthorized', 'no token');
  assert.equal((await status()).profiler.state, 'idle');
});
