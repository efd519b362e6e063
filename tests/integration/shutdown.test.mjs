// SIGTERM (what ECS sends): stop accepting, finish what is in flight, exit 0.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startProflabd, request, labEnv, GOOD_TOKEN, tryConnect, RawConn, httpText, sleep, slow, within,
} from './helpers.mjs';

const servers = [];
after(async () => { for (const s of servers) await s.stop('SIGKILL'); });

function assertNoSanitizerReport(srv) {
  assert.doesNotMatch(srv.stderr, /(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:)/, srv.stderr);
}

test('SIGTERM during a 1500 ms jam: the jam still gets its 200, new connections are refused, exit 0, shutdown logged', async () => {
  const srv = await startProflabd({ env: labEnv() });
  servers.push(srv);
  const t0 = performance.now();
  const jam = request(srv.base, '/api/lab/event-loop-jam?ms=1500', { method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(10000) });
  await srv.waitForLine((l) => l.event === 'lab_jam_start', slow(5000));
  await sleep(300);
  srv.proc.kill('SIGTERM');
  const tSig = performance.now();
  assert.ok(tSig - t0 < 1400, 'the signal arrived while the jam ran');

  const j = await jam;
  assert.equal(j.status, 200, j.text);
  assert.ok(j.body.jammed_ms >= 1500, `jammed_ms ${j.body.jammed_ms}`);

  // once the loop has seen the signal, the listening socket is gone
  await srv.waitForLine((l) => l.event === 'shutdown', slow(5000));
  const conn = await tryConnect(srv.port);
  assert.equal(conn, 'ECONNREFUSED', `connect after SIGTERM: ${conn}`);

  const { code, signal } = await within(srv.exited, slow(5000), { code: 'still running 5 s later', signal: null });
  assert.equal(signal ?? null, null);
  assert.equal(code, 0, `exit code; stderr:\n${srv.stderr}`);
  assertNoSanitizerReport(srv);
  const shutdown = srv.lines.filter((l) => l.event === 'shutdown');
  assert.ok(shutdown.length >= 1);
  assert.equal(shutdown[0].signal, 'SIGTERM');
  // the jam request was logged with its 200 before the process exited
  const req = srv.lines.find((l) => l.event === 'request' && l.path === '/api/lab/event-loop-jam');
  assert.ok(req && req.status === 200, 'jam request logged');
});

test('SIGTERM while idle (with an idle keep-alive connection open) -> exit 0 within 2 s', async () => {
  const srv = await startProflabd({ env: {} });
  servers.push(srv);
  const c = new RawConn(srv.port);
  await c.connect();
  await c.write(httpText('GET', '/api/health'));
  assert.equal((await c.read()).status, 200);
  const t0 = performance.now();
  srv.proc.kill('SIGTERM');
  const res = await within(srv.exited, slow(2000));
  const ms = performance.now() - t0;
  c.destroy();
  assert.ok(res, `still running ${ms.toFixed(0)} ms after SIGTERM`);
  assert.equal(res.code, 0, `exit code ${res.code} signal ${res.signal}\n${srv.stderr}`);
  assert.ok(srv.lines.some((l) => l.event === 'shutdown'));
  assertNoSanitizerReport(srv);
});

test('SIGTERM with no connection at all -> exit 0 within 2 s', async () => {
  const srv = await startProflabd({ env: {} });
  servers.push(srv);
  const t0 = performance.now();
  srv.proc.kill('SIGTERM');
  const res = await within(srv.exited, slow(2000));
  assert.ok(res, `still running ${(performance.now() - t0).toFixed(0)} ms after SIGTERM`);
  assert.equal(res.code, 0);
  assertNoSanitizerReport(srv);
});

test('SIGINT drains the same way -> exit 0', async () => {
  const srv = await startProflabd({ env: {} });
  servers.push(srv);
  srv.proc.kill('SIGINT');
  const res = await within(srv.exited, slow(2000));
  assert.ok(res, 'exited');
  assert.equal(res.code, 0);
  const line = srv.lines.find((l) => l.event === 'shutdown');
  assert.equal(line?.signal, 'SIGINT');
});
