// Every bad-parameter class on memory-leak (mb) and event-loop-jam (ms).
// What src/http/params.c documents:
//   malformed, missing, empty, repeated, unknown -> 400 bad_parameter
//   a well-formed integer outside the range (incl. negative, overflow) -> 422 out_of_range
// and the message names the parameter and, for ranges, the bound.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProflabd, stopChecked, request, assertError, labEnv, GOOD_TOKEN } from './helpers.mjs';

const MAX_LEAK_MB = 64;
const MAX_JAM_MS = 200;
const MiB = 1024 * 1024;

let srv;
before(async () => {
  srv = await startProflabd({ env: labEnv({ LAB_MAX_LEAK_MB: MAX_LEAK_MB, LAB_MAX_JAM_MS: MAX_JAM_MS }) });
});
after(async () => { await stopChecked(srv); });

const post = (path) => request(srv.base, path, { method: 'POST', token: GOOD_TOKEN });
const status = async () => (await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN })).body;

const ENDPOINTS = [
  { path: '/api/lab/memory-leak', p: 'mb', max: MAX_LEAK_MB, bound: 'LAB_MAX_LEAK_MB' },
  { path: '/api/lab/event-loop-jam', p: 'ms', max: MAX_JAM_MS, bound: 'LAB_MAX_JAM_MS' },
];

// [query, status, code, parameter the message names, what else it must say]
function cases(p, max, bound) {
  const range = [/\b1\b/, new RegExp(`\\b${max}\\b`), new RegExp(bound)];
  const P = p.toUpperCase();
  return [
    ['', 400, 'bad_parameter', p, [/required/, ...range]],                   // missing
    [`?${p}=`, 400, 'bad_parameter', p, [/empty/, ...range]],                // empty
    [`?${p}`, 400, 'bad_parameter', p, [/empty/, ...range]],                 // no '=' at all
    [`?${p}=abc`, 400, 'bad_parameter', p, [/abc/, /not a number/, ...range]],
    [`?${p}=1.5`, 400, 'bad_parameter', p, [/1\.5/, ...range]],
    [`?${p}=0x10`, 400, 'bad_parameter', p, [/0x10/, ...range]],
    [`?${p}=1e3`, 400, 'bad_parameter', p, [/1e3/, ...range]],
    [`?${p}=%2B5`, 400, 'bad_parameter', p, range],                          // "+5"
    [`?${p}=%205`, 400, 'bad_parameter', p, range],                          // " 5"
    [`?${p}=5%20`, 400, 'bad_parameter', p, range],                          // "5 "
    [`?${p}=-`, 400, 'bad_parameter', p, range],
    [`?${p}=-5`, 422, 'out_of_range', p, [/-5/, ...range]],                  // negative
    [`?${p}=99999999999999999999999`, 422, 'out_of_range', p, range],        // overflows 64 bits
    [`?${p}=18446744073709551616`, 422, 'out_of_range', p, range],           // 2^64
    [`?${p}=0`, 422, 'out_of_range', p, range],                              // below the minimum
    [`?${p}=${max + 1}`, 422, 'out_of_range', p, [new RegExp(`\\b${max + 1}\\b`), ...range]], // above the bound
    [`?${p}=1&${p}=2`, 400, 'bad_parameter', p, [/more than once/, ...range]], // repeated
    [`?${p}=1&${p}=1`, 400, 'bad_parameter', p, [/more than once/]],         // repeated, same value
    [`?${p}=1&zzz=2`, 400, 'bad_parameter', 'zzz', [/unknown/, new RegExp(`\\b${p}\\b`)]], // unknown parameter
    ['?zzz=2', 400, 'bad_parameter', 'zzz', [/unknown/]],
    [`?${P}=1`, 400, 'bad_parameter', P, [/unknown/]],                       // names are case-sensitive
  ];
}

for (const ep of ENDPOINTS) {
  for (const [q, st, code, name, extra] of cases(ep.p, ep.max, ep.bound)) {
    test(`POST ${ep.path}${q} -> ${st} ${code}`, async () => {
      const res = await post(ep.path + q);
      assertError(res, st, code, `${ep.path}${q}`);
      const msg = res.body.error.message;
      assert.ok(msg.includes(`'${name}'`), `the message names the parameter '${name}': ${msg}`);
      for (const re of extra) assert.match(msg, re, `message: ${msg}`);
    });
  }

  test(`POST ${ep.path} at the bounds (1 and ${ep.max}) -> 200`, async () => {
    for (const v of [1, ep.max]) {
      const res = await post(`${ep.path}?${ep.p}=${v}`);
      assert.equal(res.status, 200, `${ep.p}=${v}: ${res.text}`);
      if (ep.p === 'mb') {
        assert.equal(res.body.allocated_bytes, v * MiB);
        const c = await post('/api/lab/memory-clear');
        assert.equal(c.body.freed_bytes, v * MiB);
      } else {
        assert.ok(res.body.jammed_ms >= v);
      }
    }
  });
}

test('the rejected requests above changed nothing: no memory held', async () => {
  const s = await status();
  assert.equal(s.memory.leak_bytes, 0);
});

test('a leak beyond what is already held -> 422 naming LAB_MAX_LEAK_MB, and nothing retained by the failed one', async () => {
  const a = await post('/api/lab/memory-leak?mb=40');
  assert.equal(a.status, 200, a.text);
  const rssBefore = (await status()).memory.rss_bytes;
  const b = await post('/api/lab/memory-leak?mb=30');
  assertError(b, 422, 'out_of_range', '40 + 30 > 64');
  assert.match(b.body.error.message, /LAB_MAX_LEAK_MB/);
  assert.match(b.body.error.message, /\b64\b/);
  assert.match(b.body.error.message, /\b40\b/, 'says how much is held');
  const s = await status();
  assert.equal(s.memory.leak_bytes, 40 * MiB, 'the failed leak kept nothing');
  assert.ok(s.memory.rss_bytes < rssBefore + 20 * MiB, `rss did not grow by the failed 30 MiB (${rssBefore} -> ${s.memory.rss_bytes})`);
  const c = await post('/api/lab/memory-leak?mb=24'); // exactly up to the bound
  assert.equal(c.status, 200, c.text);
  assert.equal(c.body.retained_bytes, 64 * MiB);
  const d = await post('/api/lab/memory-leak?mb=1');
  assertError(d, 422, 'out_of_range', 'one more MiB at the bound');
  const clear = await post('/api/lab/memory-clear');
  assert.equal(clear.body.freed_bytes, 64 * MiB);
});

test('endpoints without parameters reject unknown ones: status, memory-clear', async () => {
  const s = await request(srv.base, '/api/lab/status?verbose=1', { token: GOOD_TOKEN });
  assertError(s, 400, 'bad_parameter', 'status?verbose=1');
  assert.match(s.body.error.message, /verbose/);
  const c = await post('/api/lab/memory-clear?mb=1');
  assertError(c, 400, 'bad_parameter', 'memory-clear?mb=1');
  assert.match(c.body.error.message, /'mb'/);
});

test('business endpoints validate the same way', async () => {
  const cases = [
    ['/api/work?n=abc', 400, 'bad_parameter'],
    ['/api/work?n=0', 422, 'out_of_range'],
    ['/api/work?n=200001', 422, 'out_of_range'],
    ['/api/work?n=1&n=2', 400, 'bad_parameter'],
    ['/api/primes?limit=1', 422, 'out_of_range'],
    ['/api/primes?limit=-1', 422, 'out_of_range'],
    ['/api/primes?limits=10', 400, 'bad_parameter'],
  ];
  for (const [p, st, code] of cases) {
    const res = await request(srv.base, p);
    assertError(res, st, code, p);
    assert.equal(res.headers.get('x-lab-task'), srv.task);
  }
});

test('a request with more than 32 query parameters -> 400, not a crash', async () => {
  const q = Array.from({ length: 40 }, (_, i) => `p${i}=${i}`).join('&');
  const res = await request(srv.base, `/api/work?${q}`);
  assertError(res, 400, 'bad_parameter', '40 parameters');
  const h = await request(srv.base, '/api/health');
  assert.equal(h.status, 200);
});
