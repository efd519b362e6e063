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

// Agents on TCP and on an explicit unix:PATH (issue 12's leftover): each
// agent writes a registry file (/tmp/proflab-UID/agent-PID.json, 0600, no
// token) that proflab ps reads; --pid reaches a TCP agent with the token;
// the file goes at exit, and a killed agent's is pruned.
test('proflab ps lists agents on TCP and on unix:PATH from their registry files; never a token', async () => {
  const token = 'ps-test-token-0123456789abcdef';
  const regDir = `/tmp/proflab-${process.getuid()}`;
  const tcp = await runUnderAgent([program('agent-threads'), '120', 'tcp'],
    { runArgs: ['--listen', '127.0.0.1:0', '--inspect=127.0.0.1:0'], env: { LAB_ARTIFACT_DIR: dir, LAB_TOKEN: token } });
  const sockPath = path.join(dir, 'explicit.sock');
  const unixPath = await runUnderAgent([program('agent-threads'), '120', 'unixpath'],
    { runArgs: ['--listen', `unix:${sockPath}`], env: { LAB_ARTIFACT_DIR: dir } });
  const killed = await runUnderAgent([program('agent-threads'), '120', 'tcp-killed'],
    { runArgs: ['--listen', '127.0.0.1:0'], env: { LAB_ARTIFACT_DIR: dir, LAB_TOKEN: token } });
  try {
    await tcp.waitFor((s) => /^ready$/m.test(s.stdout));
    assert.match(tcp.start.lab, /^http:\/\/127\.0\.0\.1:\d+$/);
    const reg = path.join(regDir, `agent-${tcp.pid}.json`);
    const st = fs.statSync(reg);
    assert.equal(st.mode & 0o777, 0o600, 'the registry file is 0600');
    const text = fs.readFileSync(reg, 'utf8');
    assert.ok(!text.includes(token), 'the registry file holds the token');
    const file = JSON.parse(text);
    assert.equal(file.pid, tcp.pid);
    assert.equal(file.lab, tcp.start.lab);
    assert.equal(file.inspector, tcp.start.inspector);

    await killed.stop('SIGKILL'); // no destructor: its registry file stays
    const killedReg = path.join(regDir, `agent-${killed.pid}.json`);
    assert.ok(fs.existsSync(killedReg));

    const { stdout } = await cli(['ps', '--json']);
    assert.ok(!stdout.includes(token), 'ps printed the token');
    const rows = JSON.parse(stdout).agents;
    const row = (pid) => rows.find((x) => x.pid === pid);
    const t = row(tcp.pid);
    assert.ok(t, `the TCP agent ${tcp.pid} is not listed: ${stdout}`);
    assert.equal(t.state, 'alive');
    assert.equal(t.address, tcp.start.lab);
    assert.equal(t.inspector, tcp.start.inspector);
    assert.match(t.cmdline, /agent-threads 120 tcp$/);
    const u = row(unixPath.pid);
    assert.ok(u, `the unix:PATH agent ${unixPath.pid} is not listed: ${stdout}`);
    assert.equal(u.state, 'alive');
    assert.equal(u.address, `unix:${sockPath}`);
    const k = row(killed.pid);
    assert.ok(k, `the killed agent ${killed.pid} is not listed: ${stdout}`);
    assert.equal(k.state, 'stale');
    assert.equal(k.removed, true);
    assert.ok(!fs.existsSync(killedReg), 'the stale registry file is still there');
    assert.match(k.cmdline, /agent-threads 120 tcp-killed$/, 'a gone process: the command line from its file');

    const table = (await cli(['ps'])).stdout;
    assert.ok(!table.includes(token));
    assert.match(table, new RegExp(`^${tcp.pid}\\s+alive\\s+${tcp.start.lab.replace(/\./g, '\\.')}\\s+\\S*agent-threads 120 tcp$`, 'm'));

    // --pid: the TCP agent with its token, the unix:PATH agent without one
    const withToken = (args) => run(CLI, args, { env: agentEnv({ LAB_TOKEN: token }), timeout: 120000 });
    const s1 = JSON.parse((await withToken(['status', '--pid', String(tcp.pid), '--json'])).stdout);
    assert.equal(s1.pid, tcp.pid);
    const noToken = await run(CLI, ['status', '--pid', String(tcp.pid)], { env: agentEnv({ LAB_TOKEN: undefined }) })
      .then(() => assert.fail('a TCP agent without a token'), (e) => e);
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /no lab token/);
    const s2 = JSON.parse((await cli(['status', '--pid', String(unixPath.pid), '--json'])).stdout);
    assert.equal(s2.pid, unixPath.pid);

    // a program that exits removes its file (a signal's default action
    // runs no destructor: that is the stale case above)
    const brief = await runUnderAgent(['/bin/sleep', '3'],
      { runArgs: ['--listen', '127.0.0.1:0'], env: { LAB_ARTIFACT_DIR: dir, LAB_TOKEN: token } });
    const briefReg = path.join(regDir, `agent-${brief.pid}.json`);
    assert.ok(fs.existsSync(briefReg));
    assert.equal((await brief.exited).code, 0);
    assert.ok(!fs.existsSync(briefReg), 'the registry file outlived its agent');
  } finally {
    await tcp.stop('SIGKILL');
    await unixPath.stop('SIGKILL');
  }
});
