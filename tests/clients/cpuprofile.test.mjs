// The .cpuprofile, taken while the event loop is jammed, loaded by real
// consumers in headless Chromium (Debian's chromium):
// - speedscope (npm package speedscope, its browser bundle served on
//   loopback, imported through its documented #profileURL= hash parameter);
// - Chrome DevTools' own frontend, as Chromium serves it on its remote
//   debugging port: the Performance panel loads the file through its file
//   input, and a CPUProfileDataModel is also built directly from the JSON
//   (what the JavaScript Profiler does).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import {
  diag, startLab, profileDuringJam, startHogs, loud, JAM_FN, JAM_FILE, jamSource,
} from './lib.mjs';
import {
  CHROMIUM, SPEEDSCOPE_VERSION, launchChromium, serveSpeedscope, speedscopeLoad, speedscopeWeights,
  devtoolsLoadCpuProfile,
} from './chromium.mjs';

let HAVE_CHROMIUM = true;
try { fs.accessSync(CHROMIUM, fs.constants.X_OK); } catch { HAVE_CHROMIUM = false; }
if (!HAVE_CHROMIUM) loud(`${CHROMIUM} is not installed: the .cpuprofile browser tests are SKIPPED (scripts/deps.sh test installs chromium; CI must have it)`);

const META = new Set(['(root)', '(program)', '(idle)', '(garbage collector)']);
const near = (a, b, rel) => Math.abs(a - b) <= rel * Math.abs(b);
const pct = (x) => `${(100 * x).toFixed(1)}%`;

let lab;
let browser;
let ss;
const ssFiles = {};
let prof; // {info, jam, data}
let json; // the parsed .cpuprofile
let devtools; // what DevTools built, shared by two tests

before(async () => {
  if (!HAVE_CHROMIUM) return;
  // Chromium first: its start-up would compete with the profiled loop for the CPUs
  browser = await launchChromium();
  lab = await startLab();
  prof = await profileDuringJam(lab.srv, { format: 'cpuprofile', seconds: 3, jamMs: 1500, delayMs: 200 });
  json = JSON.parse(prof.data.toString('utf8'));
  ssFiles['jam.cpuprofile'] = prof.info.path;
  ss = await serveSpeedscope(ssFiles);
});

after(async () => {
  await ss?.close();
  await browser?.close();
  await lab?.close();
});

test(`speedscope ${SPEEDSCOPE_VERSION} imports the .cpuprofile and shows the jam function as the heaviest`, async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  const { info, jam } = prof;
  const r = await speedscopeLoad(browser.port, ss, 'jam.cpuprofile');
  diag(t, `Chromium ${browser.version.Browser}; speedscope imported as ${JSON.stringify(r.importer)}; sandwich:`);
  for (const row of r.sandwich.slice(0, 5)) diag(t, `  ${row.total.padEnd(16)} ${row.self.padEnd(16)} ${row.name}`);
  assert.deepEqual(r.exceptions, [], 'exceptions in speedscope');
  assert.deepEqual(r.dialogs, [], 'speedscope alerted');
  assert.equal(r.importer, 'Chrome CPU Profile', 'speedscope did not recognize a Chrome .cpuprofile');

  // the Sandwich view (sorted by self time): the jam function first, > 90% of self
  const rows = r.sandwich.filter((row) => row.name !== 'Symbol Name');
  assert.ok(rows.length > 0, `no rows in the sandwich table: ${r.bodyText.slice(0, 500)}`);
  assert.equal(rows[0].name, JAM_FN, `first sandwich row: ${JSON.stringify(rows.slice(0, 3))}`);
  const selfPct = /\((>?)([\d.]+)%\)/.exec(rows[0].self);
  assert.ok(selfPct && Number(selfPct[2]) >= 90, `${JAM_FN}'s self column: ${rows[0].self}`);
  assert.ok(!rows.some((row) => META.has(row.name)), `meta nodes shown as functions: ${rows.map((x) => x.name).join(', ')}`);

  // what speedscope's importer built, from its own export
  const exp = r.exported;
  assert.equal(exp.$schema, 'https://www.speedscope.app/file-format-schema.json');
  assert.equal(exp.profiles.length, 1);
  const w = speedscopeWeights(exp);
  assert.equal(w.unit, 'microseconds');
  const names = exp.shared.frames.map((f) => f.name);
  for (const m of ['(root)', '(idle)']) assert.ok(!names.includes(m), `speedscope kept ${m} as a frame: our meta nodes are not recognized`);
  assert.ok(near(w.end - w.start, info.duration_ms * 1000, 0.02),
    `speedscope's profile spans ${(w.end - w.start) / 1000} ms, the profile lasted ${info.duration_ms} ms`);
  const all = [...w.frames.values()].reduce((a, f) => a + f.self, 0);
  const byself = [...w.frames.entries()].sort((a, b) => b[1].self - a[1].self);
  const j = w.frames.get(JAM_FN);
  assert.ok(j, `no ${JAM_FN} frame among ${names.join(', ')}`);
  assert.equal(byself[0][0], JAM_FN, `heaviest frame by self time: ${byself[0][0]}`);
  assert.ok(j.self >= 0.9 * all, `${JAM_FN} self ${j.self} µs of ${all} µs non-idle (${pct(j.self / all)})`);
  assert.ok(near(j.total, jam.jammed_ms * 1000, 0.1), `${JAM_FN} total ${j.total / 1000} ms, the jam lasted ${jam.jammed_ms} ms`);
  // the time-order view: one contiguous block, where the jam happened
  assert.equal(j.spans.length, 1, `${JAM_FN} is cut into ${j.spans.length} blocks on the timeline: ${JSON.stringify(j.spans.slice(0, 5))}`);
  const [open, close] = j.spans[0];
  assert.ok(near(close - open, jam.jammed_ms * 1000, 0.1), `the jam block lasts ${(close - open) / 1000} ms, the jam ${jam.jammed_ms} ms`);
  assert.ok(open > w.start && close <= w.end, `jam block at ${(open - w.start) / 1000}..${(close - w.start) / 1000} ms of ${(w.end - w.start) / 1000} ms`);
  // where: file and line (speedscope shows 1-based lines)
  const src = jamSource();
  assert.ok(j.frame.file.endsWith(JAM_FILE), `${JAM_FN}'s file in speedscope: ${JSON.stringify(j.frame.file)}`);
  assert.equal(j.frame.line, src.line, `${JAM_FN}'s line in speedscope (the definition is at ${JAM_FILE}:${src.line})`);
  diag(t, `speedscope: ${JAM_FN} self ${(j.self / 1000).toFixed(1)} ms = ${pct(j.self / all)} of non-idle, ` +
    `one block ${((open - w.start) / 1000).toFixed(0)}..${((close - w.start) / 1000).toFixed(0)} ms of ${((w.end - w.start) / 1000).toFixed(0)} ms, ` +
    `at ${j.frame.file}:${j.frame.line}`);
});

test('Chrome DevTools: the Performance panel loads the .cpuprofile, with the jam function as the hot path on a real timeline', async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  const { info, jam } = prof;
  devtools = await devtoolsLoadCpuProfile(browser.port, info.path);
  const d = devtools;
  assert.deepEqual(d.exceptions, [], 'exceptions in the DevTools frontend');
  assert.deepEqual(d.dialogs, [], 'dialogs in the DevTools frontend');

  // the trace the panel made of the profile: real time bounds
  const b = d.panel.traceBounds;
  diag(t, `Performance panel: trace bounds ${b.min}..${b.max} µs (${(b.range / 1000).toFixed(1)} ms), ${d.panel.threads} thread(s)`);
  assert.equal(d.panel.threads, 1);
  assert.ok(b.min > 0, 'trace starts at 0: the panel would draw an empty trace');
  assert.equal(b.min, json.startTime, "trace start is not the profile's startTime");
  assert.ok(near(b.range, info.duration_ms * 1000, 0.02), `trace range ${b.range} µs, profile ${info.duration_ms} ms`);

  // the panel's CPUProfileDataModel (Bottom-up / Call tree)
  const m = d.model;
  assert.ok(m, 'no CPU profile model in the panel');
  assert.equal(m.rootName, '(root)');
  assert.equal(m.samples, json.samples.length);
  assert.ok(m.endMs - m.startMs >= 0.9 * info.duration_ms, `model timeline ${m.startMs}..${m.endMs} ms`);
  assert.ok(m.idleSelfMs !== null && m.programSelfMs !== null, 'DevTools did not find the (idle)/(program) meta nodes');
  const busy = m.totalMs - m.idleSelfMs - m.programSelfMs;
  const jm = m.byName[JAM_FN];
  assert.ok(jm, `no ${JAM_FN} in the model: ${Object.keys(m.byName).join(', ')}`);
  const heaviest = Object.entries(m.byName).filter(([n]) => !META.has(n)).sort((x, y) => y[1].selfMs - x[1].selfMs)[0][0];
  assert.equal(heaviest, JAM_FN, 'heaviest self time in the model');
  assert.ok(jm.selfMs >= 0.9 * busy, `${JAM_FN} self ${jm.selfMs} ms of ${busy} ms non-idle`);
  diag(t, `model: ${m.samples} samples, ${m.totalMs.toFixed(1)} ms total, idle ${m.idleSelfMs.toFixed(1)} ms, ${JAM_FN} self ${jm.selfMs.toFixed(1)} ms (${pct(jm.selfMs / busy)} of non-idle), depth ${m.maxDepth}`);

  // the flame chart's entries (ProfileCalls): one block as long as the jam, titled and placed right
  const c = d.calls[JAM_FN];
  assert.ok(c, `no flame chart entry for ${JAM_FN}: ${Object.keys(d.calls).join(', ')}`);
  assert.equal(c.title, JAM_FN);
  assert.ok(near(c.durUs, jam.jammed_ms * 1000, 0.1), `${JAM_FN} flame chart time ${c.durUs / 1000} ms, jam ${jam.jammed_ms} ms`);
  assert.ok(near(c.lastEnd - c.firstTs, jam.jammed_ms * 1000, 0.1), `${JAM_FN} spans ${(c.lastEnd - c.firstTs) / 1000} ms on the flame chart`);
  assert.ok(c.firstTs >= b.min && c.lastEnd <= b.max + 1, 'jam entry outside the trace bounds');
  const src = jamSource();
  assert.ok(String(c.url).endsWith(JAM_FILE), `${JAM_FN}'s url: ${JSON.stringify(c.url)}`);
  assert.equal(c.lineNumber, src.line - 1, "callFrame.lineNumber (0-based) of the jam function's definition");
  diag(t, `flame chart: ${JAM_FN} ${c.count} entr${c.count === 1 ? 'y' : 'ies'}, ${(c.durUs / 1000).toFixed(1)} ms at +${((c.firstTs - b.min) / 1000).toFixed(0)} ms, ${c.url}:${c.lineNumber + 1}`);

  // a CPUProfileDataModel built directly from the JSON
  assert.equal(d.directError, null, `CPUProfileDataModel threw: ${d.directError}`);
  const dm = d.direct;
  assert.ok(dm.endMs - dm.startMs >= 0.9 * info.duration_ms, `direct model timeline ${dm.startMs}..${dm.endMs} ms`);
  assert.ok(dm.totalMs > 0);
  assert.ok(dm.byName[JAM_FN] && dm.byName[JAM_FN].selfMs >= 0.9 * (dm.totalMs - dm.idleSelfMs - dm.programSelfMs),
    `direct model: ${JAM_FN} self ${dm.byName[JAM_FN]?.selfMs} ms of ${dm.totalMs} ms`);
  const span = dm.spans[JAM_FN];
  assert.ok(span && near(span.durMs, jam.jammed_ms, 0.1), `direct model forEachFrame: ${JAM_FN} ${span?.durMs} ms`);
});

// DevTools resolves a profile's scriptIds against the scripts of the page it
// inspects; its own Performance panel injects a script there (an isolated
// world "DevTools Performance Metrics", a content script). A frame whose
// scriptId equals that script's id is drawn as "On ignore list (Content
// script)" instead of its name.
test('Chrome DevTools: no frame of ours is ignore-listed by the Performance panel (scriptIds do not collide with the page\'s scripts)', async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  assert.ok(devtools, 'needs the DevTools load of the previous test');
  const hidden = Object.entries(devtools.calls).filter(([, c]) => c.ignoreListed)
    .map(([name, c]) => `${name} (scriptId ${JSON.stringify(c.scriptId)}, url ${JSON.stringify(c.url)}): "On ignore list (${c.ignoreReason})"`);
  assert.deepEqual(hidden, [], `the Performance panel hides frames of the profile:\n${hidden.join('\n')}`);
});

// With every CPU busy, the profiled thread misses timer expirations: proflab
// records fewer samples, each standing for several periods (the answer's
// `weight` > `samples`), and writes that time only into timeDeltas. Clients
// that place samples by time (speedscope, the Performance panel's flame
// chart) stay right; DevTools' CPUProfileDataModel gives each node
// hitCount x (endTime - startTime) / total hitCount, which is what the
// JavaScript Profiler panel's Tree and Heavy (Bottom Up) views show, so a
// function sampled while the thread was starved gets too little time.
test('under CPU contention, DevTools\' call-tree time (hit counts) of the jam still matches the jam', async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  const hogs = 3 * (os.availableParallelism?.() ?? os.cpus().length);
  const stopHogs = startHogs(hogs);
  let p;
  try {
    p = await profileDuringJam(lab.srv, { format: 'cpuprofile', seconds: 3, jamMs: 1500, delayMs: 200 });
  } finally {
    await stopHogs();
  }
  const { info, jam } = p;
  diag(t, `with ${hogs} CPU hogs: ${info.samples} samples for weight ${info.weight} (signals ${info.signals}); jam ${jam.jammed_ms} ms`);
  ssFiles['contended.cpuprofile'] = info.path;
  const r = await speedscopeLoad(browser.port, ss, 'contended.cpuprofile');
  const sj = speedscopeWeights(r.exported).frames.get(JAM_FN);
  const d = await devtoolsLoadCpuProfile(browser.port, info.path);
  const c = d.calls[JAM_FN];
  const dm = d.direct.byName[JAM_FN];
  diag(t, `${JAM_FN}: speedscope ${(sj.total / 1000).toFixed(1)} ms, Performance panel flame chart ${(c.durUs / 1000).toFixed(1)} ms, ` +
    `CPUProfileDataModel self ${dm.selfMs.toFixed(1)} ms / total ${dm.totalMs.toFixed(1)} ms, (idle) ${d.direct.idleSelfMs.toFixed(1)} ms`);
  // time-placed clients
  assert.ok(near(sj.total, jam.jammed_ms * 1000, 0.1), `speedscope: ${JAM_FN} ${sj.total / 1000} ms, jam ${jam.jammed_ms} ms`);
  assert.ok(near(c.durUs, jam.jammed_ms * 1000, 0.1), `flame chart: ${JAM_FN} ${c.durUs / 1000} ms, jam ${jam.jammed_ms} ms`);
  // hit-count-based totals
  assert.ok(near(dm.totalMs, jam.jammed_ms, 0.1),
    `DevTools' CPUProfileDataModel gives ${JAM_FN} ${dm.totalMs.toFixed(1)} ms (hit counts), the jam lasted ${jam.jammed_ms} ms: ` +
    `${info.samples} samples carry weight ${info.weight}, and hitCount counts samples, not periods`);
});
