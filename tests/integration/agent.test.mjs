// The agent (issue 12) in programs with no proflab code (tests/programs/
// agent-server.c, agent-alloc.cpp; -O2 -fomit-frame-pointer): under
// `proflab run`, a CPU profile under load names the hot function with its
// source line (through the CLI's own `proflab profile`, unchanged), two
// heap snapshots show the leak growing as DevTools' own loader reads them,
// a C++ program's new/std::vector allocations across threads are named, and
// the program's exit status is its own.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { devtoolsModules, devtoolsSummary } from './devtools-heap-summary.mjs';
import { CLI, GOOD_TOKEN, program, runUnderAgent, labRequest, appGet, agentEnv } from './agent-lib.mjs';

const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-agent-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('CPU profile under load names the hot function with its source line; exit status kept', async () => {
  const srv = await runUnderAgent([program('agent-server')], {
    runArgs: ['--listen', '127.0.0.1:0'],
    env: { LAB_TOKEN: GOOD_TOKEN, LAB_ARTIFACT_DIR: dir },
    waitPort: true,
  });
  assert.ok(srv.lab?.url, `no TCP lab in ${JSON.stringify(srv.start)}`);
  let load = true;
  const loader = (async () => { while (load) await appGet(srv.appPort, '/work'); })();
  const out = path.join(dir, 'hot.cpuprofile');
  const { stdout } = await run(CLI, ['profile', '--url', srv.lab.url, '--seconds', '2', '-o', out],
    { env: agentEnv({ LAB_TOKEN: GOOD_TOKEN }) });
  load = false;
  await loader;
  assert.match(stdout, /verified/);
  const prof = JSON.parse(fs.readFileSync(out, 'utf8'));
  const hot = prof.nodes.filter((n) => /^agent_test_hot_checksum/.test(n.callFrame.functionName));
  assert.ok(hot.length > 0, `hot function missing: ${prof.nodes.map((n) => n.callFrame.functionName).join(', ')}`);
  const hotIds = new Set(hot.map((n) => n.id));
  const hotSamples = prof.samples.filter((s) => hotIds.has(s)).length;
  assert.ok(hotSamples > prof.samples.length * 0.05, `only ${hotSamples} of ${prof.samples.length} samples in the hot function`);
  assert.ok(hot.some((n) => /agent-server\.c$/.test(n.callFrame.url) && n.callFrame.lineNumber >= 0), JSON.stringify(hot[0].callFrame));
  // its callers came through DWARF (no frame pointers): serve and main above it
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children || []) parent.set(c, n.id);
  const chain = [];
  for (let id = hot[0].id; id !== undefined; id = parent.get(id)) chain.push(byId.get(id).callFrame.functionName);
  assert.ok(chain.includes('main'), `stack of the hot function: ${chain.join(' < ')}`);
  await appGet(srv.appPort, '/exit/7').catch(() => {});
  const { code, signal } = await srv.exited;
  assert.equal(signal, null);
  assert.equal(code, 7, srv.stderr);
});

test('two heap snapshots through the agent show the leak growing (DevTools loader)', async (t) => {
  const srv = await runUnderAgent([program('agent-server')], {
    env: { LAB_ARTIFACT_DIR: dir, LAB_HEAP_SAMPLE_BYTES: 4096 },
    waitPort: true,
  });
  assert.ok(srv.lab?.socketPath, 'default listener: a Unix socket');
  const st = fs.statSync(srv.lab.socketPath);
  assert.equal(st.mode & 0o777, 0o600);
  const snap = async (n) => {
    for (let i = 0; i < n; i++) await appGet(srv.appPort, '/leak');
    const r = await labRequest(srv.lab, 'POST', '/api/lab/heap-snapshot');
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.headers['x-lab-task'], srv.start.task);
    const dl = await labRequest(srv.lab, 'GET', `/api/lab/artifacts/${r.json.file}`);
    assert.equal(dl.status, 200);
    const f = path.join(dir, `leak-${n}.heapsnapshot`);
    fs.writeFileSync(f, dl.body);
    return { answer: r.json, file: f };
  };
  const a = await snap(40);
  const b = await snap(80);
  assert.ok(b.answer.live_bytes > a.answer.live_bytes * 1.5, `${a.answer.live_bytes} -> ${b.answer.live_bytes}`);
  if (!devtoolsModules()) {
    t.diagnostic('chrome-devtools-frontend not installed (npm ci in tests/): DevTools check skipped');
  } else {
    const sa = await devtoolsSummary(a.file);
    const sb = await devtoolsSummary(b.file);
    const row = (s) => s.rows.find((r) => /agent_test_leak_remember/.test(r.name));
    assert.ok(row(sa), `no leak row in ${sa.rows.map((r) => r.name).join(', ')}`);
    assert.ok(row(sb).self > row(sa).self * 1.5, `leak row ${row(sa).self} -> ${row(sb).self}`);
  }
  await appGet(srv.appPort, '/exit/0').catch(() => {});
  const { code } = await srv.exited;
  assert.equal(code, 0);
  // exit() runs the agent's destructor, which removes its socket (a program
  // killed by a signal leaves it; the next agent of that pid replaces it)
  assert.equal(fs.existsSync(srv.lab.socketPath), false, 'socket left behind');
});

test('the program keeps its own signal behaviour: SIGTERM kills it as before', async () => {
  const srv = await runUnderAgent([program('agent-server')], { env: { LAB_ARTIFACT_DIR: dir }, waitPort: true });
  const r = await labRequest(srv.lab, 'GET', '/api/lab/status');
  assert.equal(r.status, 200);
  assert.equal(r.json.pid, srv.pid, 'proflab run execs: the program has its pid');
  await srv.stop('SIGTERM');
  const { signal } = await srv.exited;
  assert.equal(signal, 'SIGTERM');
});

test('C++: new and std::vector across threads, named in a snapshot; exit 0', async () => {
  const srv = await runUnderAgent([program('agent-alloc'), '4', '3'], {
    env: { LAB_ARTIFACT_DIR: dir, LAB_HEAP_SAMPLE_BYTES: 1024 },
  });
  await srv.waitFor((s) => /ready/.test(s.stdout));
  const r = await labRequest(srv.lab, 'POST', '/api/lab/heap-snapshot?format=heapprofile');
  assert.equal(r.status, 200, r.body.toString());
  const dl = await labRequest(srv.lab, 'GET', `/api/lab/artifacts/${r.json.file}`);
  const names = new Set();
  const walk = (n) => { names.add(n.callFrame.functionName); (n.children || []).forEach(walk); };
  walk(dl.json.head);
  // demangled by the program's own libstdc++ (__cxa_demangle)
  for (const f of ['agent_test_make_nodes(int)', 'agent_test_fill_vectors(int)'])
    assert.ok([...names].some((n) => n.startsWith(f)), `${f} missing in ${[...names].join(', ')}`);
  assert.ok([...names].some((n) => /^std::thread::/.test(n)), `no demangled std:: frame in ${[...names].join(', ')}`);
  assert.ok(![...names].some((n) => n.startsWith('_Z')), `a mangled name in ${[...names].join(', ')}`);
  assert.ok(![...names].some((n) => n === ''), 'an empty frame name');
  // 4 threads x 4000 nodes x 256 B + 4 x 200 x 8000 B of vectors: about 10 MB
  assert.ok(r.json.live_bytes > 4e6 && r.json.live_bytes < 30e6, `live ${r.json.live_bytes}`);
  const { code, signal } = await srv.exited;
  assert.equal(signal, null);
  assert.equal(code, 0, srv.stderr);
});
