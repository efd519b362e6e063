// Failed-token rate limit: after 10 wrong tokens from one address, even the
// right token gets 429 with Retry-After; other addresses are not affected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProflabd, stopChecked, request, assertError, labEnv, GOOD_TOKEN, RawConn, httpText, eventually } from './helpers.mjs';

let srv;
before(async () => { srv = await startProflabd({ env: labEnv() }); });
after(async () => { await stopChecked(srv); });

test('10 wrong tokens from 127.0.0.1 -> the 11th request, even with the right token, gets 429 + Retry-After', async () => {
  for (let i = 1; i <= 10; i++) {
    const res = await request(srv.base, '/api/lab/status', { token: `wrong-token-number-${i}-xxxxxxxx` });
    assertError(res, 401, 'unauthorized', `wrong token #${i}`);
  }
  const res = await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN });
  assertError(res, 429, 'too_many_failed_tokens', 'right token after 10 failures');
  assert.equal(res.headers.get('x-lab-task'), srv.task);
  const ra = res.headers.get('retry-after');
  assert.match(ra || '', /^\d+$/, `Retry-After ${ra}`);
  assert.ok(Number(ra) >= 1 && Number(ra) <= 60, `Retry-After ${ra}`);
  assert.match(res.body.error.message, /retry/i);

  // still blocked, for every lab endpoint and with any token
  const again = await request(srv.base, '/api/lab/memory-leak?mb=1', { method: 'POST', token: GOOD_TOKEN });
  assertError(again, 429, 'too_many_failed_tokens', 'leak while blocked');
  const none = await request(srv.base, '/api/lab/memory-clear', { method: 'POST' });
  assertError(none, 429, 'too_many_failed_tokens', 'no token while blocked');
});

test('while blocked: business endpoints still answer', async () => {
  const h = await request(srv.base, '/api/health');
  assert.equal(h.status, 200);
});

test('while 127.0.0.1 is blocked, another loopback address (127.0.0.2) with the right token gets 200', async () => {
  const c = new RawConn(srv.port, { localAddress: '127.0.0.2' });
  await c.connect();
  await c.write(httpText('GET', '/api/lab/status', { 'x-lab-token': GOOD_TOKEN }));
  const r = await c.read();
  c.destroy();
  assert.equal(r.status, 200, r.body.toString());
  const b = JSON.parse(r.body.toString());
  assert.equal(b.memory.leak_bytes, 0, 'the blocked leak above did nothing');
  const logged = await eventually(() => srv.lines.find((l) => l.event === 'request' && l.remote === '127.0.0.2'));
  assert.ok(logged, 'the request log names the client address');
  assert.equal(logged.status, 200);
});
