// proflab export resume: the client killed mid-transfer (SIGKILL) and a second
// run finishing from the state file; the source changing between runs
// (grown, or rewritten at the same size) restarting cleanly; unusable state
// ignored; --no-resume; two exports to one destination at once.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sourceIn, runExport, sha256File, checkRun, EXIT } from '../tools/export-lib.mjs';

const stateOffset = (local) => {
  try {
    const m = /\noffset=(\d+)\n/.exec(fs.readFileSync(`${local}.proflab-state`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
};

/** Starts a slow export (F8 at scale 1: 0.5 MB/s) and returns its process. */
function slowExport(src, local, extra = []) {
  let child;
  const done = runExport(['--exec', 'exec-sim', '--chunk', '16384', '-q', ...extra, src, local], {
    env: { EXECSIM_FAULTS: 'F8', EXECSIM_P: '1', EXECSIM_SCALE: '1' },
    onSpawn: (p) => { child = p; },
  });
  return { done, child: () => child };
}

async function waitFor(cond, what, ms = 30000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A run cut by F1 with no retries: exit 3 with some data verified. */
async function partialRun(src, local, helper) {
  for (let seed = 1; seed < 40; seed++) {
    const r = await runExport(['--exec', 'exec-sim', '--helper', helper, '--max-sessions', '1', '--chunk', '4096',
      '-q', src, local], {
      env: { EXECSIM_FAULTS: 'F1', EXECSIM_P: '1', EXECSIM_SEED: String(seed),
        EXECSIM_SPAN: String(fs.statSync(src).size) },
    });
    checkRun(r, src, local, `partial run seed ${seed}`);
    if (r.code === EXIT.RESUMABLE && stateOffset(local) > 0) return stateOffset(local);
    fs.rmSync(local, { force: true });
  }
  assert.fail('no seed gave a partial transfer');
}

describe('export resume', () => {
  for (const helper of ['proflabd', 'node', 'sh']) {
    test(`helper ${helper}: SIGKILL mid-transfer, then a second run resumes and finishes`, async () => {
      const { dir, src } = sourceIn(`kill-${helper}`, 3 * 1024 * 1024, 11);
      const local = path.join(dir, 'out.bin');
      const run = slowExport(src, local, ['--helper', helper]);
      await waitFor(() => stateOffset(local) >= 65536, 'some verified data');
      run.child().kill('SIGKILL');
      const r1 = await run.done;
      assert.equal(r1.signal, 'SIGKILL');
      assert.ok(!fs.existsSync(local), 'a killed run left the destination');
      const at = stateOffset(local);
      assert.ok(at > 0 && at < fs.statSync(src).size, `state offset ${at}`);

      const r2 = await runExport(['--exec', 'exec-sim', '--helper', helper, src, local]);
      assert.equal(r2.code, 0, r2.stderr);
      const m = /resuming .* at (\d+) of (\d+) bytes/.exec(r2.stderr);
      assert.ok(m, `second run did not resume:\n${r2.stderr}`);
      assert.ok(Number(m[1]) > 0);
      assert.equal(sha256File(local), sha256File(src));
      assert.deepEqual(fs.readdirSync(dir).sort(), ['out.bin', 'src.bin']);
    });

    test(`helper ${helper}: the source grows or is rewritten between runs: a clean restart`, async () => {
      for (const change of ['grow', 'rewrite']) {
        const { dir, src } = sourceIn(`f12-${helper}`, 400000, 12);
        const local = path.join(dir, 'out.bin');
        await partialRun(src, local, helper);
        if (change === 'grow') fs.appendFileSync(src, 'more data written after the first session\n');
        else {
          const fd = fs.openSync(src, 'r+');
          fs.writeSync(fd, Buffer.from('REWRITTEN'), 0, 9, 10); // inside the verified prefix
          fs.closeSync(fd);
        }
        const r = await runExport(['--exec', 'exec-sim', '--helper', helper, src, local]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /changed since the last session; starting over/);
        assert.equal(sha256File(local), sha256File(src));
      }
    });
  }

  test('unusable state is ignored (start over); --no-resume starts over', async () => {
    const { dir, src } = sourceIn('badstate', 300000, 13);
    const local = path.join(dir, 'out.bin');
    await partialRun(src, local, 'proflabd');
    fs.writeFileSync(`${local}.proflab-state`, 'proflab-export-state 1\noffset=99999999999\n');
    let r = await runExport(['--exec', 'exec-sim', src, local]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /ignoring unusable state/);
    assert.equal(sha256File(local), sha256File(src));

    fs.rmSync(local);
    await partialRun(src, local, 'proflabd');
    r = await runExport(['--exec', 'exec-sim', '--no-resume', src, local]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /resuming/);
    assert.equal(sha256File(local), sha256File(src));

    // a state whose partial file lost data resumes only from what is there
    fs.rmSync(local);
    const at = await partialRun(src, local, 'proflabd');
    fs.truncateSync(`${local}.proflab-partial`, Math.floor(at / 2));
    r = await runExport(['--exec', 'exec-sim', src, local]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256File(local), sha256File(src));
  });

  test('a second export to the same destination is refused while one runs', async () => {
    const { dir, src } = sourceIn('lock', 2 * 1024 * 1024, 14);
    const local = path.join(dir, 'out.bin');
    const run = slowExport(src, local);
    await waitFor(() => stateOffset(local) > 0, 'the first export to start');
    const r = await runExport(['--exec', 'exec-sim', src, local]);
    assert.equal(r.code, EXIT.FAIL);
    assert.match(r.stderr, /another export is writing/);
    run.child().kill('SIGKILL');
    await run.done;
    assert.ok(!fs.existsSync(local));
  });
});
