// HTTP/1.1 at the byte level: oversized headers (431), keep-alive,
// pipelining, HEAD.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startProflabd, stopChecked, request, labEnv, GOOD_TOKEN, RawConn, rawExchange, httpText, parseResponses, sleep,
} from './helpers.mjs';

let srv;
before(async () => { srv = await startProflabd({ env: labEnv() }); });
after(async () => { await stopChecked(srv); });

/** A request head with `count` headers of `size` bytes each. */
function bigHead(count, size, path = '/api/health') {
  const headers = { Connection: 'close' };
  for (let i = 0; i < count; i++) headers[`X-Filler-${i}`] = 'a'.repeat(size);
  return httpText('GET', path, headers);
}

async function bigHeadAnswer() {
  const head = bigHead(64, 1000); // ~64 KiB of headers; the server's limit is 16 KiB
  assert.ok(head.length > 64000);
  const raw = await rawExchange(srv.port, head);
  const { responses } = parseResponses(raw, true);
  assert.equal(responses.length, 1, `one answer to the oversized head, got ${JSON.stringify(raw.toString('latin1').slice(0, 300))}`);
  return responses[0];
}

test('~64 KiB of request headers -> 431', async () => {
  const r = await bigHeadAnswer();
  assert.equal(r.status, 431, `status ${r.status} ${r.reason}`);
  const h = await request(srv.base, '/api/health');
  assert.equal(h.status, 200, 'the server still serves after it');
});

// Heads over the limit but within MHD's connection pool (limit + 4 KiB) are
// refused by proflab with the contract's JSON 431; larger ones (the 64 KiB
// above) get MHD's own 431 (docs/internals.md: the pool is kept small because
// MHD zeroes it on every request).
test('the 431 answer follows the contract: JSON error body, content-type application/json, x-lab-task', async () => {
  const head = bigHead(18, 1000); // ~18 KiB: over the 16 KiB limit, inside the pool
  const raw = await rawExchange(srv.port, head);
  const { responses } = parseResponses(raw, true);
  assert.equal(responses.length, 1, JSON.stringify(raw.toString('latin1').slice(0, 300)));
  const r = responses[0];
  assert.equal(r.status, 431);
  assert.equal(r.get('x-lab-task'), srv.task, `x-lab-task on the 431; headers ${JSON.stringify(r.headers)}`);
  assert.match(r.get('content-type') || '', /^application\/json/, `content-type of the 431; body ${r.body.toString().slice(0, 200)}`);
  const body = JSON.parse(r.body.toString());
  assert.equal(typeof body.error?.code, 'string');
});

test('one very long header line (40 KiB) -> 431', async () => {
  const raw = await rawExchange(srv.port, bigHead(1, 40 * 1024));
  const { responses } = parseResponses(raw, true);
  assert.equal(responses.length, 1);
  assert.equal(responses[0].status, 431);
});

test('a request head of ~8 KiB (below the 16 KiB limit) is served', async () => {
  const raw = await rawExchange(srv.port, bigHead(8, 1000));
  const { responses } = parseResponses(raw, true);
  assert.equal(responses.length, 1);
  assert.equal(responses[0].status, 200, responses[0].body.toString());
});

/** A request head of exactly `total` bytes (request line to the blank line). */
function headOfSize(total) {
  const pre = 'GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Fill: ';
  const post = '\r\n\r\n';
  const head = pre + 'a'.repeat(total - pre.length - post.length) + post;
  assert.equal(head.length, total);
  return head;
}

async function statusForHead(total) {
  const raw = await rawExchange(srv.port, headOfSize(total));
  const r = parseResponses(raw, true).responses[0];
  return r ? r.status : `no answer (${raw.length} bytes)`;
}

test('request heads around the 16 KiB limit always get an answer (200 or 431), never a silently closed connection', async () => {
  const silent = [];
  for (let size = 15900; size <= 16500; size += 8) {
    const st = await statusForHead(size);
    if (st !== 200 && st !== 431) silent.push(`${size}: ${st}`);
  }
  assert.deepEqual(silent, [], 'head sizes (bytes) that got no HTTP answer');
});

test('the documented header limit: heads up to 16 KiB are served, larger ones get 431', async () => {
  // server.h: "max_header_bytes: larger request heads get 431; default 16384"
  for (const size of [12000, 16000, 16200, 16380]) assert.equal(await statusForHead(size), 200, `${size}-byte head`);
  for (const size of [16400, 17000, 32768]) assert.equal(await statusForHead(size), 431, `${size}-byte head`);
});

test('keep-alive: two requests on one connection are both answered and the connection stays open', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  try {
    await c.write(httpText('GET', '/api/health'));
    const r1 = await c.read();
    assert.equal(r1.status, 200);
    assert.equal(r1.body.toString(), '{"status":"ok"}');
    assert.doesNotMatch(r1.get('connection') || '', /close/i);
    await c.write(httpText('GET', '/api/primes?limit=100'));
    const r2 = await c.read();
    assert.equal(r2.status, 200);
    assert.equal(JSON.parse(r2.body.toString()).count, 25);
    assert.doesNotMatch(r2.get('connection') || '', /close/i);
    assert.equal(await c.waitClosed(300), false, 'the server keeps the connection open');
    await c.write(httpText('POST', '/api/checksum', {}, 'abc'));
    const r3 = await c.read();
    assert.equal(r3.status, 200, 'a third request after a pause still works');
    assert.equal(JSON.parse(r3.body.toString()).bytes, 3);
    // errors do not close a keep-alive connection either
    await c.write(httpText('GET', '/api/nope'));
    assert.equal((await c.read()).status, 404);
    await c.write(httpText('GET', '/api/health'));
    assert.equal((await c.read()).status, 200);
    assert.equal(c.closed, false);
  } finally {
    c.destroy();
  }
});

test('keep-alive: the status endpoint sees one connection for many requests', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  try {
    const counts = [];
    for (let i = 0; i < 3; i++) {
      await c.write(httpText('GET', '/api/lab/status', { 'x-lab-token': GOOD_TOKEN }));
      const r = await c.read();
      assert.equal(r.status, 200);
      counts.push(JSON.parse(r.body.toString()).http.requests);
    }
    assert.ok(counts[1] > counts[0] && counts[2] > counts[1], `request counter ${counts}`);
  } finally {
    c.destroy();
  }
});

test('pipelining: three requests in one write get three answers, in order', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  try {
    await c.write(
      httpText('GET', '/api/primes?limit=10') + httpText('GET', '/api/health') + httpText('GET', '/api/nope'),
    );
    const a = await c.read();
    const b = await c.read();
    const d = await c.read();
    assert.equal(a.status, 200);
    assert.deepEqual(JSON.parse(a.body.toString()), { limit: 10, count: 4, largest: 7 });
    assert.equal(b.status, 200);
    assert.deepEqual(JSON.parse(b.body.toString()), { status: 'ok' });
    assert.equal(d.status, 404);
    assert.equal(JSON.parse(d.body.toString()).error.code, 'not_found');
    for (const r of [a, b, d]) assert.equal(r.get('x-lab-task'), srv.task);
    assert.equal(c.buf.length, 0, 'nothing more');
    assert.equal(await c.waitClosed(200), false, 'connection still open');
  } finally {
    c.destroy();
  }
});

test('pipelining with bodies: POST, GET, POST in one write', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  try {
    await c.write(
      httpText('POST', '/api/checksum', {}, 'hello') +
        httpText('GET', '/api/work?n=5') +
        httpText('POST', '/api/checksum', {}, 'hello, world!'),
    );
    const r1 = await c.read();
    const r2 = await c.read();
    const r3 = await c.read();
    assert.equal(JSON.parse(r1.body.toString()).bytes, 5);
    assert.equal(JSON.parse(r2.body.toString()).n, 5);
    assert.equal(JSON.parse(r3.body.toString()).bytes, 13);
  } finally {
    c.destroy();
  }
});

test('pipelining: ten requests split across three writes mid-request', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  try {
    const all = Array.from({ length: 10 }, (_, i) => httpText('GET', `/api/primes?limit=${i + 2}`)).join('');
    const cut = Math.floor(all.length / 3);
    await c.write(all.slice(0, cut));
    await sleep(20);
    await c.write(all.slice(cut, 2 * cut));
    await sleep(20);
    await c.write(all.slice(2 * cut));
    for (let i = 0; i < 10; i++) {
      const r = await c.read();
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body.toString()).limit, i + 2, `answer ${i} in order`);
    }
  } finally {
    c.destroy();
  }
});

test('Connection: close is honoured', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  try {
    await c.write(httpText('GET', '/api/health', { Connection: 'close' }));
    const r = await c.read();
    assert.equal(r.status, 200);
    assert.equal(await c.waitClosed(2000), true, 'server closed the connection');
  } finally {
    c.destroy();
  }
});

test('HEAD /api/health -> 200 with headers and no body', async () => {
  const c = new RawConn(srv.port);
  await c.connect();
  try {
    await c.write('HEAD /api/health HTTP/1.1\r\nHost: x\r\n\r\n');
    // a HEAD answer has no body even with Content-Length: read the head only
    const ok = await (async () => {
      for (let i = 0; i < 100 && c.buf.indexOf('\r\n\r\n') < 0; i++) await sleep(10);
      return c.buf.indexOf('\r\n\r\n') >= 0;
    })();
    assert.ok(ok, 'an answer head');
    const head = c.buf.toString('latin1');
    assert.match(head, /^HTTP\/1\.1 200 /);
    assert.match(head, /\r\nx-lab-task: /i);
    await sleep(50);
    assert.equal(c.buf.toString('latin1').split('\r\n\r\n')[1], '', 'no body after the head');
  } finally {
    c.destroy();
  }
});

test('garbage request line -> 400, the server keeps serving', async () => {
  const raw = await rawExchange(srv.port, 'THIS IS NOT HTTP\r\n\r\n');
  const { responses, rest } = parseResponses(raw, true);
  assert.equal(responses.length, 1, `one answer: ${JSON.stringify(raw.toString('latin1'))}`);
  assert.equal(rest.length, 0);
  assert.equal(responses[0].status, 400);
  const h = await request(srv.base, '/api/health');
  assert.equal(h.status, 200);
});

// Requests MHD rejects before any application code runs get MHD's own
// answer (an HTML body, no x-lab-task): a known limit of libmicrohttpd 0.9.75
// recorded in docs/internals.md. What we can hold: a 400 status first, the
// connection closed, and the server unharmed for the next client.
test('a garbage request line gets 400 and a closed connection; the server keeps serving', async () => {
  const raw = await rawExchange(srv.port, 'THIS IS NOT HTTP\r\n\r\n');
  const r = parseResponses(raw, true).responses[0];
  assert.equal(r.status, 400);
  const ok = await fetch(`${srv.base}/api/health`);
  assert.equal(ok.status, 200);
});

test('a malformed Content-Length is refused with a 400 first; the server keeps serving', async () => {
  const raw = await rawExchange(srv.port, 'GET /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n');
  const text = raw.toString('latin1');
  assert.match(text, /^HTTP\/1\.1 400 /, JSON.stringify(text.slice(0, 200)));
  assert.ok(!text.includes('{"status":"ok"}'), 'the request was not served');
  const ok = await fetch(`${srv.base}/api/health`);
  assert.equal(ok.status, 200);
});
