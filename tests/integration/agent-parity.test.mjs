// The agent's lab answers exactly like proflabd's where the endpoints
// overlap (status, cpu-profile, heap-snapshot, artifacts): one table of
// requests sent to both, statuses, content types, x-lab-task, Allow and
// bodies compared (each side's task id read as TASK, its artifact directory as DIR).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startProflabd, stopChecked, labEnv, GOOD_TOKEN } from './helpers.mjs';
import { program, runUnderAgent, labRequest, appGet } from './agent-lib.mjs';

const T = { 'x-lab-token': GOOD_TOKEN };
const CASES = [
  ['GET', '/api/lab/status', {}, 'no token'],
  ['GET', '/api/lab/status', { 'x-lab-token': 'wrong-token-0123456789' }, 'wrong token'],
  ['POST', '/api/lab/status', T, 'method'],
  ['GET', '/api/lab/status?x=1', T, 'unknown parameter'],
  ['GET', '/api/lab/cpu-profile', T, 'GET on a POST route'],
  ['POST', '/api/lab/cpu-profile?seconds=abc', T, 'malformed seconds'],
  ['POST', '/api/lab/cpu-profile?seconds=100000', T, 'seconds out of range'],
  ['POST', '/api/lab/cpu-profile?seconds=1&seconds=2', T, 'repeated'],
  ['POST', '/api/lab/cpu-profile?format=svg', T, 'bad format'],
  ['POST', '/api/lab/cpu-profile?hz=0', T, 'hz out of range'],
  ['POST', '/api/lab/cpu-profile?mode=idle', T, 'bad mode'],
  ['POST', '/api/lab/heap-snapshot?format=xml', T, 'bad heap format'],
  ['POST', '/api/lab/heap-snapshot?bogus=1', T, 'unknown heap parameter'],
  ['GET', '/api/lab/artifacts', T, 'empty list'],
  ['GET', '/api/lab/artifacts/..%2F..%2Fetc%2Fpasswd', T, 'escape'],
  ['GET', '/api/lab/artifacts/cpu-20990101T000000.000Z-x.cpuprofile', T, 'missing artifact'],
  ['GET', '/api/lab/artifacts/not-an-artifact.txt', T, 'not an artifact name'],
  ['DELETE', '/api/lab/artifacts', T, 'method on artifacts'],
  ['GET', '/api/lab/nothing-here', T, 'unknown lab path'],
];

let d, a, dirs;
before(async () => {
  dirs = [0, 1].map(() => fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-parity-')));
  d = await startProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: dirs[0] }) });
  a = await runUnderAgent([program('agent-server')], {
    runArgs: ['--listen', '127.0.0.1:0'],
    env: { LAB_TOKEN: GOOD_TOKEN, LAB_ARTIFACT_DIR: dirs[1] },
    waitPort: true,
  });
});
after(async () => {
  await stopChecked(d);
  if (a) {
    await appGet(a.appPort, '/exit/0').catch(() => {});
    await a.exited;
  }
  for (const x of dirs || []) fs.rmSync(x, { recursive: true, force: true });
});

const norm = (r, task, dir) => ({
  status: r.status,
  type: r.headers['content-type'],
  task: r.headers['x-lab-task'] === task ? 'TASK' : r.headers['x-lab-task'],
  allow: r.headers.allow,
  body: r.body.toString('utf8').split(task).join('TASK').split(dir).join('DIR'),
});

for (const [method, p, headers, what] of CASES) {
  test(`same answer from proflabd and the agent: ${what} (${method} ${p})`, async () => {
    const rd = await labRequest({ url: d.base }, method, p, { headers });
    const ra = await labRequest(a.lab, method, p, { headers });
    assert.deepEqual(norm(ra, a.start.task, dirs[1]), norm(rd, d.task, dirs[0]));
  });
}

test('status: the agent answers the same parts as proflabd, without the event loop it does not own', async () => {
  const rd = await labRequest({ url: d.base }, 'GET', '/api/lab/status', { headers: T });
  const ra = await labRequest(a.lab, 'GET', '/api/lab/status', { headers: T });
  assert.equal(ra.status, 200);
  const kd = Object.keys(rd.json).filter((k) => k !== 'event_loop');
  assert.deepEqual(Object.keys(ra.json), kd);
  assert.equal(ra.json.pid, a.pid);
  assert.deepEqual(Object.keys(ra.json.heap), Object.keys(rd.json.heap));
  assert.equal(ra.json.heap.tracker, 'interposed');
});

test('the endpoints that harm the process are not in the agent (404 like any unknown path)', async () => {
  for (const p of ['/api/lab/memory-leak?mb=1', '/api/lab/memory-clear', '/api/lab/event-loop-jam?ms=10']) {
    const ra = await labRequest(a.lab, 'POST', p, { headers: T });
    const rn = await labRequest(a.lab, 'POST', '/api/lab/nothing-here', { headers: T });
    assert.equal(ra.status, 404);
    assert.equal(ra.body.toString().replace(/"[^"]*"}}$/, ''), rn.body.toString().replace(/"[^"]*"}}$/, ''));
  }
});
