// A short, bounded libFuzzer run over every target in tests/fuzz (run.sh):
// the export frame scanner/parser/decoders and resume-state parser, the
// inspector's HTTP head parser, WebSocket layer and CDP dispatch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT, SANITIZED, tmpdir } from '../tools/export-lib.mjs';

const SECONDS = process.env.PROFLAB_FUZZ_SECONDS || '2';

test('fuzz every parser target (export, inspector HTTP/WebSocket/CDP)', (t) => {
  if (SANITIZED) {
    // the fuzz targets are always built with ASan+UBSan; once per `make test` is enough
    t.skip('runs in the normal pass (fuzz targets carry their own sanitizers)');
    return;
  }
  const out = tmpdir('fuzz');
  const r = spawnSync(path.join(REPO_ROOT, 'tests', 'fuzz', 'run.sh'), [SECONDS, out],
    { encoding: 'utf8', timeout: 300000 });
  if (r.status === 77) {
    t.skip(`cannot build libFuzzer targets here: ${r.stderr.trim().split('\n').pop()}`);
    return;
  }
  assert.equal(r.status, 0, `fuzzer found a crash or failed to build:\n${r.stderr}`);
  assert.match(r.stderr, /number_of_executed_units: \d+/);
});

// The service's parsers (tests/fuzz/run-service.sh): query parameters with
// the lab's tables, artifact names and path resolution, Range/If-Range,
// the agent's settings, the export helper's stdin, and whole requests through MHD, the router, the
// guard and the lab (lab on and off).
test('fuzz the service parsers (params, artifact names, Range, agent settings, whole requests)', (t) => {
  if (SANITIZED) {
    t.skip('runs in the normal pass (fuzz targets carry their own sanitizers)');
    return;
  }
  const out = tmpdir('fuzz-svc');
  const r = spawnSync(path.join(REPO_ROOT, 'tests', 'fuzz', 'run-service.sh'), [SECONDS, out],
    { encoding: 'utf8', timeout: 400000 });
  if (r.status === 77) {
    t.skip(`cannot build libFuzzer targets here: ${r.stderr.trim().split('\n').pop()}`);
    return;
  }
  assert.equal(r.status, 0, `fuzzer found a crash or failed to build (left in ${out}):\n${r.stderr}`);
  const runs = r.stderr.match(/^fuzz: \S+ \d+ execs in/gm) || [];
  assert.equal(runs.length, 6, `one run per target:\n${r.stderr}`);
});
