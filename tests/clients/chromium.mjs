// Headless Chromium (Debian's /usr/bin/chromium, never a downloaded browser)
// driven over the DevTools protocol with chrome-remote-interface, plus a
// loopback static server for speedscope's browser bundle.
//
// chrome-remote-interface attaches only to the targets it is asked to, and
// injects nothing into them: the page that DevTools' frontend inspects stays
// a bare about:blank without scripts, so the frontend cannot confuse the
// profile's scriptIds with scripts of the inspected page.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import CDP from 'chrome-remote-interface';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const require = createRequire(import.meta.url);
/** speedscope's browser bundle (npm package speedscope, dist/release). */
export const SPEEDSCOPE_DIR = path.join(path.dirname(require.resolve('speedscope/package.json')), 'dist', 'release');
export const SPEEDSCOPE_VERSION = JSON.parse(fs.readFileSync(path.join(SPEEDSCOPE_DIR, '..', '..', 'package.json'), 'utf8')).version;

const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-extensions', '--mute-audio', '--no-default-browser-check',
  // speedscope draws with WebGL: SwiftShader (software) stands in for the GPU
  '--enable-unsafe-swiftshader',
  '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0',
];

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

/**
 * Start headless Chromium with a fresh profile directory.
 * Returns {port, version, close()}.
 */
export async function launchChromium({ timeoutMs = 30000 } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-chromium-'));
  // its own process group, so close() ends the browser and its helpers (and only them)
  const proc = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${userDataDir}`, 'about:blank'], {
    stdio: ['ignore', 'ignore', 'pipe'], detached: true,
  });
  live.add(proc);
  let err = '';
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => { live.delete(proc); resolve({ code, signal }); }));
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`Chromium did not open its DevTools port within ${timeoutMs} ms\n${err}`)), timeoutMs);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      err += d;
      const m = /DevTools listening on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(err);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    proc.on('error', (e) => { clearTimeout(t); reject(e); });
    exited.then(({ code, signal }) => { clearTimeout(t); reject(new Error(`Chromium exited (${code ?? signal}) before listening\n${err}`)); });
  });
  const version = await CDP.Version({ host: '127.0.0.1', port });
  return {
    port,
    version,
    get stderr() { return err; },
    async close() {
      try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ }
      const timer = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
      await exited;
      clearTimeout(timer);
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Open a new tab at url and attach to it. Records exceptions, console
 * messages and dialogs (dialogs are dismissed).
 * Returns {client, target, exceptions, console, dialogs, evaluate(expr), waitFor(expr, ms), close()}.
 */
export async function openTab(port, url = 'about:blank') {
  const target = await CDP.New({ host: '127.0.0.1', port, url: 'about:blank' });
  const client = await CDP({ host: '127.0.0.1', port, target });
  const exceptions = [];
  const consoleMsgs = [];
  const dialogs = [];
  client.Runtime.exceptionThrown(({ exceptionDetails: d }) => {
    exceptions.push(d.exception?.description || d.text);
  });
  client.Runtime.consoleAPICalled(({ type, args }) => {
    consoleMsgs.push({ type, text: args.map((a) => (a.value !== undefined ? String(a.value) : a.description || a.type)).join(' ') });
  });
  client.Page.javascriptDialogOpening(({ message, type }) => {
    dialogs.push({ type, message });
    client.Page.handleJavaScriptDialog({ accept: false }).catch(() => {});
  });
  await client.Runtime.enable();
  await client.Page.enable();

  async function evaluate(expression) {
    const r = await client.Runtime.evaluate({ expression, awaitPromise: true, returnByValue: true, userGesture: true });
    if (r.exceptionDetails) {
      const d = r.exceptionDetails;
      throw new Error(`in the page: ${d.exception?.description || d.text}\nexpression: ${expression.slice(0, 500)}`);
    }
    return r.result.value;
  }

  /** Poll a page expression until it is truthy; returns its value. */
  async function waitFor(expression, ms = 20000, what = expression) {
    const deadline = Date.now() + ms;
    let last;
    for (;;) {
      try {
        last = await evaluate(expression);
        if (last) return last;
      } catch (e) {
        last = e.message;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${JSON.stringify(last)?.slice(0, 500)})\n` +
          `exceptions: ${JSON.stringify(exceptions).slice(0, 2000)}\ndialogs: ${JSON.stringify(dialogs)}\n` +
          `console: ${JSON.stringify(consoleMsgs.slice(-20)).slice(0, 3000)}`);
      }
      await sleep(100);
    }
  }

  async function navigate(u) {
    const loaded = client.Page.loadEventFired();
    await client.Page.navigate({ url: u });
    await loaded;
  }

  if (url !== 'about:blank') await navigate(url);

  return {
    client,
    target,
    exceptions,
    console: consoleMsgs,
    dialogs,
    evaluate,
    waitFor,
    navigate,
    async close() {
      try { await client.close(); } catch { /* gone */ }
      try { await CDP.Close({ host: '127.0.0.1', port, id: target.id }); } catch { /* gone */ }
    },
  };
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain',
};

/**
 * Serve speedscope's bundle at / and the given files at /files/<name>
 * on 127.0.0.1 (same origin, so speedscope's #profileURL= fetch needs no CORS).
 * Returns {base, close()}.
 */
export async function serveSpeedscope(files) {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    let file;
    if (u.pathname.startsWith('/files/')) {
      file = files[decodeURIComponent(u.pathname.slice('/files/'.length))];
    } else {
      const rel = path.normalize(decodeURIComponent(u.pathname)).replace(/^(\.\.[/\\])+/, '').replace(/^\/+/, '') || 'index.html';
      file = path.join(SPEEDSCOPE_DIR, rel);
      if (!file.startsWith(SPEEDSCOPE_DIR + path.sep)) file = undefined;
    }
    if (!file) { res.writeHead(404); res.end(); return; }
    fs.readFile(file, (e, d) => {
      if (e) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'content-length': d.length });
      res.end(d);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}

/**
 * Load a profile into speedscope through its documented #profileURL= import
 * and return what it shows:
 * - importer: the format speedscope recognized (its console line "Importing as ..."),
 * - sandwich: the Sandwich view's table rows [{total, self, name}] as rendered text,
 * - exported: speedscope's own export of the imported profile (its file
 *   format, https://www.speedscope.app/file-format-schema.json), captured
 *   from the Export button's download.
 */
export async function speedscopeLoad(port, ss, name) {
  const url = `${ss.base}/index.html#profileURL=${encodeURIComponent(`${ss.base}/files/${name}`)}&title=${encodeURIComponent(name)}&view=sandwich`;
  const tab = await openTab(port, url);
  try {
    await tab.waitFor(`(() => {
      const rows = document.querySelectorAll('table tr');
      return rows.length > 1 || /Something went wrong|failed|error/i.test(document.body.innerText);
    })()`, 20000, `speedscope's sandwich table for ${name}`);
    const importer = tab.console.map((m) => /^Importing as (.*)$/.exec(m.text)?.[1]).find(Boolean) || null;
    const sandwich = await tab.evaluate(`[...document.querySelectorAll('table tr')].map((tr) => [...tr.children].map((td) => td.textContent.trim())).filter((c) => c.length >= 3)`);
    const bodyText = await tab.evaluate('document.body.innerText');
    // capture the Export download (speedscope builds a Blob and clicks an <a download>)
    await tab.evaluate(`(() => {
      window.__ssBlobs = [];
      const orig = URL.createObjectURL.bind(URL);
      URL.createObjectURL = (b) => { window.__ssBlobs.push(b); return orig(b); };
      HTMLAnchorElement.prototype.click = function () { window.__ssDownload = this.download; };
      const btn = [...document.querySelectorAll('div,span,button')].find((e) => e.children.length <= 1 && /Export$/.test(e.textContent.trim()) && e.textContent.trim().length < 12);
      if (!btn) throw new Error('no Export button in ' + document.body.innerText.slice(0, 300));
      btn.click();
    })()`);
    await tab.waitFor('window.__ssBlobs.length > 0', 10000, "speedscope's export");
    const exportedText = await tab.evaluate('window.__ssBlobs[0].text()');
    return {
      importer,
      sandwich: sandwich.map(([total, self, name]) => ({ total, self, name })),
      bodyText,
      exported: JSON.parse(exportedText),
      exportName: await tab.evaluate('window.__ssDownload'),
      exceptions: [...tab.exceptions],
      dialogs: [...tab.dialogs],
      console: [...tab.console],
    };
  } finally {
    await tab.close();
  }
}

/**
 * Self and total time per frame name of one profile of a speedscope export
 * ("evented" profiles: open/close events; "sampled": samples and weights).
 * Returns {unit, start, end, frames: Map name -> {self, total, frame, spans: [[open, close]]}}.
 */
export function speedscopeWeights(exp, index = exp.activeProfileIndex ?? 0) {
  const prof = exp.profiles[index];
  const frames = exp.shared.frames;
  const per = new Map();
  const get = (i) => {
    const f = frames[i];
    let e = per.get(f.name);
    if (!e) { e = { self: 0, total: 0, frame: f, spans: [] }; per.set(f.name, e); }
    return e;
  };
  if (prof.type === 'evented') {
    const stack = [];
    let last = prof.startValue;
    const openAt = new Map();
    for (const ev of prof.events) {
      const dt = ev.at - last;
      if (stack.length) {
        get(stack[stack.length - 1]).self += dt;
        for (const i of new Set(stack)) get(i).total += dt;
      }
      last = ev.at;
      if (ev.type === 'O') {
        stack.push(ev.frame);
        if (!openAt.has(ev.frame)) openAt.set(ev.frame, ev.at);
      } else {
        const top = stack.pop();
        if (top !== ev.frame) throw new Error(`speedscope export: close of frame ${ev.frame} while ${top} is open`);
        if (!stack.includes(ev.frame)) { get(ev.frame).spans.push([openAt.get(ev.frame), ev.at]); openAt.delete(ev.frame); }
      }
    }
  } else if (prof.type === 'sampled') {
    let at = prof.startValue;
    prof.samples.forEach((s, k) => {
      const w = prof.weights[k];
      if (s.length) get(s[s.length - 1]).self += w;
      for (const i of new Set(s)) get(i).total += w;
      at += w;
    });
  } else {
    throw new Error(`unknown speedscope profile type ${prof.type}`);
  }
  return { unit: prof.unit, start: prof.startValue, end: prof.endValue, name: prof.name, type: prof.type, frames: per };
}

// ---- Chrome DevTools' own frontend ------------------------------------------

/**
 * Open the DevTools frontend that Chromium serves at
 * http://127.0.0.1:<port>/devtools/devtools_app.html, attached to a fresh,
 * script-less about:blank page, with the Performance panel shown; load the
 * .cpuprofile file through the panel's own file input (what "Load profile…"
 * uses); wait until the panel has parsed it, and return what the frontend
 * built from it:
 * - panel: {traceBounds (µs), dataOrigin}
 * - model: the Performance panel's CPUProfileDataModel of the profile
 *   {startMs, endMs, totalMs, maxDepth, idleSelfMs, programSelfMs, samples,
 *    byName: {name: {selfMs, totalMs, url, lineNumber, scriptId}}}
 * - calls: the flame chart's ProfileCall entries per function name
 *   {name: {count, durUs, firstTs, lastEnd, url, lineNumber, ignoreListed, title}}
 * - direct: the same numbers from a CPUProfileDataModel constructed directly
 *   from the JSON (what the JavaScript Profiler panel does)
 */
export async function devtoolsLoadCpuProfile(port, file) {
  const inspected = await CDP.New({ host: '127.0.0.1', port, url: 'about:blank' });
  const ws = `127.0.0.1:${port}/devtools/page/${inspected.id}`;
  const tab = await openTab(port, `http://127.0.0.1:${port}/devtools/devtools_app.html?ws=${ws}&panel=timeline`);
  try {
    await tab.waitFor(`(async () => {
      const T = await import('/devtools/panels/timeline/timeline.js');
      try { return T.TimelinePanel.TimelinePanel.instance().state === 'Idle'; } catch { return false; }
    })()`, 30000, "DevTools' Performance panel");
    // the panel's <input type=file> (inside shadow roots)
    const { result, exceptionDetails } = await tab.client.Runtime.evaluate({
      expression: `(() => {
        const walk = (root) => {
          for (const el of root.querySelectorAll('*')) {
            if (el.tagName === 'INPUT' && el.type === 'file' && /cpuprofile/.test(el.accept)) return el;
            if (el.shadowRoot) { const f = walk(el.shadowRoot); if (f) return f; }
          }
          return null;
        };
        return walk(document);
      })()`,
    });
    if (exceptionDetails || result.subtype === 'null' || !result.objectId) {
      throw new Error(`no .cpuprofile file input in the Performance panel: ${JSON.stringify(exceptionDetails || result)}`);
    }
    await tab.client.DOM.enable();
    await tab.client.DOM.setFileInputFiles({ files: [file], objectId: result.objectId });
    await tab.waitFor(`(async () => {
      const T = await import('/devtools/panels/timeline/timeline.js');
      const p = T.TimelinePanel.TimelinePanel.instance();
      try { p.getParsedTraceForLayoutTests(); return true; } catch { return false; }
    })()`, 30000, 'the Performance panel to parse the profile');
    const json = fs.readFileSync(file, 'utf8');
    const out = await tab.evaluate(`(async () => {
      const T = await import('/devtools/panels/timeline/timeline.js');
      const U = await import('/devtools/panels/timeline/utils/utils.js');
      const Trace = await import('/devtools/models/trace/trace.js');
      const CPU = await import('/devtools/models/cpu_profile/cpu_profile.js');
      const panel = T.TimelinePanel.TimelinePanel.instance();
      const data = panel.getParsedTraceForLayoutTests();
      const summarize = (m) => {
        const byName = {};
        const stack = [m.root];
        while (stack.length) {
          const n = stack.pop();
          stack.push(...n.children);
          if (n === m.root) continue;
          const e = byName[n.functionName] ??= { selfMs: 0, totalMs: 0, url: n.url, lineNumber: n.lineNumber, scriptId: n.scriptId, nodes: 0 };
          e.selfMs += n.self;
          e.nodes++;
          let anc = n.parent, nested = false;
          while (anc) { if (anc.functionName === n.functionName) nested = true; anc = anc.parent; }
          if (!nested) e.totalMs += n.total;
        }
        // the timeline walk DevTools' CPU flame charts use
        const spans = {};
        m.forEachFrame(() => {}, (depth, node, sample, start, dur) => {
          const s = spans[node.functionName] ??= { count: 0, durMs: 0, first: Infinity, lastEnd: -Infinity };
          s.count++; s.durMs += dur; s.first = Math.min(s.first, start); s.lastEnd = Math.max(s.lastEnd, start + dur);
        });
        return {
          startMs: m.profileStartTime, endMs: m.profileEndTime, totalMs: m.total, maxDepth: m.maxDepth,
          samples: m.samples?.length ?? 0, rootName: m.root?.functionName,
          idleSelfMs: m.idleNode ? m.idleNode.self : null, programSelfMs: m.programNode ? m.programNode.self : null,
          byName, spans,
        };
      };
      const procs = [...data.Samples.profilesInProcess.values()];
      const threads = procs.flatMap((m) => [...m.values()]);
      const calls = {};
      for (const th of threads) for (const c of th.profileCalls) {
        const name = c.callFrame.functionName;
        const e = calls[name] ??= { count: 0, durUs: 0, firstTs: Infinity, lastEnd: -Infinity, url: c.callFrame.url, lineNumber: c.callFrame.lineNumber, scriptId: c.callFrame.scriptId, ignoreListed: false, title: null };
        e.count++; e.durUs += c.dur; e.firstTs = Math.min(e.firstTs, c.ts); e.lastEnd = Math.max(e.lastEnd, c.ts + c.dur);
        if (U.IgnoreList.isIgnoreListedEntry(c)) { e.ignoreListed = true; e.ignoreReason = U.IgnoreList.getIgnoredReasonString(c); }
        e.title ??= Trace.Name.forEntry(c);
      }
      let direct = null, directError = null;
      try { direct = summarize(new CPU.CPUProfileDataModel.CPUProfileDataModel(JSON.parse(${JSON.stringify(json)}))); }
      catch (e) { directError = String(e && e.stack || e); }
      return {
        panel: { traceBounds: data.Meta.traceBounds, threads: threads.length },
        model: threads.length ? summarize(threads[0].parsedProfile) : null,
        calls, direct, directError,
      };
    })()`);
    out.exceptions = [...tab.exceptions];
    out.dialogs = [...tab.dialogs];
    out.consoleErrors = tab.console.filter((m) => m.type === 'error').map((m) => m.text);
    return out;
  } finally {
    await tab.close();
    try { await CDP.Close({ host: '127.0.0.1', port, id: inspected.id }); } catch { /* gone */ }
  }
}
