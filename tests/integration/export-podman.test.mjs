// proflab export --docker through a real container engine: Debian's podman
// (see docs/export.md), `podman exec -i` as a genuine exec channel.
//
// 1. A plain Debian container (the sh helper).
// 2. A container of the project's own image (Dockerfile, target "prebuilt",
//    made by scripts/container-image.sh, which also builds the Debian base
//    image once per machine): proflabd serves in it, a CPU profile is taken
//    over HTTP and exported with the proflabd helper; the health check
//    passes and SIGTERM (podman stop) ends it with status 0.
// Skipped, with the reason, without podman or root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { sourceIn, runExport, sha256File, tmpdir, REPO_ROOT, SANITIZED } from '../tools/export-lib.mjs';

const IMAGE = process.env.PROFLAB_TEST_IMAGE || 'localhost/deb12:min';
const ENGINE = ['podman', '--runtime', 'runc'];
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];

function engine(args, input) {
  return spawnSync(ENGINE[0], [...ENGINE.slice(1), ...args], { input, encoding: input ? undefined : 'utf8', timeout: 60000 });
}

let imagesBuilt = null;
/** Build the base and project images once (scripts/container-image.sh); null or the reason they cannot be had. */
function buildImages() {
  if (imagesBuilt === null) {
    const r = spawnSync(path.join(REPO_ROOT, 'scripts', 'container-image.sh'), [], { encoding: 'utf8', timeout: 900000 });
    imagesBuilt = r.status === 0 ? '' : `scripts/container-image.sh failed (${r.error || `status ${r.status}`}):\n${(r.stderr || '').slice(-3000)}`;
  }
  return imagesBuilt;
}

function whyNot() {
  const v = spawnSync('podman', ['--version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return 'podman is not installed (scripts/deps.sh test installs podman, runc, debootstrap)';
  if (process.getuid && process.getuid() !== 0) return 'podman needs root on these machines';
  return null;
}

test('export --docker CONTAINER --engine podman from a real container', async (t) => {
  const reason = whyNot();
  if (reason) {
    t.skip(reason);
    return;
  }
  const built = buildImages();
  assert.equal(built, '', built);
  const run = engine(['run', '-d', '--network=host', ...ULIMITS, IMAGE, 'sleep', '600']);
  assert.equal(run.status, 0, `podman run failed: ${run.stderr}`);
  const cid = run.stdout.trim();
  try {
    const { dir, src } = sourceIn('podman', 1500000, 21);
    const name = `cpu-20261125T101500.000Z-${crypto.randomBytes(3).toString('hex')}.cpuprofile`;
    const put = engine(['exec', '-i', cid, 'sh', '-c', `cat > /tmp/${name}`], fs.readFileSync(src));
    assert.equal(put.status, 0, String(put.stderr));
    const r = await runExport(['--docker', cid, '--engine', ENGINE.join(' '), '--latest', 'cpu',
      path.join(dir, 'out')], { env: { PATH: process.env.PATH } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256File(path.join(dir, 'out')), sha256File(src));
  } finally {
    engine(['rm', '-f', cid]);
  }
});

test('a container of the project image: proflabd serves in it; a CPU profile exported with the proflabd helper; health check; SIGTERM exits 0', async (t) => {
  const reason = whyNot() || (SANITIZED && 'the image holds the normal build (build/); this runs in the normal pass');
  if (reason) {
    t.skip(reason);
    return;
  }
  const built = buildImages();
  assert.equal(built, '', built);
  const port = await new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
  const token = 'container-token-0123456789abcdef';
  const run = engine(['run', '-d', '--network=host', ...ULIMITS, '-e', 'LAB_ENABLE=true', '-e', `LAB_TOKEN=${token}`,
    '-e', `PROFLAB_LISTEN=127.0.0.1:${port}`, '-e', `PORT=${port}`, '-e', 'LAB_TASK_ID=ctr-1', 'localhost/proflab:test']);
  assert.equal(run.status, 0, `podman run failed: ${run.stderr}`);
  const cid = run.stdout.trim();
  try {
    const base = `http://127.0.0.1:${port}`;
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      try { up = (await fetch(`${base}/api/health`)).ok; } catch { await new Promise((r) => setTimeout(r, 100)); }
    }
    assert.ok(up, `proflabd in the container did not answer: ${engine(['logs', cid]).stdout}`);
    const res = await fetch(`${base}/api/lab/cpu-profile?seconds=1`, { method: 'POST', headers: { 'x-lab-token': token } });
    const prof = await res.json();
    assert.equal(res.status, 200, JSON.stringify(prof));
    assert.equal(prof.task, 'ctr-1');
    assert.match(prof.path, /^\/var\/lib\/proflab\//, 'the image\'s artifact directory');
    const dir = tmpdir('podman-proflabd');
    const out = path.join(dir, 'cpu.cpuprofile');
    const r = await runExport(['--docker', cid, '--engine', ENGINE.join(' '), '--helper', 'proflabd',
      '--dir', '/var/lib/proflab', '--latest', 'cpu', out], { env: { PATH: process.env.PATH } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256File(out), prof.sha256, 'the exported file is the artifact proflabd wrote');
    const hc = engine(['healthcheck', 'run', cid]);
    assert.equal(hc.status, 0, `health check: ${hc.stdout}${hc.stderr}`);
    const stop = engine(['stop', '-t', '10', cid]);
    assert.equal(stop.status, 0, String(stop.stderr));
    const code = engine(['inspect', '-f', '{{.State.ExitCode}}', cid]);
    assert.equal(code.stdout.trim(), '0', 'SIGTERM: drained and exited 0');
    assert.match(engine(['logs', cid]).stdout, /"event":"shutdown"/);
  } finally {
    engine(['rm', '-f', cid]);
  }
});
