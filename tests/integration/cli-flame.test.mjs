// proflab flame and proflab diff on real profiles:
// - flame on a .cpuprofile a proflabd took during an event-loop jam: the
//   jam function's frame carries its file:line, samples and share, and its
//   width is that share of the graph; frames nest (each inside its parent);
//   (idle) is left out with a note, or drawn with --idle; the same graph
//   from pprof and folded stacks (through `convert`); --icicle, --width,
//   --title (escaped), -o -; a heap profile of the lab's leak is drawn by
//   bytes in the memory palette;
// - diff on two `node --cpu-prof` runs of a script whose hot function
//   grows from 1/6 to 1/2 of the time while another stays at 1/3: the
//   grown one is outside the noise band, the steady one within it; the
//   differential graph colors them; proflabd without and with a jam; two
//   heap profiles of the lab by bytes;
// - --help, bad command lines (exit 2) and bad input (exit 1), one line on
//   stderr, and no file left under OUT (nor OUT.partial) when a write fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { startProflabd, stopChecked, labEnv, request, GOOD_TOKEN, REPO_ROOT, slow } from './helpers.mjs';
import { profileDuringJam, jamSource, JAM_FN, JAM_FILE } from '../clients/lib.mjs';

/** The CLI under test: $PROFLAB_CLI (relative to the repo root), default build/proflab. */
const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
const LEAK_FN = 'lab_memory_leak_allocate';

let srv;
let labDir;
let work;
let jamProfile; // {info, jam, data}: a 2 s .cpuprofile with a ~1.5 s jam
let quietProfile; // a 1 s .cpuprofile of the same proflabd doing nothing
let nodeA;
let nodeB; // node --cpu-prof of three.js: hotFn 1/6 -> 1/2, steadyFn 1/3 -> 1/3

// Three functions with the same body, so their shares are the ratio of the
// iterations each is given per round.
const THREE_JS = `'use strict';
function hotFn(n) { let s = 0; for (let i = 0; i < n; i++) s += Math.sqrt(i) * Math.sin(i); return s; }
function steadyFn(n) { let s = 0; for (let i = 0; i < n; i++) s += Math.sqrt(i) * Math.sin(i); return s; }
function fillFn(n) { let s = 0; for (let i = 0; i < n; i++) s += Math.sqrt(i) * Math.sin(i); return s; }
const [hot, steady, fill, ms] = process.argv.slice(2).map(Number);
let r = 0;
const end = Date.now() + ms;
while (Date.now() < end) { r += hotFn(hot); r += steadyFn(steady); r += fillFn(fill); }
process.stdout.write(r === r ? '' : 'NaN');
`;

function nodeProfile(name, iterations) {
  const script = path.join(work, 'three.js');
  const r = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-dir', work, '--cpu-prof-name', name,
    script, ...iterations.map(String), '1500'], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `node --cpu-prof: ${r.stderr}`);
  return path.join(work, name);
}

before(async () => {
  labDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-flame-lab-'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-flame-'));
  fs.writeFileSync(path.join(work, 'three.js'), THREE_JS);
  nodeA = nodeProfile('a.cpuprofile', [20000, 40000, 60000]);
  nodeB = nodeProfile('b.cpuprofile', [60000, 40000, 20000]);
  srv = await startProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: labDir, LAB_MAX_LEAK_MB: 64 }) });
  const q = await request(srv.base, '/api/lab/cpu-profile?seconds=1&format=cpuprofile', {
    method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(20000),
  });
  assert.equal(q.status, 200, q.text);
  quietProfile = q.body.path;
  jamProfile = await profileDuringJam(srv, { format: 'cpuprofile', seconds: 2, jamMs: 1500, delayMs: 150 });
});
after(async () => {
  await stopChecked(srv);
  for (const d of [labDir, work]) fs.rmSync(d, { recursive: true, force: true });
});

/** Run the CLI: {code, stdout, stderr}. */
function cli(args, { timeoutMs = slow(60000) } = {}) {
  const env = { PATH: process.env.PATH || '/usr/bin:/bin' };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
  return new Promise((resolve, reject) => {
    const p = spawn(CLI, args, { env, cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    let stderr = '';
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`proflab ${args.join(' ')}: no exit within ${timeoutMs} ms`)); }, timeoutMs);
    p.on('error', (e) => { clearTimeout(t); reject(e); });
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
  });
}

async function ok(args) {
  const r = await cli(args);
  assert.equal(r.code, 0, `proflab ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  assert.equal(r.stderr, '', `proflab ${args.join(' ')}: stderr`);
  return r;
}

function assertOneLineError(r, code, pattern, what) {
  assert.equal(r.code, code, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^proflab (flame|diff): /, what);
  if (pattern) assert.match(lines[0], pattern, what);
}

const unescape = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
  .replace(/&apos;/g, "'").replace(/&amp;/g, '&');

/** The frames of an SVG flame graph: [{f, s, v, d, title, x, y, w, fill, label}]. */
function framesOf(svg) {
  const re = /<g data-f="(\d+)" data-s="(\d+)" data-v="(\d+)" data-d="(\d+)"><title>([^<]*)<\/title><rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="15" rx="2" ry="2" fill="([^"]+)"\/><text [^>]*>([^<]*)<\/text><\/g>/g;
  const out = [];
  for (const m of svg.matchAll(re)) {
    out.push({ f: +m[1], s: +m[2], v: +m[3], d: +m[4], title: unescape(m[5]), x: +m[6], y: +m[7], w: +m[8], fill: m[9], label: unescape(m[10]) });
  }
  assert.equal(out.length, (svg.match(/<g data-f=/g) || []).length, 'every frame group parsed');
  return out;
}

const nameOf = (fr) => fr.title.split('\n')[0].replace(/ \([^()]*\)$/, '');
const subtitleOf = (svg) => unescape(/<text id="pl-subtitle"[^>]*>([^<]*)<\/text>/.exec(svg)[1]);

/** Frames nest: each one lies inside a frame one level closer to the root. */
function assertNested(frames) {
  const byDepth = new Map();
  for (const f of frames) (byDepth.get(f.d) || byDepth.set(f.d, []).get(f.d)).push(f);
  assert.equal(frames[0].d, 0, 'the root comes first');
  for (const f of frames) {
    if (!f.d) continue;
    const parent = (byDepth.get(f.d - 1) || []).find((p) => p.s <= f.s && p.s + p.v >= f.s + f.v);
    assert.ok(parent, `frame ${nameOf(f)} at depth ${f.d} has no parent around it`);
    assert.ok(f.x >= parent.x - 0.02 && f.x + f.w <= parent.x + parent.w + 0.05, `${nameOf(f)} drawn outside its parent`);
  }
}

async function flame(args, out) {
  const file = path.join(work, out);
  await ok(['flame', ...args, '-o', file]);
  assert.ok(!fs.existsSync(`${file}.partial`), 'OUT.partial left behind');
  return fs.readFileSync(file, 'utf8');
}

// ---- flame ----------------------------------------------------------------------

test('flame on the lab\'s jam: the jam function\'s frame with its location, samples and share, idle left out', async (t) => {
  const { info } = jamProfile;
  const svg = await flame([info.path], 'jam.svg');
  assert.match(svg, /^<\?xml version="1\.0" encoding="UTF-8" standalone="no"\?>\n<svg /);
  assert.match(svg, /<\/svg>\n$/);
  assert.doesNotMatch(svg, /href|url\(/, 'the graph refers to nothing outside itself');
  const frames = framesOf(svg);
  assertNested(frames);
  const root = frames[0];
  assert.equal(root.w, 1180);
  const sub = subtitleOf(svg);
  t.diagnostic(`subtitle: ${sub}; ${frames.length} frames`);
  const idle = /\(idle\) ([\d.]+)% left out \(--idle draws it\)/.exec(sub);
  assert.ok(idle, `subtitle: ${sub}`);
  assert.ok(!frames.some((f) => nameOf(f) === '(idle)'), '(idle) drawn without --idle');
  const jam = frames.filter((f) => nameOf(f) === JAM_FN);
  assert.equal(jam.length, 1, `one ${JAM_FN} frame`);
  const j = jam[0];
  const src = jamSource();
  const lines = j.title.split('\n');
  assert.ok(lines[0].endsWith(`${JAM_FILE}:${src.line})`), `tooltip: ${j.title}`);
  const m = /^([\d.]+) s \((\d+) samples\), ([\d.]+)%$/.exec(lines[1]);
  assert.ok(m, `tooltip's value line: ${lines[1]}`);
  assert.equal(Number(m[2]), j.v);
  assert.ok(Math.abs(Number(m[3]) - (100 * j.v) / root.v) < 0.01, 'share = value / root');
  assert.ok(Number(m[3]) > 90, `the jam is ${m[3]}% of the busy time`);
  assert.ok(Math.abs(j.w - (1180 * j.v) / root.v) < 0.02, 'width = share of the root\'s width');
  assert.ok(Math.abs(Number(m[1]) * 1000 - jamProfile.jam.jammed_ms) <= 0.1 * jamProfile.jam.jammed_ms,
    `${m[1]} s in the graph, the lab jammed ${jamProfile.jam.jammed_ms} ms`);
  assert.equal(j.label, JAM_FN, 'a wide frame shows its whole name');
  assert.match(j.fill, /^rgb\((2[0-5]\d),(\d+),(\d+)\)$/, 'warm colors');

  // --idle: (idle) is a frame, and the jam's share drops by what it had
  const all = await flame(['--idle', info.path], 'jam-idle.svg');
  const fa = framesOf(all);
  const idleFrame = fa.find((f) => nameOf(f) === '(idle)');
  assert.ok(idleFrame, '--idle draws (idle)');
  assert.equal(fa[0].v, root.v + idleFrame.v);
  assert.ok(Math.abs((100 * idleFrame.v) / fa[0].v - Number(idle[1])) < 0.1, 'the subtitle\'s idle share');
  assert.doesNotMatch(subtitleOf(all), /left out/);
});

test('flame from pprof and folded stacks (through convert) draws the same tree; --icicle, --width, --title, -o -', async () => {
  const { info } = jamProfile;
  const base = framesOf(await flame([info.path], 'base.svg'));
  const want = new Map(base.map((f) => [`${f.d}:${nameOf(f)}:${f.s}`, f.v]));
  for (const [fmt, ext] of [['pprof', 'pb.gz'], ['folded', 'folded']]) {
    const conv = path.join(work, `jam.${ext}`);
    await ok(['convert', info.path, '-o', conv]);
    const svg = await flame([conv], `jam-${fmt}.svg`);
    const fr = framesOf(svg);
    assert.equal(fr[0].v, base[0].v, `${fmt}: the same samples`);
    const jam = fr.find((f) => nameOf(f) === JAM_FN);
    assert.ok(jam, `${fmt}: no ${JAM_FN}`);
    assert.equal(jam.v, want.get(`${jam.d}:${JAM_FN}:${jam.s}`), `${fmt}: the jam frame's value and place`);
    if (fmt === 'folded') assert.match(subtitleOf(svg), /no times in this format: widths are counts/);
  }
  const ice = framesOf(await flame(['--icicle', '--width', '800', '--title', 'a <b> & "c"', info.path], 'ice.svg'));
  assert.equal(ice[0].y, 56, 'icicle: the root at the top');
  assert.equal(ice[0].w, 780);
  for (const f of ice) assert.equal(f.y, 56 + 16 * f.d);
  const titled = fs.readFileSync(path.join(work, 'ice.svg'), 'utf8');
  assert.match(titled, /<title>a &lt;b&gt; &amp; &quot;c&quot;<\/title>/);
  const out = await ok(['flame', info.path, '-o', '-']);
  assert.match(out.stdout, /^<\?xml /);
  assert.equal(framesOf(out.stdout).length, base.length);
  // --minwidth: a larger one leaves frames out and says so
  const wide = await flame(['--minwidth', '5', info.path], 'min5.svg');
  assert.ok(framesOf(wide).length < base.length);
  assert.match(subtitleOf(wide), /\d+ frames? narrower than 5 px not drawn/);
});

async function heapProfile(mb, name) {
  const leak = await request(srv.base, `/api/lab/memory-leak?mb=${mb}`, { method: 'POST', token: GOOD_TOKEN });
  assert.equal(leak.status, 200, leak.text);
  const r = await request(srv.base, '/api/lab/heap-snapshot?format=heapprofile', { method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(30000) });
  assert.equal(r.status, 200, r.text);
  const file = path.join(work, name);
  fs.copyFileSync(r.body.path, file);
  return file;
}

test('flame and diff of the lab\'s heap profiles: the leak by bytes, in the memory palette', async (t) => {
  let a;
  let b;
  try {
    a = await heapProfile(8, 'leak8.heapprofile');
    b = await heapProfile(24, 'leak32.heapprofile'); // 8 + 24 MiB live
  } finally {
    await request(srv.base, '/api/lab/memory-clear', { method: 'POST', token: GOOD_TOKEN });
  }
  const svg = await flame([b], 'heap.svg');
  assert.match(svg, /data-kind="memory"/);
  assert.match(subtitleOf(svg), /live in \d+ samples?; widths are live bytes by allocating stack/);
  const fr = framesOf(svg);
  assertNested(fr);
  const leak = fr.filter((f) => nameOf(f) === LEAK_FN);
  assert.ok(leak.length >= 1, `no ${LEAK_FN} frame`);
  const mib = leak.reduce((s, f) => s + f.v, 0) / 1048576;
  assert.ok(mib > 32 * 0.7 && mib < 32 * 1.3, `${LEAK_FN}: ${mib.toFixed(1)} MiB, want ~32`);
  assert.match(leak[0].title.split('\n')[1], /^[\d.]+ MiB, [\d.]+%$/);
  for (const f of leak) assert.match(f.fill, /^rgb\(\d{1,2},\d+,\d+\)$/, 'greens and blues');

  const r = await ok(['diff', '--json', a, b]);
  const j = JSON.parse(r.stdout);
  assert.equal(j.type, 'heap');
  const top = j.functions.find((f) => !f.meta && f.function !== 'main');
  t.diagnostic(`heap diff first rows: ${j.functions.slice(0, 3).map((f) => `${f.function} ${f.d_self_bytes}`).join(', ')}`);
  assert.equal(j.functions[0].function, LEAK_FN, 'the leak changed most (self bytes)');
  const grew = top.d_self_bytes / 1048576;
  assert.ok(grew > 24 * 0.7 && grew < 24 * 1.3, `${LEAK_FN} grew ${grew.toFixed(1)} MiB, want ~24`);
  assert.equal(top.self_band_pct, null, 'no noise band for heap profiles');
  assert.equal(top.self_change, 'grew');
  const text = await ok(['diff', a, b, '--limit', '3']);
  assert.match(text.stdout, new RegExp(`\\+[\\d.]+ MiB .* ${LEAK_FN} `));
});

// ---- diff -----------------------------------------------------------------------

test('diff of two node --cpu-prof runs: the function that grew is outside the noise band, the steady one within it', async (t) => {
  const r = await ok(['diff', '--json', '--limit', '0', nodeA, nodeB]);
  const j = JSON.parse(r.stdout);
  assert.equal(j.type, 'cpu');
  assert.equal(j.a.format, 'cpuprofile');
  const fn = (name) => {
    const f = j.functions.find((x) => x.function === name && x.file.endsWith('three.js'));
    assert.ok(f, `no ${name} in the diff`);
    return f;
  };
  const hot = fn('hotFn');
  const steady = fn('steadyFn');
  const fill = fn('fillFn');
  for (const f of [hot, steady, fill]) {
    t.diagnostic(`${f.function}: self ${f.a_self_pct.toFixed(1)}% -> ${f.b_self_pct.toFixed(1)}% (${f.d_self_pct >= 0 ? '+' : ''}${f.d_self_pct.toFixed(2)} points, band ±${f.self_band_pct.toFixed(2)}): ${f.self_change}`);
  }
  assert.ok(hot.d_self_pct > 20, `hotFn grew ${hot.d_self_pct} points (1/6 -> 1/2 of the time)`);
  assert.ok(hot.d_self_pct > hot.self_band_pct);
  assert.equal(hot.self_within_noise, false);
  assert.equal(hot.self_change, 'grew');
  assert.ok(fill.d_self_pct < -20 && fill.self_change === 'shrank');
  assert.ok(Math.abs(steady.a_self_pct - 33.3) < 8, `steadyFn is a third of A: ${steady.a_self_pct}`);
  assert.equal(steady.self_within_noise, true, `steadyFn moved ${steady.d_self_pct} points, band ±${steady.self_band_pct}`);
  assert.equal(steady.self_change, steady.d_self_pct === 0 ? 'unchanged' : 'within noise');
  // the band is what the rule says: 2 sqrt(pA(1-pA)/nA + pB(1-pB)/nB)
  const pa = steady.a_self_pct / 100;
  const pb = steady.b_self_pct / 100;
  const band = 200 * Math.sqrt((pa * (1 - pa)) / j.a.samples + (pb * (1 - pb)) / j.b.samples);
  assert.ok(Math.abs(band - steady.self_band_pct) < 0.01, `band ${steady.self_band_pct}, by the rule ${band}`);
  // the order: by |change of self share|
  for (let i = 1; i < j.functions.length; i++) {
    assert.ok(Math.abs(j.functions[i].d_self_pct) <= Math.abs(j.functions[i - 1].d_self_pct) + 1e-9, 'sorted by |d self|');
  }
  assert.deepEqual(new Set(j.functions.slice(0, 2).map((f) => f.function)), new Set(['hotFn', 'fillFn']));

  // the table, and the differential flame graph of B
  const svgPath = path.join(work, 'diff.svg');
  // --limit 0: every row (under a sanitizer, node's own start-up adds many
  // rows of one sample, which can push steadyFn's ~0 change past row 20)
  const text = await ok(['diff', nodeA, nodeB, '-o', svgPath, '--limit', '0']);
  t.diagnostic(text.stdout.split('\n').slice(0, 7).join(' | '));
  assert.match(text.stdout, /^A: .*a\.cpuprofile: \.cpuprofile \(wall\), \d+ samples/);
  assert.match(text.stdout, /\n {2}\+\d+\.\d\d {4}\+\d+\.\d\d .* hotFn +\S*three\.js:\d\n/);
  assert.match(text.stdout, /~ .* steadyFn +\S*three\.js:\d\n/);
  assert.match(text.stdout, /differential flame graph of B: .*diff\.svg\n$/);
  const svg = fs.readFileSync(svgPath, 'utf8');
  assert.match(svg, /data-kind="diff"/);
  const fr = framesOf(svg);
  assertNested(fr);
  const frame = (name) => fr.find((f) => nameOf(f) === name);
  assert.match(frame('hotFn').fill, /^rgb\(255,(\d+),\1\)$/, 'grew: red');
  assert.match(frame('fillFn').fill, /^rgb\((\d+),\1,255\)$/, 'shrank: blue');
  assert.equal(frame('steadyFn').fill, 'rgb(222,222,222)', 'within noise: grey');
  const tip = frame('hotFn').title.split('\n');
  assert.match(tip[1], /^B: [\d.]+ m?s \(\d+ samples\), [\d.]+% \(self [\d.]+%\)$/);
  assert.match(tip[2], /^A: [\d.]+% \(self [\d.]+%\)$/);
  assert.match(tip[3], /^self share \+[\d.]+ points: grew \(noise ±[\d.]+\)$/);
  assert.match(frame('steadyFn').title, /within noise/);
});

test('diff of proflabd without and with a jam: the jam function grew beyond noise', async (t) => {
  const r = await ok(['diff', '--json', quietProfile, jamProfile.info.path]);
  const j = JSON.parse(r.stdout);
  const jam = j.functions.find((f) => f.function === JAM_FN);
  assert.ok(jam, `no ${JAM_FN} in the diff`);
  t.diagnostic(`${JAM_FN}: self ${jam.a_self_pct}% -> ${jam.b_self_pct}% of busy samples (${j.a.samples} -> ${j.b.samples}), band ±${jam.self_band_pct}`);
  assert.equal(jam.a_self_pct, 0);
  assert.ok(jam.b_self_pct > 90);
  assert.equal(jam.self_within_noise, false);
  // the largest growth (what shrank depends on the few busy samples of the quiet profile)
  const grew = j.functions.filter((f) => f.d_self_pct > 0).sort((x, y) => y.d_self_pct - x.d_self_pct);
  assert.equal(grew[0].function, JAM_FN, 'the largest growth');
  // counting idle, the quiet profile is mostly (idle), which shrank
  const all = JSON.parse((await ok(['diff', '--json', '--idle', quietProfile, jamProfile.info.path])).stdout);
  const idle = all.functions.find((f) => f.function === '(idle)');
  assert.ok(idle && idle.meta && idle.d_self_pct < -50 && idle.self_change === 'shrank', JSON.stringify(idle));
});

// ---- errors ---------------------------------------------------------------------

test('--help, bad command lines (exit 2), bad input (exit 1), one line on stderr, nothing left under OUT', async () => {
  for (const cmd of ['flame', 'diff']) {
    const h = await ok([cmd, '--help']);
    assert.match(h.stdout, new RegExp(`^usage: proflab ${cmd} `));
    assert.match(h.stdout, /exit status:/);
  }
  assert.match((await ok(['--help'])).stdout, /^\s+flame\s+.*\n\s+diff\s+/m);
  const { info } = jamProfile;
  const out = path.join(work, 'x.svg');
  assertOneLineError(await cli(['flame', info.path]), 2, /no output given/, 'flame without -o');
  assertOneLineError(await cli(['flame', '-o', out]), 2, /no FILE given/, 'flame without a file');
  assertOneLineError(await cli(['flame', info.path, info.path, '-o', out]), 2, /one FILE only/, 'two files');
  assertOneLineError(await cli(['flame', '--width', '10', info.path, '-o', out]), 2, /--width must be a whole number of px from 200 to 100000, not '10'/, 'narrow');
  assertOneLineError(await cli(['flame', '--minwidth', 'x', info.path, '-o', out]), 2, /--minwidth must be a number of px from 0 to 10000, not 'x'/, 'minwidth');
  assertOneLineError(await cli(['flame', '--minwidth', '-1', info.path, '-o', out]), 2, /--minwidth/, 'negative');
  assertOneLineError(await cli(['flame', '--bogus', info.path, '-o', out]), 2, /unknown option '--bogus'/, 'bogus');
  assertOneLineError(await cli(['flame', info.path, '--title']), 2, /missing value for '--title'/, 'no value');
  assertOneLineError(await cli(['flame', path.join(work, 'nope'), '-o', out]), 1, /nope: .*No such file/, 'missing');
  const garbage = path.join(work, 'garbage.cpuprofile');
  fs.writeFileSync(garbage, '{"nodes":[{"id":1,"callFrame":{"functionName":"(root)"},"children":[2]}');
  assertOneLineError(await cli(['flame', garbage, '-o', out]), 1, /garbage\.cpuprofile: offset \d+: /, 'truncated');
  const noDir = path.join(work, 'no-such-dir', 'x.svg');
  assertOneLineError(await cli(['flame', info.path, '-o', noDir]), 1, /cannot create .*x\.svg\.partial/, 'no dir');
  assert.ok(!fs.existsSync(out) && !fs.existsSync(`${out}.partial`), 'nothing written on errors');

  assertOneLineError(await cli(['diff', info.path]), 2, /two files are needed/, 'one file');
  assertOneLineError(await cli(['diff', info.path, info.path, info.path]), 2, /two files only/, 'three files');
  assertOneLineError(await cli(['diff', info.path, info.path, '-o', '-']), 2, /-o -/, 'graph to stdout');
  assertOneLineError(await cli(['diff', '--by', 'x', info.path, info.path]), 2, /--by must be self or total, not 'x'/, 'by');
  assertOneLineError(await cli(['diff', '-', '-']), 2, /both be stdin/, 'two stdins');
  const heap = path.join(work, 'h.heapprofile');
  fs.writeFileSync(heap, JSON.stringify({ head: { callFrame: { functionName: '(root)', url: '', lineNumber: -1, columnNumber: -1, scriptId: 0 }, selfSize: 0, id: 1, children: [] }, samples: [] }));
  assertOneLineError(await cli(['diff', info.path, heap]), 1, /is a CPU profile and .* a heap profile/, 'cpu vs heap');
  const snap = path.join(work, 's.heapsnapshot');
  fs.writeFileSync(snap, '{"snapshot":{"meta":{"node_fields":["type","name","id","self_size","edge_count"],' +
    '"node_types":[["synthetic"]],"edge_fields":["type","name_or_index","to_node"],"edge_types":[["element"]]},' +
    '"node_count":1,"edge_count":0},"nodes":[0,0,1,0,0],"edges":[],"strings":[""]}');
  assertOneLineError(await cli(['diff', snap, info.path]), 1, /is a heap snapshot and .* a CPU profile: a heap snapshot is compared only with a heap snapshot/, 'snapshot vs cpu');
  const same0 = await ok(['diff', snap, snap]); // a snapshot with itself: nothing changed
  assert.match(same0.stdout, /0 of 0 classes changed/);
  assertOneLineError(await cli(['diff', info.path, info.path, '-o', noDir]), 1, /cannot create/, 'diff: no dir');
  // the same profile twice: nothing changed, everything within noise
  const same = JSON.parse((await ok(['diff', '--json', info.path, info.path])).stdout);
  assert.ok(same.functions.every((f) => f.d_self_pct === 0 && f.self_within_noise && f.self_change === 'unchanged'));
});
