// Who else on the machine can reach the lab (issue 14, "Inspector and
// agent"): the agent's default listener is a Unix socket of mode 0600 in a
// directory of mode 0700, so another user (here uid 65534, "nobody", via
// setpriv) can neither connect to it nor list the sockets, while its owner
// can. The inspector binds loopback unless told otherwise, and a
// non-loopback address given explicitly warns (tried in a network namespace
// of its own, so nothing outside can reach it). The inspector's Host and
// Origin rules are inspector.test.mjs's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { program, runUnderAgent, labRequest } from './agent-lib.mjs';

function whyNot() {
  if (!process.getuid || process.getuid() !== 0) return 'needs root to act as another user (setpriv)';
  if (spawnSync('setpriv', ['--version']).status !== 0) return 'setpriv (util-linux) is not installed';
  if (spawnSync('curl', ['--version']).status !== 0) return 'curl is not installed';
  return null;
}
const reason = whyNot();

/** curl over the Unix socket as uid/gid 65534: {status, stdout, stderr}. */
function asNobody(args) {
  return spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', ...args], { encoding: 'utf8', timeout: 20000 });
}

test('another user cannot reach the agent\'s Unix socket or list the socket directory; its owner can', { skip: reason ?? false }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-sec-local-'));
  const srv = await runUnderAgent([program('agent-server')], { env: { LAB_ARTIFACT_DIR: dir }, waitPort: true });
  try {
    const sock = srv.lab?.socketPath;
    assert.ok(sock, `a Unix socket by default: ${JSON.stringify(srv.start)}`);
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(sock)).mode & 0o077, 0, 'the socket directory is its owner\'s alone');
    // the owner: served without a token
    const own = await labRequest(srv.lab, 'GET', '/api/lab/status');
    assert.equal(own.status, 200);
    // nobody: refused by the file system before any byte reaches the agent
    const other = asNobody(['curl', '-sS', '--max-time', '5', '--unix-socket', sock, 'http://x/api/lab/status']);
    assert.notEqual(other.status, 0, `another user reached the agent: ${other.stdout}`);
    assert.match(other.stderr, /Permission denied|Couldn't connect|Failed to connect/i, other.stderr);
    const ls = asNobody(['ls', path.dirname(sock)]);
    assert.notEqual(ls.status, 0, `another user listed the sockets: ${ls.stdout}`);
    // and nothing of it reached the agent's request log
    assert.ok(!srv.lines.some((l) => l.event === 'request' && l.remote && l.status !== 200), 'no request from the other user was served');
  } finally {
    await srv.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** proflabd with `args` inside a network namespace of its own (only lo, with
 * 10.200.0.1 added as a non-loopback address: nothing outside can reach it),
 * stopped after a second: its stderr and stdout. */
function inIsolatedNet(args) {
  const script = 'ip link set lo up && ip addr add 10.200.0.1/32 dev lo && '
    + '{ PROFLAB_LISTEN=127.0.0.1:0 "$0" "$@" & p=$!; sleep 1; kill $p; wait $p; }';
  return spawnSync('unshare', ['-n', 'sh', '-c', script, process.env.PROFLABD || 'build/proflabd', ...args], { encoding: 'utf8', timeout: 20000 });
}

function netnsWhyNot() {
  if (reason) return reason;
  const r = spawnSync('unshare', ['-n', 'ip', 'addr', 'add', '10.200.0.1/32', 'dev', 'lo'], { encoding: 'utf8' });
  return r.status === 0 ? null : `cannot make a network namespace here: ${r.stderr || r.error}`;
}
const netReason = netnsWhyNot();

test('the inspector binds loopback by default; a non-loopback address given explicitly works and warns, in the log and on stderr', { skip: netReason ?? false }, () => {
  const def = inIsolatedNet(['--inspect']);
  assert.match(def.stderr, /^Debugger listening on ws:\/\/127\.0\.0\.1:9229\/[0-9a-f-]{36}$/m, def.stderr);
  assert.doesNotMatch(def.stderr + def.stdout, /insecure|inspector_public/);
  const pub = inIsolatedNet(['--inspect=10.200.0.1:0']);
  assert.match(pub.stderr, /^Debugger listening on ws:\/\/10\.200\.0\.1:\d+\//m, pub.stderr);
  assert.match(pub.stderr, /^Warning: Binding the inspector to a public IP with an open port is insecure: anyone who can reach this port can take CPU profiles and heap snapshots/m);
  const warn = pub.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.event === 'inspector_public');
  assert.ok(warn && warn.level === 'warn', pub.stdout);
});
