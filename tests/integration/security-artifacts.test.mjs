// Artifact paths under attack (issue 14): a traversal corpus built from
// every spelling of a path escape (URL-encoded, double-encoded, overlong
// UTF-8, backslashes, NUL, absolute paths, `..` segments) aimed at a canary
// file outside the artifact directory whose name is artifact-shaped (so only
// a path escape could reach it); symbolic and hard links planted in the
// directory; and the directory itself replaced by a symbolic link to the
// canary's directory after start. Nothing outside the directory is ever
// read (the canary's bytes never appear in an answer) or written (the
// canary's directory keeps exactly its files, the canary its bytes and
// mtime).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import {
  stopChecked, request, labEnv, GOOD_TOKEN, rawExchange, httpText, parseResponses, scratch, slow,
} from './helpers.mjs';

const s = scratch();
const SECRET = `CANARY-${crypto.randomBytes(12).toString('hex')}`;
const CANARY = 'cpu-20260101T000000.000Z-canary.cpuprofile'; // artifact-shaped, outside
const GOOD = 'cpu-20260101T000001.000Z-sec.cpuprofile';
let srv;
let dir;
let outside;
let canaryStat;

function outsideState() {
  const files = fs.readdirSync(outside).sort();
  const st = fs.statSync(path.join(outside, CANARY));
  return { files, bytes: fs.readFileSync(path.join(outside, CANARY), 'utf8'), mtime: st.mtimeMs, ino: st.ino };
}

before(async () => {
  const root = s.tmpDir('sec-art');
  outside = path.join(root, 'outside');
  dir = path.join(root, 'art');
  fs.mkdirSync(outside);
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.writeFileSync(path.join(outside, CANARY), SECRET);
  fs.writeFileSync(path.join(root, CANARY), SECRET); // one level up too
  fs.writeFileSync(path.join(dir, GOOD), '{"nodes":[]}', { mode: 0o600 });
  // planted links under artifact names
  fs.symlinkSync(path.join(outside, CANARY), path.join(dir, 'cpu-20260101T000002.000Z-abs-link.cpuprofile'));
  fs.symlinkSync(`../outside/${CANARY}`, path.join(dir, 'cpu-20260101T000003.000Z-rel-link.cpuprofile'));
  fs.linkSync(path.join(outside, CANARY), path.join(dir, 'cpu-20260101T000004.000Z-hard-link.cpuprofile'));
  fs.symlinkSync(outside, path.join(dir, 'heap-20260101T000005.000Z-dir-link.heapprofile'));
  canaryStat = outsideState();
  srv = await s.start(labEnv({ LAB_ARTIFACT_DIR: dir, LAB_TASK_ID: 'sec' }));
});
after(async () => {
  await stopChecked(srv);
  await s.cleanup();
});

/** The traversal corpus: request targets under /api/lab/artifacts/. */
function corpus() {
  const seps = ['/', '%2f', '%2F', '%252f', '%5c', '\\', '%255c', '%c0%af', '%e0%80%af', '%c1%9c', '%ef%bc%8f'];
  const dots = ['..', '%2e%2e', '%2E%2E', '.%2e', '%2e.', '%252e%252e', '%c0%ae%c0%ae', '%e0%80%ae%e0%80%ae', '%uff0e%uff0e'];
  const out = new Set();
  for (const d of dots) {
    for (const sep of seps) {
      out.add(`${d}${sep}outside${sep}${CANARY}`);
      out.add(`${d}${sep}${CANARY}`);
      out.add(`${d}${sep}${d}${sep}${d}${sep}etc${sep}passwd`);
      out.add(`${GOOD}${sep}${d}${sep}${d}${sep}outside${sep}${CANARY}`);
    }
  }
  const abs = path.join(outside, CANARY);
  for (const x of [abs, encodeURIComponent(abs), `/${abs}`, `%2f${abs.slice(1).replaceAll('/', '%2f')}`,
    `file://${abs}`, `~/${CANARY}`, `.%00/${CANARY}`, `${GOOD}%00`, `${GOOD}%00.txt`, `${CANARY}%00`,
    `${GOOD}/`, `${GOOD}/.`, `./${GOOD}`, `.${GOOD}`, `${GOOD}.partial`, `${GOOD};`, `${GOOD}?x=..%2f`,
    `${GOOD}#../x`, `%00${GOOD}`, '..', '.', '...', '%2e', '%2e%2e', '%00', ' ', '%20..%2f', '..;/',
    `heap-20260101T000005.000Z-dir-link.heapprofile/${CANARY}`,
    `heap-20260101T000005.000Z-dir-link.heapprofile%2f${CANARY}`]) out.add(x);
  return [...out];
}

async function rawGet(target) {
  const buf = await rawExchange(srv.port, httpText('GET', target, { Connection: 'close', 'x-lab-token': GOOD_TOKEN }));
  const text = buf.toString('latin1');
  let status = 0;
  try {
    const { responses } = parseResponses(buf, true);
    status = responses[0]?.status ?? 0;
  } catch { /* MHD's own page for a request it could not parse */ status = Number(/^HTTP\/1\.\d (\d+)/.exec(text)?.[1] || 0); }
  return { status, text };
}

test('traversal corpus (encoded, double-encoded, overlong UTF-8, backslashes, NUL, absolute, .. segments): never 200/206, never the canary', async () => {
  const targets = corpus();
  assert.ok(targets.length > 300, `${targets.length} targets`);
  const statuses = {};
  for (const t of targets) {
    const r = await rawGet(`/api/lab/artifacts/${t}`);
    statuses[r.status] = (statuses[r.status] || 0) + 1;
    assert.ok(![200, 206].includes(r.status) || t.startsWith(`${GOOD}?`) || t.startsWith(`${GOOD}#`),
      `${t}: ${r.status}\n${r.text.slice(0, 300)}`);
    assert.ok(!r.text.includes(SECRET), `${t}: the canary's bytes were served`);
  }
  for (const t of [`${GOOD}%00`, `${GOOD}%00.txt`, `.%00/${CANARY}`]) {
    const r = await rawGet(`/api/lab/artifacts/${t}`);
    assert.equal(r.status, 400, `${t}: a %00 never cuts the name short`);
    assert.match(r.text, /%00/);
  }
  assert.deepEqual(outsideState(), canaryStat, 'nothing outside changed');
  assert.ok(Object.keys(statuses).every((k) => ['400', '404', '405'].includes(k) || k === '200'), JSON.stringify(statuses));
});

test('planted symbolic links (absolute, relative, to a directory) and a hard link under artifact names: 404, not listed', async () => {
  for (const name of ['cpu-20260101T000002.000Z-abs-link.cpuprofile', 'cpu-20260101T000003.000Z-rel-link.cpuprofile',
    'cpu-20260101T000004.000Z-hard-link.cpuprofile', 'heap-20260101T000005.000Z-dir-link.heapprofile']) {
    const r = await request(srv.base, `/api/lab/artifacts/${name}`, { token: GOOD_TOKEN, headers: { Range: 'bytes=0-' } });
    assert.equal(r.status, 404, `${name}: ${r.text}`);
    assert.ok(!r.text.includes(SECRET));
  }
  const list = await request(srv.base, '/api/lab/artifacts', { token: GOOD_TOKEN });
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.artifacts.map((a) => a.name), [GOOD]);
  assert.ok(!list.text.includes(SECRET));
  assert.deepEqual(outsideState(), canaryStat);
});

test('a planted .partial symbolic link is never written through; the next start removes it (not its target)', async () => {
  const trap = path.join(dir, `${GOOD.replace('000001', '000009')}.partial`);
  fs.symlinkSync(path.join(outside, CANARY), trap);
  const r = await request(srv.base, '/api/lab/heap-snapshot?format=heapprofile', { method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(30000) });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(outsideState(), canaryStat);
  const again = await s.start(labEnv({ LAB_ARTIFACT_DIR: dir, LAB_TASK_ID: 'sec2' }));
  await stopChecked(again);
  assert.ok(!fs.existsSync(trap), 'the leftover .partial (a link) was removed at start');
  assert.deepEqual(outsideState(), canaryStat, 'its target was not');
});

test('the artifact directory replaced by a symbolic link after start: downloads, listing and writes refuse it, nothing outside read or written', async () => {
  // the canary's directory gets an artifact-shaped file that a followed link would expose
  const moved = `${dir}.moved`;
  fs.renameSync(dir, moved);
  fs.symlinkSync(outside, dir);
  try {
    canaryStat = outsideState();
    const dl = await request(srv.base, `/api/lab/artifacts/${CANARY}`, { token: GOOD_TOKEN });
    assert.notEqual(dl.status, 200, dl.text);
    assert.ok(!dl.text.includes(SECRET), 'the canary was served through the replaced directory');
    const list = await request(srv.base, '/api/lab/artifacts', { token: GOOD_TOKEN });
    assert.ok(!list.text.includes(CANARY), `listing shows the link's target: ${list.text}`);
    assert.equal(list.status, 500);
    assert.match(list.body.error.message, /artifact directory/);
    const w = await request(srv.base, '/api/lab/heap-snapshot?format=heapprofile', { method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(30000) });
    assert.equal(w.status, 500, w.text);
    assert.match(w.body.error.message, /replaced/);
    const p = await request(srv.base, '/api/lab/cpu-profile?seconds=1&format=folded', { method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(30000) });
    assert.equal(p.status, 500, p.text);
    assert.deepEqual(outsideState(), canaryStat, 'nothing written where the link leads');
    const st = await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN });
    assert.equal(st.status, 200, 'the service keeps serving');
    assert.ok(!st.text.includes(SECRET) && !st.text.includes(CANARY));
  } finally {
    fs.unlinkSync(dir);
    fs.renameSync(moved, dir);
  }
  // the original directory back under its path: served again
  const ok = await request(srv.base, `/api/lab/artifacts/${GOOD}`, { token: GOOD_TOKEN });
  assert.equal(ok.status, 200);
});

test('the directory removed and recreated as a real directory: adopted, the service writes there', async () => {
  const moved = `${dir}.old`;
  fs.renameSync(dir, moved);
  fs.mkdirSync(dir, { mode: 0o700 });
  try {
    const w = await request(srv.base, '/api/lab/heap-snapshot?format=heapprofile', { method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(30000) });
    assert.equal(w.status, 200, w.text);
    assert.ok(fs.existsSync(path.join(dir, w.body.file)), 'written into the new directory');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(moved, dir);
  }
});
