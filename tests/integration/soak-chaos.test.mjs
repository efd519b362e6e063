// The soak's short version (bench/soak/soak.mjs; `make soak` runs it for 10
// minutes): 60 s of wrk on the business endpoints while chaos workers run
// profiles, snapshots, leaks, clears, jams, downloads (whole, ranged,
// abandoned), DevTools sessions (some cut mid-snapshot) and vanishing
// clients. Runs in the AddressSanitizer pass of `make test` only (the
// soak is meant for that build); PROFLAB_SOAK_SECONDS changes its length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT, SANITIZED } from './helpers.mjs';

const SECONDS = Number(process.env.PROFLAB_SOAK_SECONDS || 60);

test(`soak: ${SECONDS} s of wrk + chaos: only expected answers, no crash, no sanitizer report, fds and RSS back, exit 0`, { timeout: (SECONDS + 120) * 1000 }, async (t) => {
  if (!SANITIZED && !process.env.PROFLAB_SOAK_SECONDS) {
    t.skip('runs in the AddressSanitizer pass (make test-asan)');
    return;
  }
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (e) {
    if (e.code === 'ENOENT') { t.skip('wrk is not installed'); return; }
  }
  const { runSoak } = await import(path.join(REPO_ROOT, 'bench', 'soak', 'soak.mjs'));
  const r = await runSoak({ seconds: SECONDS, log: (s) => t.diagnostic(s) });
  t.diagnostic(`SOAK_RESULT ${JSON.stringify(r)}`);
  assert.equal(r.crashes, 0, 'proflabd crashed');
  assert.deepEqual(r.sanitizer_reports, []);
  // (a download that stalled mid-body, "terminated" on the client, was the
  // sendfile bug download-while-profiling.test.mjs guards: no longer excused)
  assert.deepEqual(r.unexpected, [], 'only expected answers (200/206/409/422, 404 for a pruned download)');
  assert.ok(r.wrk.requests > 0, JSON.stringify(r.wrk));
  assert.deepEqual(Object.values(r.wrk.errors), [0, 0, 0, 0, 0], `wrk errors: ${JSON.stringify(r.wrk)}`);
  assert.deepEqual(r.leaked_fds, [], 'no fd but keep-alive sockets and the symbolizer cache');
  assert.equal(r.exit.code, 0);
  assert.equal(r.exit.signal, null);
  assert.ok(r.end && r.end.rss_kb - r.start.rss_kb < 64 * 1024, `RSS ${JSON.stringify([r.start, r.end])}`);
});
