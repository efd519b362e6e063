// Forked processes under the agent: every process of the program gets an
// agent of its own (its own thread and Unix socket, announced in the log
// with forked_from), the parent's keeps working, and the program's
// answers do not change. nginx (Debian's) with a master and a worker. The
// inspector and the whole-run profiles start again in a forked child too:
// its inspector on the next free port, its profiles in files named with
// its pid; a child forked before its own agent started (a double fork)
// passes that on.
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

/** The parent pid of pid, or 0. */
function ppidOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch { return 0; }
}

/** The registry file (agent-PID.json) of a child of ppid: its contents. */
async function findChildRegistry(ppid, ms = 10000) {
  const regDir = `/tmp/proflab-${process.getuid()}`;
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 100))) {
    for (const f of fs.existsSync(regDir) ? fs.readdirSync(regDir) : []) {
      const m = f.match(/^agent-(\d+)\.json$/);
      if (!m || ppidOf(Number(m[1])) !== ppid) continue;
      try { return JSON.parse(fs.readFileSync(path.join(regDir, f), 'utf8')); } catch { /* being replaced */ }
    }
  }
  throw new Error(`no registry file of a child of ${ppid} within ${ms} ms`);
}

/** GET http://127.0.0.1:port/json/list of an inspector: its targets. */
function inspectorList(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/json/list', agent: false }, (res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => { try { resolve(JSON.parse(b)); } catch (e) { reject(e); } });
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

test('nginx worker: its own inspector on the next free port and its own whole-run profiles (FILE with its pid)', { skip: !NGINX && 'nginx not installed', timeout: 120000 }, async () => {
  const port = await freePort();
  const inspect = await freePort();
  const cpu = path.join(dir, 'run.cpuprofile');
  const heap = path.join(dir, 'run.heapprofile');
  const srv = await runUnderAgent([NGINX, '-c', nginxConf(port), '-p', dir], {
    runArgs: [`--inspect=127.0.0.1:${inspect}`, '--cpu-profile', cpu, '--heap-profile', heap],
    env: { LAB_ARTIFACT_DIR: dir },
  });
  assert.equal(Number(new URL(srv.start.inspector).port), inspect);
  // the worker's stderr is nginx's error log: find it by its registry file
  const w = await findChildRegistry(srv.pid);
  assert.ok(w.inspector, `the worker's agent has no inspector: ${JSON.stringify(w)}`);
  const wport = Number(new URL(w.inspector).port);
  assert.ok(wport > inspect && wport <= inspect + 100, `worker inspector port ${wport}, master's ${inspect}`);
  const [mt] = await inspectorList(inspect);
  const [wt] = await inspectorList(wport);
  assert.equal(mt.title, `nginx (pid ${srv.pid}, proflab agent)`);
  assert.equal(wt.title, `nginx (pid ${w.pid}, proflab agent)`);
  assert.notEqual(mt.id, wt.id);
  const ps = JSON.parse(spawnSync(CLI, ['ps', '--json'], { env: agentEnv(), encoding: 'utf8' }).stdout);
  assert.equal(ps.agents.find((a) => a.pid === w.pid)?.inspector, w.inspector);

  // enough work for the worker's CPU samples to land in ngx_ code on a
  // loaded machine too (200 requests once left only idle samples)
  for (let i = 0; i < 1000; i++) assert.equal((await get(port, '/index.html')).status, 200);
  srv.proc.kill('SIGQUIT');
  const { code } = await srv.exited;
  assert.equal(code, 0, srv.stderr);

  // the master's files under the names given, the worker's with its pid
  const wcpu = path.join(dir, `run.${w.pid}.cpuprofile`);
  const wheap = path.join(dir, `run.${w.pid}.heapprofile`);
  for (const f of [cpu, heap, wcpu, wheap]) assert.ok(fs.existsSync(f), `${f} not written: ${fs.readdirSync(dir)}`);
  const names = (f) => new Set(JSON.parse(fs.readFileSync(f, 'utf8')).nodes.map((n) => n.callFrame.functionName));
  const wn = names(wcpu);
  assert.ok([...wn].some((x) => /^ngx_/.test(x)), `no ngx_ function in the worker's profile: ${[...wn].join(', ')}`);
  assert.ok(names(cpu).size > 1);
  for (const f of [heap, wheap]) assert.ok(JSON.parse(fs.readFileSync(f, 'utf8')).head, f);
  assert.ok(!fs.existsSync(path.join(`/tmp/proflab-${process.getuid()}`, `agent-${w.pid}.json`)), 'the worker left its registry file');
});

test('a double fork: the grandchild, forked before its parent\'s agent started, gets the agent and its own profile', async () => {
  const folded = path.join(dir, 'df.folded');
  const script = 'import os, sys, time\n' +
    'pid = os.fork()\n' +
    'if pid == 0:\n' +
    '    g = os.fork()\n' +           // at once: the child's agent has not started yet
    '    if g == 0:\n' +
    '        time.sleep(1.5)\n' +
    '        sys.exit(0)\n' +
    '    print("grandchild", g, flush=True)\n' +
    '    os._exit(0)\n' +              // no destructor, no profile of its own
    'os.waitpid(pid, 0)\n' +
    'time.sleep(2.5)\n';
  const r = spawnSync(CLI, ['run', '--cpu-profile', folded, '--', '/usr/bin/python3', '-c', script],
    { env: agentEnv({ LAB_ARTIFACT_DIR: dir }), encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, r.stderr);
  const g = Number((r.stdout.match(/^grandchild (\d+)$/m) || [])[1]);
  assert.ok(g > 0, r.stdout);
  const starts = r.stderr.split('\n').filter((l) => l.includes('"agent_start"')).map((l) => JSON.parse(l));
  const gs = starts.find((x) => x.pid === g);
  assert.ok(gs, `no agent_start of the grandchild ${g}:\n${r.stderr}`);
  assert.ok(gs.lab && gs.forked_from, JSON.stringify(gs));
  assert.equal(gs.cpu_profile, path.join(dir, `df.${g}.folded`));
  assert.ok(fs.existsSync(folded), 'the parent\'s profile');
  assert.ok(fs.existsSync(path.join(dir, `df.${g}.folded`)), `the grandchild's profile: ${fs.readdirSync(dir)}`);
});
