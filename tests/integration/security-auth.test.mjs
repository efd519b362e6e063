// Security of the lab's front door, tried systematically (issue 14):
// - lab off: every /api/lab/* path, for every method, answers byte for byte
//   (Date aside) what an unknown path answers for that method;
// - tokens: wrong, empty, prefix, longer, other case, whitespace, other
//   header names and places, several x-lab-token headers;
// - brute force: 429 after the limit, holding across keep-alive connections,
//   pipelined requests and parallel connections;
// - no token (right or wrong) in any log line, error message or status answer.
// Each token case runs from its own loopback address (127.0.x.y), so the
// failed-token limit of one case never decides another's answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startProflabd, stopChecked, rawExchange, httpText, parseResponses, labEnv, GOOD_TOKEN,
  RawConn, request, eventually, scratch,
} from './helpers.mjs';

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];
const LAB_PATHS = [
  '/api/lab', '/api/lab/', '/api/lab/status', '/api/lab/status?x=1',
  '/api/lab/cpu-profile', '/api/lab/cpu-profile?seconds=1&format=pprof',
  '/api/lab/heap-snapshot', '/api/lab/heap-snapshot?format=heapprofile',
  '/api/lab/memory-leak?mb=1', '/api/lab/memory-clear', '/api/lab/event-loop-jam?ms=1',
  '/api/lab/artifacts', '/api/lab/artifacts/',
  '/api/lab/artifacts/cpu-20250101T000000.000Z-t.cpuprofile',
  '/api/lab/artifacts/..%2f..%2fetc%2fpasswd', '/api/lab/zzz',
];
const SECRET_WRONG = 'wrong-SECRET-9f8e7d6c5b4a39281706';
const TASK = 'sec-auth-task';

const s = scratch();
let off; // no lab variables
let prod; // LAB_ENABLE=true with a token, but APP_ENV=production without LAB_ALLOW_PROD
let on; // the lab on
const answers = []; // every answer body and head seen, for the token grep

before(async () => {
  off = await s.start({ LAB_TASK_ID: TASK });
  prod = await s.start(labEnv({ LAB_TASK_ID: TASK, APP_ENV: 'production', LAB_ARTIFACT_DIR: s.tmpDir('sec-prod') }));
  on = await s.start(labEnv({ LAB_ARTIFACT_DIR: s.tmpDir('sec-on') }));
});
after(async () => {
  await stopChecked(off);
  await stopChecked(prod);
  await stopChecked(on);
  await s.cleanup();
});

/** One request on its own connection; the raw answer without its Date line. */
async function rawAnswer(srv, method, path, headers = {}) {
  const raw = await rawExchange(srv.port, httpText(method, path, { Connection: 'close', ...headers }));
  answers.push(raw.toString('latin1'));
  return raw.toString('latin1').replace(/^Date: [^\r\n]*\r\n/im, '');
}

for (const [name, get] of [['lab off', () => off], ['lab enabled but off in production', () => prod]]) {
  test(`${name}: every /api/lab/* path x every method x token or none = the unknown path's answer, byte for byte`, async () => {
    const srv = get();
    let n = 0;
    for (const method of METHODS) {
      const ref = await rawAnswer(srv, method, '/api/nope');
      assert.match(ref, /^HTTP\/1\.1 404 /, `${method} /api/nope`);
      assert.match(ref, /\r\nx-lab-task: sec-auth-task\r\n/i);
      if (method !== 'HEAD') assert.match(ref, /"code":"not_found"/);
      for (const path of LAB_PATHS) {
        for (const headers of [{}, { 'x-lab-token': GOOD_TOKEN }, { 'x-lab-token': SECRET_WRONG }]) {
          const got = await rawAnswer(srv, method, path, headers);
          assert.equal(got, ref, `${method} ${path} (${Object.keys(headers).length ? 'token' : 'no token'})`);
          n++;
        }
      }
    }
    // many of those carried a wrong token: no rate limit with the lab off either
    assert.equal(n, METHODS.length * LAB_PATHS.length * 3);
  });
}

test('lab off: the same over one keep-alive connection (pipelined, every method but HEAD)', async () => {
  const c = new RawConn(off.port);
  await c.connect();
  const reqs = [];
  for (const method of METHODS.filter((m) => m !== 'HEAD')) { // (a HEAD answer's length is not followed by a body)
    reqs.push([method, '/api/nope']);
    for (const p of LAB_PATHS) reqs.push([method, p]);
  }
  await c.write(reqs.map(([m, p]) => httpText(m, p, { 'x-lab-token': SECRET_WRONG })).join(''));
  let ref;
  for (const [m, p] of reqs) {
    const r = await c.read();
    const text = r.raw.toString('latin1').replace(/^Date: [^\r\n]*\r\n/im, '');
    if (p === '/api/nope') ref = text;
    else assert.equal(text, ref, `${m} ${p}`);
  }
  c.destroy();
});

// ---- tokens ---------------------------------------------------------------

let addr = 0;
/** Send a raw request head from a fresh loopback address; the parsed answer. */
async function fromFreshAddress(head) {
  addr++;
  const c = new RawConn(on.port, { localAddress: `127.0.${10 + (addr >> 8)}.${addr & 255 || 1}` });
  await c.connect();
  await c.write(head);
  const r = await c.read();
  c.destroy();
  answers.push(r.raw.toString('latin1'));
  return r;
}

function head(lines) {
  return `GET /api/lab/status HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;
}

const T = GOOD_TOKEN;
const REFUSED = [
  ['no header', []],
  ['empty', ['x-lab-token: ']],
  ['only spaces', ['x-lab-token:    ']],
  ['wrong', [`x-lab-token: ${SECRET_WRONG}`]],
  ['prefix (all but the last byte)', [`x-lab-token: ${T.slice(0, -1)}`]],
  ['first byte only', [`x-lab-token: ${T[0]}`]],
  ['longer (one byte more)', [`x-lab-token: ${T}x`]],
  ['the token twice', [`x-lab-token: ${T}${T}`]],
  ['other case of the value', [`x-lab-token: ${T.toUpperCase()}`]],
  ['last byte differs', [`x-lab-token: ${T.slice(0, -1)}${T.endsWith('Z') ? 'Y' : 'Z'}`]],
  ['with a NUL-looking escape', [`x-lab-token: ${T}\\0`]],
  ['comma list', [`x-lab-token: ${T}, ${T}`]],
  ['right one in Authorization: Bearer', [`Authorization: Bearer ${T}`]],
  ['right one under another name (x-lab-tokens)', [`x-lab-tokens: ${T}`]],
  ['right one under x_lab_token', [`x_lab_token: ${T}`]],
  ['two headers: right then wrong', [`x-lab-token: ${T}`, `x-lab-token: ${SECRET_WRONG}`]],
  ['two headers: wrong then right', [`x-lab-token: ${SECRET_WRONG}`, `x-lab-token: ${T}`]],
  ['two headers: right twice', [`x-lab-token: ${T}`, `x-lab-token: ${T}`]],
  ['two headers: right, then other case of the name', [`x-lab-token: ${T}`, `X-Lab-Token: ${T}`]],
];
const ACCEPTED = [
  ['x-lab-token', [`x-lab-token: ${T}`]],
  ['X-LAB-TOKEN', [`X-LAB-TOKEN: ${T}`]],
  ['X-Lab-Token', [`X-Lab-Token: ${T}`]],
  ['x-LaB-tOkEn', [`x-LaB-tOkEn: ${T}`]],
  ['spaces around the value (optional whitespace, RFC 9110 5.6.3)', [`x-lab-token:   ${T}   `]],
  ['a tab before the value', [`x-lab-token:\t${T}`]],
];

test('tokens: every near miss, other place, or several x-lab-token headers -> 401 JSON, nothing done', async () => {
  for (const [what, lines] of REFUSED) {
    const r = await fromFreshAddress(head(lines));
    assert.equal(r.status, 401, `${what}: ${r.body}`);
    assert.match(r.get('content-type'), /^application\/json/, what);
    const b = JSON.parse(r.body.toString());
    assert.equal(b.error.code, 'unauthorized', what);
    assert.ok(!JSON.stringify(b).includes(T), `${what}: the answer carries no token`);
  }
  const several = await fromFreshAddress(head([`x-lab-token: ${T}`, `x-lab-token: ${T}`]));
  assert.match(JSON.parse(several.body.toString()).error.message, /several x-lab-token headers/);
});

test('tokens: the right token under any case of the header name, with optional whitespace -> 200', async () => {
  for (const [what, lines] of ACCEPTED) {
    const r = await fromFreshAddress(head(lines));
    assert.equal(r.status, 200, `${what}: ${r.body}`);
    const b = JSON.parse(r.body.toString());
    assert.ok(!JSON.stringify(b).includes(T), `${what}: the status answer carries no token`);
  }
});

// ---- brute force ----------------------------------------------------------

test('brute force on one keep-alive connection: 10 wrong tokens -> 401, then 429 on it and on a new connection', async () => {
  const c = new RawConn(on.port, { localAddress: '127.0.9.1' });
  await c.connect();
  for (let i = 0; i < 10; i++) {
    await c.write(head([`x-lab-token: ${SECRET_WRONG}${i}`]));
    const r = await c.read();
    assert.equal(r.status, 401, `attempt ${i + 1}`);
    assert.notEqual(r.get('connection'), 'close', 'keep-alive kept');
  }
  await c.write(head([`x-lab-token: ${T}`]));
  const blocked = await c.read();
  assert.equal(blocked.status, 429);
  assert.match(blocked.get('retry-after'), /^\d+$/);
  c.destroy();
  const fresh = new RawConn(on.port, { localAddress: '127.0.9.1' });
  await fresh.connect();
  await fresh.write(head([`x-lab-token: ${T}`]));
  assert.equal((await fresh.read()).status, 429, 'a new connection from the same address is still blocked');
  fresh.destroy();
});

test('brute force pipelined: 40 wrong tokens in one write -> exactly 10 x 401, then 429s; the right one after: 429', async () => {
  const c = new RawConn(on.port, { localAddress: '127.0.9.2' });
  await c.connect();
  await c.write(Array.from({ length: 40 }, (_, i) => head([`x-lab-token: ${SECRET_WRONG}p${i}`])).join('') + head([`x-lab-token: ${T}`]));
  const statuses = [];
  for (let i = 0; i < 41; i++) statuses.push((await c.read()).status);
  c.destroy();
  assert.deepEqual(statuses.slice(0, 10), Array(10).fill(401));
  assert.deepEqual(statuses.slice(10), Array(31).fill(429));
});

test('brute force in parallel: 60 connections at once with wrong tokens -> at most 10 x 401, the rest 429; then blocked', async () => {
  const conns = await Promise.all(Array.from({ length: 60 }, async () => {
    const c = new RawConn(on.port, { localAddress: '127.0.9.3' });
    await c.connect();
    return c;
  }));
  await Promise.all(conns.map((c, i) => c.write(head([`x-lab-token: ${SECRET_WRONG}q${i}`]))));
  const statuses = await Promise.all(conns.map(async (c) => { const r = await c.read(); c.destroy(); return r.status; }));
  const n401 = statuses.filter((x) => x === 401).length;
  const n429 = statuses.filter((x) => x === 429).length;
  assert.equal(n401 + n429, 60, `only 401 and 429: ${statuses}`);
  assert.ok(n401 <= 10, `${n401} wrong tokens were judged (limit 10)`);
  const after = await fromFreshAddressAs('127.0.9.3', head([`x-lab-token: ${T}`]));
  assert.equal(after.status, 429);
  // the business side and other addresses are not affected
  assert.equal((await request(on.base, '/api/health')).status, 200);
  assert.equal((await fromFreshAddress(head([`x-lab-token: ${T}`]))).status, 200);
});

async function fromFreshAddressAs(local, text) {
  const c = new RawConn(on.port, { localAddress: local });
  await c.connect();
  await c.write(text);
  const r = await c.read();
  c.destroy();
  answers.push(r.raw.toString('latin1'));
  return r;
}

// ---- secrets never leave --------------------------------------------------

test('no token, right or wrong, in any log line, error message or status answer', async () => {
  const st = await request(on.base, '/api/lab/status', { token: T });
  assert.equal(st.status, 200);
  answers.push(st.text);
  for (const srv of [off, prod, on]) {
    // everything answered so far is logged
    await eventually(() => srv.lines.filter((l) => l.event === 'request').length > 0);
  }
  const logs = [off, prod, on].map((srv) => srv.stdout + srv.stderr).join('\n');
  const everything = logs + answers.join('\n');
  const wrongOnes = [SECRET_WRONG, T.slice(0, -1), `${T}x`, T.toUpperCase()];
  for (const t of [T, ...wrongOnes]) {
    assert.ok(!everything.includes(t), `a token (${t.slice(0, 8)}…) appears in the logs or answers`);
  }
  assert.ok(!logs.includes('LAB_TOKEN='), 'no environment dump');
  const rejected = on.lines.filter((l) => l.event === 'lab_token_rejected');
  assert.ok(rejected.length >= 10, 'wrong tokens leave warnings (without the token)');
});
