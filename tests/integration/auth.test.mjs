// Token layer: missing/wrong token -> 401, the token never shows up in a log
// line or an answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProflabd, stopChecked, request, assertError, labEnv, GOOD_TOKEN, eventually } from './helpers.mjs';

const WRONG = 'definitely-not-the-token-42';
const NEAR = GOOD_TOKEN.slice(0, -1) + (GOOD_TOKEN.endsWith('Z') ? 'Y' : 'Z'); // differs in the last byte
const PREFIX = GOOD_TOKEN.slice(0, -1); // a prefix of the right token

const ENDPOINTS = [
  ['GET', '/api/lab/status'],
  ['POST', '/api/lab/memory-leak?mb=1'],
  ['POST', '/api/lab/memory-clear'],
  ['POST', '/api/lab/event-loop-jam?ms=1'],
];

let srv;
const answers = []; // every answer's status line, headers and body, for the leak check

before(async () => { srv = await startProflabd({ env: labEnv() }); });
after(async () => { await stopChecked(srv); });

async function call(path, opts) {
  const res = await request(srv.base, path, opts);
  answers.push(`${res.status}\n${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n${res.text}`);
  assert.equal(res.headers.get('x-lab-task'), srv.task);
  return res;
}

// Failed tokens are rate-limited after 10 per address; a good request resets
// the count, so each test below ends with one.
async function good() {
  const res = await call('/api/lab/status', { token: GOOD_TOKEN });
  assert.equal(res.status, 200, res.text);
}

test('missing token -> 401 unauthorized on every lab endpoint', async () => {
  for (const [method, path] of ENDPOINTS) {
    const res = await call(path, { method });
    assertError(res, 401, 'unauthorized', `${method} ${path} without token`);
    assert.match(res.body.error.message, /x-lab-token/i, 'the message says which header');
  }
  await good();
});

test('empty token header -> 401', async () => {
  const res = await call('/api/lab/status', { token: '' });
  assertError(res, 401, 'unauthorized', 'empty token');
  await good();
});

test('wrong token -> 401 unauthorized on every lab endpoint', async () => {
  for (const [method, path] of ENDPOINTS) {
    const res = await call(path, { method, token: WRONG });
    assertError(res, 401, 'unauthorized', `${method} ${path} with a wrong token`);
  }
  await good();
});

test('near misses: last byte differs, a prefix, the token twice, other case -> 401', async () => {
  for (const t of [NEAR, PREFIX, GOOD_TOKEN + GOOD_TOKEN, GOOD_TOKEN.toUpperCase()]) {
    const res = await call('/api/lab/status', { token: t });
    assertError(res, 401, 'unauthorized', `token variant ${t.length} chars`);
  }
  await good();
});

test('a failed token leaves the lab untouched: nothing leaked, nothing jammed', async () => {
  await call('/api/lab/memory-leak?mb=5', { method: 'POST', token: WRONG });
  await call('/api/lab/event-loop-jam?ms=300', { method: 'POST', token: WRONG });
  const s = await call('/api/lab/status', { token: GOOD_TOKEN });
  assert.equal(s.body.memory.leak_bytes, 0);
  assert.equal(s.body.lab.jams, 0);
});

test('the right token works on every lab endpoint', async () => {
  for (const [method, path] of ENDPOINTS) {
    const res = await call(path, { method, token: GOOD_TOKEN });
    assert.equal(res.status, 200, `${method} ${path}: ${res.text}`);
  }
});

test('no token (right or wrong) appears in any log line or answer', async () => {
  // every request so far is logged once it completes
  const logged = await eventually(() => srv.lines.filter((l) => l.event === 'request').length >= answers.length);
  assert.ok(logged, 'all requests were logged');
  const out = srv.stdout + srv.stderr;
  const everything = out + answers.join('\n');
  for (const t of [GOOD_TOKEN, WRONG, NEAR, PREFIX, GOOD_TOKEN.toUpperCase()]) {
    assert.ok(!everything.includes(t), `token ${t.slice(0, 6)}… found in output`);
  }
  // rejected tokens are logged as an event, without the token
  const rejected = srv.lines.filter((l) => l.event === 'lab_token_rejected');
  assert.ok(rejected.length >= 4, 'wrong tokens leave a warning');
  for (const l of rejected) assert.equal(l.remote, '127.0.0.1');
  // no environment dump either
  assert.ok(!out.includes('LAB_TOKEN='), 'no LAB_TOKEN=… in logs');
});
