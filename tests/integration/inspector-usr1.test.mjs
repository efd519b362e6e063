// kill -USR1 <pid> opens the inspector at runtime on 127.0.0.1:9229, as in
// Node. The port is fixed, so this case has a file of its own (files run in
// parallel; nothing else here uses 9229) and skips, loudly, when something
// on this machine already listens there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEBUGGER_RE, UUID_RE, startProflabd, stopChecked, labEnv, request, GOOD_TOKEN, slow, sleep, diag, loud,
  waitStderr, parseDebuggerLine, portIsFree, inspectorGet, connectCdp, checkCpuProfile,
} from './inspector-lib.mjs';
import { tryConnect } from './helpers.mjs';

const PORT = 9229;

test('kill -USR1 starts the inspector on 127.0.0.1:9229; a second USR1 changes nothing; SIGTERM exits 0 and frees the port', { timeout: slow(60000) }, async (t) => {
  if (!(await portIsFree(PORT))) {
    loud(`127.0.0.1:${PORT} is in use on this machine: the SIGUSR1 inspector test is SKIPPED`);
    return t.skip(`127.0.0.1:${PORT} is in use`);
  }
  const srv = await startProflabd({ env: labEnv() });
  let passed = false;
  try {
    assert.ok(!DEBUGGER_RE.test(srv.stderr), 'the inspector listens without --inspect');
    assert.notEqual(await tryConnect(PORT, 1000), 'connected', `something listens on ${PORT} before SIGUSR1`);

    process.kill(srv.pid, 'SIGUSR1');
    const ins = parseDebuggerLine(await waitStderr(srv, DEBUGGER_RE, slow(5000), 'the "Debugger listening" line after SIGUSR1'));
    diag(t, `after SIGUSR1: ${ins.wsUrl}`);
    assert.equal(ins.host, '127.0.0.1');
    assert.equal(ins.port, PORT);
    assert.match(ins.id, UUID_RE);

    const list = await inspectorGet(PORT, '/json/list');
    assert.equal(list.status, 200, list.text);
    assert.equal(list.json?.[0]?.webSocketDebuggerUrl, ins.wsUrl);
    const client = await connectCdp(PORT);
    try {
      // (the tracker samples every 512 KiB: right after start its estimate may be 0)
      const u = await client.Runtime.getHeapUsage();
      assert.ok(Number.isFinite(u.usedSize) && u.totalSize > 0, JSON.stringify(u));
      await client.Profiler.enable();
      await client.Profiler.start();
      await sleep(200);
      const { profile } = await client.Profiler.stop();
      checkCpuProfile(profile);

      // again: still one inspector, same target, nothing printed twice
      process.kill(srv.pid, 'SIGUSR1');
      await sleep(500);
      const lines = srv.stderr.split('\n').filter((l) => DEBUGGER_RE.test(l));
      assert.equal(lines.length, 1, `a second SIGUSR1 printed: ${lines.join(' | ')}`);
      assert.ok((await client.Runtime.getHeapUsage()).totalSize > 0, 'the session survives a second SIGUSR1');
      const again = await inspectorGet(PORT, '/json/list');
      assert.equal(again.json?.[0]?.id, ins.id);
      const h = await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN });
      assert.equal(h.status, 200, 'the service answers');
    } finally {
      await client.close();
    }
    passed = true;
  } finally {
    if (passed) await stopChecked(srv);
    else await srv.stop('SIGKILL');
  }
  assert.notEqual(await tryConnect(PORT, 1000), 'connected', `${PORT} still listens after the process exited`);
});
