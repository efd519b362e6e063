#!/usr/bin/env node
// The pictures of docs/flamegraphs.md, made again from a real proflabd:
//
//   node scripts/docs-pictures.mjs [--only cli|devtools] [--out DIR]
//
// 1. `proflab flame` and `proflab diff` (cli): a proflabd under load (wrk, or
//    a node loop without it, on GET /api/work), two 3 s profiles taken with
//    `proflab profile`: one of the load alone, one with `proflab jam --ms
//    1200` in the middle; then `proflab top`, `proflab flame` of each and
//    `proflab diff load jam -o`. Writes docs/images/flame-load.svg,
//    flame-jam.svg, flame-diff.svg and prints every command with its output
//    (what the guide quotes).
// 2. DevTools' flame chart (devtools): headless Chromium's own DevTools
//    frontend attached to `proflabd --inspect` records in the Performance
//    panel while wrk loads the service and the lab jams the loop, as
//    tests/clients/devtools-inspector.test.mjs does (its browser and
//    inspector machinery is imported from tests/); the jam's entry is
//    selected, boxes and labels are drawn over the page (absolutely placed
//    elements, from the flame chart's own entry coordinates), and the
//    screenshot, cropped, is docs/images/devtools-flame-chart.png.
//
// Binaries: $PROFLABD (default build/proflabd) and $PROFLAB_CLI (default
// build/proflab), relative to the repository root. Needs chromium (2) and,
// for the load, wrk (else a node loop). The profiles are real, so every
// run draws slightly different pictures; the text of docs/flamegraphs.md
// quotes the run that made the committed ones.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.env.PROFLABD ??= 'build/proflabd';
const CLI = path.resolve(REPO, process.env.PROFLAB_CLI || 'build/proflab');

// the tests' machinery: proflabd under test, headless Chromium over CDP
const { startProflabd, stopChecked, labEnv, request, GOOD_TOKEN, sleep } = await import('../tests/integration/helpers.mjs');
const { startInspected, labPost, JAM_FN } = await import('../tests/integration/inspector-lib.mjs');

const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;
const IMAGES = path.resolve(args.includes('--out') ? args[args.indexOf('--out') + 1] : path.join(REPO, 'docs', 'images'));
fs.mkdirSync(IMAGES, { recursive: true });
const WORK_N = 2000;

function haveWrk() {
  return spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' }).status === 0;
}

/** Load GET /api/work on base until stop() (wrk -t1 -c2, or two node loops). */
function startLoad(base) {
  if (haveWrk()) {
    const p = spawn('wrk', ['-t1', '-c2', '-d600s', `${base}/api/work?n=${WORK_N}`], { stdio: 'ignore' });
    return async () => { p.kill('SIGINT'); await new Promise((r) => p.once('exit', r)); };
  }
  let done = false;
  const loops = [0, 1].map(async () => {
    while (!done) await request(base, `/api/work?n=${WORK_N}`, { timeoutMs: 20000 });
  });
  return async () => { done = true; await Promise.all(loops); };
}

/** Run the CLI as the guide shows it (`proflab ...`), in dir; print the command and its output. */
function proflab(dir, argv, env) {
  const r = spawnSync(CLI, argv, {
    cwd: dir, encoding: 'utf8', timeout: 120000,
    env: { PATH: process.env.PATH, LAB_URL: env.url, LAB_TOKEN: GOOD_TOKEN, PROFLAB_PROGRESS: '0' },
  });
  const text = `$ proflab ${argv.join(' ')}\n${r.stdout}${r.stderr}`;
  process.stdout.write(text);
  if (r.status !== 0) throw new Error(`proflab ${argv.join(' ')}: exit ${r.status}`);
  return r;
}

function proflabAsync(dir, argv, env) {
  return new Promise((resolve, reject) => {
    const p = spawn(CLI, argv, {
      cwd: dir,
      env: { PATH: process.env.PATH, LAB_URL: env.url, LAB_TOKEN: GOOD_TOKEN, PROFLAB_PROGRESS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`proflab ${argv.join(' ')}: exit ${code}\n${out}`))));
  });
}

async function cliPictures() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-docs-pictures-'));
  const art = path.join(dir, 'artifacts');
  const srv = await startProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: art, PROFLAB_REQUEST_LOG: 'false', LAB_TASK_ID: 'task-a' }) });
  const env = { url: srv.base };
  let stopLoad = null;
  try {
    console.log(`# proflabd ${srv.base}, artifacts in ${art}; load: ${haveWrk() ? `wrk -t1 -c2 ${srv.base}/api/work?n=${WORK_N}` : 'two node loops'}`);
    stopLoad = startLoad(srv.base);
    await sleep(500);
    proflab(dir, ['profile', '--seconds', '3', '-o', 'load.cpuprofile'], env);
    // the same load, and a 1.2 s jam in the middle of the recording
    const prof = proflabAsync(dir, ['profile', '--seconds', '3', '-o', 'jam.cpuprofile'], env);
    await sleep(900);
    process.stdout.write(`$ proflab jam --ms 1200\n${await proflabAsync(dir, ['jam', '--ms', '1200'], env)}`);
    process.stdout.write(`$ proflab profile --seconds 3 -o jam.cpuprofile   (started 0.9 s before the jam)\n${await prof}`);
    await stopLoad();
    stopLoad = null;
    proflab(dir, ['top', 'jam.cpuprofile', '--limit', '12'], env);
    proflab(dir, ['top', 'jam.cpuprofile', '--by', 'total', '--limit', '12'], env);
    proflab(dir, ['flame', 'load.cpuprofile', '-o', 'flame-load.svg', '--title', 'proflabd under wrk (GET /api/work)'], env);
    proflab(dir, ['flame', 'jam.cpuprofile', '-o', 'flame-jam.svg', '--title', 'proflabd under wrk, with a 1.2 s jam'], env);
    proflab(dir, ['diff', 'load.cpuprofile', 'jam.cpuprofile', '--limit', '10', '-o', 'flame-diff.svg',
      '--title', 'differential: the jam profile against the load alone'], env);
    for (const f of ['flame-load.svg', 'flame-jam.svg', 'flame-diff.svg']) {
      fs.copyFileSync(path.join(dir, f), path.join(IMAGES, f));
      console.log(`# wrote ${path.relative(REPO, path.join(IMAGES, f))} (${fs.statSync(path.join(IMAGES, f)).size} bytes)`);
    }
  } finally {
    if (stopLoad) await stopLoad();
    await stopChecked(srv);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---- DevTools' flame chart ------------------------------------------------

const TIMELINE = `(await import('/devtools/panels/timeline/timeline.js')).TimelinePanel.TimelinePanel`;

async function devtoolsPicture() {
  const { launchChromium, openTab } = await import('../tests/clients/chromium.mjs');
  const browser = await launchChromium();
  let lab;
  let tab;
  let stopLoad = null;
  try {
    lab = await startInspected({ env: { PROFLAB_REQUEST_LOG: 'false', LAB_TASK_ID: 'task-a' } });
    const { port, id } = lab.inspector;
    tab = await openTab(browser.port, 'about:blank');
    await tab.client.Emulation.setDeviceMetricsOverride({ width: 1500, height: 940, deviceScaleFactor: 1, mobile: false });
    // what chrome://inspect opens for the target (js_app.html: DevTools for Node)
    await tab.navigate(`http://127.0.0.1:${browser.port}/devtools/js_app.html?ws=127.0.0.1:${port}/${id}`);
    await tab.waitFor(`(async () => {
      const SDK = await import('/devtools/core/sdk/sdk.js');
      const t = SDK.TargetManager.TargetManager.instance().primaryPageTarget();
      return !!t && !!t.model(SDK.RuntimeModel.RuntimeModel)?.executionContexts().length;
    })()`, 30000, 'the DevTools frontend to attach to the inspector');
    await tab.evaluate(`(async () => {
      const UI = await import('/devtools/ui/legacy/legacy.js');
      await UI.InspectorView.InspectorView.instance().showPanel('timeline');
      return true;
    })()`);
    await tab.waitFor(`(async () => { try { return ${TIMELINE}.instance().state === 'Idle'; } catch { return false; } })()`, 30000, 'the Performance panel');
    stopLoad = startLoad(lab.base);
    await sleep(300);
    await tab.evaluate(`(async () => { ${TIMELINE}.instance().toggleRecording(); return true; })()`);
    await tab.waitFor(`(async () => ${TIMELINE}.instance().state === 'Recording')()`, 20000, 'the recording to start');
    await sleep(500);
    const jam = await labPost(lab.base, '/api/lab/event-loop-jam?ms=1200');
    if (jam.status !== 200) throw new Error(`jam: ${jam.status} ${jam.text}`);
    await sleep(500);
    await tab.evaluate(`(async () => { ${TIMELINE}.instance().toggleRecording(); return true; })()`);
    await tab.waitFor(`(async () => {
      const p = ${TIMELINE}.instance();
      try { p.getParsedTraceForLayoutTests(); } catch { return false; }
      return p.state === 'Idle';
    })()`, 60000, 'the recording to be parsed');
    await stopLoad();
    stopLoad = null;
    const found = await tab.evaluate(FIND_AND_ANNOTATE(JAM_FN));
    console.log(`# DevTools: ${JSON.stringify(found)}`);
    if (!found.ok) throw new Error(`the flame chart: ${JSON.stringify(found)}`);
    await sleep(400);
    const clip = { x: 0, y: 0, width: found.clip.width, height: found.clip.height, scale: 1 };
    const { data } = await tab.client.Page.captureScreenshot({ format: 'png', clip });
    const file = path.join(IMAGES, 'devtools-flame-chart.png');
    fs.writeFileSync(file, Buffer.from(data, 'base64'));
    console.log(`# wrote ${path.relative(REPO, file)} (${fs.statSync(file).size} bytes)`);
    const bu = await tab.evaluate(BOTTOM_UP(JAM_FN));
    console.log(`# DevTools Bottom-up: ${JSON.stringify(bu)}`);
    if (!bu.ok) throw new Error(`the Bottom-up tab: ${JSON.stringify(bu)}`);
    await sleep(400);
    const shot = await tab.client.Page.captureScreenshot({ format: 'png', clip: { ...bu.clip, scale: 1 } });
    const file2 = path.join(IMAGES, 'devtools-bottom-up.png');
    fs.writeFileSync(file2, Buffer.from(shot.data, 'base64'));
    console.log(`# wrote ${path.relative(REPO, file2)} (${fs.statSync(file2).size} bytes)`);
    // DevTools' AI-assistance code throws "missing insights" on a selection in a
    // trace without insights (a CPU profile has none): not ours, not shown
    if (tab.exceptions.length) console.log(`# exceptions in the frontend: ${JSON.stringify(tab.exceptions)}`);
  } finally {
    if (stopLoad) await stopLoad();
    await tab?.close();
    await browser.close();
    await lab?.close();
  }
}

// In the page: tidy the panel, select the jam's entry in the flame chart,
// zoom so the recording fills it, and draw the annotations.
const FIND_AND_ANNOTATE = (fn) => `(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const all = () => {
    const out = [];
    const walk = (root) => { for (const el of root.querySelectorAll('*')) { out.push(el); if (el.shadowRoot) walk(el.shadowRoot); } };
    walk(document);
    return out;
  };
  const label = (el) => el.getAttribute('aria-label') || el.getAttribute('title') || '';
  // "Hide sidebar", and the first-time "Keyboard shortcuts for flame chart" popover
  const tidy = async () => {
    for (const el of all()) {
      if (el.tagName === 'BUTTON' && label(el) === 'Hide sidebar' && el.offsetParent !== null) el.click();
    }
    for (const el of all()) {
      if (el.tagName !== 'BUTTON' || label(el) !== 'Close' || el.offsetParent === null) continue;
      let n = el;
      for (let i = 0; i < 8 && n; i++) {
        n = n.parentNode instanceof ShadowRoot ? n.parentNode.host : n.parentNode;
        if (n && /Keyboard shortcuts/.test(n.textContent || '')) { el.click(); break; }
      }
    }
    await sleep(800);
  };
  await tidy();
  const panel = ${TIMELINE}.instance();
  const view = panel.flameChart;
  const fc = view.mainFlameChart;
  const dp = view.mainDataProvider;
  const td = fc.timelineData();
  const n = td.entryStartTimes.length;
  let jam = -1;
  const titles = {};
  for (let i = 0; i < n; i++) {
    const t = dp.entryTitle(i);
    titles[t] = (titles[t] || 0) + 1;
    if (t === ${JSON.stringify(fn)} && (jam < 0 || td.entryTotalTimes[i] > td.entryTotalTimes[jam])) jam = i;
  }
  if (jam < 0) return { ok: false, why: 'no jam entry', titles };
  // select it: the details pane's Summary shows its self and total time
  // as a click on it does (ENTRY_INVOKED); the view then selects it
  const PerfUI = await import('/devtools/ui/legacy/components/perf_ui/perf_ui.js');
  fc.dispatchEventToListeners(PerfUI.FlameChart.Events.ENTRY_INVOKED, jam);
  await sleep(1000);
  await tidy();
  await tidy();
  const vp = fc.chartViewport;
  const box = (i) => {
    const c = fc.entryIndexToCoordinates(i);
    const x2 = vp.timeToPosition(td.entryStartTimes[i] + td.entryTotalTimes[i]) + fc.getCanvasOffset().x;
    return { x: c.x, y: c.y, w: x2 - c.x, h: 16 };
  };
  const J = box(jam);
  const jamStart = td.entryStartTimes[jam];
  const jamEnd = jamStart + td.entryTotalTimes[jam];
  const jamLevel = td.entryLevels[jam];
  // the callers: the entries at smaller levels that hold the jam
  const callers = [];
  for (let i = 0; i < n; i++) {
    if (td.entryLevels[i] < jamLevel && td.entryStartTimes[i] <= jamStart && td.entryStartTimes[i] + td.entryTotalTimes[i] >= jamEnd) callers[td.entryLevels[i]] = dp.entryTitle(i);
  }
  const top = box(callers.findIndex((t) => t !== undefined) >= 0 ? (() => { for (let i = 0; i < n; i++) if (td.entryLevels[i] === 0 && td.entryStartTimes[i] <= jamStart && td.entryStartTimes[i] + td.entryTotalTimes[i] >= jamEnd) return i; return jam; })() : jam);
  // towers: the /api/work requests after the jam (on_work and everything it called)
  let tw = null;
  const works = [];
  for (let i = 0; i < n; i++) if (dp.entryTitle(i) === 'on_work' && td.entryStartTimes[i] > jamEnd) works.push(i);
  if (works.length) {
    const t0 = Math.min(...works.map((i) => td.entryStartTimes[i]));
    const t1 = Math.max(...works.map((i) => td.entryStartTimes[i] + td.entryTotalTimes[i]));
    let deepest = 0;
    for (let i = 0; i < n; i++) if (td.entryStartTimes[i] >= t0 && td.entryStartTimes[i] < t1) deepest = Math.max(deepest, td.entryLevels[i]);
    const a = box(works[0]);
    const ox = fc.getCanvasOffset().x;
    const yDeep = a.y + (deepest - td.entryLevels[works[0]] + 1) * 17;
    tw = { x: vp.timeToPosition(t0) + ox, y: a.y, w: vp.timeToPosition(t1) - vp.timeToPosition(t0), h: yDeep - a.y, count: works.length, deepest };
  }
  // the Summary's "Self time" row
  let self = null, total = null;
  for (const el of all()) {
    if (el.children.length || el.offsetParent === null) continue;
    const t = (el.textContent || '').trim();
    if (!self && /^Self time$/i.test(t)) self = el.getBoundingClientRect();
    if (!total && /^(Total time|Duration)$/i.test(t)) total = el.getBoundingClientRect();
  }
  const summaryText = (() => {
    for (const el of all()) if (/Self time/.test(el.innerText || '') && el.getBoundingClientRect().top > innerHeight / 2) return el.innerText.slice(0, 400);
    return null;
  })();

  // the annotations, over the page
  const layer = document.createElement('div');
  layer.id = 'pl-docs-notes';
  layer.style.cssText = 'position:fixed;left:0;top:0;width:100%;height:100%;pointer-events:none;z-index:2147483647;font:600 13px/1.3 system-ui,sans-serif';
  document.body.appendChild(layer);
  const RED = '#d81b60', BLUE = '#1e66d0';
  const rect = (r, color, dashed) => {
    const d = document.createElement('div');
    d.style.cssText = 'position:absolute;box-sizing:border-box;border:3px ' + (dashed ? 'dashed ' : 'solid ') + color + ';border-radius:3px;' +
      'left:' + (r.x - 3) + 'px;top:' + (r.y - 3) + 'px;width:' + (r.w + 6) + 'px;height:' + (r.h + 6) + 'px';
    layer.appendChild(d);
  };
  const note = (x, y, html, color, maxw) => {
    const d = document.createElement('div');
    d.style.cssText = 'position:absolute;left:' + x + 'px;top:' + y + 'px;max-width:' + (maxw || 420) + 'px;background:' + color +
      ';color:#fff;padding:5px 8px;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.35)';
    d.innerHTML = html;
    layer.appendChild(d);
    return d;
  };
  const jamMs = td.entryTotalTimes[jam];
  // its callees: the entries one level down inside it
  let childMs = 0;
  const kids = new Set();
  for (let i = 0; i < n; i++) {
    if (td.entryLevels[i] === jamLevel + 1 && td.entryStartTimes[i] >= jamStart && td.entryStartTimes[i] < jamEnd) {
      childMs += td.entryTotalTimes[i];
      kids.add(dp.entryTitle(i));
    }
  }
  const selfMs = jamMs - childMs;
  rect(J, RED);
  note(J.x + 20, J.y + 30,
    '<code>${fn}</code> (src/lab/harm.c): <u>width</u> = ' + (jamMs / 1000).toFixed(2) + ' s on the loop thread; ' +
    '<u>self time</u> ' + (selfMs / 1000).toFixed(2) + ' s (' + (100 * selfMs / jamMs).toFixed(0) + ' %): below it only slivers of ' +
    ([...kids].map((k) => '<code>' + k + '</code>').join(', ') || 'nothing') + ', the jam reading the clock', RED, 520);
  // the depth: the column of callers over the jam
  const col = { x: J.x - 2, y: top.y, w: 10, h: J.y + J.h - top.y };
  rect({ x: J.x - 16, y: top.y, w: 8, h: J.y + J.h - top.y }, BLUE);
  note(J.x + 250, top.y + 70,
    '<u>depth</u>: the callers, top to bottom — ' + callers.filter(Boolean).length + ' frames: ' +
    callers.filter(Boolean).filter((t) => !/^lib\\w*\\.so|^__libc|^_start/.test(t)).join(' → ') + ' → <code>${fn}</code>', BLUE, 520);
  if (tw) {
    rect(tw, '#2e7d32', true);
    note(Math.max(8, tw.x - 330), tw.y + tw.h + 10,
      '<u>towers</u>: ' + tw.count + ' <code>GET /api/work</code> requests after the jam, each narrow (≈ 2 ms) and deep ' +
      '(<code>on_work</code> → <code>work_serialize</code>, <code>work_hash</code>, <code>qsort_r</code> …)', '#2e7d32', 420);
  }
  if (total) {
    // DevTools' Summary of a selected call: Duration (its total time) and Source
    const r = { x: total.x - 6, y: total.y - 4, w: 330, h: 44 };
    rect(r, RED);
    note(r.x + r.w + 16, r.y, 'the selected entry: its duration (total time) and where it is: harm.c:60, ' +
      'the line <code>${fn}</code> starts at. Self time: the Bottom-up tab', RED, 560);
  }
  await sleep(300);
  return { ok: true, jam, level: jamLevel, jamMs, selfMs, kids: [...kids], n, callers, towers: tw, self: !!self, total: !!total, summaryText,
           clip: { width: innerWidth, height: innerHeight } };
})()`;

// In the page: the details pane's Bottom-up tab, taller, the jam's row
// selected and boxed, its Self time pointed at; returns the crop.
const BOTTOM_UP = (fn) => `(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  document.getElementById('pl-docs-notes')?.remove();
  const p = ${TIMELINE}.instance();
  try { p.flameChart.detailsSplitWidget.setSidebarSize(420); } catch { /* another layout */ }
  // nothing selected: the tab covers the whole recording
  await p.flameChart.setSelectionAndReveal(null);
  await sleep(300);
  const dv = p.flameChart.detailsView;
  dv.tabbedPane.selectTab('bottom-up', true);
  let v;
  for (let i = 0; i < 100; i++) {
    v = dv.tabbedPane.visibleView;
    if (v?.dataGrid?.rootNode().children.length) break;
    await sleep(50);
  }
  const rows = v.dataGrid.rootNode().children;
  const row = rows.find((n) => n.profileNode.event?.callFrame?.functionName === ${JSON.stringify(fn)});
  if (!row) return { ok: false, why: 'no row', rows: rows.map((n) => n.element().innerText) };
  row.select();
  row.reveal();
  await sleep(400);
  const el = row.element();
  const r = el.getBoundingClientRect();
  const cells = [...el.children].map((c) => ({ text: c.innerText.trim(), x: c.getBoundingClientRect().x, w: c.getBoundingClientRect().width }));
  const pane = dv.element.getBoundingClientRect();
  const layer = document.createElement('div');
  layer.id = 'pl-docs-notes';
  layer.style.cssText = 'position:fixed;left:0;top:0;width:100%;height:100%;pointer-events:none;z-index:2147483647;font:600 13px/1.3 system-ui,sans-serif';
  document.body.appendChild(layer);
  const RED = '#d81b60';
  const add = (css, html) => { const d = document.createElement('div'); d.style.cssText = 'position:absolute;' + css; if (html) d.innerHTML = html; layer.appendChild(d); return d; };
  add('box-sizing:border-box;border:3px solid ' + RED + ';border-radius:3px;left:' + (r.x + 1) + 'px;top:' + (r.y - 3) + 'px;width:' + (Math.min(r.width, 980) - 2) + 'px;height:' + (r.height + 6) + 'px');
  const selfCell = cells[0];
  add('left:660px;top:' + (r.bottom + 40) + 'px;max-width:430px;background:' + RED + ';color:#fff;padding:5px 8px;border-radius:4px',
    '<u>Bottom-up</u>: functions by their <u>self time</u> (first column: the time each was the running leaf). ' +
    '<code>${fn}</code> comes first with ' + cells[0].text.replace(/\\s+/g, ' ').replace(/ms(\\d)/, 'ms, $1') +
    ' of the recording; ▶ unfolds its callers');
  return { ok: true, cells, rows: rows.slice(0, 6).map((n) => n.element().innerText.replace(/\\s+/g, ' ').trim()),
           clip: { x: 0, y: Math.max(0, pane.y - 4), width: Math.min(innerWidth, 1100), height: Math.min(innerHeight - pane.y + 4, 330) } };
})()`;

if (!only || only === 'cli') await cliPictures();
if (!only || only === 'devtools') await devtoolsPicture();
