// A real program of another shape under the agent: Debian's python3 (an
// interpreter: its own allocator, no frame pointers, a loop in
// libpython's evaluator) runs a script under `proflab run` and prints what
// it prints without the agent, exits with its own status, and the lab
// commands (--pid) record a CPU profile that names the interpreter's
// evaluator and a heap snapshot of its allocations.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CLI, runUnderAgent, agentEnv } from './agent-lib.mjs';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-agent-py-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

// deterministic work for a few seconds, then a result and exit status 3
const script = [
  'import sys, time',
  'def churn(n):',
  '    kept = []',
  '    for i in range(n):',
  '        s = ("%d-" % i) * 20',
  '        kept.append(s[::-1])',
  '        if len(kept) > 5000: kept = kept[-100:]',
  '    return len(kept)',
  'print("ready", flush=True)',
  'end = time.time() + float(sys.argv[1])',
  'total = 0',
  'while time.time() < end: total += churn(20000)',
  'print("result", churn(12345), flush=True)',
  'sys.exit(3)',
].join('\n');

test('python3 under the agent: same output and status, a profile names its evaluator, a snapshot of its heap', { skip: !fs.existsSync(PYTHON) && 'no /usr/bin/python3' }, async () => {
  const file = path.join(dir, 'work.py');
  fs.writeFileSync(file, script);
  const plain = spawnSync(PYTHON, [file, '0.2'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  assert.equal(plain.status, 3, plain.stderr);

  const srv = await runUnderAgent([PYTHON, file, '6'], { env: { LAB_ARTIFACT_DIR: dir } });
  await srv.waitFor((s) => /ready/.test(s.stdout));
  const env = agentEnv({ LAB_TOKEN: undefined, PROFLAB_PROGRESS: '0' });
  const pid = String(srv.pid);
  const out = path.join(dir, 'py.cpuprofile');
  const prof = await run(CLI, ['profile', '--pid', pid, '--seconds', '2', '-o', out], { env });
  assert.match(prof.stdout, /verified/);
  const top = JSON.parse((await run(CLI, ['top', out, '--json', '--limit', '0'], { env })).stdout);
  const names = top.functions.map((f) => f.function);
  assert.ok(names.some((n) => /_PyEval_EvalFrameDefault/.test(n)), `the evaluator is missing: ${names.slice(0, 30).join(', ')}`);
  assert.ok(!names.some((n) => n === ''), 'an empty function name');
  const busy = top.functions.filter((f) => !f.meta).reduce((a, f) => a + f.self_samples, 0);
  assert.ok(busy > top.samples * 0.5, `the interpreter was busy: ${busy} of ${top.samples} samples`);

  const snap = JSON.parse((await run(CLI, ['snapshot', '--pid', pid, '--json', '-o', path.join(dir, 'py.heapsnapshot')], { env })).stdout);
  assert.ok(snap.bytes > 0 && snap.lab.allocations > 0, JSON.stringify(snap).slice(0, 400));

  const stdout = await srv.waitFor((s) => /^result /m.test(s.stdout) && s.stdout);
  const { code, signal } = await srv.exited;
  assert.equal(signal, null);
  assert.equal(code, 3);
  assert.equal(stdout, plain.stdout, 'the same output as without the agent');
});
