// Structured logs: stdout is JSON lines; one "request" line per request with
// method, path, status, ms; lab actions add "action".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProflabd, stopChecked, request, labEnv, GOOD_TOKEN, eventually, RawConn, httpText } from './helpers.mjs';

let srv;
before(async () => { srv = await startProflabd({ env: labEnv() }); });
after(async () => { await stopChecked(srv); });

const requestLines = () => srv.lines.filter((l) => l.event === 'request');

test('every stdout line is a JSON object with ts, level, event and task', async () => {
  await request(srv.base, '/api/health');
  await eventually(() => requestLines().length >= 1);
  const raw = srv.stdout.split('\n').filter(Boolean);
  assert.ok(raw.length >= 2);
  for (const line of raw) {
    const o = JSON.parse(line); // throws on a non-JSON line
    assert.equal(typeof o, 'object');
    assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, line);
    assert.match(o.level, /^(debug|info|warn|error|fatal)$/, line);
    assert.equal(typeof o.event, 'string', line);
    assert.equal(o.task, srv.task, line);
  }
  assert.equal(srv.listening.pid, srv.pid);
  assert.equal(srv.listening.lab, true);
});

test('N requests -> N request lines, in order, with method, path (no query), status and ms', async () => {
  const before = requestLines().length;
  const sent = [
    ['GET', '/api/health', 200],
    ['GET', '/api/work?n=10', 200],
    ['GET', '/api/primes?limit=50', 200],
    ['POST', '/api/checksum', 200],
    ['GET', '/api/nope', 404],
    ['POST', '/api/health', 405],
    ['GET', '/api/work?n=zero', 400],
    ['GET', '/api/lab/status', 401],
    ['GET', '/metrics', 200],
  ];
  for (const [method, path, status] of sent) {
    const res = await request(srv.base, path, { method, body: method === 'POST' ? 'abc' : undefined });
    assert.equal(res.status, status, `${method} ${path}`);
  }
  const ok = await eventually(() => requestLines().length >= before + sent.length);
  assert.ok(ok, `expected ${sent.length} new request lines, have ${requestLines().length - before}`);
  await new Promise((r) => setTimeout(r, 50));
  const got = requestLines().slice(before);
  assert.equal(got.length, sent.length, 'exactly one line per request');
  got.forEach((l, i) => {
    const [method, path, status] = sent[i];
    assert.equal(l.method, method, JSON.stringify(l));
    assert.equal(l.path, path.split('?')[0], JSON.stringify(l));
    assert.equal(l.status, status, JSON.stringify(l));
    assert.equal(typeof l.ms, 'number');
    assert.ok(l.ms >= 0 && l.ms < 5000, JSON.stringify(l));
    assert.equal(l.remote, '127.0.0.1');
    assert.equal(l.level, 'info');
    assert.equal(l.action, undefined, 'no action on non-lab requests');
  });
});

test('pipelined requests on one connection are logged one line each', async () => {
  const before = requestLines().length;
  const c = new RawConn(srv.port);
  await c.connect();
  await c.write(httpText('GET', '/api/health') + httpText('GET', '/api/primes?limit=10') + httpText('GET', '/api/health'));
  for (let i = 0; i < 3; i++) await c.read();
  c.destroy();
  assert.ok(await eventually(() => requestLines().length >= before + 3));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(requestLines().slice(before).map((l) => l.path), ['/api/health', '/api/primes', '/api/health']);
});

test('lab actions add "action" and their figures to the request line', async () => {
  const before = requestLines().length;
  const l = await request(srv.base, '/api/lab/memory-leak?mb=2', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(l.status, 200);
  const c = await request(srv.base, '/api/lab/memory-clear', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(c.status, 200);
  const j = await request(srv.base, '/api/lab/event-loop-jam?ms=20', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(j.status, 200);
  const s = await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN });
  assert.equal(s.status, 200);
  assert.ok(await eventually(() => requestLines().length >= before + 4));
  const [leak, clear, jam, status] = requestLines().slice(before);
  assert.equal(leak.path, '/api/lab/memory-leak');
  assert.equal(leak.action, 'memory-leak');
  assert.equal(leak.mb, 2);
  assert.equal(leak.status, 200);
  assert.equal(clear.action, 'memory-clear');
  assert.equal(clear.freed_bytes, 2 * 1024 * 1024);
  assert.equal(jam.action, 'event-loop-jam');
  assert.equal(jam.requested_ms, 20);
  assert.ok(jam.jammed_ms >= 20);
  assert.ok(jam.ms >= 20, 'the jam request took at least the jam');
  assert.equal(status.path, '/api/lab/status');
  assert.equal(status.action, undefined, 'a read is not an action');
  assert.ok(srv.lines.some((x) => x.event === 'lab_jam_start' && x.ms === 20), 'jam start is logged');
});

test('rejected lab actions are logged without the action and without the token', async () => {
  const before = requestLines().length;
  const r = await request(srv.base, '/api/lab/memory-leak?mb=1', { method: 'POST', token: 'not-the-token-not-the-token' });
  assert.equal(r.status, 401);
  const bad = await request(srv.base, '/api/lab/memory-leak?mb=abc', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(bad.status, 400);
  assert.ok(await eventually(() => requestLines().length >= before + 2));
  const [a, b] = requestLines().slice(before);
  assert.equal(a.status, 401);
  assert.equal(a.action, undefined);
  assert.equal(b.status, 400);
  assert.equal(b.action, undefined);
  const out = srv.stdout + srv.stderr;
  assert.ok(!out.includes('not-the-token-not-the-token'));
  assert.ok(!out.includes(GOOD_TOKEN));
});
