// Production guard (APP_ENV / NODE_ENV = production, LAB_ALLOW_PROD) and the
// start-up error for a missing or short token.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startProflabd, stopChecked, runProflabd, request, labEnv, GOOD_TOKEN, rawExchange, httpText, slow,
} from './helpers.mjs';

const servers = [];
after(async () => { for (const s of servers) await stopChecked(s); });

async function start(env) {
  const s = await startProflabd({ env });
  servers.push(s);
  return s;
}

async function rawNoDate(srv, method, path, token) {
  const headers = { Connection: 'close' };
  if (token) headers['x-lab-token'] = token;
  const raw = await rawExchange(srv.port, httpText(method, path, headers));
  return raw.toString('latin1').replace(/^Date: [^\r\n]*\r\n/im, '');
}

for (const v of ['APP_ENV', 'NODE_ENV']) {
  test(`${v}=production + LAB_ENABLE=true + good token -> lab off, lab paths answer like unknown paths`, async () => {
    const srv = await start(labEnv({ [v]: 'production' }));
    assert.equal(srv.listening.lab, false);
    assert.equal(typeof srv.listening.lab_off_because, 'string');
    assert.match(srv.listening.lab_off_because, /LAB_ALLOW_PROD/);
    assert.match(srv.listening.lab_off_because, new RegExp(v));
    const ref = await rawNoDate(srv, 'GET', '/api/nope');
    assert.match(ref, /^HTTP\/1\.1 404 /);
    for (const [m, p] of [['GET', '/api/lab/status'], ['POST', '/api/lab/memory-leak?mb=1'],
      ['POST', '/api/lab/memory-clear'], ['POST', '/api/lab/event-loop-jam?ms=1'], ['GET', '/api/lab/zzz']]) {
      assert.equal(await rawNoDate(srv, m, p, GOOD_TOKEN), ref, `${m} ${p}`);
      assert.equal(await rawNoDate(srv, m, p), ref, `${m} ${p} without token`);
    }
    const h = await request(srv.base, '/api/health');
    assert.equal(h.status, 200, 'the service itself runs');
  });

  test(`${v}=production + LAB_ALLOW_PROD=true -> the lab works`, async () => {
    const srv = await start(labEnv({ [v]: 'production', LAB_ALLOW_PROD: 'true' }));
    assert.equal(srv.listening.lab, true);
    assert.equal(srv.listening.lab_off_because, undefined);
    const s = await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN });
    assert.equal(s.status, 200, s.text);
    assert.equal(s.body.lab.enabled, true);
    assert.equal(s.body.lab.production, true);
    const l = await request(srv.base, '/api/lab/memory-leak?mb=1', { method: 'POST', token: GOOD_TOKEN });
    assert.equal(l.status, 200, l.text);
    const w = await request(srv.base, '/api/lab/status', { token: 'wrong-token-wrong-token' });
    assert.equal(w.status, 401, 'the token is still required');
  });
}

test('APP_ENV=production + LAB_ALLOW_PROD=yes (not "true") -> lab stays off', async () => {
  const srv = await start(labEnv({ APP_ENV: 'production', LAB_ALLOW_PROD: 'yes' }));
  assert.equal(srv.listening.lab, false);
  const s = await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN });
  assert.equal(s.status, 404);
});

test('APP_ENV=staging is not production: lab on', async () => {
  const srv = await start(labEnv({ APP_ENV: 'staging' }));
  assert.equal(srv.listening.lab, true);
  const s = await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN });
  assert.equal(s.status, 200);
  assert.equal(s.body.lab.production, false);
});

const SHORT = 'abcdefghijklmno'; // 15 characters
test('LAB_ENABLE=true with a 15-character token -> exits non-zero at once, stderr names LAB_TOKEN and 16', async () => {
  assert.equal(SHORT.length, 15);
  const r = await runProflabd({ env: { LAB_ENABLE: 'true', LAB_TOKEN: SHORT } });
  assert.notEqual(r.code, 0, `exit code ${r.code}`);
  assert.equal(r.signal, null);
  assert.ok(r.ms < slow(2000), `took ${r.ms} ms`);
  assert.match(r.stderr, /LAB_TOKEN/);
  assert.match(r.stderr, /\b16\b/);
  assert.ok(!r.stdout.includes('"listening"'), 'never listened');
  assert.ok(!(r.stdout + r.stderr).includes(SHORT), 'the short token is not echoed');
});

test('LAB_ENABLE=true without a token -> exits non-zero at once, stderr names LAB_TOKEN and 16', async () => {
  const r = await runProflabd({ env: { LAB_ENABLE: 'true' } });
  assert.notEqual(r.code, 0, `exit code ${r.code}`);
  assert.ok(r.ms < slow(2000), `took ${r.ms} ms`);
  assert.match(r.stderr, /LAB_TOKEN/);
  assert.match(r.stderr, /\b16\b/);
});

test('LAB_ENABLE=true with an empty token -> start-up error', async () => {
  const r = await runProflabd({ env: { LAB_ENABLE: 'true', LAB_TOKEN: '' } });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /LAB_TOKEN/);
});

test('a token of exactly 16 characters is accepted', async () => {
  const tok = 'abcdefghijklmnop';
  const srv = await start({ LAB_ENABLE: 'true', LAB_TOKEN: tok });
  assert.equal(srv.listening.lab, true);
  const s = await request(srv.base, '/api/lab/status', { token: tok });
  assert.equal(s.status, 200);
  assert.ok(!srv.stdout.includes(tok));
});

test('production with a short token is still a start-up error (the token check comes first)', async () => {
  const r = await runProflabd({ env: { LAB_ENABLE: 'true', LAB_TOKEN: SHORT, APP_ENV: 'production' } });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /LAB_TOKEN/);
});
