// The agent must not change how a program runs when it cannot start: bad
// settings, a taken port, a static binary. Each case: one clear line on
// stderr, the program's own output and exit status, no hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { AGENT, CLI, GOOD_TOKEN, agentEnv, program, spawnWatched, appGet } from './agent-lib.mjs';

/** sh -c SCRIPT with the agent preloaded (LD_PRELOAD, as a systemd unit would). */
function preloaded(env, script = 'echo out; exit 3') {
  const r = spawnSync('/bin/sh', ['-c', script], {
    env: agentEnv({ LD_PRELOAD: AGENT, LAB_ENABLE: 'true', ...env }), encoding: 'utf8', timeout: 10000,
  });
  return r;
}

function oneLine(r, re) {
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `stderr:\n${r.stderr}`);
  assert.match(lines[0], /^proflab agent \(pid \d+\): /);
  assert.match(lines[0], re);
  assert.match(lines[0], /runs without the agent/);
}

const cases = [
  ['TCP without a token', { PROFLAB_AGENT_LISTEN: '127.0.0.1:0' }, /LAB_TOKEN/],
  ['TCP with a short token', { PROFLAB_AGENT_LISTEN: '127.0.0.1:0', LAB_TOKEN: 'short' }, /too short/],
  ['a listen address that is not one', { PROFLAB_AGENT_LISTEN: 'nowhere' }, /PROFLAB_AGENT_LISTEN/],
  ['a bad sampling interval', { LAB_HEAP_SAMPLE_BYTES: 'lots' }, /LAB_HEAP_SAMPLE_BYTES/],
  ['a bad lab bound', { LAB_MAX_PROFILE_SECONDS: '-1' }, /LAB_MAX_PROFILE_SECONDS/],
  ['a log file that cannot be opened', { PROFLAB_AGENT_LOG: '/nonexistent/dir/agent.log' }, /PROFLAB_AGENT_LOG/],
  ['a bad inspector address', { PROFLAB_INSPECT: 'a:b:c' }, /PROFLAB_INSPECT/],
  ['an artifact directory that cannot be made', { LAB_ARTIFACT_DIR: '/proc/nope' }, /artifact directory/],
];
for (const [name, env, re] of cases) {
  test(`bad settings: ${name}: one line, output and exit status kept`, () => {
    const r = preloaded(env);
    assert.equal(r.signal, null);
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stdout, 'out\n');
    oneLine(r, re);
  });
}

// A value with a newline (or another control character) is echoed escaped:
// still one line on stderr, never a second line that looks like another
// message.
const controlCases = [
  ['PROFLAB_AGENT_LISTEN', 'now\nhere', /PROFLAB_AGENT_LISTEN='now\\nhere'/],
  ['LAB_HEAP_SAMPLE_BYTES', '1\n2', /LAB_HEAP_SAMPLE_BYTES='1\\n2'/],
  ['LAB_MAX_PROFILE_SECONDS', '5\r\nproflab agent (pid 1): fake', /LAB_MAX_PROFILE_SECONDS=5\\r\\nproflab agent/],
  ['PROFLAB_HEAP_TRACKING', 'yes\x1b[31m', /PROFLAB_HEAP_TRACKING='yes\\x1b\[31m'/],
  ['PROFLAB_INSPECT', 'a:b\t:c', /PROFLAB_INSPECT: .*a:b\\t:c/],
  ['PROFLAB_AGENT_LOG', '/nonexistent/\ndir/agent.log', /PROFLAB_AGENT_LOG=\/nonexistent\/\\ndir/],
  ['LAB_ARTIFACT_DIR', '/proc/no\npe', /artifact directory \/proc\/no\\npe/],
];
for (const [name, value, re] of controlCases) {
  test(`bad settings: ${name} with a control character in its value: escaped, still one line`, () => {
    const r = preloaded({ [name]: value });
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stdout, 'out\n');
    oneLine(r, re);
    assert.doesNotMatch(r.stderr.slice(0, -1), /[\x00-\x1f\x7f]/, 'a control character on stderr');
  });
}

test('PROFLAB_CPU_PROFILE_MODE with a newline: the whole-run profile is refused in one line', () => {
  const r = preloaded({ PROFLAB_CPU_PROFILE: '/tmp/never-written.cpuprofile', PROFLAB_CPU_PROFILE_MODE: 'wall\ncpu', PROFLAB_AGENT_LOG: 'off' });
  assert.equal(r.status, 3, r.stderr);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /PROFLAB_CPU_PROFILE_MODE=wall\\ncpu: must be wall or cpu; no CPU profile will be written/);
});

test('the port is taken: one line, the program runs as without the agent', async () => {
  const busy = net.createServer();
  await new Promise((res) => busy.listen(0, '127.0.0.1', res));
  const r = preloaded({ PROFLAB_AGENT_LISTEN: `127.0.0.1:${busy.address().port}`, LAB_TOKEN: GOOD_TOKEN });
  busy.close();
  assert.equal(r.status, 3);
  assert.equal(r.stdout, 'out\n');
  oneLine(r, /address already in use/i);
});

test('LAB_ENABLE not true: silent, nothing started', () => {
  const r = preloaded({ LAB_ENABLE: undefined });
  assert.equal(r.status, 3);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, '');
});

test('a static binary under proflab run: one line, runs without the agent, status kept', async () => {
  const w = spawnWatched([CLI, 'run', '--', program('agent-static')], agentEnv());
  const port = Number(await w.waitFor((s) => (s.stdout.match(/^port (\d+)$/m) || [])[1]));
  await w.waitFor((s) => /\n/.test(s.stderr));
  assert.match(w.stderr, /statically linked: the agent cannot be preloaded/);
  assert.equal(w.stderr.trim().split('\n').length, 1);
  assert.equal((await appGet(port, '/work')).status, 200);
  await appGet(port, '/exit/4').catch(() => {});
  assert.equal((await w.exited).code, 4);
});

test('proflab run: --help, no command, a command that does not exist', () => {
  let r = spawnSync(CLI, ['run', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /usage: proflab run/);
  r = spawnSync(CLI, ['run'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no command to run/);
  r = spawnSync(CLI, ['run', '--', 'no-such-command-xyz'], { encoding: 'utf8', env: agentEnv() });
  assert.equal(r.status, 127);
  assert.match(r.stderr, /no-such-command-xyz: command not found/);
  r = spawnSync(CLI, ['run', '--bogus', '--', 'true'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  r = spawnSync(CLI, ['run', '--', 'sh', '-c', 'exit 9'], { encoding: 'utf8', env: agentEnv() });
  assert.equal(r.status, 9, r.stderr);
});

test('exec\'d children do not carry the agent unless --children; the program\'s own exec (a wrapper) keeps it', () => {
  const starts = (stderr) => stderr.split('\n').filter((l) => l.includes('"agent_start"')).map((l) => JSON.parse(l));
  // sh forks and execs a child sh (another pid): the child runs without the
  // agent and its environment no longer names it
  const child = 'sh -c \'echo "[$LD_PRELOAD]"\'; true';
  let r = spawnSync(CLI, ['run', '--', 'sh', '-c', child], { encoding: 'utf8', env: agentEnv() });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '[]\n');
  assert.equal(starts(r.stderr).length, 1, `one agent, the program's:\n${r.stderr}`);
  // a wrapper that execs the real program under its own pid (env, a shim,
  // exec in a script): the agent follows, with the same pid
  r = spawnSync(CLI, ['run', '--', 'sh', '-c', 'exec env sh -c \'echo "[$LD_PRELOAD]"\''], { encoding: 'utf8', env: agentEnv() });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /libproflab-agent\.so/);
  const s = starts(r.stderr);
  assert.deepEqual(s.map((x) => x.program), ['sh', 'env', 'sh'], r.stderr);
  assert.equal(new Set(s.map((x) => x.pid)).size, 1, 'the same pid throughout');
  // --children: exec'd children keep it
  r = spawnSync(CLI, ['run', '--children', '--', 'sh', '-c', child], { encoding: 'utf8', env: agentEnv({ PROFLAB_AGENT_LOG: 'off' }) });
  assert.match(r.stdout, /libproflab-agent\.so/);
});
