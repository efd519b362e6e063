// A short, bounded libFuzzer run over the export parsers (tests/fuzz): the
// frame scanner/parser/decoders and the resume-state parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT, SANITIZED, tmpdir } from '../tools/export-lib.mjs';

const SECONDS = process.env.PROFLAB_FUZZ_SECONDS || '3';

test('fuzz the export frame and state parsers', (t) => {
  if (SANITIZED) {
    // the fuzz targets are always built with ASan+UBSan; once per `make test` is enough
    t.skip('runs in the normal pass (fuzz targets carry their own sanitizers)');
    return;
  }
  const out = tmpdir('fuzz');
  const r = spawnSync(path.join(REPO_ROOT, 'tests', 'fuzz', 'run.sh'), [SECONDS, out],
    { encoding: 'utf8', timeout: 120000 });
  if (r.status === 77) {
    t.skip(`cannot build libFuzzer targets here: ${r.stderr.trim().split('\n').pop()}`);
    return;
  }
  assert.equal(r.status, 0, `fuzzer found a crash or failed to build:\n${r.stderr}`);
  assert.match(r.stderr, /number_of_executed_units: \d+/);
});
