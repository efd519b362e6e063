// The image (the root Dockerfile) built and run for real with Debian's podman
// (../shared/reference/CONTAINERS.md): scripts/container-image.sh builds its
// "prebuilt" target from what `meson install --tags runtime` installs out of
// the build under test (PROFLABD's directory), once for this file, as
// localhost/proflab:deploy-test (layers cached between runs).
// - the image's configuration: non-root user, HEALTHCHECK on /api/health,
//   STOPSIGNAL SIGTERM, no lab settings; every runtime file meson installs
//   (programs, the agent) is in it;
// - started without lab settings: it runs as uid 10001, is healthy, and
//   /api/lab/* answers 404;
// - started with LAB_ENABLE and LAB_TOKEN from the environment: the lab
//   answers with that token only; a profile is taken and `proflab export
//   --docker --engine podman` gets it out (the proflabd helper, as the
//   non-root user); `podman healthcheck run` passes; `podman stop` (SIGTERM)
//   ends it with status 0;
// - run as deploy/kubernetes/deployment.yaml runs it (read-only root file
//   system, the artifact directory and /tmp the only writable places, no
//   capabilities, no new privileges): nothing else can be written, and
//   profiles, heap snapshots, downloads and exports all work.
// Skipped, with the reason, without podman or root; in the sanitized pass
// (the image holds the normal build).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { runExport, sha256File, tmpdir, REPO_ROOT, SANITIZED, BUILD } from '../tools/export-lib.mjs';

const IMAGE = 'localhost/proflab:deploy-test';
const ENGINE = ['podman', '--runtime', 'runc'];
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];
const TOKEN = 'deploy-token-0123456789abcdef';

function engine(args) {
  return spawnSync(ENGINE[0], [...ENGINE.slice(1), ...args], { encoding: 'utf8', timeout: 60000 });
}

function whyNot() {
  const v = spawnSync('podman', ['--version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return 'podman is not installed (scripts/deps.sh test installs podman, runc, debootstrap)';
  if (process.getuid && process.getuid() !== 0) return 'podman needs root on these machines';
  if (SANITIZED) return 'the image holds the normal build; this runs in the normal pass';
  return null;
}
const reason = whyNot();

let built = null;
before(() => {
  if (reason) return;
  const r = spawnSync(path.join(REPO_ROOT, 'scripts', 'container-image.sh'), [], {
    encoding: 'utf8', timeout: 900000, env: { ...process.env, PROFLAB_BUILD_DIR: BUILD, PROFLAB_IMAGE: IMAGE },
  });
  built = r.status === 0 ? '' : `scripts/container-image.sh failed (${r.error || `status ${r.status}`}):\n${(r.stderr || '').slice(-3000)}`;
});

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});

async function start(env, extra = []) {
  const port = await freePort();
  const e = Object.entries({ PROFLAB_LISTEN: `127.0.0.1:${port}`, PORT: port, ...env }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  const run = engine(['run', '-d', '--network=host', ...ULIMITS, ...extra, ...e, IMAGE]);
  assert.equal(run.status, 0, `podman run failed: ${run.stderr}`);
  const cid = run.stdout.trim();
  const base = `http://127.0.0.1:${port}`;
  let up = false;
  for (let i = 0; i < 100 && !up; i++) {
    try { up = (await fetch(`${base}/api/health`)).ok; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  assert.ok(up, `proflabd in the container did not answer: ${engine(['logs', cid]).stdout}`);
  return { cid, base };
}

function uidOfPid1(cid) {
  const r = engine(['exec', cid, 'sh', '-c', 'grep ^Uid: /proc/1/status; id -un']);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('the image: non-root user, HEALTHCHECK on /api/health, STOPSIGNAL SIGTERM, no lab settings, what meson installs', { skip: reason ?? false }, () => {
  assert.equal(built, '', built);
  const img = JSON.parse(engine(['image', 'inspect', IMAGE]).stdout)[0];
  const cfg = img.Config;
  assert.equal(cfg.User, '10001:10001');
  const hc = cfg.Healthcheck || img.Healthcheck; // podman shows it beside Config
  assert.ok(hc, 'a HEALTHCHECK (kept by --format docker)');
  assert.match(hc.Test.join(' '), /curl -fsS http:\/\/127\.0\.0\.1:\$\{PORT:-8080\}\/api\/health/);
  assert.equal(cfg.StopSignal, 'SIGTERM');
  for (const e of cfg.Env) assert.doesNotMatch(e, /^(LAB_ENABLE|LAB_TOKEN)=/, 'the lab is off unless the environment turns it on');
  const plan = JSON.parse(spawnSync('meson', ['introspect', BUILD, '--install-plan'], { encoding: 'utf8' }).stdout);
  const installed = JSON.parse(spawnSync('meson', ['introspect', BUILD, '--installed'], { encoding: 'utf8' }).stdout);
  const runtime = Object.values(plan).flatMap((sec) => Object.entries(sec)).filter(([, v]) => v.tag === 'runtime').map(([src]) => installed[src]);
  assert.ok(runtime.some((p) => p.endsWith('/bin/proflabd')) && runtime.some((p) => p.endsWith('/bin/proflab')), runtime.join(' '));
  const ls = engine(['run', '--rm', ...ULIMITS, IMAGE, 'sh', '-c', 'for f; do test -f "$f" || echo "missing $f"; done', 'sh', ...runtime]);
  assert.equal(ls.status, 0, ls.stderr);
  assert.equal(ls.stdout, '', `meson installs files the image lacks:\n${ls.stdout}`);
});

test('without lab settings: runs as uid 10001, healthy, /api/lab/* is 404', { skip: reason ?? false }, async () => {
  assert.equal(built, '', built);
  const { cid, base } = await start({});
  try {
    assert.match(uidOfPid1(cid), /^Uid:\s+10001\s+10001\s+10001\s+10001\n?proflab/m);
    assert.equal((await fetch(`${base}/api/lab/status`, { headers: { 'x-lab-token': TOKEN } })).status, 404);
    const hc = engine(['healthcheck', 'run', cid]);
    assert.equal(hc.status, 0, `health check: ${hc.stdout}${hc.stderr}`);
  } finally {
    engine(['rm', '-f', cid]);
  }
});

test('LAB_ENABLE and LAB_TOKEN from the environment: the lab answers with the token; export --docker --engine podman; health; SIGTERM exits 0', { skip: reason ?? false }, async () => {
  assert.equal(built, '', built);
  const { cid, base } = await start({ LAB_ENABLE: 'true', LAB_TOKEN: TOKEN, LAB_TASK_ID: 'deploy-1' });
  try {
    assert.match(uidOfPid1(cid), /^Uid:\s+10001\s/m);
    assert.equal((await fetch(`${base}/api/lab/status`)).status, 401);
    assert.equal((await fetch(`${base}/api/lab/status`, { headers: { 'x-lab-token': 'wrong-token-0123456789' } })).status, 401);
    const st = await fetch(`${base}/api/lab/status`, { headers: { 'x-lab-token': TOKEN } });
    assert.equal(st.status, 200);
    assert.equal(st.headers.get('x-lab-task'), 'deploy-1');
    const res = await fetch(`${base}/api/lab/cpu-profile?seconds=1`, { method: 'POST', headers: { 'x-lab-token': TOKEN } });
    const prof = await res.json();
    assert.equal(res.status, 200, JSON.stringify(prof));
    assert.match(prof.path, /^\/var\/lib\/proflab\//);
    const out = path.join(tmpdir('deploy-podman'), 'cpu.cpuprofile');
    const r = await runExport(['--docker', cid, '--engine', ENGINE.join(' '), '--dir', '/var/lib/proflab', '--latest', 'cpu', out], { env: { PATH: process.env.PATH } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256File(out), prof.sha256, 'the exported file is the artifact proflabd wrote');
    const hc = engine(['healthcheck', 'run', cid]);
    assert.equal(hc.status, 0, `health check: ${hc.stdout}${hc.stderr}`);
    const stop = engine(['stop', '-t', '10', cid]);
    assert.equal(stop.status, 0, String(stop.stderr));
    assert.equal(engine(['inspect', '-f', '{{.State.ExitCode}}', cid]).stdout.trim(), '0', 'SIGTERM: drained and exited 0');
    assert.match(engine(['logs', cid]).stdout, /"event":"shutdown"/);
  } finally {
    engine(['rm', '-f', cid]);
  }
});

test('a read-only root file system, as the Kubernetes manifest runs it: only the artifact directory is written; profile, snapshot, download and export work', { skip: reason ?? false }, async () => {
  assert.equal(built, '', built);
  // deployment.yaml: readOnlyRootFilesystem, capabilities drop ALL,
  // allowPrivilegeEscalation false, emptyDirs on /var/lib/proflab and /tmp
  const hardened = ['--read-only', '--read-only-tmpfs=false', '--tmpfs', '/var/lib/proflab:rw,size=64m,U',
    '--tmpfs', '/tmp:rw,size=16m', '--cap-drop=ALL', '--security-opt=no-new-privileges'];
  const { cid, base } = await start({ LAB_ENABLE: 'true', LAB_TOKEN: TOKEN, LAB_TASK_ID: 'deploy-ro' }, hardened);
  try {
    const cfg = JSON.parse(engine(['inspect', cid]).stdout)[0].HostConfig;
    assert.equal(cfg.ReadonlyRootfs, true);
    const probe = engine(['exec', cid, 'sh', '-c',
      'for d in / /etc /usr/local/bin /var/lib /home; do touch "$d/.w" 2>/dev/null && echo "wrote $d"; done; '
      + 'touch /var/lib/proflab/.w && rm /var/lib/proflab/.w && echo artifacts-writable; '
      + 'grep -E "^(CapEff|NoNewPrivs):" /proc/1/status']);
    assert.equal(probe.status, 0, probe.stderr);
    assert.doesNotMatch(probe.stdout, /^wrote /m, 'nothing outside the artifact directory is writable');
    assert.match(probe.stdout, /artifacts-writable/);
    assert.match(probe.stdout, /CapEff:\s+0+\n/);
    assert.match(probe.stdout, /NoNewPrivs:\s+1/);
    const h = { 'x-lab-token': TOKEN };
    const cpu = await fetch(`${base}/api/lab/cpu-profile?seconds=1`, { method: 'POST', headers: h });
    const prof = await cpu.json();
    assert.equal(cpu.status, 200, JSON.stringify(prof));
    const snap = await fetch(`${base}/api/lab/heap-snapshot`, { method: 'POST', headers: h });
    const heap = await snap.json();
    assert.equal(snap.status, 200, JSON.stringify(heap));
    const dl = await fetch(`${base}/api/lab/artifacts/${heap.file}`, { headers: h });
    assert.equal(dl.status, 200);
    assert.ok(JSON.parse(await dl.text()).snapshot, 'a heap snapshot came down');
    const out = path.join(tmpdir('deploy-podman-ro'), 'cpu.cpuprofile');
    const r = await runExport(['--docker', cid, '--engine', ENGINE.join(' '), '--dir', '/var/lib/proflab', '--latest', 'cpu', out], { env: { PATH: process.env.PATH } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256File(out), prof.sha256);
    const logs = engine(['logs', cid]);
    assert.doesNotMatch(logs.stdout + logs.stderr, /"level":"(error|fatal)"/, 'no errors logged');
    const stop = engine(['stop', '-t', '10', cid]);
    assert.equal(stop.status, 0, String(stop.stderr));
    assert.equal(engine(['inspect', '-f', '{{.State.ExitCode}}', cid]).stdout.trim(), '0');
  } finally {
    engine(['rm', '-f', cid]);
  }
});
