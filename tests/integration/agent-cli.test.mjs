// The lab commands of `proflab` against an agent's Unix socket
// (--url unix:PATH, no token): status, profile, snapshot and leaks reach a
// program under `proflab run` exactly as they reach proflabd over TCP.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CLI, program, runUnderAgent, appGet, agentEnv } from './agent-lib.mjs';

const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-agent-cli-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

// no LAB_TOKEN anywhere: a Unix socket of mode 0600 needs none
const cliEnv = () => agentEnv({ LAB_TOKEN: undefined, PROFLAB_PROGRESS: '0' });

test('status, profile, snapshot and leaks over the agent\'s Unix socket, without a token', async () => {
  const srv = await runUnderAgent([program('agent-server')], {
    env: { LAB_ARTIFACT_DIR: dir, LAB_HEAP_SAMPLE_BYTES: 4096 },
    waitPort: true,
  });
  assert.ok(srv.lab?.socketPath, `no Unix socket in ${JSON.stringify(srv.start)}`);
  const url = `unix:${srv.lab.socketPath}`;

  const st = await run(CLI, ['status', '--url', url, '--json'], { env: cliEnv() });
  assert.equal(JSON.parse(st.stdout).pid, srv.pid, 'the status of the program under the agent');

  let load = true;
  const loader = (async () => { while (load) await appGet(srv.appPort, '/work'); })();
  const out = path.join(dir, 'hot.cpuprofile');
  const prof = await run(CLI, ['profile', '--url', url, '--seconds', '1', '-o', out], { env: cliEnv() });
  load = false;
  await loader;
  assert.match(prof.stdout, /verified/);
  const top = await run(CLI, ['top', out, '--limit', '5'], { env: cliEnv() });
  assert.match(top.stdout, /agent_test_hot_checksum/, top.stdout);

  const snap = await run(CLI, ['snapshot', '--url', url, '--json', '-o', path.join(dir, 's.heapsnapshot')], { env: cliEnv() });
  assert.ok(JSON.parse(snap.stdout).bytes > 0, snap.stdout);

  // a steady leak while leaks takes its snapshots: the leaking function comes first
  let leaking = true;
  const leaker = (async () => {
    while (leaking) {
      await appGet(srv.appPort, '/leak');
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const lk = await run(CLI, ['leaks', '--url', url, '--every', '1s', '--count', '3', '--json'], { env: cliEnv() });
  leaking = false;
  await leaker;
  const report = JSON.parse(lk.stdout);
  const sites = report.sites;
  assert.ok(sites.length > 0, lk.stdout);
  assert.match(JSON.stringify(sites[0]), /agent_test_leak/, `first site: ${JSON.stringify(sites[0])}`);

  // a relative path is refused before anything is sent
  await assert.rejects(run(CLI, ['status', '--url', 'unix:relative.sock'], { env: cliEnv() }),
    (e) => e.code === 1 && /must be absolute/.test(e.stderr));
  // over TCP a token is still required
  await assert.rejects(run(CLI, ['status', '--url', 'http://127.0.0.1:1'], { env: cliEnv() }),
    (e) => e.code === 2 && /no lab token/.test(e.stderr));

  await appGet(srv.appPort, '/exit/0').catch(() => {});
  const { code } = await srv.exited;
  assert.equal(code, 0, srv.stderr);
});
