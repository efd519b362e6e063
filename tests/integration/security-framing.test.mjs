// Request smuggling and framing at the byte level (issue 14): a corpus of
// the patterns request-smuggling scanners send — Transfer-Encoding with
// Content-Length (both orders), two Content-Lengths, Transfer-Encoding
// spelled with white space, control bytes, case, other codings, repeats
// and folds at every position, chunk-size overflows, bare LF and CR,
// obs-fold, request lines MHD cannot parse — each followed on the same
// connection by a second request. The property: the server never frames
// the bytes two ways. Every request either is refused (one 4xx answer,
// then the connection closed, the second request never answered) or is
// framed by its Content-Length alone (the POST's 405, then the second
// request's 200). Refusals proflab makes are JSON with the contract's
// error codes; the few libmicrohttpd 0.9.75 makes before any callback of
// ours (an unparsable request line or Content-Length, HTTP/9.9) are its
// own HTML pages: docs/reliability.md lists them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startProflabd, stopChecked, request, parseResponses } from './helpers.mjs';

let srv;
before(async () => { srv = await startProflabd(); });
after(async () => { await stopChecked(srv); });

const SECOND = 'GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

/** Send bytes, read until the server closes (or 3 s pass: a desync shows as
 * a connection left waiting). */
function exchange(bytes) {
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port: srv.port }, () => c.write(Buffer.from(bytes, 'latin1')));
    const parts = [];
    let timedOut = false;
    const t = setTimeout(() => { timedOut = true; c.destroy(); }, 3000);
    c.on('data', (d) => parts.push(d));
    c.on('error', () => {});
    c.on('close', () => { clearTimeout(t); resolve({ raw: Buffer.concat(parts), timedOut }); });
  });
}

function answers(raw) {
  const { responses } = parseResponses(raw, true);
  return responses.map((r) => ({ status: r.status, json: /^application\/json/.test(r.get('content-type') || ''), body: r.body.toString('latin1') }));
}

/** One of the two outcomes, never anything else. */
async function outcome(name, head, body = '') {
  const { raw, timedOut } = await exchange(head + body + SECOND);
  const text = raw.toString('latin1');
  assert.ok(!timedOut, `${name}: the connection was left waiting (a second framing): ${JSON.stringify(text.slice(0, 300))}`);
  const a = answers(raw);
  if (a.length === 1 && a[0].status >= 400 && a[0].status < 500 || a.length === 1 && a[0].status === 505) return { kind: 'refused', ...a[0] };
  // framed by Content-Length alone: the POST's 405, then the second request
  // (200), or, when the length cut a chunked body short, its leftover bytes
  // refused as a request line
  if (a.length === 2 && a[0].status === 405 && a[1].status === 200) return { kind: 'framed', whole: true };
  if (a.length === 2 && a[0].status === 405 && a[1].status === 400) return { kind: 'framed', whole: false };
  assert.fail(`${name}: answers ${JSON.stringify(a.map((x) => x.status))}: ${JSON.stringify(text.slice(0, 400))}`);
}

const post = (headers, len) => `POST /api/health HTTP/1.1\r\nHost: x\r\n${headers}${len === undefined ? '' : `Content-Length: ${len}\r\n`}\r\n`;

// Transfer-Encoding spelled every way scanners try, each sent with a
// Content-Length that frames a chunked body's bytes differently.
const BYTES = ['', '\x00', '\t', '\x0b', '\x0c', '\r', ' ', '\x7f', '\x80', '\xa0', '\xff', 'x', '\n'];
function encodingVariants() {
  const v = [];
  for (const name of ['Transfer-Encoding', 'transfer-encoding', 'TRANSFER-ENCODING', 'Transfer-encoding']) {
    for (const b of BYTES) {
      v.push(`${b}${name}: chunked`); // before the name
      v.push(`${name}${b}: chunked`); // between the name and the colon
      v.push(`${name}:${b}chunked`); // after the colon
      v.push(`${name}: chunked${b}`); // after the value
    }
  }
  for (const value of ['Chunked', 'CHUNKED', '"chunked"', 'chunk', 'chunked, identity', 'identity, chunked', 'gzip, chunked', ',chunked', 'chunked,', 'x chunked', 'chunked chunked', '']) {
    v.push(`Transfer-Encoding: ${value}`);
  }
  v.push('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity');
  v.push('Transfer-Encoding: identity\r\nTransfer-Encoding: chunked');
  v.push('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked');
  v.push('X: X\nTransfer-Encoding: chunked', 'X: X\rTransfer-Encoding: chunked');
  v.push('Transfer-Encoding\n : chunked', 'Transfer-Encoding:\r\n chunked', 'Transfer-Encoding:\r\n\tchunked', 'X: y\r\n Transfer-Encoding: chunked');
  return v;
}

test('Transfer-Encoding in every spelling with Content-Length: never framed two ways; every Transfer-Encoding refused', async () => {
  const counts = { refused: 0, json: 0, framed: 0 };
  const variants = encodingVariants();
  // the chunked body is 5 bytes: with Content-Length 5 both framings agree on
  // where the POST ends, with 3 or 8 they differ (CL.TE and TE.CL)
  const jobs = [];
  for (const v of variants) for (const [len, body] of [[5, '0\r\n\r\n'], [3, '0\r\n\r\n'], [8, '3\r\nabc\r\n0\r\n\r\n']]) {
    jobs.push([`${JSON.stringify(v)} CL ${len}`, post(`${v}\r\n`, len), body, v]);
  }
  for (let i = 0; i < jobs.length; i += 16) {
    const got = await Promise.all(jobs.slice(i, i + 16).map(async ([name, head, body, v]) => [name, v, await outcome(name, head, body)]));
    for (const [name, v, o] of got) {
      counts[o.kind]++;
      if (o.json) counts.json++;
      if (o.kind === 'framed' && o.whole) {
        // the whole head accepted (405 then 200: framed by Content-Length):
        // only right when the line is no Transfer-Encoding to anyone
        // (another name, such as "xTransfer-Encoding"). A 405 then a 400 is
        // a head that ended early (a bare LF making an empty line, a line
        // starting with NUL: libmicrohttpd's reading) and its remaining
        // lines refused as a request.
        assert.ok(!/(^|[\r\n])transfer-encoding[ \t]*:/i.test(v), `${name}: accepted a Transfer-Encoding`);
      }
    }
  }
  console.log(`# ${jobs.length} requests: ${counts.refused} refused (${counts.json} with our JSON), ${counts.framed} framed by Content-Length alone`);
  assert.ok(counts.refused > jobs.length * 0.8, JSON.stringify(counts));
});

test('proflab\'s own refusals: JSON with the contract\'s codes, the connection closed, the next request never read', async () => {
  const cases = [
    ['TE + CL', post('Transfer-Encoding: chunked\r\n', 4), '0\r\n\r\n', 400, 'bad_request', /both Transfer-Encoding and Content-Length/],
    ['CL + TE', post('Content-Length: 4\r\nTransfer-Encoding: chunked\r\n'), '0\r\n\r\n', 400, 'bad_request', /both/],
    ['CL 4 + CL 5', post('Content-Length: 4\r\n', 5), 'abcde', 400, 'bad_request', /more than one Content-Length/],
    ['CL 4 + CL 4', post('Content-Length: 4\r\n', 4), 'abcd', 400, 'bad_request', /more than one Content-Length/],
    ['white space before the colon', post('Transfer-Encoding : chunked\r\n', 5), '0\r\n\r\n', 400, 'bad_request', /not a token/],
    ['a control byte in a value', post('X-A: a\x01b\r\n', 0), '', 400, 'bad_request', /control character/],
    ['bare CR inside a line', post('X-A: a\rTransfer-Encoding: chunked\r\n', 0), '', 400, 'bad_request', /control character/],
    ['xchunked', post('Transfer-Encoding: xchunked\r\n'), '0\r\n\r\n', 400, 'bad_request', /exactly "chunked"/],
    ['two Transfer-Encodings', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n'), '0\r\n\r\n', 400, 'bad_request', /exactly "chunked"/],
    ['chunked alone', post('Transfer-Encoding: chunked\r\n'), '4\r\nabcd\r\n0\r\n\r\n', 411, 'length_required', /Content-Length/],
    ['chunk-size overflow', post('Transfer-Encoding: chunked\r\n'), 'FFFFFFFFFFFFFFFFF1\r\nabcd\r\n0\r\n\r\n', 411, 'length_required', /Content-Length/],
    ['obs-fold', 'GET /api/health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n', '', 400, 'bad_request', /obs-fold/],
    ['obs-fold on Transfer-Encoding', post('Transfer-Encoding:\r\n chunked\r\n'), '0\r\n\r\n', 400, 'bad_request', /obs-fold/],
    ['two Hosts', 'GET /api/health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n', '', 400, 'bad_request', /more than one Host/],
    ['a method that is not a token', 'G@T /api/health HTTP/1.1\r\nHost: x\r\n\r\n', '', 400, 'bad_request', /method is not a token/],
    ['a method with a quote', 'G"T /api/health HTTP/1.1\r\nHost: x\r\n\r\n', '', 400, 'bad_request', /method is not a token/],
  ];
  for (const [name, head, body, status, code, msg] of cases) {
    const { raw, timedOut } = await exchange(head + body + SECOND);
    assert.ok(!timedOut, `${name}: left waiting`);
    const a = answers(raw);
    assert.equal(a.length, 1, `${name}: ${JSON.stringify(raw.toString('latin1'))}`);
    assert.equal(a[0].status, status, name);
    assert.ok(a[0].json, `${name}: JSON`);
    const e = JSON.parse(a[0].body).error;
    assert.equal(e.code, code, name);
    assert.match(e.message, msg, name);
  }
});

test('what libmicrohttpd refuses itself: its own page, the connection closed, the next request never read', async () => {
  const cases = [
    ['garbage request line', 'THIS IS NOT HTTP\r\n\r\n', 400],
    ['HTTP/9.9', 'GET /api/health HTTP/9.9\r\nHost: x\r\n\r\n', 505],
    ['Content-Length: -1', post('', '-1'), 400],
    ['Content-Length: +4', post('', '+4'), 400],
    ['Content-Length: 4, 4', post('', '4, 4'), 400],
    ['Content-Length past 2^64', post('', '18446744073709551616'), 413],
  ];
  for (const [name, head, status] of cases) {
    const { raw, timedOut } = await exchange(head + SECOND);
    assert.ok(!timedOut, `${name}: left waiting`);
    const a = answers(raw);
    assert.equal(a.length, 1, `${name}: ${JSON.stringify(raw.toString('latin1'))}`);
    assert.equal(a[0].status, status, name);
  }
});

test('bare LF line ends (RFC 9112 section 2.2 allows them): framed the same way as CRLF, both requests answered in order', async () => {
  const { raw, timedOut } = await exchange('GET /api/health HTTP/1.1\nHost: x\n\n' + 'POST /api/health HTTP/1.1\nHost: x\nContent-Length: 4\n\nabcd' + SECOND);
  assert.ok(!timedOut);
  assert.deepEqual(answers(raw).map((a) => a.status), [200, 405, 200]);
});

test('after all of it the service still serves', async () => {
  assert.equal((await request(srv.base, '/api/health')).status, 200);
});
