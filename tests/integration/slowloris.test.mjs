// Slowloris: a client that trickles its request head is cut off after the
// header deadline (PROFLAB_HEADER_TIMEOUT_MS), while other clients are served.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProflabd, stopChecked, request, RawConn, httpText, sleep, slow, SANITIZED } from './helpers.mjs';

const HEADER_TIMEOUT_MS = 1000;
// The server checks deadlines once a second, so a cut comes between 1 and
// ~2 s after the request line; 3 s leaves room, more under ASan.
const CUT_WITHIN_MS = SANITIZED ? 4500 : 3000;

let srv;
before(async () => { srv = await startProflabd({ env: { PROFLAB_HEADER_TIMEOUT_MS: HEADER_TIMEOUT_MS } }); });
after(async () => { await stopChecked(srv); });

/** Meanwhile, other clients: a health check every 150 ms; returns their latencies. */
function otherClients(untilPromise) {
  const latencies = [];
  const failures = [];
  let done = false;
  untilPromise.finally(() => { done = true; });
  const loop = (async () => {
    while (!done) {
      try {
        const r = await request(srv.base, '/api/health', { timeoutMs: slow(2000) });
        latencies.push(r.ms);
        if (r.status !== 200) failures.push(r.status);
      } catch (e) {
        failures.push(String(e));
      }
      await sleep(150);
    }
  })();
  return loop.then(() => ({ latencies, failures }));
}

test('request line, then one header byte every 200 ms -> connection closed within ~3 s; others are served meanwhile', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  const t0 = performance.now();
  await c.write('GET /api/health HTTP/1.1\r\n');
  const header = 'X-Slow: ' + 'a'.repeat(200);
  let i = 0;
  const drip = setInterval(() => {
    if (c.closed || i >= header.length) return;
    c.sock.write(header[i++], () => {});
  }, 200);
  const closedP = c.waitClosed(CUT_WITHIN_MS + 2000);
  const others = otherClients(closedP);
  const closed = await closedP;
  clearInterval(drip);
  const elapsed = performance.now() - t0;
  const { latencies, failures } = await others;
  c.destroy();

  assert.equal(closed, true, `still open after ${elapsed.toFixed(0)} ms`);
  assert.ok(elapsed <= CUT_WITHIN_MS, `cut after ${elapsed.toFixed(0)} ms`);
  assert.ok(elapsed >= HEADER_TIMEOUT_MS - 50, `cut after ${elapsed.toFixed(0)} ms, before the deadline`);
  assert.ok(i >= 3, 'the client was sending bytes all along');
  assert.ok(!c.buf.toString().includes('"status":"ok"'), 'the slow request was not answered');
  assert.deepEqual(failures, [], 'other clients were not refused');
  assert.ok(latencies.length >= 3, `other clients made ${latencies.length} requests`);
  assert.ok(Math.max(...latencies) < slow(500), `other clients' latencies ${latencies.map((x) => x.toFixed(1))}`);
  // (log lines are written once per loop iteration: the close can reach us first)
  const line = await srv.waitForLine((l) => l.event === 'header_timeout', slow(2000));
  assert.equal(line.limit_ms, HEADER_TIMEOUT_MS);
});

test('request line itself trickled one byte every 100 ms -> closed within ~3 s (the head deadline covers the request line)', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  const t0 = performance.now();
  const line = `GET /api/health?${'a'.repeat(300)} HTTP/1.1\r\n`;
  let i = 0;
  const drip = setInterval(() => {
    if (c.closed || i >= line.length) return;
    c.sock.write(line[i++], () => {});
  }, 100);
  const closed = await c.waitClosed(CUT_WITHIN_MS + 1000);
  clearInterval(drip);
  const elapsed = performance.now() - t0;
  c.destroy();
  assert.equal(closed, true, `a client still sending its request line after ${elapsed.toFixed(0)} ms (${i} bytes) was not cut`);
  assert.ok(elapsed <= CUT_WITHIN_MS, `cut after ${elapsed.toFixed(0)} ms`);
});

test('a complete request sent slowly but within the deadline is served', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  try {
    const parts = ['GET /api/hea', 'lth HTTP/1.1\r\nHo', 'st: x\r\n', '\r\n'];
    for (const p of parts) {
      await c.write(p);
      await sleep(100);
    }
    const r = await c.read();
    assert.equal(r.status, 200);
  } finally {
    c.destroy();
  }
});

test('an idle keep-alive connection between requests is not cut by the header deadline', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  try {
    await c.write(httpText('GET', '/api/health'));
    assert.equal((await c.read()).status, 200);
    assert.equal(await c.waitClosed(2200), false, 'idle (no partial head) for 2.2 s: still open');
    await c.write(httpText('GET', '/api/health'));
    assert.equal((await c.read()).status, 200);
  } finally {
    c.destroy();
  }
});
