// The agent's whole-run profiles (`proflab run --cpu-profile F
// --heap-profile F`, written at exit like node --cpu-prof) and its
// inspector (`--inspect`: DevTools' discovery and a CDP session with
// chrome-remote-interface) in a program with no proflab code.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { program, runUnderAgent, appGet } from './agent-lib.mjs';
import { CDP, connectCdp, inspectorGet } from './inspector-lib.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-agent-run-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('--cpu-profile and --heap-profile: written at exit, naming the hot and the leaking function', async () => {
  const cpu = path.join(dir, 'run.cpuprofile');
  const heap = path.join(dir, 'run.heapprofile');
  const srv = await runUnderAgent([program('agent-server')], {
    runArgs: ['--cpu-profile', cpu, '--heap-profile', heap],
    env: { LAB_HEAP_SAMPLE_BYTES: 4096 },
    waitPort: true,
  });
  const t0 = Date.now();
  while (Date.now() - t0 < 1000) await appGet(srv.appPort, '/work');
  for (let i = 0; i < 50; i++) await appGet(srv.appPort, '/leak');
  assert.equal(fs.existsSync(cpu), false, 'written before exit');
  await appGet(srv.appPort, '/exit/0').catch(() => {});
  const { code } = await srv.exited;
  assert.equal(code, 0, srv.stderr);
  assert.ok(srv.lines.some((l) => l.event === 'cpu_profile_run_written' && !l.error), srv.stderr);
  const p = JSON.parse(fs.readFileSync(cpu, 'utf8'));
  const hot = p.nodes.filter((n) => /^agent_test_hot_checksum/.test(n.callFrame.functionName));
  assert.ok(hot.length, p.nodes.map((n) => n.callFrame.functionName).join(', '));
  assert.ok(p.endTime - p.startTime >= 1e6, `profile spans ${(p.endTime - p.startTime) / 1e6} s`);
  const h = JSON.parse(fs.readFileSync(heap, 'utf8'));
  let leak = 0;
  const walk = (n, inLeak) => {
    const here = inLeak || /agent_test_leak_remember/.test(n.callFrame.functionName);
    if (here) leak += n.selfSize;
    (n.children || []).forEach((c) => walk(c, here));
  };
  walk(h.head, false);
  // 50 x 64 KiB = 3.2 MiB, estimated from samples every ~4 KiB
  assert.ok(leak > 2.4e6 && leak < 4.2e6, `leak bytes in the heap profile: ${leak}`);
  assert.equal(fs.readdirSync(dir).some((f) => f.endsWith('.partial')), false);
});

test('--inspect: chrome://inspect discovery and a CDP CPU profile of the program', { skip: !CDP && 'chrome-remote-interface not installed' }, async () => {
  const srv = await runUnderAgent([program('agent-server')], { runArgs: ['--inspect=127.0.0.1:0'], waitPort: true });
  const url = srv.start.inspector;
  assert.match(url || '', /^ws:\/\/127\.0\.0\.1:\d+\//, JSON.stringify(srv.start));
  const port = Number(new URL(url).port);
  const list = await inspectorGet(port, '/json/list');
  assert.equal(list.status, 200);
  assert.match(list.json[0].title, /agent-server/);
  const client = await connectCdp(port);
  try {
    await client.Profiler.enable();
    await client.Profiler.setSamplingInterval({ interval: 1000 });
    await client.Profiler.start();
    const t0 = Date.now();
    while (Date.now() - t0 < 1000) await appGet(srv.appPort, '/work');
    const { profile } = await client.Profiler.stop();
    assert.ok(profile.nodes.some((n) => /^agent_test_hot_checksum/.test(n.callFrame.functionName)),
      profile.nodes.map((n) => n.callFrame.functionName).join(', '));
  } finally {
    await client.close();
  }
  await appGet(srv.appPort, '/exit/0').catch(() => {});
  assert.equal((await srv.exited).code, 0);
});
