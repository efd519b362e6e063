// Faults around artifacts (issue 14):
// - SIGKILL at random points of every kind of artifact write (CPU:
//   cpuprofile, pprof, folded; heap: heapsnapshot, heapprofile, pprof):
//   a file under a final name is always complete (JSON parses; gunzip and a
//   whole protobuf walk; folded lines), and the next start removes .partial
//   files. PROFLAB_FAULT_KILLS kills per format (default 2; docs/reliability.md
//   used 20);
// - the process's file size limit (RLIMIT_FSIZE, prlimit), a read-only
//   directory (a tmpfs remounted read-only), a missing directory, and a
//   directory that fills during the write (a small tmpfs): a clear 507/500,
//   nothing left behind, the service keeps serving;
// - clients that vanish mid-download and mid-profile: the service keeps
//   serving; its open fds and RSS do not grow (PROFLAB_FAULT_VANISH: x10
//   downloads, x1 profiles; default 2);
// - SIGTERM under load: exit 0.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import {
  stopChecked, request, labEnv, GOOD_TOKEN, scratch, slow, sleep, SANITIZED, eventually,
} from './helpers.mjs';

const s = scratch();
after(() => s.cleanup());
const KILLS = Number(process.env.PROFLAB_FAULT_KILLS || 2);
const VANISH = Number(process.env.PROFLAB_FAULT_VANISH || 2); // x10 downloads, x1 profiles
const FINAL = /^(cpu|heap|heapdump)-\d{8}T\d{6}\.\d{3}Z-[A-Za-z0-9_-]+(-\d+)?\.(cpuprofile|pb\.gz|folded|heapsnapshot|heapprofile)$/;
const post = (srv, p, ms = 30000) => request(srv.base, p, { method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(ms) });

/** Walk a protobuf message's fields to its end: throws unless it is well formed. */
function protoWalk(buf) {
  let i = 0;
  const varint = () => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (i >= buf.length || shift > 63n) throw new Error('truncated varint');
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  let fields = 0;
  while (i < buf.length) {
    const key = varint();
    const wt = Number(key & 7n);
    if (wt === 0) varint();
    else if (wt === 1) i += 8;
    else if (wt === 2) { const n = Number(varint()); i += n; } // (not i += varint(): i is read first)
    else if (wt === 5) i += 4;
    else throw new Error(`wire type ${wt}`);
    if (i > buf.length) throw new Error('field past the end');
    fields++;
  }
  if (!fields) throw new Error('empty profile');
}

/** Throws unless the artifact file is complete for its format. */
function checkComplete(file) {
  const b = fs.readFileSync(file);
  if (file.endsWith('.pb.gz')) protoWalk(zlib.gunzipSync(b));
  else if (file.endsWith('.folded')) {
    const lines = b.toString('utf8').split('\n');
    assert.equal(lines.pop(), '', `${file}: ends with a newline`);
    for (const l of lines) assert.match(l, /^.+ \d+$/, `${file}: line ${l}`);
  } else {
    const j = JSON.parse(b.toString('utf8'));
    assert.ok(j && typeof j === 'object');
  }
}

const FORMATS = [
  ['cpu-profile?seconds=1&hz=10000&format=cpuprofile', 'cpu'],
  ['cpu-profile?seconds=1&hz=10000&format=pprof', 'cpu'],
  ['cpu-profile?seconds=1&hz=10000&format=folded', 'cpu'],
  ['heap-snapshot?format=heapsnapshot', 'heap'],
  ['heap-snapshot?format=heapprofile', 'heap'],
  ['heap-snapshot?format=pprof', 'heap'],
];

test(`SIGKILL at random points of each artifact write (${KILLS} per format): never an incomplete final file; the next start removes .partial`, async () => {
  const dir = s.tmpDir('fault-kill');
  const env = labEnv({ LAB_ARTIFACT_DIR: dir, LAB_HEAP_SAMPLE_BYTES: '64', LAB_MAX_ARTIFACTS: '1000' });
  const tally = { killedMidWrite: 0, killedBeforeOrAfter: 0, finals: 0, partialsRemoved: 0 };
  for (const [ep] of FORMATS) {
    for (let k = 0; k < KILLS; k++) {
      const srv = await s.start(env);
      // some heap to write: leak a little, keep the business endpoint busy
      await post(srv, '/api/lab/memory-leak?mb=8');
      const before = new Set(fs.readdirSync(dir));
      const req = post(srv, `/api/lab/${ep}`).catch(() => null);
      // the write begins when a .partial appears: stop the process there,
      // then let it run a random number of 1 ms steps, then kill it
      const t0 = Date.now();
      let partial = null;
      while (!partial && Date.now() - t0 < slow(8000)) {
        partial = fs.readdirSync(dir).find((n) => n.endsWith('.partial') && !before.has(n));
        if (!partial) await new Promise((r) => setImmediate(r));
      }
      try { process.kill(srv.pid, 'SIGSTOP'); } catch { /* gone */ }
      const steps = Math.floor(Math.random() * 4); // 0: killed where the .partial was seen
      for (let i = 0; i < steps; i++) {
        process.kill(srv.pid, 'SIGCONT');
        await sleep(1);
        process.kill(srv.pid, 'SIGSTOP');
      }
      const pending = fs.readdirSync(dir).some((n) => n.endsWith('.partial'));
      if (pending) tally.killedMidWrite++; else tally.killedBeforeOrAfter++;
      process.kill(srv.pid, 'SIGKILL');
      await srv.exited;
      await req;
      for (const n of fs.readdirSync(dir)) {
        if (FINAL.test(n)) {
          checkComplete(path.join(dir, n));
          tally.finals++;
        }
      }
    }
  }
  const leftovers = fs.readdirSync(dir).filter((n) => n.endsWith('.partial'));
  tally.partialsRemoved = leftovers.length;
  const again = await s.start(labEnv({ LAB_ARTIFACT_DIR: dir, LAB_MAX_ARTIFACTS: '1000' }));
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.partial')), [], 'start removes .partial files');
  await stopChecked(again);
  assert.ok(tally.killedMidWrite > 0, `some kills landed inside a write: ${JSON.stringify(tally)}`);
  console.log(`# faults: SIGKILL x ${KILLS * FORMATS.length}: ${JSON.stringify(tally)}`);
});

async function fdCount(pid) { return fs.readdirSync(`/proc/${pid}/fd`).length; }
function fdTargets(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).map((f) => {
    try { return `${f}:${fs.readlinkSync(`/proc/${pid}/fd/${f}`)}`; } catch { return `${f}:?`; }
  });
}
function rssKb(pid) { return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]); }

test('RLIMIT_FSIZE below the artifact: 507 no_space naming the limit, for every format; nothing left; the service keeps serving', async () => {
  const dir = s.tmpDir('fault-fsize');
  const srv = await s.start(labEnv({ LAB_ARTIFACT_DIR: dir }));
  execFileSync('prlimit', ['--pid', String(srv.pid), '--fsize=8:']); // the soft limit
  for (const [ep] of FORMATS) {
    const r = await post(srv, `/api/lab/${ep.replace('hz=10000', 'hz=1000')}`);
    assert.equal(r.status, 507, `${ep}: ${r.text}`);
    assert.equal(r.body.error.code, 'no_space');
    assert.match(r.body.error.message, /file size limit/);
  }
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing left behind');
  assert.equal((await request(srv.base, '/api/health')).status, 200);
  execFileSync('prlimit', ['--pid', String(srv.pid), '--fsize=unlimited:']);
  assert.equal((await post(srv, '/api/lab/heap-snapshot')).status, 200, 'writes again once the limit is raised');
  await stopChecked(srv);
});

test('a read-only directory, a missing directory, a directory that fills during the write: 500/507 with a message, nothing left, still serving', async (t) => {
  const ro = s.tmpDir('fault-ro');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', ro], { stdio: 'pipe' });
  } catch (e) {
    t.skip(`cannot mount a tmpfs: ${String(e.stderr || e.message).trim()}`);
    return;
  }
  try {
    const srv = await s.start(labEnv({ LAB_ARTIFACT_DIR: ro, LAB_HEAP_SAMPLE_BYTES: '1' }));
    execFileSync('mount', ['-o', 'remount,ro', ro]);
    const r = await post(srv, '/api/lab/heap-snapshot');
    assert.equal(r.status, 500, r.text);
    assert.match(r.body.error.message, /Read-only file system.*nothing was kept/);
    const p = await post(srv, '/api/lab/cpu-profile?seconds=1');
    assert.equal(p.status, 500, p.text);
    execFileSync('mount', ['-o', 'remount,rw', ro]);
    assert.deepEqual(fs.readdirSync(ro), []);
    // fills during the write: a 48 KiB tmpfs, a snapshot with every allocation tracked
    execFileSync('mount', ['-o', 'remount,size=48k', ro]);
    await post(srv, '/api/lab/memory-leak?mb=4');
    const big = await post(srv, '/api/lab/heap-snapshot?format=heapsnapshot');
    if (big.status === 200) {
      t.diagnostic(`the snapshot fit in 48 KiB (${big.body.bytes} bytes): no fill during the write`);
    } else {
      assert.equal(big.status, 507, big.text);
      assert.match(big.body.error.message, /full; nothing was kept/);
      assert.deepEqual(fs.readdirSync(ro), [], 'no .partial left in the full directory');
    }
    // missing: the directory removed under the service
    const gone = s.tmpDir('fault-gone');
    const srv2 = await s.start(labEnv({ LAB_ARTIFACT_DIR: gone }));
    fs.rmSync(gone, { recursive: true });
    const m = await post(srv2, '/api/lab/heap-snapshot');
    assert.equal(m.status, 500, m.text);
    assert.match(m.body.error.message, /No such file or directory; nothing was kept/);
    const l = await request(srv2.base, '/api/lab/artifacts', { token: GOOD_TOKEN });
    assert.equal(l.status, 500);
    assert.match(l.body.error.message, /cannot list the artifact directory/);
    assert.ok(!fs.existsSync(gone), 'not recreated behind the operator\'s back');
    assert.equal((await request(srv2.base, '/api/health')).status, 200);
    assert.equal((await request(srv.base, '/api/health')).status, 200);
    await stopChecked(srv);
    await stopChecked(srv2);
  } finally {
    try { execFileSync('umount', [ro], { stdio: 'ignore' }); } catch { /* gone */ }
  }
});

test(`clients that vanish mid-download (x${VANISH * 10}) and mid-profile (x${VANISH}): still serving, fds and RSS do not grow`, async () => {
  const dir = s.tmpDir('fault-vanish');
  const name = 'cpu-20260101T000000.000Z-big.cpuprofile';
  fs.writeFileSync(path.join(dir, name), Buffer.alloc(64 << 20, 0x61), { mode: 0o600 });
  const srv = await s.start(labEnv({ LAB_ARTIFACT_DIR: dir }));
  // warm up: one full download, one profile
  const full = await fetch(`${srv.base}/api/lab/artifacts/${name}`, { headers: { 'x-lab-token': GOOD_TOKEN } });
  assert.equal((await full.arrayBuffer()).byteLength, 64 << 20);
  assert.equal((await post(srv, '/api/lab/cpu-profile?seconds=1')).status, 200);
  await sleep(200);
  const fd0 = await fdCount(srv.pid);
  const start = fdTargets(srv.pid);
  const rss0 = rssKb(srv.pid);
  const vanish = (text, afterBytes, afterMs) => new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port: srv.port }, () => c.write(text));
    let got = 0;
    c.on('data', (d) => { got += d.length; if (afterBytes && got >= afterBytes) c.destroy(); });
    if (afterMs) setTimeout(() => c.destroy(), afterMs);
    c.on('close', () => resolve(got));
    c.on('error', () => {});
  });
  const head = (p, m = 'GET') => `${m} ${p} HTTP/1.1\r\nHost: x\r\nx-lab-token: ${GOOD_TOKEN}\r\n${m === 'POST' ? 'Content-Length: 0\r\n' : ''}\r\n`;
  for (let i = 0; i < VANISH * 10; i++) {
    // read somewhere between 1 byte and 8 MiB of it, then reset the connection
    await vanish(head(`/api/lab/artifacts/${name}`), 1 + Math.floor(Math.random() * (8 << 20)), 0);
  }
  for (let i = 0; i < VANISH; i++) {
    await vanish(head('/api/lab/cpu-profile?seconds=1', 'POST'), 0, 100 + Math.floor(Math.random() * 800));
    // the profile still runs and is written; the next one may find it busy for a moment
    await sleep(slow(1200));
  }
  assert.equal((await request(srv.base, '/api/health')).status, 200);
  const st = await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN });
  assert.equal(st.status, 200);
  // Connections the clients dropped close as the server notices them. Not
  // counted: module files the symbolizer opened meanwhile (its cache,
  // dropped after 60 s idle: the executable, libraries, debug files), and up
  // to 2 sockets more than at the start (this test's own keep-alive pool).
  const module = (x) => /^\d+:(\/usr\/lib\/|.*proflabd$)/.test(x);
  const sockets = (l) => l.filter((x) => /^\d+:socket:/.test(x)).length;
  const others = (l) => l.filter((x) => !module(x) && !/^\d+:socket:/.test(x)).map((x) => x.replace(/^\d+:/, '')).sort();
  const settled = () => {
    const now = fdTargets(srv.pid);
    return sockets(now) <= sockets(start) + 2 && others(now).join() === others(start).join();
  };
  await eventually(settled, slow(5000), 100);
  const fd1 = await fdCount(srv.pid);
  const rss1 = rssKb(srv.pid);
  const now = fdTargets(srv.pid);
  assert.ok(settled(), `open fds grew: ${start.length} -> ${now.length}: new ${now.filter((x) => !start.includes(x)).join(' ')} (at the start: ${start.join(' ')})`);
  // Coarse: ~21 MiB of growth was seen about once in four runs on a loaded
  // machine, with and without the download path's 512 KiB blocks, and not
  // in 20-download runs without profiles (suspected: the symbolizer's
  // caches, which grow when samples land in modules the warm-up's did
  // not). A block leaked per vanished client is LeakSanitizer's to find
  // (the ASan pass).
  if (!SANITIZED) assert.ok(rss1 - rss0 < 48 * 1024, `RSS grew by ${rss1 - rss0} KiB`);
  console.log(`# faults: vanishing clients: fds ${fd0} -> ${fd1}, RSS ${rss0} -> ${rss1} KiB`);
  await stopChecked(srv);
});

test('SIGTERM under load (downloads, jams, profiles, health in flight): exit 0 (drain bound 5 s)', async () => {
  const dir = s.tmpDir('fault-term');
  const name = 'cpu-20260101T000000.000Z-big.cpuprofile';
  fs.writeFileSync(path.join(dir, name), Buffer.alloc(16 << 20, 0x62), { mode: 0o600 });
  const srv = await s.start(labEnv({ LAB_ARTIFACT_DIR: dir, PROFLAB_DRAIN_TIMEOUT_MS: '5000' }));
  const load = [];
  const opt = { token: GOOD_TOKEN, timeoutMs: slow(20000) };
  for (let i = 0; i < 20; i++) load.push(request(srv.base, '/api/health', { timeoutMs: slow(20000) }).catch((e) => e));
  for (let i = 0; i < 4; i++) load.push(request(srv.base, `/api/lab/artifacts/${name}`, opt).catch((e) => e));
  load.push(request(srv.base, '/api/lab/event-loop-jam?ms=300', { ...opt, method: 'POST' }).catch((e) => e));
  load.push(request(srv.base, '/api/lab/cpu-profile?seconds=2', { ...opt, method: 'POST' }).catch((e) => e));
  load.push(request(srv.base, '/api/lab/heap-snapshot', { ...opt, method: 'POST' }).catch((e) => e));
  await sleep(100);
  const t0 = Date.now();
  const { code, signal } = await srv.stop('SIGTERM', slow(20000));
  const ms = Date.now() - t0;
  const why = `after ${ms} ms\nstdout (tail):\n${srv.stdout.slice(-3000)}\nstderr:\n${srv.stderr}`;
  assert.doesNotMatch(srv.stderr, /(AddressSanitizer|LeakSanitizer|runtime error:)/, why);
  assert.equal(signal, null, `killed by ${signal} ${why}`);
  assert.equal(code, 0, `exit ${code} ${why}`);
  const done = await Promise.all(load);
  const statuses = done.map((r) => (r instanceof Error ? 'error' : r.status));
  // what was in flight was answered (or refused 503); nothing hangs
  assert.ok(statuses.every((x) => [200, 503, 'error'].includes(x)), JSON.stringify(statuses));
  assert.ok(statuses.filter((x) => x === 200).length >= 1, JSON.stringify(statuses));
});
