// Lab off: every /api/lab/* answer is byte-for-byte what an unknown path
// gets (apart from the Date header), whatever the method and token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProflabd, stopChecked, rawExchange, httpText, parseResponses, GOOD_TOKEN } from './helpers.mjs';

const LAB_PATHS = [
  '/api/lab/status',
  '/api/lab/memory-leak?mb=1',
  '/api/lab/memory-leak',
  '/api/lab/memory-clear',
  '/api/lab/event-loop-jam?ms=1',
  '/api/lab/zzz',
  '/api/lab',
  '/api/lab/',
];
const TOKENS = [undefined, GOOD_TOKEN, 'wrong-token-wrong-token-wrong'];

let off;     // no lab variables at all
let offish;  // LAB_ENABLE set to something other than "true", with a token
const TASK = 'lab-off-task';

before(async () => {
  off = await startProflabd({ env: { LAB_TASK_ID: TASK } });
  offish = await startProflabd({ env: { LAB_TASK_ID: TASK, LAB_ENABLE: '1', LAB_TOKEN: GOOD_TOKEN } });
});
after(async () => {
  await stopChecked(off);
  await stopChecked(offish);
});

/** One request on its own connection (Connection: close); the raw answer without Date. */
async function rawAnswer(srv, method, path, token) {
  const headers = { Connection: 'close' };
  if (token !== undefined) headers['x-lab-token'] = token;
  const raw = await rawExchange(srv.port, httpText(method, path, headers));
  const { responses, rest } = parseResponses(raw, true);
  assert.equal(responses.length, 1, `${method} ${path}: one answer`);
  assert.equal(rest.length, 0);
  const r = responses[0];
  assert.ok(r.get('date'), 'there is a Date header to ignore');
  return { r, text: raw.toString('latin1').replace(/^Date: [^\r\n]*\r\n/im, '') };
}

for (const [name, get] of [['lab off (no LAB_ENABLE)', () => off], ['LAB_ENABLE=1 (not "true") with a token', () => offish]]) {
  test(`${name}: listening line says lab:false`, () => {
    const srv = get();
    assert.equal(srv.listening.lab, false);
    assert.equal(srv.listening.lab_off_because, undefined, 'nothing to explain: the lab was not asked for');
  });

  test(`${name}: every /api/lab/* path, GET and POST, with and without token, answers exactly like /api/nope`, async () => {
    const srv = get();
    const ref = await rawAnswer(srv, 'GET', '/api/nope');
    assert.equal(ref.r.status, 404);
    assert.equal(ref.r.get('x-lab-task'), TASK);
    assert.match(ref.r.get('content-type'), /^application\/json/);
    assert.equal(JSON.parse(ref.r.body.toString()).error.code, 'not_found');
    const refPost = await rawAnswer(srv, 'POST', '/api/nope');
    assert.equal(refPost.text, ref.text, 'unknown path: GET and POST answer the same');
    let n = 0;
    for (const token of TOKENS) {
      for (const method of ['GET', 'POST']) {
        for (const path of LAB_PATHS) {
          const got = await rawAnswer(srv, method, path, token);
          assert.equal(got.text, ref.text, `${method} ${path} token=${token ? 'yes' : 'no'}`);
          n++;
        }
      }
    }
    // more than 10 of those carried a wrong token: no rate limit either
    assert.equal(n, TOKENS.length * 2 * LAB_PATHS.length);
  });

  test(`${name}: the same through fetch (keep-alive), status, body and headers except Date`, async () => {
    const srv = get();
    const strip = (res) => [...res.headers].filter(([k]) => k !== 'date');
    const ref = await fetch(`${srv.base}/api/nope`);
    const refBody = await ref.text();
    for (const path of LAB_PATHS) {
      const res = await fetch(srv.base + path, { method: 'POST', headers: { 'x-lab-token': GOOD_TOKEN } });
      assert.equal(res.status, ref.status, path);
      assert.equal(await res.text(), refBody, path);
      assert.deepEqual(strip(res), strip(ref), path);
    }
  });
}
