// GET /api/lab/artifacts (listing with SHA-256s, cached) and
// GET|HEAD /api/lab/artifacts/<name> (download with Range, If-Range, ETag):
// byte-exact downloads, range edge cases, a traversal corpus that must read
// nothing outside the directory, the token, the lab off, and a 256 MiB
// download that must not block the event loop.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  startProflabd, stopChecked, request, assertError, labEnv, GOOD_TOKEN, slow, rawExchange, httpText,
  parseResponses, sleep,
} from './helpers.mjs';

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const dirs = [];
const servers = [];
let srv;
let dir;
let outside;
const SECRET = `outside-secret-${crypto.randomBytes(8).toString('hex')}`;
const A = 'cpu-20260101T000000.000Z-artifacts-test.cpuprofile';
const B = 'heapdump-20260101T000001.000Z-artifacts-test.heapsnapshot';
const EMPTY = 'cpu-20260101T000002.000Z-artifacts-test.folded';
const bodyA = crypto.randomBytes(100000);
const bodyB = Buffer.from('{"snapshot":{}}\n');

function tmpDir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `pl-${tag}-`));
  dirs.push(d);
  return d;
}

before(async () => {
  dir = tmpDir('art');
  outside = tmpDir('outside');
  fs.writeFileSync(path.join(outside, 'secret.txt'), SECRET);
  fs.writeFileSync(path.join(dir, A), bodyA, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, B), bodyB, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, EMPTY), '', { mode: 0o600 });
  // traps: valid artifact names that are not regular files of the directory
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(dir, 'cpu-20260101T000003.000Z-link.cpuprofile'));
  fs.linkSync(path.join(outside, 'secret.txt'), path.join(dir, 'cpu-20260101T000004.000Z-hardlink.cpuprofile'));
  execFileSync('mkfifo', [path.join(dir, 'cpu-20260101T000005.000Z-fifo.cpuprofile')]);
  fs.mkdirSync(path.join(dir, 'cpu-20260101T000006.000Z-dir.cpuprofile'));
  fs.writeFileSync(path.join(dir, 'README.txt'), SECRET);
  fs.writeFileSync(path.join(dir, `${A}.partial`), SECRET);
  srv = await startProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: dir, LAB_TASK_ID: 'artifacts-test' }) });
  servers.push(srv);
});
after(async () => {
  for (const s of servers) await stopChecked(s);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const get = (p, headers = {}, method = 'GET') => request(srv.base, p, { token: GOOD_TOKEN, headers, method });
/** fetch keeping the body as bytes. */
async function getBytes(p, headers = {}, method = 'GET') {
  const res = await fetch(srv.base + p, { method, headers: { 'x-lab-token': GOOD_TOKEN, ...headers },
    signal: AbortSignal.timeout(slow(20000)) });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}
/** A raw request line (no client-side path normalization); the one answer. */
async function raw(target, headers = { 'x-lab-token': GOOD_TOKEN }) {
  const buf = await rawExchange(srv.port, httpText('GET', target, { Connection: 'close', ...headers }));
  const { responses } = parseResponses(buf, true);
  assert.equal(responses.length, 1, `one answer to GET ${target}`);
  return responses[0];
}

test('listing: name, bytes, sha256, created, kind and task of the artifacts only (no traps, no other files)', async () => {
  const r = await get('/api/lab/artifacts');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-lab-task'), 'artifacts-test');
  assert.equal(r.body.task, 'artifacts-test');
  const names = r.body.artifacts.map((a) => a.name).sort();
  assert.deepEqual(names, [A, B, EMPTY].sort(), `listed: ${names.join(', ')}`);
  const byName = Object.fromEntries(r.body.artifacts.map((a) => [a.name, a]));
  assert.equal(byName[A].bytes, bodyA.length);
  assert.equal(byName[A].sha256, sha256(bodyA));
  assert.equal(byName[B].sha256, sha256(bodyB));
  assert.equal(byName[EMPTY].sha256, sha256(Buffer.alloc(0)));
  assert.equal(byName[A].kind, 'cpu');
  assert.equal(byName[B].kind, 'heap');
  assert.equal(byName[A].task, 'artifacts-test');
  assert.match(byName[A].created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(!r.text.includes(SECRET));
});

test('listing twice: the second reads no file (hashes cached by name, size and mtime); a changed file is hashed again', async () => {
  await get('/api/lab/artifacts');
  const before = srv.lines.filter((l) => l.event === 'request' && l.action === 'artifacts').length;
  const r = await get('/api/lab/artifacts');
  assert.equal(r.status, 200);
  const line = await srv.waitForLine((l) => l.event === 'request' && l.action === 'artifacts' &&
    srv.lines.filter((x) => x.event === 'request' && x.action === 'artifacts').indexOf(l) >= before, slow(5000));
  assert.equal(line.hashed, 0, JSON.stringify(line));
  const p = path.join(dir, B);
  const newer = Buffer.from('{"snapshot":{"changed":true}}\n');
  fs.writeFileSync(p, newer);
  const t = new Date(Date.now() + 5000);
  fs.utimesSync(p, t, t);
  const r2 = await get('/api/lab/artifacts');
  const b = r2.body.artifacts.find((a) => a.name === B);
  assert.equal(b.sha256, sha256(newer), 'the changed file has its new hash');
  fs.writeFileSync(p, bodyB);
  const t2 = new Date(Date.now() + 10000);
  fs.utimesSync(p, t2, t2);
});

test('full download: byte-exact, octet-stream, attachment, Accept-Ranges, strong ETag, Content-Length', async () => {
  const r = await getBytes(`/api/lab/artifacts/${A}`);
  assert.equal(r.status, 200);
  assert.ok(r.body.equals(bodyA), 'same bytes');
  assert.equal(r.headers.get('content-type'), 'application/octet-stream');
  assert.equal(r.headers.get('content-disposition'), `attachment; filename="${A}"`);
  assert.equal(r.headers.get('accept-ranges'), 'bytes');
  assert.equal(r.headers.get('content-length'), String(bodyA.length));
  assert.equal(r.headers.get('x-lab-task'), 'artifacts-test');
  assert.match(r.headers.get('etag'), /^"[^"]+"$/, 'a strong ETag');
  assert.ok(r.headers.get('last-modified'));
  const again = await getBytes(`/api/lab/artifacts/${A}`);
  assert.equal(again.headers.get('etag'), r.headers.get('etag'), 'stable ETag');
  const e = await getBytes(`/api/lab/artifacts/${EMPTY}`);
  assert.equal(e.status, 200);
  assert.equal(e.body.length, 0);
});

test('HEAD: the same head, no body', async () => {
  const res = await fetch(`${srv.base}/api/lab/artifacts/${A}`, { method: 'HEAD', headers: { 'x-lab-token': GOOD_TOKEN } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-length'), String(bodyA.length));
  assert.equal(res.headers.get('accept-ranges'), 'bytes');
  assert.equal((await res.arrayBuffer()).byteLength, 0);
  const h = await raw(`/api/lab/artifacts/${A}`, { 'x-lab-token': GOOD_TOKEN });
  assert.equal(h.status, 200);
});

test('ranges: start-, -suffix, start-end, end clamped, past end -> 416 with bytes */size', async () => {
  const n = bodyA.length;
  const cases = [
    ['bytes=1000-', 1000, n - 1],
    ['bytes=-100', n - 100, n - 1],
    ['bytes=10-19', 10, 19],
    ['bytes=0-0', 0, 0],
    [`bytes=${n - 5}-${n + 1000}`, n - 5, n - 1],
    [`bytes=-${n + 50}`, 0, n - 1],
  ];
  for (const [range, s, e] of cases) {
    const r = await getBytes(`/api/lab/artifacts/${A}`, { Range: range });
    assert.equal(r.status, 206, range);
    assert.equal(r.headers.get('content-range'), `bytes ${s}-${e}/${n}`, range);
    assert.equal(r.headers.get('content-length'), String(e - s + 1), range);
    assert.ok(r.body.equals(bodyA.subarray(s, e + 1)), `${range}: the right bytes`);
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
  }
  for (const range of [`bytes=${n}-`, `bytes=${n + 10}-${n + 20}`, 'bytes=-0']) {
    const r = await get(`/api/lab/artifacts/${A}`, { Range: range });
    assertError(r, 416, 'range_not_satisfiable', range);
    assert.equal(r.headers.get('content-range'), `bytes */${n}`, range);
  }
  const e = await get(`/api/lab/artifacts/${EMPTY}`, { Range: 'bytes=0-' });
  assertError(e, 416, 'range_not_satisfiable', 'empty file');
  assert.equal(e.headers.get('content-range'), 'bytes */0');
});

test('ranges: several ranges or a malformed Range get the whole file (200)', async () => {
  for (const range of ['bytes=0-1,5-6', 'bytes=abc', 'items=0-5', 'bytes=9-3', 'bytes=-', 'bytes=1-2 x']) {
    const r = await getBytes(`/api/lab/artifacts/${A}`, { Range: range });
    assert.equal(r.status, 200, range);
    assert.equal(r.headers.get('content-range'), null, range);
    assert.ok(r.body.equals(bodyA), `${range}: whole file`);
  }
});

test('If-Range: the current ETag keeps the range (206); a stale or weak one gets the full 200', async () => {
  const etag = (await getBytes(`/api/lab/artifacts/${A}`, {}, 'HEAD')).headers.get('etag');
  const ok = await getBytes(`/api/lab/artifacts/${A}`, { Range: 'bytes=50-', 'If-Range': etag });
  assert.equal(ok.status, 206);
  assert.ok(ok.body.equals(bodyA.subarray(50)));
  for (const stale of ['"0-0-0"', `W/${etag}`, 'Thu, 01 Jan 1970 00:00:00 GMT']) {
    const r = await getBytes(`/api/lab/artifacts/${A}`, { Range: 'bytes=50-', 'If-Range': stale });
    assert.equal(r.status, 200, stale);
    assert.ok(r.body.equals(bodyA), `${stale}: whole file`);
  }
  const lm = (await getBytes(`/api/lab/artifacts/${A}`, {}, 'HEAD')).headers.get('last-modified');
  const byDate = await getBytes(`/api/lab/artifacts/${A}`, { Range: 'bytes=50-', 'If-Range': lm });
  assert.equal(byDate.status, 206, 'If-Range with the Last-Modified date');
});

test('bad names: traversal, encodings, absolute, non-artifacts, overlong -> 400 bad_name; nothing outside read', async () => {
  const targets = [
    '/api/lab/artifacts/../x',
    '/api/lab/artifacts/..%2f..%2fetc%2fpasswd',
    '/api/lab/artifacts/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '/api/lab/artifacts/%252e%252e%252fsecret.txt',
    `/api/lab/artifacts/..%2f${path.basename(outside)}%2fsecret.txt`,
    '/api/lab/artifacts//etc/passwd',
    `/api/lab/artifacts/${encodeURIComponent(path.join(outside, 'secret.txt'))}`,
    `/api/lab/artifacts/${A}/..`,
    `/api/lab/artifacts/${A}%2f..%2fREADME.txt`,
    '/api/lab/artifacts/README.txt',
    `/api/lab/artifacts/${A}.partial`,
    `/api/lab/artifacts/cpu-20260101T000000.000Z-${'x'.repeat(300)}.cpuprofile`,
    '/api/lab/artifacts/cpu-20260101T000000.000Z-a.b.cpuprofile',
    '/api/lab/artifacts/cpu-20260101T000000.000Z-..cpuprofile',
    '/api/lab/artifacts/%00',
    `/api/lab/artifacts/x%00${A}`,
    '/api/lab/artifacts/',
  ];
  for (const t of targets) {
    const r = await raw(t);
    const text = r.body.toString();
    assert.ok(!text.includes(SECRET), `${t}: the secret leaked`);
    assert.ok(!text.includes('root:'), `${t}: /etc/passwd leaked`);
    assert.equal(r.status, 400, `${t}: ${r.status} ${text}`);
    assert.match(r.get('content-type'), /^application\/json/, t);
    // a %00 is refused before routing (it would cut the decoded name short)
    assert.equal(JSON.parse(text).error.code, t.includes('%00') ? 'bad_request' : 'bad_name', t);
  }
});

test('valid names that are not regular files of the directory: symlink, hard link, FIFO, directory, missing -> 404 JSON', async () => {
  for (const name of ['cpu-20260101T000003.000Z-link.cpuprofile', 'cpu-20260101T000004.000Z-hardlink.cpuprofile',
    'cpu-20260101T000005.000Z-fifo.cpuprofile', 'cpu-20260101T000006.000Z-dir.cpuprofile',
    'cpu-20260101T000007.000Z-missing.cpuprofile']) {
    const r = await get(`/api/lab/artifacts/${name}`);
    assertError(r, 404, 'not_found', name);
    assert.ok(!r.text.includes(SECRET), `${name}: the secret leaked`);
    assert.equal(r.headers.get('x-lab-task'), 'artifacts-test');
  }
});

test('token: missing or wrong -> 401 for the list and a download; nothing sent', async () => {
  for (const p of ['/api/lab/artifacts', `/api/lab/artifacts/${A}`]) {
    const none = await request(srv.base, p);
    assertError(none, 401, 'unauthorized', `${p} without token`);
    const wrong = await request(srv.base, p, { token: 'wrong-token-wrong-token-wrong' });
    assertError(wrong, 401, 'unauthorized', `${p} wrong token`);
  }
  for (const t of [`/api/lab/artifacts/${A}`, '/api/lab/artifacts/../x', '/api/lab/artifacts/%2e%2e%2fx']) {
    const r = await raw(t, {});
    assert.equal(r.status, 401, `${t}: the token is checked before the name`);
    assert.equal(JSON.parse(r.body.toString()).error.code, 'unauthorized');
  }
});

test('methods: POST to the download and list routes -> 405 with Allow', async () => {
  const r = await get(`/api/lab/artifacts/${A}`, {}, 'POST');
  assertError(r, 405, 'method_not_allowed', 'POST download');
  assert.match(r.headers.get('allow'), /GET/);
  const l = await get('/api/lab/artifacts', {}, 'POST');
  assertError(l, 405, 'method_not_allowed', 'POST list');
});

test('lab off: the artifact paths answer exactly like an unknown path', async () => {
  const offDir = tmpDir('off');
  fs.writeFileSync(path.join(offDir, A), bodyA);
  const off = await startProflabd({ env: { LAB_TASK_ID: 'off', LAB_ARTIFACT_DIR: offDir, LAB_TOKEN: GOOD_TOKEN } });
  servers.push(off);
  const strip = (b) => b.toString('latin1').replace(/^Date: [^\r\n]*\r\n/im, '');
  const ref = strip(await rawExchange(off.port, httpText('GET', '/api/nope', { Connection: 'close' })));
  for (const p of ['/api/lab/artifacts', `/api/lab/artifacts/${A}`]) {
    const got = strip(await rawExchange(off.port, httpText('GET', p, { Connection: 'close', 'x-lab-token': GOOD_TOKEN })));
    assert.equal(got, ref, p);
  }
});

test('a 256 MiB download does not block the event loop: /api/health answers during it, the bytes arrive intact', async () => {
  const big = 'cpu-20260101T000010.000Z-artifacts-test.folded';
  const p = path.join(dir, big);
  const chunk = crypto.randomBytes(1 << 20);
  const fd = fs.openSync(p, 'w', 0o600);
  const want = crypto.createHash('sha256');
  for (let i = 0; i < 256; i++) {
    chunk.writeUInt32LE(i, 0);
    fs.writeSync(fd, chunk);
    want.update(chunk);
  }
  fs.closeSync(fd);
  const wantHex = want.digest('hex');

  // The listing hashes 256 MiB in the thread pool; health answers meanwhile.
  const listing = get('/api/lab/artifacts');
  const hl = await request(srv.base, '/api/health');
  assert.equal(hl.status, 200);
  const lr = await listing;
  assert.equal(lr.body.artifacts.find((a) => a.name === big).sha256, wantHex);

  // A client that stops reading: the server's socket buffer fills.
  const agent = new http.Agent({ keepAlive: false });
  let received = 0;
  const h = crypto.createHash('sha256');
  let res;
  const done = new Promise((resolve, reject) => {
    const req = http.get(`${srv.base}/api/lab/artifacts/${big}`, { agent, headers: { 'x-lab-token': GOOD_TOKEN } }, (r) => {
      res = r;
      r.on('data', (d) => { received += d.length; h.update(d); });
      r.on('end', resolve);
      r.on('error', reject);
      r.pause();
    });
    req.on('error', reject);
  });
  await sleep(200);
  const stalled = [];
  for (let i = 0; i < 5; i++) {
    const r = await request(srv.base, '/api/health', { timeoutMs: slow(5000) });
    assert.equal(r.status, 200);
    stalled.push(r.ms);
  }
  // Now read at full speed and ask for health while the bytes flow.
  res.resume();
  const during = [];
  while (received < 200 * (1 << 20)) {
    const r = await request(srv.base, '/api/health', { timeoutMs: slow(5000) });
    assert.equal(r.status, 200);
    during.push({ ms: r.ms, at: received });
    if (during.length > 2000) break;
  }
  await done;
  assert.equal(received, 256 << 20);
  assert.equal(h.digest('hex'), wantHex, 'byte-exact');
  const worst = Math.max(...stalled, ...during.map((d) => d.ms));
  // generous: a blocked loop would hold health for the whole transfer
  assert.ok(worst < slow(1500), `health answered in at most ${worst.toFixed(1)} ms (stalled: ${stalled.map((x) => x.toFixed(1)).join(', ')})`);
  fs.unlinkSync(p);
});
