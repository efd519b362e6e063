// A short, bounded libFuzzer run over the profile readers behind `proflab
// top` and `convert` (tests/fuzz/run-readers.sh): the JSON tokenizer, the
// .cpuprofile, .heapprofile, .heapsnapshot (with the dominators), folded and
// pprof readers, the detection in front of them, and the time in snapshot
// file names that `proflab leaks` reads; each target also checks that every writer accepts what a
// reader built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, SANITIZED } from './helpers.mjs';

const SECONDS = process.env.PROFLAB_FUZZ_SECONDS || '2';

test('fuzz the profile readers', (t) => {
  if (SANITIZED) {
    // the fuzz targets are always built with ASan+UBSan; once per `make test` is enough
    t.skip('runs in the normal pass (fuzz targets carry their own sanitizers)');
    return;
  }
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-fuzz-read-'));
  const r = spawnSync(path.join(REPO_ROOT, 'tests', 'fuzz', 'run-readers.sh'), [SECONDS, out],
    { encoding: 'utf8', timeout: 240000 });
  if (r.status === 77) {
    t.skip(`cannot build libFuzzer targets here: ${r.stderr.trim().split('\n').pop()}`);
    return;
  }
  assert.equal(r.status, 0, `fuzzer found a crash or failed to build (left in ${out}):\n${r.stderr}`);
  const runs = r.stderr.match(/number_of_executed_units: \d+/g) || [];
  const targets = fs.readdirSync(path.join(REPO_ROOT, 'tests', 'fuzz')).filter((f) => /^fuzz-read-.*\.c$/.test(f));
  assert.equal(runs.length, targets.length, `one run per target (${targets.join(', ')}):\n${r.stderr}`);
  fs.rmSync(out, { recursive: true, force: true });
});
