// Every endpoint's success answer and its fields, the contract's common
// headers (content-type, x-lab-task), and 405 answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startProflabd, stopChecked, request, assertError, labEnv, GOOD_TOKEN, crc32, rawExchange, httpText,
  parseResponses, slow,
} from './helpers.mjs';

const MiB = 1024 * 1024;
let srv;
let spawnedAt;

before(async () => {
  spawnedAt = Date.now();
  srv = await startProflabd({ env: labEnv({ LAB_MAX_LEAK_MB: 300, LAB_MAX_JAM_MS: 2000, LAB_MAX_PROFILE_SECONDS: 7 }) });
});
after(async () => { await stopChecked(srv); });

/** Request and check the headers every answer carries. */
async function call(path, opts = {}) {
  const res = await request(srv.base, path, opts);
  assert.match(res.headers.get('content-type') || '', /^application\/json/, `${path}: content-type`);
  assert.equal(res.headers.get('x-lab-task'), srv.task, `${path}: x-lab-task`);
  return res;
}

// The JS twin of programs/proflabd/business.c: same xorshift, same JSON.
function workRecords(n, seed) {
  let x = seed >>> 0 || 2463534242;
  const recs = [];
  for (let i = 0; i < n; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    recs.push({ id: i, name: `item-${x.toString(16).padStart(8, '0')}`, score: x % 100000 });
  }
  return recs;
}

test('GET /api/health -> 200 {"status":"ok"} with content-type and x-lab-task', async () => {
  const res = await call('/api/health');
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { status: 'ok' });
  assert.equal(res.headers.get('content-type'), 'application/json');
  assert.equal(res.headers.get('x-lab-task'), srv.task);
  assert.equal(srv.listening.task, srv.task, 'log lines name the task');
});

test('GET /api/work?n=100 -> n, bytes, sha256 and top[3] matching the same computation in JS', async () => {
  const res = await call('/api/work?n=100');
  assert.equal(res.status, 200);
  const b = res.body;
  assert.deepEqual(Object.keys(b).sort(), ['bytes', 'n', 'sha256', 'top']);
  assert.equal(b.n, 100);
  assert.match(b.sha256, /^[0-9a-f]{64}$/);
  assert.equal(b.top.length, 3);
  const recs = workRecords(100, 1);
  const ser = JSON.stringify(recs);
  assert.equal(b.bytes, Buffer.byteLength(ser), 'bytes = length of the serialized records');
  assert.equal(b.sha256, crypto.createHash('sha256').update(ser).digest('hex'));
  const top = [...recs].sort((p, q) => q.score - p.score || p.id - q.id).slice(0, 3);
  assert.deepEqual(b.top, top);
  for (let i = 1; i < 3; i++) assert.ok(b.top[i - 1].score >= b.top[i].score, 'top is sorted by score');
});

test('GET /api/work: default n and another seed', async () => {
  const d = await call('/api/work');
  assert.equal(d.status, 200);
  assert.equal(d.body.n, 1000);
  const s = await call('/api/work?n=10&seed=42');
  assert.equal(s.status, 200);
  assert.equal(s.body.sha256, crypto.createHash('sha256').update(JSON.stringify(workRecords(10, 42))).digest('hex'));
});

test('GET /api/primes?limit=100 -> count 25, largest 97', async () => {
  const res = await call('/api/primes?limit=100');
  assert.equal(res.status, 200);
  assert.equal(res.body.count, 25);
  assert.equal(res.body.largest, 97);
  assert.equal(res.body.limit, 100);
  const r2 = await call('/api/primes?limit=2');
  assert.equal(r2.body.count, 1);
  assert.equal(r2.body.largest, 2);
});

test('POST /api/checksum -> bytes, sha256 and crc32 of the body', async () => {
  const body = crypto.randomBytes(70000);
  const res = await call('/api/checksum', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(res.status, 200);
  assert.equal(res.body.bytes, body.length);
  assert.equal(res.body.sha256, crypto.createHash('sha256').update(body).digest('hex'));
  assert.equal(res.body.crc32, crc32(body));
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'the JS crc32 is the standard one');
});

test('POST /api/checksum with an empty body and a text body', async () => {
  const e = await call('/api/checksum', { method: 'POST', body: '' });
  assert.equal(e.status, 200);
  assert.equal(e.body.bytes, 0);
  assert.equal(e.body.sha256, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(e.body.crc32, 0);
  const t = await call('/api/checksum', { method: 'POST', body: 'The quick brown fox jumps over the lazy dog' });
  assert.equal(t.body.crc32, 0x414fa339);
  assert.equal(t.body.sha256, 'd7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592');
});

test('POST /api/checksum with a body over the 1 MiB limit -> 413 JSON error (DESIGN: 413 bound exceeded)', async () => {
  const body = 'x'.repeat(MiB + 1);
  // raw, so that an answer sent before the whole body is read is still seen
  const raw = await rawExchange(srv.port, httpText('POST', '/api/checksum', { Connection: 'close' }, body));
  const { responses } = parseResponses(raw, true);
  assert.equal(responses.length, 1, `expected one answer, got ${JSON.stringify(raw.toString('latin1').slice(0, 300))}`);
  const r = responses[0];
  assert.equal(r.status, 413);
  assert.match(r.get('content-type') || '', /^application\/json/);
  assert.equal(r.get('x-lab-task'), srv.task);
  assert.equal(JSON.parse(r.body.toString()).error.code, 'payload_too_large');
  const h = await call('/api/health');
  assert.equal(h.status, 200, 'still serving');
});

test('POST with a declared body far over the bound -> 413 before any body byte is sent', async () => {
  // 1 GiB declared, nothing sent: waiting for the body would hang until the idle timeout
  const head = 'POST /api/checksum HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1073741824\r\n\r\n';
  const raw = await rawExchange(srv.port, head, slow(5000));
  const { responses } = parseResponses(raw, true);
  assert.equal(responses.length, 1, `expected one answer, got ${JSON.stringify(raw.toString('latin1').slice(0, 300))}`);
  assert.equal(responses[0].status, 413);
  assert.equal(JSON.parse(responses[0].body.toString()).error.code, 'payload_too_large');
});

test('GET /api/lab/status -> every documented field', async () => {
  const res = await call('/api/lab/status', { token: GOOD_TOKEN });
  assert.equal(res.status, 200);
  const b = res.body;
  assert.equal(b.task, srv.task);
  assert.equal(b.pid, srv.pid, 'pid is the child process');
  assert.equal(typeof b.uptime_seconds, 'number');
  assert.ok(b.uptime_seconds >= 0 && b.uptime_seconds < 120, `uptime ${b.uptime_seconds}`);
  assert.match(b.started_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const started = Date.parse(b.started_at);
  assert.ok(Math.abs(started - spawnedAt) < 30000, `started_at ${b.started_at} is near the spawn time`);
  assert.equal(typeof b.version, 'string');
  assert.match(b.version, /^\d+\.\d+\.\d+/);
  assert.equal(b.version, srv.listening.version);

  assert.equal(b.lab.enabled, true);
  assert.equal(b.lab.production, false);
  assert.deepEqual(b.lab.limits, { max_leak_mb: 300, max_profile_seconds: 7, max_jam_ms: 2000 });

  assert.equal(typeof b.memory.rss_bytes, 'number');
  assert.ok(b.memory.rss_bytes > MiB, `rss ${b.memory.rss_bytes}`);
  assert.equal(b.memory.leak_bytes, 0);

  const lag = b.event_loop.lag_ms;
  for (const k of ['p50', 'p90', 'p99', 'max', 'mean', 'count']) {
    assert.equal(typeof lag[k], 'number', `event_loop.lag_ms.${k}`);
    assert.ok(lag[k] >= 0, `event_loop.lag_ms.${k} = ${lag[k]}`);
  }
  assert.ok(lag.p50 <= lag.p90 && lag.p90 <= lag.p99 && lag.p99 <= lag.max, JSON.stringify(lag));
  assert.ok(Number.isInteger(lag.count));
  const u = b.event_loop.utilization;
  assert.equal(typeof u, 'number');
  assert.ok(u >= 0 && u <= 1, `utilization ${u}`);
  assert.equal(typeof b.http.connections, 'number');
  assert.ok(b.http.connections >= 1, 'our own connection is open');
});

test('status: uptime grows and the lag histogram keeps counting', async () => {
  const a = (await call('/api/lab/status', { token: GOOD_TOKEN })).body;
  await new Promise((r) => setTimeout(r, 150));
  const b = (await call('/api/lab/status', { token: GOOD_TOKEN })).body;
  assert.ok(b.uptime_seconds > a.uptime_seconds);
  assert.ok(b.event_loop.lag_ms.count > a.event_loop.lag_ms.count, 'the 10 ms lag timer ticks while idle');
});

test('POST memory-leak?mb=N -> allocated_bytes, retained_bytes, rss_bytes; memory-clear -> freed_bytes', async () => {
  const l1 = await call('/api/lab/memory-leak?mb=3', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(l1.status, 200);
  assert.equal(l1.body.allocated_bytes, 3 * MiB);
  assert.equal(l1.body.retained_bytes, 3 * MiB);
  assert.equal(typeof l1.body.rss_bytes, 'number');
  assert.ok(l1.body.rss_bytes >= 3 * MiB, `rss ${l1.body.rss_bytes}`);
  assert.equal(l1.body.task, srv.task);

  const l2 = await call('/api/lab/memory-leak?mb=2', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(l2.status, 200);
  assert.equal(l2.body.allocated_bytes, 2 * MiB);
  assert.equal(l2.body.retained_bytes, 5 * MiB, 'leaks add up');

  const s = await call('/api/lab/status', { token: GOOD_TOKEN });
  assert.equal(s.body.memory.leak_bytes, 5 * MiB);

  const c = await call('/api/lab/memory-clear', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(c.status, 200);
  assert.equal(c.body.freed_bytes, 5 * MiB);
  assert.equal(c.body.retained_bytes, 0);

  const c2 = await call('/api/lab/memory-clear', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(c2.status, 200);
  assert.equal(c2.body.freed_bytes, 0, 'clearing twice frees nothing the second time');

  const s2 = await call('/api/lab/status', { token: GOOD_TOKEN });
  assert.equal(s2.body.memory.leak_bytes, 0);
});

test('POST event-loop-jam?ms=N -> jammed_ms >= N and lag_ms', async () => {
  const j = await call('/api/lab/event-loop-jam?ms=60', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(j.status, 200);
  assert.equal(typeof j.body.jammed_ms, 'number');
  assert.ok(j.body.jammed_ms >= 60, `jammed_ms ${j.body.jammed_ms}`);
  assert.equal(typeof j.body.lag_ms, 'number');
  // the loop timer (10 ms resolution) last ran before the jam started
  assert.ok(j.body.lag_ms >= 40, `lag_ms ${j.body.lag_ms} after a 60 ms jam`);
  assert.ok(j.ms >= 60, `the answer took ${j.ms} ms`);
  const s = await call('/api/lab/status', { token: GOOD_TOKEN });
  assert.ok(s.body.event_loop.lag_ms.max >= 40, `status lag max ${s.body.event_loop.lag_ms.max}`);
});

test('405: GET on POST lab endpoints, POST on GET endpoints -> Allow header and JSON error', async () => {
  for (const p of ['/api/lab/memory-leak?mb=1', '/api/lab/memory-clear', '/api/lab/event-loop-jam?ms=1']) {
    const res = await call(p, { token: GOOD_TOKEN });
    assertError(res, 405, 'method_not_allowed', `GET ${p}`);
    assert.equal(res.headers.get('allow'), 'POST', `GET ${p}: Allow`);
  }
  for (const p of ['/api/health', '/api/lab/status', '/api/work', '/metrics']) {
    const res = await request(srv.base, p, { method: 'POST', token: GOOD_TOKEN, body: '' });
    assertError(res, 405, 'method_not_allowed', `POST ${p}`);
    assert.equal(res.headers.get('x-lab-task'), srv.task);
    const allow = (res.headers.get('allow') || '').split(/,\s*/);
    assert.ok(allow.includes('GET'), `POST ${p}: Allow ${res.headers.get('allow')}`);
    assert.ok(!allow.includes('POST'), `POST ${p}: Allow ${res.headers.get('allow')}`);
  }
  const d = await call('/api/health', { method: 'DELETE' });
  assertError(d, 405, 'method_not_allowed', 'DELETE /api/health');
  assert.match(d.body.error.message, /DELETE/);
  const g = await call('/api/checksum');
  assertError(g, 405, 'method_not_allowed', 'GET /api/checksum');
  assert.equal(g.headers.get('allow'), 'POST');
});

test('unknown path -> 404 JSON error', async () => {
  const res = await call('/api/nope');
  assertError(res, 404, 'not_found', '/api/nope');
});
