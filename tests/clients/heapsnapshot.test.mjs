// The heap writers' outputs (src/format/heap_writers.h) read by real
// consumers. The files come from the unit test's hand-built fixture
// (tests/unit/test-format-heap.c, PROFLAB_FIXTURE_OUT): snapshot A holds
// 50 MB live in grow_cache, 30 MB in load_config (through strdup) and
// ~20.3 MB in build_index (through operator new); snapshot B is A after
// grow_cache leaked 3 × 10 MB more and one load_config block (15 MB) and
// one build_index block (575,876 B) were freed.
//
// - Chrome DevTools' own Memory panel (the frontend headless Chromium
//   serves), loading both .heapsnapshot files through the panel's file
//   input: the Summary groups by allocating function with the fixture's
//   bytes (shallow and retained), the Comparison view of B against A shows
//   the leak and the frees, and the filter "Objects allocated between A and
//   B" shows exactly the new blocks (ids stable and increasing);
// - the same panel's "Allocation sampling" view and speedscope loading the
//   .heapprofile;
// - `go tool pprof -sample_index=inuse_space -top` on the pprof heap.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { diag, loud, haveGo, pprof, parseTopBytes, heapSnapshotByName, PROFLABD } from './lib.mjs';
import { CHROMIUM, launchChromium, serveSpeedscope, speedscopeLoad, speedscopeWeights } from './chromium.mjs';
import { MemoryPanel, PANEL, REGISTRY, SHOW_SUMMARY, SHOW_COMPARISON, snapshotsReady } from './memory-panel.mjs';

/** The unit test binary that writes the fixture's files (next to proflabd in the build directory). */
const FIXTURE_WRITER = path.resolve(process.env.TEST_FORMAT_HEAP || path.join(path.dirname(PROFLABD), 'tests', 'test-format-heap'));

let HAVE_CHROMIUM = true;
try { fs.accessSync(CHROMIUM, fs.constants.X_OK); } catch { HAVE_CHROMIUM = false; }
if (!HAVE_CHROMIUM) loud(`${CHROMIUM} is not installed: the heap snapshot browser tests are SKIPPED (scripts/deps.sh test installs chromium; CI must have it)`);
const GO = haveGo();
if (!GO) loud('go is not installed: the go tool pprof heap test is SKIPPED (scripts/deps.sh test installs golang-go; CI must have it)');

const MB = 1e6;
// What the fixture holds (rounded estimates, as the writers round them).
const WANT_A = {
  grow_cache: { count: 5, bytes: 50000000 },
  load_config: { count: 2, bytes: 30000000 },
  build_index: { count: 7, bytes: 3 * 6000064 + 4 * 575876 },
};
const WANT_B = {
  grow_cache: { count: 8, bytes: 80000000 },
  load_config: { count: 1, bytes: 15000000 },
  build_index: { count: 6, bytes: 3 * 6000064 + 3 * 575876 },
};
const near = (a, b, rel) => Math.abs(a - b) <= rel * Math.abs(b);

let dir;
let files;
let browser;
let devtools; // MemoryPanel

const summarize = heapSnapshotByName; // our own reading of a .heapsnapshot

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-heap-clients-'));
  assert.ok(fs.existsSync(FIXTURE_WRITER), `${FIXTURE_WRITER} is missing: build first (ninja -C build), or set TEST_FORMAT_HEAP`);
  const r = spawnSync(FIXTURE_WRITER, [], {
    env: { ...process.env, PROFLAB_FIXTURE_OUT: dir, PROFLAB_TEST_FILTER: 'test_dump_fixture' },
    encoding: 'utf8', timeout: 60000,
  });
  assert.equal(r.status, 0, `${FIXTURE_WRITER} failed:\n${r.stdout}\n${r.stderr}`);
  files = Object.fromEntries(['heap-a.heapsnapshot', 'heap-b.heapsnapshot', 'heap-a.heapprofile', 'heap-a.pb.gz', 'heap-b.pb.gz']
    .map((n) => [n, path.join(dir, n)]));
  for (const f of Object.values(files)) assert.ok(fs.existsSync(f), `the fixture writer did not write ${f}`);
  if (HAVE_CHROMIUM) {
    browser = await launchChromium();
    devtools = new MemoryPanel(browser);
  }
});

after(async () => {
  await devtools?.close();
  await browser?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const TIMEOUT = { timeout: 120000 };

let snapshotsLoaded = null;
function loadSnapshots() {
  snapshotsLoaded ??= (async () => {
    await devtools.loadFile(files['heap-a.heapsnapshot'], snapshotsReady(1), 'DevTools to load heap-a.heapsnapshot');
    await devtools.loadFile(files['heap-b.heapsnapshot'], snapshotsReady(2), 'DevTools to load heap-b.heapsnapshot');
  })();
  return snapshotsLoaded;
}

test('Chrome DevTools\' Memory panel: the Summary groups the snapshot by allocating function, ≈ 50 / 30 / 20 MB shallow and retained', TIMEOUT, async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  const t0 = Date.now();
  await loadSnapshots();
  const loadMs = Date.now() - t0;
  const { tab } = devtools;
  const a = await tab.evaluate(SHOW_SUMMARY(0));
  diag(t, `Chromium ${browser.version.Browser}; two snapshots loaded in ${loadMs} ms; ${a.title}: ${a.nodeCount} nodes, total ${a.totalSize} B, max object id ${a.maxJSObjectId}; Summary:`);
  for (const r of a.rows) diag(t, `  ${r.name.padEnd(16)} ×${String(r.count).padEnd(3)} distance ${r.distance}  shallow ${r.shallow} (${r.text.shallowSize})  retained ${r.retained} (${r.text.retainedSize})`);
  assert.deepEqual(tab.exceptions, [], 'exceptions in the DevTools frontend');
  assert.deepEqual(tab.dialogs, [], 'dialogs in the DevTools frontend');

  // the panel agrees with our own reading of the file, class by class
  const ours = summarize(files['heap-a.heapsnapshot']);
  assert.deepEqual(Object.fromEntries(a.rows.map((r) => [r.name, { count: r.count, bytes: r.shallow }])), ours,
    'the Summary differs from the nodes of the file');
  // and with the fixture: the three allocating functions, biggest first
  assert.deepEqual(a.rows.slice(0, 3).map((r) => r.name), ['grow_cache', 'load_config', 'build_index'],
    `Summary order: ${a.rows.map((r) => r.name).join(', ')}`);
  for (const [name, want] of Object.entries(WANT_A)) {
    const r = a.rows.find((x) => x.name === name);
    assert.ok(r, `no ${name} row in the Summary`);
    assert.equal(r.count, want.count, `${name}: count`);
    assert.equal(r.shallow, want.bytes, `${name}: shallow size`);
    assert.equal(r.retained, want.bytes, `${name}: retained size (its grouping node dominates its blocks)`);
    assert.equal(r.distance, 2, `${name}: distance from the root`);
  }
  assert.ok(near(a.rows[0].shallow, 50 * MB, 0.01) && near(a.rows[1].shallow, 30 * MB, 0.01) && near(a.rows[2].shallow, 20 * MB, 0.02),
    '≈ 50 / 30 / 20 MB');
  // allocation helpers are not classes of their own
  for (const helper of ['strdup', '__strdup', 'operator new(unsigned long)']) {
    const r = a.rows.find((x) => x.name === helper);
    assert.ok(!r || r.shallow < MB, `${helper} holds ${r?.shallow} B in the Summary: the helper was taken for the allocating function`);
  }
  const sum = a.rows.reduce((s, r) => s + r.shallow, 0);
  assert.equal(a.totalSize, sum, 'the snapshot total is not the sum of the classes');
  // what the panel shows on screen
  assert.ok(a.rendered.some((l) => /^grow_cache\s*×5\s*2\s*50,000 kB/.test(l)),
    `no rendered Summary row for grow_cache ×5, 50,000 kB:\n${a.rendered.join('\n')}`);
});

test('Chrome DevTools\' Comparison view: snapshot B against A shows the leak (+3, +30 MB in grow_cache) and the frees', TIMEOUT, async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  await loadSnapshots();
  const { tab } = devtools;
  const b = await tab.evaluate(SHOW_SUMMARY(1));
  for (const [name, want] of Object.entries(WANT_B)) {
    const r = b.rows.find((x) => x.name === name);
    assert.ok(r && r.count === want.count && r.shallow === want.bytes && r.retained === want.bytes,
      `snapshot B, ${name}: ${JSON.stringify(r)}, want ${JSON.stringify(want)}`);
  }
  const diff = await tab.evaluate(SHOW_COMPARISON(1, 0));
  diag(t, `Comparison of ${b.title} against ${diff.base}:`);
  for (const r of diff.rows) diag(t, `  ${r.name.padEnd(14)} new ${r.added}  deleted ${r.removed}  delta ${r.text.countDelta}  alloc ${r.text.addedSize}  freed ${r.text.removedSize}  size delta ${r.text.sizeDelta} (${r.sizeDelta} B)`);
  assert.deepEqual(tab.exceptions, [], 'exceptions in the DevTools frontend');
  const by = Object.fromEntries(diff.rows.map((r) => [r.name, r]));
  assert.deepEqual(Object.keys(by).sort(), ['build_index', 'grow_cache', 'load_config'], 'classes that changed');
  assert.deepEqual([by.grow_cache.added, by.grow_cache.removed, by.grow_cache.sizeDelta], [3, 0, 30000000], 'grow_cache: the leak');
  assert.deepEqual([by.load_config.added, by.load_config.removed, by.load_config.sizeDelta], [0, 1, -15000000], 'load_config: one block freed');
  assert.deepEqual([by.build_index.added, by.build_index.removed, by.build_index.sizeDelta], [0, 1, -575876], 'build_index: one block freed');
  assert.equal(diff.rows[0].name, 'grow_cache', 'the leak is the first row');
  assert.ok(diff.rendered.some((l) => /^grow_cache\s*3\s*0\s*\+3\s*30\.0 MB/.test(l)), `rendered Comparison:\n${diff.rendered.join('\n')}`);
});

test('Chrome DevTools\' Summary filter "Objects allocated between heap-a and heap-b" shows only the leaked blocks (stable, increasing ids)', TIMEOUT, async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  await loadSnapshots();
  const { tab } = devtools;
  const s = await tab.evaluate(SHOW_SUMMARY(1, '^Objects allocated between'));
  diag(t, `filter "${s.filter}": ${s.rows.map((r) => `${r.name} ×${r.count} ${r.shallow} B`).join(', ')}`);
  assert.deepEqual(s.rows.map((r) => [r.name, r.count, r.shallow, r.retained]), [['grow_cache', 3, 30000000, 30000000]]);
  const before = await tab.evaluate(SHOW_SUMMARY(1, '^Objects allocated before'));
  const kept = Object.fromEntries(before.rows.map((r) => [r.name, r.count]));
  assert.equal(kept.grow_cache, 5, `grow_cache blocks from before A, still live in B: ${JSON.stringify(kept)}`);
  assert.equal(kept.load_config, 1);
  assert.deepEqual(tab.exceptions, []);
});

test('Chrome DevTools\' allocation-sampling view loads the .heapprofile: the call tree and Bottom-Up self sizes match', TIMEOUT, async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  await devtools.loadFile(files['heap-a.heapprofile'],
    `(async () => ${REGISTRY}.samplingHeapProfileType.getProfiles().length === 1)()`, 'DevTools to load heap-a.heapprofile');
  const { tab } = devtools;
  const r = await tab.evaluate(`(async () => {
    const P = ${PANEL};
    const panel = P.HeapProfilerPanel.HeapProfilerPanel.instance();
    const profile = P.ProfilesPanel.ProfilesPanel.registry.samplingHeapProfileType.getProfiles()[0];
    panel.showProfile(profile);
    const view = panel.viewForProfile(profile);
    const m = view.profile();
    const walk = (n) => ({ name: n.functionName, self: n.self, total: n.total, url: n.url, line: n.lineNumber, children: n.children.map(walk) });
    const bottomUp = view.getBottomUpProfileDataGridTree().children.map((n) => ({ name: n.functionName, self: n.self, total: n.total }));
    // a range of ordinals (allocation order) as the timeline selection: the first 8 tracker ids
    view.setSelectionRange(1, 15);
    const ranged = view.profile().root.total;
    return { root: walk(m.root), bottomUp, ranged };
  })()`);
  const find = (n, name) => (n.name === name ? n : n.children.map((c) => find(c, name)).find(Boolean));
  diag(t, `allocation sampling: root total ${r.root.total} B; Bottom-Up self: ${[...r.bottomUp].sort((x, y) => y.self - x.self).slice(0, 4).map((n) => `${n.name} ${n.self}`).join(', ')}; ordinals 1..15: ${r.ranged} B`);
  assert.deepEqual(tab.exceptions, []);
  assert.equal(r.root.name, '(root)');
  const grow = find(r.root, 'grow_cache');
  assert.ok(grow, 'no grow_cache in the call tree');
  assert.equal(grow.self, WANT_A.grow_cache.bytes);
  assert.equal(grow.url, 'file:///src/app/cache.c');
  assert.equal(grow.line, 49, 'callFrame.lineNumber (0-based) of grow_cache\'s first line');
  assert.equal(find(r.root, 'main').total, WANT_A.grow_cache.bytes + WANT_A.load_config.bytes);
  const bu = Object.fromEntries(r.bottomUp.map((n) => [n.name, n.self]));
  for (const [name, want] of Object.entries(WANT_A)) assert.equal(bu[name], want.bytes, `Bottom-Up self of ${name}`);
  const heaviest = [...r.bottomUp].sort((x, y) => y.self - x.self)[0];
  assert.equal(heaviest.name, 'grow_cache', 'the heaviest function by self size in Bottom-Up');
  // samples with ordinals 1, 3, ..., 15 (the fixture's first 8 blocks)
  assert.equal(r.ranged, 10000000 + 15000000 + 6000064 + 630630 + 10000000 + 575876 + 15000000 + 10000000);
});

test('speedscope imports the .heapprofile as a Chrome heap profile, grow_cache the heaviest', TIMEOUT, async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  const ss = await serveSpeedscope({ 'heap-a.heapprofile': files['heap-a.heapprofile'] });
  try {
    const r = await speedscopeLoad(browser.port, ss, 'heap-a.heapprofile');
    assert.deepEqual(r.exceptions, []);
    assert.deepEqual(r.dialogs, []);
    assert.equal(r.importer, 'Chrome Heap Profile');
    const w = speedscopeWeights(r.exported);
    assert.equal(w.unit, 'bytes');
    const rows = r.sandwich.filter((x) => x.name !== 'Symbol Name');
    diag(t, `speedscope sandwich: ${rows.slice(0, 3).map((x) => `${x.name} ${x.self}`).join(', ')}`);
    assert.equal(rows[0].name, 'grow_cache');
    for (const [name, want] of Object.entries(WANT_A)) assert.equal(w.frames.get(name)?.self, want.bytes, `speedscope self of ${name}`);
  } finally {
    await ss.close();
  }
});

test('go tool pprof -sample_index=inuse_space -top names the 50 MB function first; alloc_space and B agree', TIMEOUT, async (t) => {
  if (!GO) return t.skip('go not installed');
  const top = async (file, index) => {
    const { stdout } = await pprof([`-sample_index=${index}`, '-top', '-unit=B', '-nodecount=50', '-nodefraction=0', file]);
    return { text: stdout, rows: parseTopBytes(stdout) };
  };
  const a = await top(files['heap-a.pb.gz'], 'inuse_space');
  diag(t, `pprof -sample_index=inuse_space -top heap-a:\n${a.text.split('\n').slice(0, 14).join('\n')}`);
  assert.match(a.text, /Type: inuse_space/);
  assert.equal(a.rows[0].name, 'grow_cache', 'first row');
  assert.equal(a.rows[0].flat, 50000000);
  const flat = Object.fromEntries(a.rows.map((r) => [r.name, r.flat]));
  assert.equal(flat.load_config, 30000000);
  assert.ok(Math.abs(flat.build_index - WANT_A.build_index.bytes) <= 4, `build_index ${flat.build_index} B (pprof rounds per stack, the snapshot per block)`);
  // allocation helpers are dropped from the top of stacks (the fixture's
  // __strdup-only stack keeps its one 0.55 MB block)
  for (const helper of ['strdup', '__strdup', 'operator new(unsigned long)']) {
    assert.ok(!(flat[helper] >= 1e6), `${helper} has ${flat[helper]} B flat: the helper was taken for the allocating function`);
  }
  const b = await top(files['heap-b.pb.gz'], 'inuse_space');
  assert.equal(b.rows[0].name, 'grow_cache');
  assert.equal(b.rows[0].flat, 80000000);
  // inuse_space is the default sample type
  const def = await pprof(['-top', '-unit=B', files['heap-b.pb.gz']]);
  assert.match(def.stdout, /Type: inuse_space/);
  // alloc_space counts what was freed too: temp_buffer's 12 MiB, all freed
  const alloc = await top(files['heap-b.pb.gz'], 'alloc_space');
  const af = Object.fromEntries(alloc.rows.map((r) => [r.name, r.flat]));
  assert.equal(af.temp_buffer, 12 * 1048576);
  assert.equal(af.load_config, 30000000, 'alloc_space keeps the freed load_config block');
});
