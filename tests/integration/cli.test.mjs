// proflab, the lab client, against real proflabd instances: every command's
// output and exit status, --help, bad command lines (exit 2, one line), a
// wrong token (exit 1), profile downloaded and verified, and several tasks
// behind a small round-robin load balancer written here (sticky by cookie
// or not, cutting a download to force a resume, or never reaching the task
// that wrote the artifact).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { startProflabd, stopChecked, labEnv, GOOD_TOKEN, REPO_ROOT, slow } from './helpers.mjs';

/** The CLI under test: $PROFLAB_CLI (relative to the repo root), default build/proflab. */
const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const COMMANDS = ['status', 'leak', 'clear', 'jam', 'profile', 'snapshot', 'artifacts', 'download'];

const dirs = [];
const servers = [];
const balancers = [];
const nginxes = [];
let srv;
let labDir;

function tmpDir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `pl-cli-${tag}-`));
  dirs.push(d);
  return d;
}

before(async () => {
  labDir = tmpDir('lab');
  srv = await startProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: labDir, LAB_TASK_ID: 'cli-task', LAB_MAX_LEAK_MB: 64 }) });
  servers.push(srv);
});
after(async () => {
  for (const b of balancers) await new Promise((r) => { b.server.closeAllConnections(); b.server.close(r); });
  for (const n of nginxes) { n.proc.kill('SIGTERM'); await n.exited; }
  for (const s of servers) await stopChecked(s);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Run the CLI: {code, stdout, stderr}. env replaces LAB_URL/LAB_TOKEN defaults. */
function cli(args, { env = {}, cwd, timeoutMs = slow(60000) } = {}) {
  const base = { PATH: process.env.PATH || '/usr/bin:/bin', LAB_URL: srv.base, LAB_TOKEN: GOOD_TOKEN };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS']) if (process.env[k]) base[k] = process.env[k];
  const full = { ...base, ...env };
  for (const [k, v] of Object.entries(full)) if (v === undefined) delete full[k];
  return new Promise((resolve, reject) => {
    const p = spawn(CLI, args, { env: full, cwd: cwd || tmpDir('cwd'), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`proflab ${args.join(' ')}: no exit within ${timeoutMs} ms`)); }, timeoutMs);
    p.on('error', (e) => { clearTimeout(t); reject(e); });
    p.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
  });
}

function assertOneLineError(r, code, pattern, what) {
  assert.equal(r.code, code, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^proflab[ :]/, what);
  if (pattern) assert.match(lines[0], pattern, what);
  assert.ok(!r.stderr.includes(GOOD_TOKEN), `${what}: the token leaked`);
}

/** Files in a directory other than those listed. */
const leftovers = (d, keep = []) => fs.readdirSync(d).filter((n) => !keep.includes(n));

// ---- help and command lines -------------------------------------------------

test('--help: the tool and each command describe themselves (exit 0, stdout)', async () => {
  const top = await cli(['--help']);
  assert.equal(top.code, 0);
  for (const c of COMMANDS) assert.match(top.stdout, new RegExp(`^  ${c} `, 'm'), `top-level help lists ${c}`);
  for (const c of COMMANDS) {
    const r = await cli([c, '--help'], { env: { LAB_TOKEN: undefined } });
    assert.equal(r.code, 0, `${c} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: proflab ${c}`), c);
    assert.match(r.stdout, /--url URL/, `${c}: common options`);
    assert.match(r.stdout, /--json/, c);
    assert.equal(r.stderr, '');
  }
  const p = await cli(['profile', '-h']);
  assert.match(p.stdout, /--seconds N/);
  for (const o of [/--mode M/, /--threads LIST/, /--offcpu/]) assert.match(p.stdout, o);
  assert.match(p.stdout, /export --task/);
});

test('bad command lines: exit 2 with a one-line reason, nothing sent', async () => {
  const before = srv.lines.filter((l) => l.event === 'request').length;
  const cases = [
    [['status', '--bogus'], /unknown option '--bogus'/],
    [['status', '-x'], /unknown option '-x'/],
    [['status', 'extra'], /unexpected argument 'extra'/],
    [['leak'], /--mb N is required/],
    [['leak', '--mb', 'abc'], /--mb 'abc' must be a whole number/],
    [['leak', '--mb', '-5'], /--mb '-5' must be a whole number/],
    [['leak', '--mb'], /option --mb needs a value/],
    [['jam', '--ms', '0'], /--ms '0' must be a whole number from 1/],
    [['jam'], /--ms N is required/],
    [['profile', '--format', 'svg'], /--format 'svg'/],
    [['profile', '--seconds', '1x'], /--seconds/],
    [['profile', '-o'], /option -o needs a value/],
    [['profile', '--mode', 'fast'], /--mode 'fast' must be wall or cpu/],
    [['profile', '--threads', '12,x'], /--threads '12,x' must be all or thread ids/],
    [['profile', '--mode', 'cpu', '--threads', '12'], /--threads is for --mode wall/],
    [['profile', '--mode', 'cpu', '--offcpu'], /--offcpu is for --mode wall/],
    [['snapshot', '--format', 'cpuprofile'], /--format 'cpuprofile'/],
    [['download'], /NAME is required/],
    [['download', '../etc/passwd'], /not an artifact name/],
    [['download', 'cpu-20260101T000000.000Z-t.cpuprofile', '--sha256', 'xyz'], /64 hex digits/],
    [['status', '--url', 'ftp://example.com'], /must start with http:\/\/, https:\/\/ or unix:/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ];
  for (const [args, pattern] of cases) assertOneLineError(await cli(args), 2, pattern, args.join(' '));
  const noToken = await cli(['status'], { env: { LAB_TOKEN: undefined } });
  assertOneLineError(noToken, 2, /no lab token/, 'no token');
  const tf = await cli(['status', '--token-file', '/nonexistent/token']);
  assertOneLineError(tf, 2, /cannot read the token file/, 'missing token file');
  const ctl = await cli(['status', '--token', 'abc\r\nx-evil: 1']);
  assertOneLineError(ctl, 2, /control character/, 'token with a line break');
  assert.equal(srv.lines.filter((l) => l.event === 'request').length, before, 'no request reached the lab');
});

// ---- the simple commands ------------------------------------------------------

test('status: a human summary and --json (the lab answer as is)', async () => {
  const r = await cli(['status']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^task +cli-task \(pid \d+/m);
  assert.match(r.stdout, /^event loop +lag p50/m);
  assert.match(r.stdout, /^profiler +idle/m);
  const j = await cli(['status', '--json']);
  assert.equal(j.code, 0);
  const body = JSON.parse(j.stdout);
  assert.equal(body.task, 'cli-task');
  assert.equal(body.pid, srv.pid);
});

test('--token, --token-file and --url override the environment', async () => {
  const tokFile = path.join(tmpDir('tok'), 'token');
  fs.writeFileSync(tokFile, `${GOOD_TOKEN}\n`);
  const r = await cli(['status', '--json', '--token-file', tokFile, '--url', `${srv.base}/`],
    { env: { LAB_TOKEN: 'wrong-token-wrong-token-wrong', LAB_URL: 'http://127.0.0.1:1' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).task, 'cli-task');
  const t = await cli(['status', '--json', '--token', GOOD_TOKEN], { env: { LAB_TOKEN: undefined } });
  assert.equal(t.code, 0, t.stderr);
});

test('leak, clear, jam: what the lab did, in words and in --json', async () => {
  const l = await cli(['leak', '--mb', '3']);
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stdout, /^task cli-task: allocated 3\.0 MiB, the lab now holds 3\.0 MiB/);
  const st = JSON.parse((await cli(['status', '--json'])).stdout);
  assert.equal(st.memory.leak_bytes, 3 << 20);
  const lj = await cli(['leak', '--mb', '2', '--json']);
  assert.equal(JSON.parse(lj.stdout).retained_bytes, 5 << 20);
  const c = await cli(['clear']);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /^task cli-task: freed 5\.0 MiB/);
  const j = await cli(['jam', '--ms', '30', '--json']);
  assert.equal(j.code, 0, j.stderr);
  const jb = JSON.parse(j.stdout);
  assert.equal(jb.requested_ms, 30);
  assert.ok(jb.jammed_ms >= 30);
  const jh = await cli(['jam', '--ms', '10']);
  assert.match(jh.stdout, /^task cli-task: jammed the event loop for \d+\.\d ms/);
});

test('the lab refuses: exit 1 with the lab\'s own reason (wrong token, bound, unreachable)', async () => {
  const w = await cli(['status'], { env: { LAB_TOKEN: 'wrong-token-wrong-token-wrong' } });
  assertOneLineError(w, 1, /wrong x-lab-token \(HTTP 401 unauthorized, task cli-task\)/, 'wrong token');
  assert.ok(!w.stderr.includes('wrong-token-wrong-token-wrong'), 'the token is not printed');
  const big = await cli(['leak', '--mb', '100']);
  assertOneLineError(big, 1, /HTTP 422 out_of_range/, 'leak over LAB_MAX_LEAK_MB');
  const down = await cli(['status', '--url', 'http://127.0.0.1:1']);
  assertOneLineError(down, 1, /127\.0\.0\.1:1/, 'nobody listening');
  const notLab = http.createServer((req, res) => { res.writeHead(500); res.end('oops'); });
  await new Promise((r) => notLab.listen(0, '127.0.0.1', r));
  const nl = await cli(['status', '--url', `http://127.0.0.1:${notLab.address().port}`]);
  notLab.close();
  assertOneLineError(nl, 1, /HTTP 500 .*not a lab answer/, 'not a lab');
});

// ---- profile, artifacts, download ----------------------------------------------

test('profile: triggers, downloads and verifies; -o FILE; --json; nothing else left in the directory', async () => {
  const out = tmpDir('prof');
  const file = path.join(out, 'cpu.cpuprofile');
  const r = await cli(['profile', '--seconds', '1', '-o', file, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.file, file);
  assert.equal(j.task, 'cli-task');
  assert.equal(j.verified, true);
  assert.equal(j.attempts, 1);
  assert.equal(j.lab.task, 'cli-task');
  const bytes = fs.readFileSync(file);
  assert.equal(sha256(bytes), j.sha256);
  assert.equal(j.sha256, j.lab.sha256, 'the hash the lab announced');
  assert.ok(bytes.equals(fs.readFileSync(path.join(labDir, j.artifact))), 'same bytes as on the lab');
  const prof = JSON.parse(bytes.toString());
  assert.ok(Array.isArray(prof.nodes) && prof.nodes.length > 0, 'a .cpuprofile');
  assert.deepEqual(leftovers(out), ['cpu.cpuprofile'], 'no temporary file left');
});

test('profile: default output is the artifact name in the current directory; --format folded; human line', async () => {
  const cwd = tmpDir('profcwd');
  const r = await cli(['profile', '--seconds', '1', '--format', 'folded', '--hz', '200'], { cwd });
  assert.equal(r.code, 0, r.stderr);
  const names = fs.readdirSync(cwd);
  assert.equal(names.length, 1);
  assert.match(names[0], /^cpu-\d{8}T\d{6}\.\d{3}Z-cli-task\.folded$/);
  assert.match(r.stdout, new RegExp(`^${names[0]}: ${names[0].replace(/\./g, '\\.')} \\(.+\\) from task cli-task, sha256 [0-9a-f]{64} \\(verified\\)\\n$`));
  assert.ok(fs.readFileSync(path.join(cwd, names[0])).equals(fs.readFileSync(path.join(labDir, names[0]))));
});

test('artifacts lists, download fetches by name; a wrong --sha256 writes nothing', async () => {
  const l = await cli(['artifacts', '--json']);
  assert.equal(l.code, 0, l.stderr);
  const list = JSON.parse(l.stdout).artifacts;
  assert.ok(list.length >= 2);
  const a = list[0];
  const human = await cli(['artifacts']);
  assert.match(human.stdout, new RegExp(`^${a.name.replace(/\./g, '\\.')} .* ${a.sha256.slice(0, 16)}  cli-task$`, 'm'));
  const out = tmpDir('dl');
  const dest = path.join(out, 'x.bin');
  const d = await cli(['download', a.name, '-o', dest, '--sha256', a.sha256, '--task', 'cli-task']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(sha256(fs.readFileSync(dest)), a.sha256);
  const bad = await cli(['download', a.name, '-o', path.join(out, 'y.bin'), '--sha256', '0'.repeat(64)]);
  assertOneLineError(bad, 1, /has sha256 [0-9a-f]{64}, the lab said 0{64}: not written/, 'wrong sha256');
  assert.deepEqual(leftovers(out), ['x.bin'], 'nothing written, no temporary file');
  const missing = await cli(['download', 'cpu-20200101T000000.000Z-cli-task.cpuprofile', '-o', path.join(out, 'z')]);
  assertOneLineError(missing, 1, /HTTP 404 not_found, task cli-task/, 'missing artifact');
  assert.deepEqual(leftovers(out), ['x.bin']);
});

test('snapshot: triggers a heap snapshot, downloads and verifies it', async () => {
  const out = tmpDir('snap');
  const file = path.join(out, 'heap.heapsnapshot');
  const r = await cli(['snapshot', '-o', file, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.task, 'cli-task');
  assert.equal(j.verified, true);
  assert.equal(sha256(fs.readFileSync(file)), j.lab.sha256);
  assert.ok(JSON.parse(fs.readFileSync(file, 'utf8')).snapshot, 'a .heapsnapshot');
});

// ---- several tasks behind a load balancer ---------------------------------------

/**
 * A round-robin HTTP load balancer over backends (like an ALB with two
 * tasks). sticky: sets AWSALB=<backend index> on answers and routes a
 * request carrying it there. route(req, i): override the choice. cutFirst:
 * cut the first artifact download after that many body bytes.
 */
async function startBalancer(backends, { sticky = false, route, cutFirst = 0 } = {}) {
  const b = { seen: [], next: 0 };
  let cut = cutFirst;
  b.server = http.createServer((req, res) => {
    const m = /(?:^|;\s*)AWSALB=(\d+)/.exec(req.headers.cookie || '');
    let i = sticky && m ? Number(m[1]) : b.next++ % backends.length;
    if (route) i = route(req, i);
    b.seen.push({ method: req.method, url: req.url, backend: i, cookie: req.headers.cookie, range: req.headers.range, ifRange: req.headers['if-range'] });
    const up = http.request({ host: '127.0.0.1', port: backends[i].port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      const headers = { ...ur.headers };
      if (sticky) headers['set-cookie'] = [`AWSALB=${i}; Path=/`, `AWSALBCORS=${i}; Path=/; SameSite=None`];
      res.writeHead(ur.statusCode, headers);
      const cutting = cut > 0 && ur.statusCode === 200 && req.url.startsWith('/api/lab/artifacts/');
      if (!cutting) { ur.pipe(res); return; }
      const limit = cut;
      cut = 0;
      let sent = 0;
      ur.on('data', (d) => {
        if (sent >= limit) return;
        const part = d.subarray(0, limit - sent);
        sent += part.length;
        res.write(part, () => { if (sent >= limit) { res.socket?.destroy(); ur.destroy(); } });
      });
    });
    up.on('error', () => { res.destroy(); });
    req.pipe(up);
  });
  await new Promise((r) => b.server.listen(0, '127.0.0.1', r));
  b.url = `http://127.0.0.1:${b.server.address().port}`;
  balancers.push(b);
  return b;
}

let tasks;
async function twoTasks() {
  if (tasks) return tasks;
  const a = await startProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: tmpDir('task-a'), LAB_TASK_ID: 'task-a' }) });
  servers.push(a);
  const b = await startProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: tmpDir('task-b'), LAB_TASK_ID: 'task-b' }) });
  servers.push(b);
  tasks = [a, b];
  return tasks;
}
const dirOf = (t) => t.env.LAB_ARTIFACT_DIR;

test('two tasks, sticky balancer: the profile comes from the task that wrote it, the cookie is sent back', async () => {
  const ts = await twoTasks();
  const lb = await startBalancer(ts, { sticky: true });
  const out = tmpDir('lb-sticky');
  const file = path.join(out, 'p.cpuprofile');
  const r = await cli(['profile', '--seconds', '1', '-o', file, '--json', '--url', lb.url]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  const writer = ts.findIndex((t) => t.task === j.lab.task);
  assert.ok(writer >= 0, `the trigger answer names a task: ${j.lab.task}`);
  assert.equal(j.task, j.lab.task, 'downloaded from the writer');
  assert.equal(j.wrong_task_answers, 0, 'stickiness: no other task asked');
  assert.ok(fs.readFileSync(file).equals(fs.readFileSync(path.join(dirOf(ts[writer]), j.artifact))));
  const dl = lb.seen.filter((s) => s.url.startsWith('/api/lab/artifacts/'));
  assert.ok(dl.length >= 1);
  for (const s of dl) assert.match(s.cookie || '', new RegExp(`AWSALB=${writer}`), 'the stickiness cookie came back');
  assert.ok(!fs.existsSync(path.join(dirOf(ts[1 - writer]), j.artifact)), 'the other task does not have it');
});

test('two tasks, plain round robin: answers from the other task (404) are retried until the writer answers', async () => {
  const ts = await twoTasks();
  const lb = await startBalancer(ts);
  const file = path.join(tmpDir('lb-rr'), 'p.cpuprofile');
  const r = await cli(['profile', '--seconds', '1', '-o', file, '--json', '--url', lb.url, '-v']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.task, j.lab.task);
  assert.ok(j.wrong_task_answers >= 1, `round robin sends the first download to the other task (${r.stdout})`);
  assert.match(r.stderr, /answer from task task-[ab], want task-[ab]; retrying/);
  assert.equal(sha256(fs.readFileSync(file)), j.lab.sha256);
});

test('two tasks, download cut mid-way: resumed with Range + If-Range, verified', async () => {
  const ts = await twoTasks();
  const lb = await startBalancer(ts, { sticky: true, cutFirst: 1500 });
  const file = path.join(tmpDir('lb-cut'), 'p.cpuprofile');
  const r = await cli(['profile', '--seconds', '1', '-o', file, '--json', '--url', lb.url]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.ok(j.resumed >= 1, r.stdout);
  const resumed = lb.seen.find((s) => s.range);
  assert.ok(resumed, 'a Range request was made');
  assert.equal(resumed.range, 'bytes=1500-');
  assert.match(resumed.ifRange, /^"/, 'with the ETag as If-Range');
  assert.equal(sha256(fs.readFileSync(file)), j.lab.sha256);
});

test('two tasks, the writer never reached: bounded retries, exit 1 naming `proflab export --task <task>`, no file', async () => {
  const ts = await twoTasks();
  let writer = -1;
  const lb = await startBalancer(ts, {
    route: (req, i) => {
      if (req.url.startsWith('/api/lab/cpu-profile')) { writer = i; return i; }
      if (req.url.startsWith('/api/lab/artifacts/')) return 1 - writer;
      return i;
    },
  });
  const out = tmpDir('lb-never');
  const file = path.join(out, 'p.cpuprofile');
  const r = await cli(['profile', '--seconds', '1', '-o', file, '--url', lb.url, '--attempts', '3']);
  const task = ts[writer].task;
  assertOneLineError(r, 1, new RegExp(`gave up .* after 3 attempts .*proflab export --task ${task} `), 'retries run out');
  assert.equal(lb.seen.filter((s) => s.url.startsWith('/api/lab/artifacts/')).length, 3, 'exactly --attempts downloads');
  assert.deepEqual(leftovers(out), [], 'no file, no temporary file');
});

// ---- a real load balancer: Debian's nginx, round robin over two tasks -----

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((f) => fs.existsSync(f));

/** nginx on an ephemeral loopback port, proxying round robin to the backends (no stickiness). */
async function startNginx(backends) {
  const dir = tmpDir('nginx');
  // a free port: bind, read, release
  const port = await new Promise((resolve) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
  const conf = `worker_processes 1;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream tasks {
${backends.map((b) => `    server 127.0.0.1:${b.port};`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://tasks;
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_read_timeout 120s;
    }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const proc = spawn(NGINX, ['-p', `${dir}/`, '-e', `${dir}/error.log`, '-c', `${dir}/nginx.conf`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const n = { proc, port, dir, url: `http://127.0.0.1:${port}`, exited: new Promise((r) => proc.on('close', r)) };
  nginxes.push(n);
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(`${n.url}/api/health`);
      if (res.ok) return n;
    } catch { /* not yet */ }
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not start: ${stderr}${fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : ''}`);
}

test('two tasks behind a real nginx (round robin): profile and snapshot come from the task that wrote them', async () => {
  assert.ok(NGINX, 'nginx is not installed: scripts/deps.sh test installs nginx-light');
  const ts = await twoTasks();
  const lb = await startNginx(ts);
  const seenTasks = new Set();
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`${lb.url}/api/health`);
    seenTasks.add(res.headers.get('x-lab-task'));
  }
  assert.deepEqual([...seenTasks].sort(), ['task-a', 'task-b'], 'nginx spreads requests over both tasks');
  for (const [cmd, ext] of [['profile', 'cpuprofile'], ['snapshot', 'heapsnapshot']]) {
    const file = path.join(tmpDir(`nginx-${cmd}`), `x.${ext}`);
    const args = cmd === 'profile' ? ['profile', '--seconds', '1'] : ['snapshot'];
    const r = await cli([...args, '-o', file, '--json', '--url', lb.url, '-v']);
    assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
    const j = JSON.parse(r.stdout);
    const writer = ts.findIndex((t) => t.task === j.lab.task);
    assert.ok(writer >= 0, `${cmd}: the trigger answer names a task (${j.lab.task})`);
    assert.equal(j.task, j.lab.task, `${cmd}: downloaded from the writer`);
    assert.equal(sha256(fs.readFileSync(file)), j.lab.sha256);
    assert.ok(fs.readFileSync(file).equals(fs.readFileSync(path.join(dirOf(ts[writer]), j.artifact))), `${cmd}: the writer's bytes`);
    assert.ok(!fs.existsSync(path.join(dirOf(ts[1 - writer]), j.artifact)), `${cmd}: the other task does not have it`);
  }
  const log = fs.readFileSync(path.join(lb.dir, 'access.log'), 'utf8');
  assert.match(log, /GET \/api\/lab\/artifacts\//, 'the downloads went through nginx');
});
