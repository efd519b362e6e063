// `proflab flame`'s SVG in a real browser (Debian's headless Chromium,
// driven over the DevTools protocol): a flame graph of a .cpuprofile that a
// proflabd took during an event-loop jam is parsed by Chromium's XML parser
// (the file itself and DOMParser) without an error, its script runs without
// an exception, hovering the jam function's frame shows its details, a real
// mouse click on it zooms (its width becomes the full width, its callers
// stay, the rest is hidden), Ctrl-F and typed keys search and highlight it
// with the matched share, "Reset zoom" and the Search box work by mouse;
// a differential graph (the same proflabd quiet, then jammed) colors the
// jam red. Screenshots before and after are kept for the docs in
// $PROFLAB_ARTIFACTS_DIR (default build/test-artifacts/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { diag, startLab, profileDuringJam, loud, JAM_FN, JAM_FILE, jamSource, REPO_ROOT, request, GOOD_TOKEN, slow } from './lib.mjs';
import { CHROMIUM, launchChromium, openTab } from './chromium.mjs';

const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
const ARTIFACTS = path.resolve(REPO_ROOT, process.env.PROFLAB_ARTIFACTS_DIR || 'build/test-artifacts');
const FULL = 1180; // the default width minus the margins

let HAVE_CHROMIUM = true;
try { fs.accessSync(CHROMIUM, fs.constants.X_OK); } catch { HAVE_CHROMIUM = false; }
if (!HAVE_CHROMIUM) loud(`${CHROMIUM} is not installed: the flame graph browser test is SKIPPED (scripts/deps.sh test installs chromium; CI must have it)`);

let lab;
let browser;
let work;
let prof; // {info, jam, data}
let quiet; // path of a 1 s profile of the same proflabd doing nothing

function proflab(args) {
  const r = spawnSync(CLI, args, { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `proflab ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return r;
}

before(async () => {
  if (!HAVE_CHROMIUM) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-flame-svg-'));
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launchChromium();
  lab = await startLab();
  const q = await request(lab.srv.base, '/api/lab/cpu-profile?seconds=1&format=cpuprofile', {
    method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(20000),
  });
  assert.equal(q.status, 200, q.text);
  quiet = q.body.path;
  prof = await profileDuringJam(lab.srv, { format: 'cpuprofile', seconds: 3, jamMs: 1500, delayMs: 200 });
});

after(async () => {
  await browser?.close();
  await lab?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Open an SVG file in a tab the size of the graph. */
async function openSvg(file) {
  const tab = await openTab(browser.port, 'about:blank');
  const size = /<svg [^>]*width="(\d+)" height="(\d+)"/.exec(fs.readFileSync(file, 'utf8'));
  await tab.client.Emulation.setDeviceMetricsOverride({ width: Number(size[1]), height: Number(size[2]), deviceScaleFactor: 1, mobile: false });
  await tab.client.Emulation.setFocusEmulationEnabled({ enabled: true });
  await tab.navigate(`file://${file}`);
  return tab;
}

async function screenshot(tab, name) {
  const { data } = await tab.client.Page.captureScreenshot({ format: 'png' });
  const file = path.join(ARTIFACTS, name);
  fs.writeFileSync(file, Buffer.from(data, 'base64'));
  return file;
}

async function click(tab, x, y) {
  for (const type of ['mouseMoved', 'mousePressed', 'mouseReleased']) {
    await tab.client.Input.dispatchMouseEvent({ type, x, y, button: type === 'mouseMoved' ? 'none' : 'left', buttons: type === 'mousePressed' ? 1 : 0, clickCount: type === 'mouseMoved' ? 0 : 1 });
  }
}

async function key(tab, k, { ctrl = false } = {}) {
  const named = { Enter: 13, Escape: 27, Backspace: 8 };
  const code = named[k] || k.toUpperCase().charCodeAt(0);
  const base = { key: k, windowsVirtualKeyCode: code, nativeVirtualKeyCode: code, modifiers: ctrl ? 2 : 0 };
  const text = !ctrl && !named[k] ? k : undefined;
  await tab.client.Input.dispatchKeyEvent({ type: text ? 'keyDown' : 'rawKeyDown', ...base, text });
  await tab.client.Input.dispatchKeyEvent({ type: 'keyUp', ...base });
}

/** What the page shows of the frame whose function is `name` (its first one). */
const FRAME = (name) => `(() => {
  const g = [...document.querySelectorAll('#pl-frames > g')].find((e) => e.querySelector('title').textContent.split('\\n')[0].startsWith(${JSON.stringify(`${name} (`)}) || e.querySelector('title').textContent.split('\\n')[0] === ${JSON.stringify(name)});
  if (!g) return null;
  const r = g.querySelector('rect').getBoundingClientRect();
  return { x: r.x, y: r.y, w: r.width, h: r.height, shown: g.getAttribute('display') !== 'none',
    parent: g.classList.contains('pl-parent'), fill: g.querySelector('rect').getAttribute('fill'),
    label: g.querySelector('text').textContent, title: g.querySelector('title').textContent,
    depth: Number(g.dataset.d) };
})()`;

test('the flame graph of a jam parses in Chromium, and hover, click-to-zoom, search and reset work with the mouse and keyboard', async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  const svgFile = path.join(ARTIFACTS, 'flame-jam.svg');
  // --idle: the jam is then about half of the graph, so the zoom is plain to see
  proflab(['flame', prof.info.path, '--idle', '-o', svgFile, '--title', 'proflabd during a 1.5 s event-loop jam']);
  const text = fs.readFileSync(svgFile, 'utf8');
  const tab = await openSvg(svgFile);
  try {
    // Chromium's XML parser: the file as a document, and DOMParser on its text
    const doc = await tab.evaluate(`({ root: document.documentElement.localName, ns: document.documentElement.namespaceURI,
      errors: document.getElementsByTagName('parsererror').length, frames: document.querySelectorAll('#pl-frames > g').length,
      script: typeof window.plFlame })`);
    assert.deepEqual(doc, { root: 'svg', ns: 'http://www.w3.org/2000/svg', errors: 0, frames: (text.match(/<g data-f=/g) || []).length, script: 'object' });
    const parsed = await tab.evaluate(`(() => {
      const d = new DOMParser().parseFromString(${JSON.stringify(text)}, 'image/svg+xml');
      const e = d.getElementsByTagName('parsererror')[0];
      return { root: d.documentElement.localName, error: e ? e.textContent : null };
    })()`);
    assert.deepEqual(parsed, { root: 'svg', error: null }, 'DOMParser');
    assert.deepEqual(tab.exceptions, [], 'exceptions in the graph\'s script');
    const before = await screenshot(tab, 'flame-before.png');

    const jam0 = await tab.evaluate(FRAME(JAM_FN));
    const idle0 = await tab.evaluate(FRAME('(idle)'));
    assert.ok(jam0 && idle0, 'the jam and (idle) frames');
    const share = Number(/, ([\d.]+)%/.exec(jam0.title.split('\n')[1])[1]);
    diag(t, `Chromium ${browser.version.Browser}; ${doc.frames} frames; ${JAM_FN}: ${jam0.w.toFixed(1)} px wide = ${share}% at depth ${jam0.depth}; screenshot ${before}`);
    assert.ok(Math.abs(jam0.w - (FULL * share) / 100) < 1, `width ${jam0.w} for ${share}%`);
    assert.ok(jam0.w < 0.9 * FULL, 'the jam is not the whole graph with --idle');

    // hover: the details line
    await tab.client.Input.dispatchMouseEvent({ type: 'mouseMoved', x: jam0.x + jam0.w / 2, y: jam0.y + jam0.h / 2 });
    const details = await tab.waitFor(`document.getElementById('pl-details').textContent.includes(${JSON.stringify(JAM_FN)}) && document.getElementById('pl-details').textContent`, 5000, 'the hover details');
    const src = jamSource();
    assert.ok(details.includes(`${JAM_FILE}:${src.line})`), `details: ${details}`);
    assert.match(details, new RegExp(`[\\d.]+ s \\(\\d+ samples\\), ${share.toFixed(2).replace('.', '\\.')}%`));
    diag(t, `hover: ${details}`);

    // click: zoom to the jam frame
    await click(tab, jam0.x + jam0.w / 2, jam0.y + jam0.h / 2);
    const jam1 = await tab.waitFor(`(() => { const f = ${FRAME(JAM_FN)}; return f && f.w > ${FULL - 1} && f; })()`, 5000, 'the zoom');
    assert.ok(Math.abs(jam1.x - 10) < 0.5 && Math.abs(jam1.w - FULL) < 0.5, `zoomed frame at ${jam1.x} wide ${jam1.w}`);
    assert.equal(jam1.y, jam0.y, 'a frame keeps its row');
    assert.equal(jam1.label, JAM_FN);
    const main1 = await tab.evaluate(FRAME('main'));
    assert.ok(main1.shown && main1.parent && Math.abs(main1.w - FULL) < 0.5, `a caller spans the width, dimmed: ${JSON.stringify(main1)}`);
    assert.equal((await tab.evaluate(FRAME('(idle)'))).shown, false, 'what is not on the path is hidden');
    const state = await tab.evaluate('window.plFlame.state()');
    assert.ok(state.zoomed > 0);
    assert.equal(await tab.evaluate(`document.getElementById('pl-reset').getAttribute('display')`), 'inline');
    const zoomed = await screenshot(tab, 'flame-zoomed.png');

    // Ctrl-F and typing: the jam highlighted, its share matched
    await key(tab, 'f', { ctrl: true });
    await tab.waitFor('window.plFlame.state().typing', 5000, 'Ctrl-F opens the search');
    for (const ch of 'jam_spin') await key(tab, ch);
    await key(tab, 'Enter');
    const found = await tab.waitFor(`(() => { const s = window.plFlame.state(); const m = document.getElementById('pl-matched').textContent; return !s.typing && s.term === 'jam_spin' && m && { m, box: document.getElementById('pl-search-text').textContent }; })()`, 5000, 'the search');
    const jam2 = await tab.evaluate(FRAME(JAM_FN));
    assert.equal(jam2.fill, 'rgb(230,0,230)', 'the match is highlighted');
    assert.notEqual((await tab.evaluate(FRAME('main'))).fill, 'rgb(230,0,230)', 'main does not match');
    const matched = Number(/^Matched: ([\d.]+)% \((\d+) frames?\)$/.exec(found.m)?.[1]);
    assert.ok(Math.abs(matched - share) < 0.1, `matched ${found.m}, the jam is ${share}%`);
    assert.match(found.box, /^Search: jam_spin/);
    const searched = await screenshot(tab, 'flame-search.png');
    diag(t, `zoomed: ${zoomed}; search: ${found.m}; ${searched}`);

    // Reset zoom by mouse: back to the first layout, the highlight stays
    const reset = await tab.evaluate(`(() => { const r = document.querySelector('#pl-reset rect').getBoundingClientRect(); return { x: r.x + r.width / 2, y: r.y + r.height / 2 }; })()`);
    await click(tab, reset.x, reset.y);
    const jam3 = await tab.waitFor(`(() => { const f = ${FRAME(JAM_FN)}; return f && f.w < ${FULL - 1} && f; })()`, 5000, 'the reset');
    assert.ok(Math.abs(jam3.w - jam0.w) < 0.05 && Math.abs(jam3.x - jam0.x) < 0.05, 'the original place');
    assert.equal((await tab.evaluate(FRAME('(idle)'))).shown, true);
    assert.equal(await tab.evaluate(`document.getElementById('pl-reset').getAttribute('display')`), 'none');

    // the Search box by mouse; Escape clears
    await key(tab, 'Escape');
    await tab.waitFor(`document.getElementById('pl-matched').textContent === ''`, 5000, 'Escape clears the search');
    assert.equal((await tab.evaluate(FRAME(JAM_FN))).fill, jam0.fill, 'the color comes back');
    const box = await tab.evaluate(`(() => { const r = document.querySelector('#pl-search rect').getBoundingClientRect(); return { x: r.x + r.width / 2, y: r.y + r.height / 2 }; })()`);
    await click(tab, box.x, box.y);
    await tab.waitFor('window.plFlame.state().typing', 5000, 'a click on the Search box');
    for (const ch of '^main$') await key(tab, ch);
    const m = await tab.waitFor(`/^Matched: 100\\.0% / .test(document.getElementById('pl-matched').textContent) || document.getElementById('pl-matched').textContent`, 5000, 'a regular expression search');
    assert.ok(m === true || /^Matched: /.test(m), `main is under everything but (idle): ${m}`);
    assert.deepEqual(tab.exceptions, [], 'exceptions in the graph\'s script');
  } finally {
    await tab.close();
  }
});

test('the differential flame graph of proflabd quiet vs jammed renders, with the jam in red', async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  const svgFile = path.join(ARTIFACTS, 'flame-diff.svg');
  const r = proflab(['diff', quiet, prof.info.path, '-o', svgFile, '--limit', '3']);
  diag(t, r.stdout);
  const tab = await openSvg(svgFile);
  try {
    assert.equal(await tab.evaluate(`document.getElementsByTagName('parsererror').length`), 0);
    assert.deepEqual(tab.exceptions, []);
    const jam = await tab.evaluate(FRAME(JAM_FN));
    assert.match(jam.fill, /^rgb\(255,(\d+),\1\)$/, `the jam grew: red, not ${jam.fill}`);
    assert.match(jam.title, /\nA: 0\.00% \(self 0\.00%\)\nself share \+[\d.]+ points: grew/);
    const shot = await screenshot(tab, 'flame-diff.png');
    diag(t, `diff graph: ${shot}`);
  } finally {
    await tab.close();
  }
});
