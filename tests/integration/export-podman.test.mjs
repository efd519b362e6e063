// proflab export --docker through a real container engine: Debian's podman
// (see docs/export.md), `podman exec -i` as a genuine exec channel. Needs
// podman and the local base image localhost/deb12:min (built once per
// machine as the shared CONTAINERS notes describe); skipped, with the reason,
// when either is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { sourceIn, runExport, sha256File } from '../tools/export-lib.mjs';

const IMAGE = process.env.PROFLAB_TEST_IMAGE || 'localhost/deb12:min';
const ENGINE = ['podman', '--runtime', 'runc'];
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];

function engine(args, input) {
  return spawnSync(ENGINE[0], [...ENGINE.slice(1), ...args], { input, encoding: input ? undefined : 'utf8', timeout: 60000 });
}

function whyNot() {
  const v = spawnSync('podman', ['--version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return 'podman is not installed (apt-get install podman runc)';
  const img = spawnSync('podman', ['image', 'exists', IMAGE]);
  if (img.status !== 0) return `image ${IMAGE} not present (build it with debootstrap + podman import)`;
  return null;
}

test('export --docker CONTAINER --engine podman from a real container', async (t) => {
  const reason = whyNot();
  if (reason) {
    t.skip(reason);
    return;
  }
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
