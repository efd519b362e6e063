// The memory half of the lab, end to end, read by real consumers: a real
// proflabd (heap tracker at its default 512 KiB sampling interval) takes
// snapshot A, leaks 100 MiB through POST /api/lab/memory-leak, takes
// snapshot B (also as pprof and .heapprofile), clears the leak and takes C.
//
// - Chrome DevTools' own Memory panel loads A, B and C: B's Summary has the
//   leak function as a class holding ≈ 100 MiB (shallow and retained), the
//   Comparison of B against A shows it as the delta, C's Summary no longer
//   has it and C against B shows it freed;
// - `go tool pprof -sample_index=inuse_space -top` says the same of B and C;
// - speedscope loads B's .heapprofile with the leak function heaviest.
//
// The tracker samples: a 1 MiB chunk is kept with probability 1 − e^−2 and
// then stands for 1/(1 − e^−2) chunks, so 100 chunks estimate 100 MiB with
// a standard deviation of about 4 %. Bounds here are ±25 % (over 6 σ).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { diag, loud, haveGo, pprof, parseTopBytes, heapSnapshotByName, startLab, request, GOOD_TOKEN } from './lib.mjs';
import { CHROMIUM, launchChromium, serveSpeedscope, speedscopeLoad, speedscopeWeights } from './chromium.mjs';
import { MemoryPanel, SHOW_SUMMARY, SHOW_COMPARISON, snapshotsReady } from './memory-panel.mjs';

const LEAK_FN = 'lab_memory_leak_allocate';
const LEAK_BYTES = 100 * 1048576;
const near = (a, b, rel) => Math.abs(a - b) <= rel * Math.abs(b);
const TIMEOUT = { timeout: 180000 };

let HAVE_CHROMIUM = true;
try { fs.accessSync(CHROMIUM, fs.constants.X_OK); } catch { HAVE_CHROMIUM = false; }
if (!HAVE_CHROMIUM) loud(`${CHROMIUM} is not installed: the lab heap story's browser tests are SKIPPED (scripts/deps.sh test installs chromium; CI must have it)`);
const GO = haveGo();
if (!GO) loud('go is not installed: the lab heap story\'s go tool pprof test is SKIPPED (scripts/deps.sh test installs golang-go; CI must have it)');

let lab;
const snap = {}; // name -> answer of POST /api/lab/heap-snapshot
let statusB;
let browser;
let panel;

async function post(path) {
  const res = await request(lab.srv.base, path, { method: 'POST', token: GOOD_TOKEN });
  assert.equal(res.status, 200, `POST ${path}: ${res.status} ${res.text}`);
  return res.body;
}

async function snapshot(name, format = 'heapsnapshot') {
  const body = await post(`/api/lab/heap-snapshot?format=${format}`);
  assert.equal(fs.statSync(body.path).size, body.bytes, `${name}: file size and answer differ`);
  snap[name] = body;
  return body;
}

const summarize = heapSnapshotByName; // our own reading of a .heapsnapshot

before(async () => {
  lab = await startLab({ PROFLAB_REQUEST_LOG: 'false' });
  await snapshot('A');
  const leak = await post('/api/lab/memory-leak?mb=100');
  assert.equal(leak.retained_bytes, LEAK_BYTES);
  await snapshot('B');
  await snapshot('B.pprof', 'pprof');
  await snapshot('B.heapprofile', 'heapprofile');
  statusB = (await request(lab.srv.base, '/api/lab/status', { token: GOOD_TOKEN })).body;
  await post('/api/lab/memory-clear');
  await snapshot('C');
  await snapshot('C.pprof', 'pprof');
  if (HAVE_CHROMIUM) {
    browser = await launchChromium();
    panel = new MemoryPanel(browser);
  }
});

after(async () => {
  await panel?.close();
  await browser?.close();
  await lab?.close();
});

test('the snapshot answers and the files agree: B holds ≈ 100 MiB in the leak function, A and C do not', async (t) => {
  const [a, b, c] = ['A', 'B', 'C'].map((n) => summarize(snap[n].path));
  diag(t, `A: ${JSON.stringify(a[LEAK_FN] ?? null)}; B: ${JSON.stringify(b[LEAK_FN])}; C: ${JSON.stringify(c[LEAK_FN] ?? null)}; answer B: live ${snap.B.live_bytes} B in ${snap.B.allocations} allocations (${snap.B.samples} samples)`);
  assert.ok(!a[LEAK_FN], 'the leak function holds memory before the leak');
  assert.ok(b[LEAK_FN] && near(b[LEAK_FN].bytes, LEAK_BYTES, 0.25), `B: ${LEAK_FN} holds ${b[LEAK_FN]?.bytes} B, want ≈ ${LEAK_BYTES}`);
  assert.ok(!c[LEAK_FN], `C: ${LEAK_FN} still holds ${c[LEAK_FN]?.bytes} B after memory-clear`);
  // (the file rounds each block's estimate, the answer the sum)
  assert.ok(snap.B.live_bytes >= b[LEAK_FN].bytes - b[LEAK_FN].count, 'the answer\'s live bytes include the leak');
  assert.ok(snap.C.live_bytes < snap.B.live_bytes - 0.5 * LEAK_BYTES, `live bytes B ${snap.B.live_bytes} -> C ${snap.C.live_bytes}`);
  assert.equal(snap.B.task, lab.srv.task);
  assert.match(snap.B.file, new RegExp(`^heapdump-\\d{8}T\\d{6}\\.\\d{3}Z-${lab.srv.task}\\.heapsnapshot$`));
  assert.ok(near(statusB.heap.live_bytes, snap.B.live_bytes, 0.25), `status heap.live_bytes ${statusB.heap.live_bytes}`);
});

test('Chrome DevTools\' Memory panel: B\'s Summary has the leak function ≈ 100 MiB; Comparison B vs A shows it as the delta; C has it gone', TIMEOUT, async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  await panel.loadFile(snap.A.path, snapshotsReady(1), 'DevTools to load snapshot A');
  await panel.loadFile(snap.B.path, snapshotsReady(2), 'DevTools to load snapshot B');
  await panel.loadFile(snap.C.path, snapshotsReady(3), 'DevTools to load snapshot C');
  const { tab } = panel;
  const b = await tab.evaluate(SHOW_SUMMARY(1));
  diag(t, `${b.title} Summary: ${b.rows.slice(0, 5).map((r) => `${r.name} ×${r.count} ${r.shallow}/${r.retained} B`).join(', ')}`);
  assert.deepEqual(tab.exceptions, [], 'exceptions in the DevTools frontend');
  assert.deepEqual(tab.dialogs, [], 'dialogs in the DevTools frontend');
  const row = b.rows.find((r) => r.name === LEAK_FN);
  assert.ok(row, `no ${LEAK_FN} row in B's Summary: ${b.rows.map((r) => r.name).join(', ')}`);
  assert.equal(b.rows[0].name, LEAK_FN, 'the leak is the biggest class');
  assert.ok(near(row.shallow, LEAK_BYTES, 0.25), `shallow ${row.shallow} B`);
  assert.equal(row.retained, row.shallow, 'retained = shallow (its grouping node dominates its blocks)');
  assert.equal(row.shallow, summarize(snap.B.path)[LEAK_FN].bytes, 'the panel and the file agree');
  assert.ok(b.rendered.some((l) => l.startsWith(LEAK_FN)), `no rendered row for ${LEAK_FN}:\n${b.rendered.join('\n')}`);

  const diff = await tab.evaluate(SHOW_COMPARISON(1, 0));
  diag(t, `Comparison of B against ${diff.base}: ${diff.rows.slice(0, 5).map((r) => `${r.name} +${r.added} -${r.removed} ${r.sizeDelta} B`).join(', ')}`);
  const d = diff.rows.find((r) => r.name === LEAK_FN);
  assert.ok(d, `no ${LEAK_FN} row in the Comparison`);
  assert.deepEqual([d.added, d.removed, d.sizeDelta], [row.count, 0, row.shallow], 'the leak is all new in B');
  assert.equal(diff.rows.slice().sort((x, y) => y.sizeDelta - x.sizeDelta)[0].name, LEAK_FN, 'the largest growth');

  const c = await tab.evaluate(SHOW_SUMMARY(2));
  assert.ok(!c.rows.some((r) => r.name === LEAK_FN), `C's Summary still has ${LEAK_FN}: ${JSON.stringify(c.rows.find((r) => r.name === LEAK_FN))}`);
  const gone = await tab.evaluate(SHOW_COMPARISON(2, 1));
  const g = gone.rows.find((r) => r.name === LEAK_FN);
  assert.ok(g, `no ${LEAK_FN} row in the Comparison of C against B`);
  assert.deepEqual([g.added, g.removed, g.sizeDelta], [0, row.count, -row.shallow], 'memory-clear freed every block');
  assert.deepEqual(tab.exceptions, []);
});

test('go tool pprof -sample_index=inuse_space -top: B names the leak function first with ≈ 100 MiB, C does not have it', TIMEOUT, async (t) => {
  if (!GO) return t.skip('go not installed');
  const top = async (file) => {
    const { stdout } = await pprof(['-sample_index=inuse_space', '-top', '-unit=B', '-nodecount=30', file]);
    return { text: stdout, rows: parseTopBytes(stdout) };
  };
  const b = await top(snap['B.pprof'].path);
  diag(t, `pprof -top B:\n${b.text.split('\n').slice(0, 14).join('\n')}`);
  assert.match(b.text, /Type: inuse_space/);
  assert.equal(b.rows[0]?.name, LEAK_FN, 'first row');
  assert.ok(near(b.rows[0].flat, LEAK_BYTES, 0.25), `${LEAK_FN}: ${b.rows[0].flat} B`);
  const c = await top(snap['C.pprof'].path);
  const cl = c.rows.find((r) => r.name === LEAK_FN);
  assert.ok(!cl || cl.flat < 1048576, `C: ${LEAK_FN} still has ${cl?.flat} B`);
});

test('speedscope loads B\'s .heapprofile: the leak function is the heaviest by self size, at src/lab/harm.c', TIMEOUT, async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  const profile = JSON.parse(fs.readFileSync(snap['B.heapprofile'].path, 'utf8'));
  const find = (n) => (n.callFrame.functionName === LEAK_FN ? n : n.children.map(find).find(Boolean));
  const node = find(profile.head);
  assert.ok(node, `no ${LEAK_FN} node in the .heapprofile`);
  assert.match(node.callFrame.url, /^file:\/\/\/.*\/src\/lab\/harm\.c$/);
  const ss = await serveSpeedscope({ 'lab-b.heapprofile': snap['B.heapprofile'].path });
  try {
    const r = await speedscopeLoad(browser.port, ss, 'lab-b.heapprofile');
    assert.deepEqual(r.exceptions, []);
    assert.equal(r.importer, 'Chrome Heap Profile');
    const rows = r.sandwich.filter((x) => x.name !== 'Symbol Name');
    diag(t, `speedscope sandwich: ${rows.slice(0, 3).map((x) => `${x.name} ${x.self}`).join(', ')}`);
    assert.equal(rows[0].name, LEAK_FN);
    const w = speedscopeWeights(r.exported);
    assert.equal(w.unit, 'bytes');
    assert.ok(near(w.frames.get(LEAK_FN)?.self ?? 0, LEAK_BYTES, 0.25), `speedscope self of ${LEAK_FN}: ${w.frames.get(LEAK_FN)?.self}`);
  } finally {
    await ss.close();
  }
});
