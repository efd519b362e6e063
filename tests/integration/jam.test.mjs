// event-loop-jam blocks the one loop thread: lag goes up, and a health check
// that arrives meanwhile waits until the jam ends (the lesson of the lab).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProflabd, stopChecked, request, labEnv, GOOD_TOKEN, sleep, slow } from './helpers.mjs';

let srv;
before(async () => { srv = await startProflabd({ env: labEnv() }); });
after(async () => { await stopChecked(srv); });

const status = async () => (await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN })).body;

test('a 500 ms jam raises lag max to >= 400 ms and delays a concurrent /api/health until it ends', async () => {
  const before = await status();
  assert.ok(before.event_loop.lag_ms.max < 400, `lag max before ${before.event_loop.lag_ms.max}`);

  const t0 = performance.now();
  const jam = request(srv.base, '/api/lab/event-loop-jam?ms=500', { method: 'POST', token: GOOD_TOKEN }).then((r) => ({ ...r, end: performance.now() }));
  // the server logs lab_jam_start (and flushes) just before it starts spinning
  await srv.waitForLine((l) => l.event === 'lab_jam_start' && l.ms === 500, slow(5000));
  const wait = 100 - (performance.now() - t0);
  if (wait > 0) await sleep(wait);
  const tHealth = performance.now();
  const health = await request(srv.base, '/api/health'); // on a second connection
  const healthEnd = performance.now();
  const j = await jam;

  assert.equal(j.status, 200, j.text);
  assert.ok(j.body.jammed_ms >= 500, `jammed_ms ${j.body.jammed_ms}`);
  assert.ok(j.body.lag_ms >= 400, `lag_ms in the jam answer ${j.body.lag_ms}`);
  assert.equal(health.status, 200);
  const latency = healthEnd - tHealth;
  assert.ok(tHealth - t0 < 400, `health was sent ${tHealth - t0} ms after the jam started, while it ran`);
  assert.ok(latency >= 300, `health took ${latency.toFixed(1)} ms; it should wait for the jam`);
  assert.ok(healthEnd - t0 >= 480, `health finished ${(healthEnd - t0).toFixed(1)} ms after the jam began, before the jam ended`);

  const after = await status();
  assert.ok(after.event_loop.lag_ms.max >= 400, `lag max ${after.event_loop.lag_ms.max}`);
  assert.ok(after.event_loop.lag_ms.max < 5000, `lag max ${after.event_loop.lag_ms.max}`);
  assert.equal(after.lab.jams, before.lab.jams + 1);
  assert.ok(after.lab.jammed_ms_total >= 500);
  assert.ok(after.event_loop.utilization > before.event_loop.utilization, 'the loop was busy');
});

test("the jam request's log line has its duration and action", async () => {
  // (log lines are written once per loop iteration: the answer can reach us first)
  const line = await srv.waitForLine((l) => l.event === 'request' && l.path === '/api/lab/event-loop-jam', slow(2000));
  assert.ok(line.ms >= 500, `jam request ms ${line.ms}`);
  assert.equal(line.action, 'event-loop-jam');
});
