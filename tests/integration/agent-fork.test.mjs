// Forked processes under the agent: every process of the program gets an
// agent of its own (its own thread and Unix socket, announced in the log
// with forked_from), the parent's keeps working, and the program's
// answers do not change. nginx (Debian's) with a master and a worker.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { CLI, runUnderAgent, labRequest, spawnWatched, agentEnv } from './agent-lib.mjs';
import { freePort } from './inspector-lib.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-agent-fork-'));
after(() => { if (!process.env.KEEP) fs.rmSync(dir, { recursive: true, force: true }); else console.log('kept', dir); });
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));

function get(port, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body: Buffer.concat(chunks).toString() }));
    }).on('error', reject);
  });
}

/** The agent socket of a child of ppid: {pid, socketPath}. */
async function findChildAgent(ppid, ms = 10000) {
  const sockDir = `/tmp/proflab-${process.getuid()}`;
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 100))) {
    for (const f of fs.existsSync(sockDir) ? fs.readdirSync(sockDir) : []) {
      const m = f.match(/^agent-(\d+)\.sock$/);
      if (!m) continue;
      let stat;
      try { stat = fs.readFileSync(`/proc/${m[1]}/stat`, 'utf8'); } catch { continue; }
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) return { pid: Number(m[1]), socketPath: path.join(sockDir, f) };
    }
  }
  throw new Error(`no agent socket of a child of ${ppid} within ${ms} ms`);
}

function nginxConf(port) {
  const root = path.join(dir, 'www');
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, 'index.html'), 'hello from nginx\n'.repeat(64));
  const conf = path.join(dir, `nginx-${port}.conf`);
  fs.writeFileSync(conf, `
daemon off; master_process on; worker_processes 1; pid ${dir}/nginx-${port}.pid;
error_log ${dir}/error-${port}.log; ${process.getuid() === 0 ? 'user root;' : ''}
events { worker_connections 256; }
http { access_log off; server { listen 127.0.0.1:${port}; root ${root}; } }
`);
  return conf;
}

test('nginx master + worker: each answers on its own agent, a CPU profile of the worker shows nginx and libc, responses unchanged', { skip: !NGINX && 'nginx not installed', timeout: 120000 }, async () => {
  // without the agent: the reference answers
  const p0 = await freePort();
  const ref = spawnWatched([NGINX, '-c', nginxConf(p0), '-p', dir], agentEnv());
  let want;
  for (let i = 0; i < 50 && !want; i++) {
    want = await get(p0, '/index.html').catch(() => null);
    if (!want) await new Promise((r) => setTimeout(r, 100));
  }
  ref.proc.kill('SIGQUIT');
  await ref.exited;
  assert.equal(want.status, 200);

  const port = await freePort();
  const srv = await runUnderAgent([NGINX, '-c', nginxConf(port), '-p', dir], { env: { LAB_ARTIFACT_DIR: dir } });
  // nginx points its workers' stderr at its error log, where the worker's
  // agent_start line goes: find the worker's socket by its parent instead
  const worker = await findChildAgent(srv.pid);
  const wlab = { socketPath: worker.socketPath };
  let load = true;
  let n = 0;
  const loaders = [0, 1].map(async () => {
    while (load) {
      const got = await get(port, '/index.html');
      assert.deepEqual(got, want);
      n++;
    }
  });
  const prof = await labRequest(wlab, 'POST', '/api/lab/cpu-profile?seconds=2&mode=cpu');
  const master = await labRequest(srv.lab, 'GET', '/api/lab/status');
  load = false;
  await Promise.all(loaders);
  assert.equal(prof.status, 200, prof.body.toString());
  assert.equal(master.status, 200);
  assert.equal(master.json.pid, srv.pid);
  assert.ok(n > 50, `${n} requests`);
  const dl = await labRequest(wlab, 'GET', `/api/lab/artifacts/${prof.json.file}`);
  const names = dl.json.nodes.map((x) => x.callFrame.functionName);
  assert.ok(names.some((x) => /^ngx_/.test(x)), `no ngx_ function: ${names.join(', ')}`);
  assert.ok(!names.includes(''), 'an empty name');
  const st = await labRequest(wlab, 'GET', '/api/lab/status');
  assert.equal(st.json.pid, worker.pid);
  srv.proc.kill('SIGQUIT');
  const { code } = await srv.exited;
  assert.equal(code, 0, srv.stderr);
});

test('fork + exec: the exec\'d program carries no agent; the forked child has its own', async () => {
  const script = 'import os, time, sys\n' +
    'pid = os.fork()\n' +
    'if pid == 0:\n' +
    '    time.sleep(2.5)\n' +
    '    os.execv("/bin/sh", ["sh", "-c", "echo child-env=[$LD_PRELOAD]"])\n' +
    'sock = "/tmp/proflab-%d/agent-%d.sock" % (os.getuid(), pid)\n' +
    'for i in range(40):\n' +
    '    if os.path.exists(sock): break\n' +
    '    time.sleep(0.05)\n' +
    'print("child-socket", os.path.exists(sock), flush=True)\n' +
    'os.waitpid(pid, 0)\n';
  const r = spawnSync(CLI, ['run', '--', '/usr/bin/python3', '-c', script],
    { env: agentEnv(), encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /child-socket True/);
  assert.match(r.stdout, /child-env=\[\]/);
});
