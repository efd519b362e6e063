// Downloads while a CPU profile runs (found by the soak, issue 14): the
// sampler's SIGPROF lands on the loop thread thousands of times a second,
// and libmicrohttpd 0.9.75's sendfile path took a signal-shortened
// sendfile() for a full socket buffer and waited for a writability edge
// that never came: ~2 % of downloads (~3 % on the ASan build) stalled
// mid-body until the 65 s idle timeout. Files now go out through pread +
// send() (src/http/server.c, pl_respond_fd). Here: hundreds of downloads of
// a ~100 KiB artifact, 8 at a time, during 4 kHz profiles; every one must
// finish, whole and byte-identical, well before the idle timeout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startProflabd, stopChecked, labEnv, GOOD_TOKEN, SANITIZED } from './helpers.mjs';

let srv;
before(async () => { srv = await startProflabd({ env: labEnv() }); });
after(async () => { await stopChecked(srv); });

const H = { 'x-lab-token': GOOD_TOKEN };
const post = async (p) => {
  const r = await fetch(`${srv.base}${p}`, { method: 'POST', headers: H });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  return j;
};

test('downloads during 4 kHz CPU profiles all finish, whole and identical', { timeout: 300000 }, async () => {
  // 4 s at 4 kHz as a .cpuprofile: a sample id and a time delta each, ~100
  // KiB (a sendfile() that long is often cut short by a signal)
  const made = await post('/api/lab/cpu-profile?seconds=4&hz=4000&format=cpuprofile');
  const url = `${srv.base}/api/lab/artifacts/${made.file}`;
  const ref = Buffer.from(await (await fetch(url, { headers: H })).arrayBuffer());
  assert.ok(ref.length > 64 * 1024, `the artifact is ${ref.length} bytes`);
  const refHash = crypto.createHash('sha256').update(ref).digest('hex');
  let done = 0;
  const stalls = [];
  for (let round = 0; round < 2; round++) {
    const profiling = post('/api/lab/cpu-profile?seconds=3&hz=4000&format=folded');
    const until = Date.now() + 2500;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (Date.now() < until) {
        let got = 0;
        const hash = crypto.createHash('sha256');
        try {
          const r = await fetch(url, { headers: H, signal: AbortSignal.timeout(SANITIZED ? 20000 : 10000) });
          for await (const c of r.body) { got += c.length; hash.update(c); }
          assert.equal(got, ref.length);
          assert.equal(hash.digest('hex'), refHash);
          done++;
        } catch (e) {
          stalls.push(`${e.name} after ${got} of ${ref.length} bytes`);
        }
      }
    }));
    await profiling;
  }
  console.log(`# ${done} downloads of ${ref.length} bytes during profiles, ${stalls.length} stalled`);
  assert.deepEqual(stalls, [], 'downloads that stalled');
  assert.ok(done >= 24, `only ${done} downloads finished`);
});
