// proflab ps and --pid (issue 12): two agents running, one killed (its
// socket left behind, stale), listed with their pids, state, program,
// command line and address; the stale socket is removed; --pid PID reaches
// an agent from status, profile, snapshot, artifacts, download and leaks;
// --pid with --url, or a pid without an agent, is refused.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CLI, program, runUnderAgent, agentEnv } from './agent-lib.mjs';

const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-agent-ps-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const cli = (args) => run(CLI, args, { env: agentEnv(), timeout: 120000 });
const cliFails = (args) => cli(args).then(
  (r) => assert.fail(`proflab ${args.join(' ')} succeeded: ${r.stdout}`),
  (e) => e);

async function startAgent(tag) {
  const p = await runUnderAgent([program('agent-threads'), '120', tag], { env: { LAB_ARTIFACT_DIR: dir } });
  await p.waitFor((s) => /^ready$/m.test(s.stdout));
  return p;
}

test('proflab ps lists two agents, removes the stale socket of a killed one; --pid reaches each', async () => {
  const a = await startAgent('first');
  const b = await startAgent('second');
  const dead = await startAgent('killed');
  try {
    await dead.stop('SIGKILL'); // no destructor: its socket stays
    const deadSock = dead.lab.socketPath;
    assert.ok(fs.existsSync(deadSock), 'the killed agent left no socket');

    const { stdout } = await cli(['ps', '--json']);
    const listed = JSON.parse(stdout);
    const row = (pid) => listed.agents.find((x) => x.pid === pid);
    for (const [p, tag] of [[a, 'first'], [b, 'second']]) {
      const r = row(p.pid);
      assert.ok(r, `pid ${p.pid} not listed: ${stdout}`);
      assert.equal(r.state, 'alive');
      assert.equal(r.address, `unix:${p.lab.socketPath}`);
      assert.equal(path.basename(r.program), 'agent-threads');
      assert.match(r.cmdline, new RegExp(`agent-threads 120 ${tag}$`));
    }
    const d = row(dead.pid);
    assert.ok(d, `the stale socket of ${dead.pid} not listed: ${stdout}`);
    assert.equal(d.state, 'stale');
    assert.equal(d.removed, true);
    assert.ok(!fs.existsSync(deadSock), 'the stale socket is still there');
    const again = JSON.parse((await cli(['ps', '--json'])).stdout);
    assert.ok(!again.agents.some((x) => x.pid === dead.pid));

    const table = (await cli(['ps'])).stdout;
    assert.match(table, new RegExp(`^${a.pid}\\s+alive\\s+unix:\\S+agent-${a.pid}\\.sock\\s+\\S*agent-threads 120 first$`, 'm'));

    // --pid on the lab commands
    for (const p of [a, b]) {
      const st = JSON.parse((await cli(['status', '--pid', String(p.pid), '--json'])).stdout);
      assert.equal(st.pid, p.pid);
    }
    const out = path.join(dir, 'b.cpuprofile');
    await cli(['profile', '--pid', String(b.pid), '--seconds', '1', '-o', out]);
    assert.ok(JSON.parse(fs.readFileSync(out, 'utf8')).nodes.length > 2);
    const snap = path.join(dir, 'a.heapsnapshot');
    await cli(['snapshot', '--pid', String(a.pid), '-o', snap]);
    assert.ok(fs.statSync(snap).size > 0);
    const arts = JSON.parse((await cli(['artifacts', '--pid', String(b.pid), '--json'])).stdout);
    const name = (arts.artifacts || arts).find((x) => x.kind === 'cpu').name;
    const dl = path.join(dir, 'dl.cpuprofile');
    await cli(['download', '--pid', String(b.pid), name, '-o', dl]);
    assert.ok(fs.statSync(dl).size > 0);
    const leaks = await cli(['leaks', '--pid', String(a.pid), '--every', '100ms', '--count', '3', '--json']);
    assert.ok(JSON.parse(leaks.stdout));

    // refusals
    let e = await cliFails(['status', '--pid', String(a.pid), '--url', 'unix:/nowhere']);
    assert.equal(e.code, 2);
    assert.match(e.stderr, /--url or --pid, not both/);
    e = await cliFails(['status', '--pid', String(dead.pid)]);
    assert.equal(e.code, 1);
    assert.match(e.stderr, new RegExp(`no agent of pid ${dead.pid}.*proflab ps`));
    e = await cliFails(['status', '--pid', 'x']);
    assert.equal(e.code, 2);
    e = await cliFails(['leaks', '--pid', String(dead.pid)]);
    assert.equal(e.code, 1);
  } finally {
    await a.stop('SIGKILL');
    await b.stop('SIGKILL');
  }
});
