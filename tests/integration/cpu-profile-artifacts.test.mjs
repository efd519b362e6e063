// The CPU profile's artifacts and the process around them, each case on its
// own server: retention (LAB_MAX_ARTIFACTS), a full disk (507, nothing left),
// SIGTERM during a profile (still answered, exit 0), SIGKILL during the
// write (no file under a final name; a restart removes the .partial), and
// the whole-run profile (--cpu-profile FILE / PROFLAB_CPU_PROFILE).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import {
  stopChecked, runProflabd, request, assertError, labEnv, GOOD_TOKEN, slow, sleep,
  within, scratch,
} from './helpers.mjs';

const sc = scratch();
after(() => sc.cleanup());
const tmpDir = (tag) => sc.tmpDir(tag);
const start = (env, args) => sc.start(env, args);
const profile = (srv, query, seconds = 1) => request(srv.base, `/api/lab/cpu-profile${query}`,
  { method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(seconds * 1000 + 20000) });
const status = async (srv) => (await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN })).body;
const profileStarted = (srv, n = 1) => srv.waitForLine(
  (l) => l.event === 'lab_cpu_profile_start' && srv.lines.filter((x) => x.event === 'lab_cpu_profile_start').length >= n,
  slow(5000));
const ARTIFACT = /^cpu-\d{8}T\d{6}\.\d{3}Z-.+\.(cpuprofile|pb\.gz|folded)$/;
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
function assertNoSanitizerReport(srv) {
  assert.doesNotMatch(srv.stderr, /(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:)/, srv.stderr);
}

test('retention: with LAB_MAX_ARTIFACTS=2, three profiles leave the newest two (and no other file is touched)', async () => {
  const dir = tmpDir('retain');
  fs.writeFileSync(path.join(dir, 'README.txt'), 'not an artifact\n');
  const srv = await start(labEnv({ LAB_ARTIFACT_DIR: dir, LAB_MAX_ARTIFACTS: 2 }));
  const names = [];
  for (const format of ['cpuprofile', 'folded', 'pprof']) {
    const r = await profile(srv, `?seconds=1&format=${format}`);
    assert.equal(r.status, 200, r.text);
    names.push(r.body.file);
  }
  const left = fs.readdirSync(dir).filter((n) => n !== 'README.txt').sort();
  assert.deepEqual(left, [names[1], names[2]].sort(), `artifacts left: ${left.join(', ')}; written: ${names.join(', ')}`);
  assert.ok(fs.existsSync(path.join(dir, 'README.txt')), 'a file that is not an artifact stays');
  const st = await status(srv);
  assert.deepEqual(st.artifacts.map((a) => a.name).sort(), [names[1], names[2]].sort());
  assert.equal(st.artifacts[0].name, names[2], 'newest first');
  await stopChecked(srv);
});

test('a full artifact directory: 507 no_space, no file left (final or .partial); space back -> 200', async (t) => {
  const dir = sc.fullTmpfs('enospc');
  if (!dir) return t.skip(sc.why);
  const srv = await start(labEnv({ LAB_ARTIFACT_DIR: dir }));
  const r = await profile(srv, '?seconds=1');
  assertError(r, 507, 'no_space', 'profile into a full directory');
  assert.deepEqual(fs.readdirSync(dir), ['filler'], 'nothing but the filler is left');
  const st = await status(srv);
  assert.equal(st.profiler.state, 'idle');
  assert.equal(st.profiler.failures, 1);
  assert.deepEqual(st.artifacts, []);

  fs.unlinkSync(path.join(dir, 'filler'));
  const ok = await profile(srv, '?seconds=1&format=folded');
  assert.equal(ok.status, 200, `after freeing space: ${ok.text}`);
  assert.deepEqual(fs.readdirSync(dir), [ok.body.file]);
  await stopChecked(srv);
  sc.unmount(dir);
});

test('SIGTERM during a 5 s profile: it stops early and is still answered 200 with the file; the process exits 0', async () => {
  const dir = tmpDir('sigterm');
  const srv = await start(labEnv({ LAB_ARTIFACT_DIR: dir, LAB_MAX_PROFILE_SECONDS: 10 }));
  const p = profile(srv, '?seconds=5', 5);
  await profileStarted(srv);
  await sleep(1000);
  srv.proc.kill('SIGTERM');
  const r = await p;
  assert.equal(r.status, 200, r.text);
  assert.ok(r.body.duration_ms >= 900 && r.body.duration_ms < 4500,
    `duration_ms ${r.body.duration_ms}: the profile should end at the signal, ~1000 ms in`);
  assert.ok(r.body.samples > 0);
  const data = fs.readFileSync(r.body.path);
  assert.equal(r.body.bytes, data.length);
  assert.equal(r.body.sha256, sha256(data));
  JSON.parse(data.toString('utf8'));
  const ex = await within(srv.exited, slow(10000), { code: 'still running 10 s after SIGTERM', signal: null });
  assert.equal(ex.signal ?? null, null, `killed by ${ex.signal}; stderr:\n${srv.stderr}`);
  assert.equal(ex.code, 0, `exit code ${ex.code}; stderr:\n${srv.stderr}`);
  assertNoSanitizerReport(srv);
  assert.deepEqual(fs.readdirSync(dir), [r.body.file]);
});

test('SIGKILL during the write leaves no file under a final name; a restart removes stale .partial files', async (t) => {
  const dir = tmpDir('sigkill');
  // planted before anything runs: a stale partial of a valid artifact name (removed
  // at start) and a .partial that is not ours (kept)
  const stale = 'cpu-20200101T000000.000Z-old.cpuprofile.partial';
  fs.writeFileSync(path.join(dir, stale), '{"nodes":');
  fs.writeFileSync(path.join(dir, 'notes.partial'), 'mine');
  const env = labEnv({ LAB_ARTIFACT_DIR: dir, LAB_MAX_PROFILE_SECONDS: 5, LAB_MAX_JAM_MS: 5000 });

  let caught = null;
  const attempts = [];
  for (let attempt = 1; attempt <= 6 && !caught; attempt++) {
    const srv = await start(env);
    if (attempt === 1) {
      assert.ok(!fs.existsSync(path.join(dir, stale)), 'the stale .partial was removed at start');
      assert.ok(fs.existsSync(path.join(dir, 'notes.partial')), 'a .partial that is not an artifact stays');
    }
    // freeze the process the moment the .partial appears, then kill it
    let stopped = null;
    const w = fs.watch(dir, (ev, name) => {
      if (!stopped && name && name.endsWith('.partial') && name !== 'notes.partial') {
        try { process.kill(srv.pid, 'SIGSTOP'); } catch { /* gone */ }
        stopped = name;
      }
    });
    // a big profile (10 kHz, a jam inside) so the write takes a while
    const p = profile(srv, '?seconds=2&hz=10000&format=cpuprofile', 2).catch((e) => ({ error: e }));
    await profileStarted(srv);
    await request(srv.base, '/api/lab/event-loop-jam?ms=1800', { method: 'POST', token: GOOD_TOKEN });
    const t0 = performance.now();
    while (!stopped && performance.now() - t0 < slow(15000)) await sleep(5);
    w.close();
    const seen = fs.readdirSync(dir);
    srv.proc.kill('SIGKILL');
    await srv.exited;
    await p;
    const finals = seen.filter((n) => ARTIFACT.test(n));
    attempts.push({ stopped, seen });
    if (stopped && finals.length === 0) caught = { seen, partial: stopped };
    // the write won the race: clear the finished file and try again
    for (const f of finals) fs.unlinkSync(path.join(dir, f));
  }
  assert.ok(caught, `never caught the process inside the write: ${JSON.stringify(attempts)}`);
  t.diagnostic(`caught the writer inside the write on attempt ${attempts.length}`);
  const now = fs.readdirSync(dir);
  assert.deepEqual(now.filter((n) => ARTIFACT.test(n)), [], `a final name after SIGKILL: ${now.join(', ')}`);
  assert.ok(now.includes(caught.partial), `the .partial the killed writer left: ${now.join(', ')}`);

  const srv2 = await start(env);
  const after2 = fs.readdirSync(dir).sort();
  assert.deepEqual(after2, ['notes.partial'], `after a restart: ${after2.join(', ')}`);
  assert.deepEqual((await status(srv2)).artifacts, []);
  await stopChecked(srv2);
});

// ---- whole-run profile ----------------------------------------------------

function checkWholeRunFile(file, ext) {
  const data = fs.readFileSync(file);
  if (ext === 'cpuprofile') {
    const p = JSON.parse(data.toString('utf8'));
    assert.ok(p.nodes.length >= 2 && p.samples.length > 0 && p.samples.length === p.timeDeltas.length);
    assert.ok(p.startTime > 0);
    return p.nodes.map((n) => n.callFrame.functionName).join('\n');
  }
  if (ext === 'pb.gz') {
    assert.equal(data[0], 0x1f);
    assert.equal(data[1], 0x8b);
    return zlib.gunzipSync(data).toString('latin1');
  }
  const lines = data.toString('utf8').split('\n').filter(Boolean);
  assert.ok(lines.length >= 1);
  for (const l of lines) assert.match(l, /^\S.* \d+$/);
  return lines.join('\n');
}

for (const ext of ['cpuprofile', 'pb.gz', 'folded']) {
  for (const how of ['--cpu-profile', 'PROFLAB_CPU_PROFILE']) {
    test(`${how} run.${ext}: written at SIGTERM exit (exit 0, mode 0600, no .partial); the endpoint is busy meanwhile`, async () => {
      const dir = tmpDir('whole');
      const file = path.join(dir, `run.${ext}`);
      const env = labEnv({ LAB_ARTIFACT_DIR: dir, ...(how === 'PROFLAB_CPU_PROFILE' ? { PROFLAB_CPU_PROFILE: file } : {}) });
      const srv = await start(env, how === '--cpu-profile' ? ['--cpu-profile', file] : []);
      assert.ok(!fs.existsSync(file), 'written at exit, not before');
      const jam = await request(srv.base, '/api/lab/event-loop-jam?ms=200', { method: 'POST', token: GOOD_TOKEN });
      assert.equal(jam.status, 200);
      const busy = await request(srv.base, '/api/lab/cpu-profile?seconds=1', { method: 'POST', token: GOOD_TOKEN });
      assertError(busy, 409, 'busy', 'endpoint during a whole-run profile');
      await stopChecked(srv);
      assert.ok(fs.existsSync(file), `${file} was not written; stdout:\n${srv.stdout}`);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.ok(!fs.existsSync(`${file}.partial`));
      const text = checkWholeRunFile(file, ext);
      assert.match(text, /lab_event_loop_jam_spin/, 'the jam shows in the whole-run profile');
      const line = srv.lines.find((l) => l.event === 'cpu_profile_run_written');
      assert.ok(line && line.level === 'info' && line.samples > 0, `log: ${JSON.stringify(line)}`);
    });
  }
}

test('--cpu-profile into a directory that does not exist: fails at start, naming the path', async () => {
  const dir = tmpDir('whole-bad');
  const file = path.join(dir, 'missing', 'run.cpuprofile');
  const r = await runProflabd({ env: {}, args: ['--cpu-profile', file] });
  assert.notEqual(r.code, 0, `exit ${r.code}`);
  assert.match(r.stdout + r.stderr, /missing\/run\.cpuprofile/);
});
