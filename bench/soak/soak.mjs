// The soak (issue 14): wrk on the business endpoints while chaos workers run
// the lab at random — CPU profiles, heap snapshots (every format), leaks,
// clears, jams, artifact listings and downloads (whole, ranged, abandoned
// midway), DevTools sessions on the inspector (Profiler, HeapProfiler
// snapshots, some closed mid-snapshot), clients that vanish mid-profile —
// against one proflabd (the ASan build by default).
//
//   node bench/soak/soak.mjs [SECONDS]        (make soak: SOAK_SECONDS, default 600)
//   PROFLABD=build/proflabd node bench/soak/soak.mjs 60
//
// Prints one JSON line "SOAK_RESULT {...}": requests served (wrk), errors by
// kind (wrk's and the chaos answers by action and status; the expected
// ones are 409 busy, 422 bound, 404 for a download pruned meanwhile, a
// DevTools "busy" error), unexpected answers, crashes, sanitizer reports,
// RSS and open fds at the start and the end (each after a memory-clear;
// from the command line also after SOAK_SETTLE_SECONDS (80) idle, when the
// symbolizer has dropped its cache), proflabd's log file,
// and the exit status after SIGTERM. Exit 0 when nothing unexpected
// happened: no crash, no sanitizer report, only expected answers, no wrk
// error, exit 0, no new fd but the soak's own keep-alive sockets and the
// symbolizer's cached module files, RSS after a clear within 64 MiB of the
// start's. runSoak() is what tests/integration/soak-chaos.test.mjs runs.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');

const SAN_RE = /(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:)/;

function rssKb(pid) { return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]); }
function fds(pid) { return fs.readdirSync(`/proc/${pid}/fd`).length; }
function fdTargets(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).map((f) => {
    try { return fs.readlinkSync(`/proc/${pid}/fd/${f}`); } catch { return '?'; }
  });
}
/** What b has that a has not (multiset difference). */
function added(a, b) {
  const left = [...a];
  return b.filter((x) => { const i = left.indexOf(x); if (i >= 0) { left.splice(i, 1); return false; } return true; });
}
const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];
const rnd = (a, b) => a + Math.floor(Math.random() * (b - a + 1));

export async function runSoak({ seconds = 60, workers = 3, wrkConnections = 8, settleSeconds = 0, log = (s) => process.stderr.write(`${s}\n`) } = {}) {
  const lib = await import(pathToFileURL(path.join(root, 'tests', 'integration', 'inspector-lib.mjs')).href);
  const { startInspected, connectCdp, takeSnapshot, GOOD_TOKEN, sleep, slow } = lib;
  const insp = await startInspected({
    env: { LAB_MAX_LEAK_MB: '128', LAB_MAX_ARTIFACTS: '12', LAB_MAX_PROFILE_SECONDS: '3' },
  });
  const { srv, base } = insp;
  const tally = {}; // "action status" -> count
  const unexpected = [];
  const count = (k) => { tally[k] = (tally[k] || 0) + 1; };
  const EXPECTED = new Set([200, 206, 409, 422]);

  async function lab(action, method, p, { okExtra = [], abortAfterBytes = 0, headers = {} } = {}) {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), slow(30000));
    try {
      const res = await fetch(base + p, { method, headers: { 'x-lab-token': GOOD_TOKEN, ...headers }, signal: ac.signal });
      count(`${action} ${res.status}`);
      if (abortAfterBytes) {
        const reader = res.body.getReader();
        let got = 0;
        while (got < abortAfterBytes) {
          const { value, done } = await reader.read();
          if (done) break;
          got += value.length;
        }
        ac.abort();
        count(`${action} abandoned`);
      } else {
        await res.arrayBuffer();
      }
      if (!EXPECTED.has(res.status) && !okExtra.includes(res.status)) unexpected.push(`${action} ${method} ${p}: ${res.status}`);
      return res.status;
    } catch (e) {
      if (abortAfterBytes && e.name === 'AbortError') return 0;
      count(`${action} error`);
      unexpected.push(`${action} ${method} ${p}: ${e.message}`);
      return 0;
    } finally {
      clearTimeout(t);
    }
  }

  async function artifacts() {
    try {
      const r = await fetch(`${base}/api/lab/artifacts`, { headers: { 'x-lab-token': GOOD_TOKEN } });
      count(`list ${r.status}`);
      const b = await r.json();
      return b.artifacts || [];
    } catch (e) {
      unexpected.push(`list: ${e.message}`);
      return [];
    }
  }

  async function devtools() {
    let client;
    try {
      client = await connectCdp(insp.inspector.port);
      const what = pick(['profile', 'snapshot', 'snapshot-cut', 'usage']);
      if (what === 'profile') {
        await client.send('Profiler.enable');
        try {
          await client.send('Profiler.start');
          await sleep(rnd(100, 600));
          const { profile } = await client.send('Profiler.stop');
          count(`devtools-profile ${profile && profile.nodes ? 'ok' : 'empty'}`);
        } catch (e) {
          count('devtools-profile busy');
          if (!/busy|running|already/i.test(e.message)) unexpected.push(`devtools profile: ${e.message}`);
        }
      } else if (what === 'usage') {
        await client.send('Runtime.getHeapUsage');
        count('devtools-usage ok');
      } else if (what === 'snapshot') {
        const s = await takeSnapshot(client, { reportProgress: false }, { settleMs: 0 });
        if (s.error) { // the answer (result) is then the CDP error object
          count('devtools-snapshot busy');
          const msg = JSON.stringify(s.answer);
          if (!/busy|running|already|in progress/i.test(msg)) unexpected.push(`devtools snapshot: ${msg}`);
        } else {
          JSON.parse(s.text);
          count('devtools-snapshot ok');
        }
      } else { // the client goes away in the middle of a snapshot
        client.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false }).catch(() => {});
        await sleep(rnd(0, 50));
        count('devtools-snapshot cut');
      }
    } catch (e) {
      count('devtools error');
      unexpected.push(`devtools: ${e.message}`);
    } finally {
      try { await client?.close(); } catch { /* gone */ }
    }
  }

  function vanish() {
    return new Promise((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port: srv.port }, () => {
        c.write(`POST /api/lab/${pick(['cpu-profile?seconds=1', 'heap-snapshot'])} HTTP/1.1\r\nHost: x\r\nx-lab-token: ${GOOD_TOKEN}\r\nContent-Length: 0\r\n\r\n`);
        setTimeout(() => c.destroy(), rnd(5, 400));
      });
      c.on('error', () => {});
      c.on('close', () => { count('vanish done'); resolve(); });
    });
  }

  const CPU = ['cpuprofile', 'pprof', 'folded'];
  const HEAP = ['heapsnapshot', 'heapprofile', 'pprof'];
  const actions = [
    () => lab('profile', 'POST', `/api/lab/cpu-profile?seconds=${rnd(1, 2)}&format=${pick(CPU)}&hz=${pick([99, 1000, 4000])}`),
    () => lab('snapshot', 'POST', `/api/lab/heap-snapshot?format=${pick(HEAP)}`),
    () => lab('leak', 'POST', `/api/lab/memory-leak?mb=${rnd(1, 16)}`),
    () => lab('clear', 'POST', '/api/lab/memory-clear'),
    () => lab('jam', 'POST', `/api/lab/event-loop-jam?ms=${rnd(10, 250)}`),
    () => lab('status', 'GET', '/api/lab/status'),
    () => lab('metrics', 'GET', '/metrics'),
    async () => {
      const list = await artifacts();
      if (!list.length) return;
      const a = pick(list);
      const how = pick(['whole', 'range', 'abandon']);
      const opts = { okExtra: [404] }; // pruned since the listing
      if (how === 'range') opts.headers = { Range: `bytes=${rnd(0, Math.max(0, a.bytes - 1))}-` };
      if (how === 'abandon') opts.abortAfterBytes = 1;
      await lab(`download-${how}`, 'GET', `/api/lab/artifacts/${a.name}`, opts);
    },
    devtools,
    vanish,
  ];

  // warm up: one of each action and every format (the symbolizer loads the
  // modules and line tables it keeps as a cache: part of the start, not a
  // growth), then measure from a cleared lab
  for (const a of actions) await a();
  for (const f of CPU) await lab('profile', 'POST', `/api/lab/cpu-profile?seconds=1&format=${f}&hz=4000`);
  for (const f of HEAP) await lab('snapshot', 'POST', `/api/lab/heap-snapshot?format=${f}`);
  await lab('clear', 'POST', '/api/lab/memory-clear');
  await sleep(1500);
  const start = { rss_kb: rssKb(srv.pid), fds: fds(srv.pid) };
  const startFds = fdTargets(srv.pid);
  log(`soak: ${seconds} s on ${srv.pid} (${process.env.PROFLABD || 'build/proflabd'}); start RSS ${start.rss_kb} KiB, ${start.fds} fds`);

  const wrkOut = [];
  const wrk = spawn('wrk', ['-t2', `-c${wrkConnections}`, `-d${seconds}s`, '--timeout', '10s', '-s',
    path.join(here, 'business.lua'), base], { stdio: ['ignore', 'pipe', 'pipe'] });
  wrk.stdout.on('data', (d) => wrkOut.push(d));
  wrk.stderr.on('data', (d) => wrkOut.push(d));
  const wrkDone = new Promise((resolve) => wrk.on('close', resolve));

  const deadline = Date.now() + seconds * 1000;
  let crashed = null;
  let stopping = false;
  srv.exited.then((e) => { if (!stopping) crashed = e; });
  const worker = async () => {
    while (Date.now() < deadline && !crashed) await pick(actions)();
  };
  await Promise.all(Array.from({ length: workers }, worker));
  await wrkDone;
  const wrkText = Buffer.concat(wrkOut).toString();
  const m = /WRK_RESULT (\{.*\})/.exec(wrkText);
  const wrkResult = m ? JSON.parse(m[1]) : { raw: wrkText };

  let end = null;
  let idle = null;
  let exit = null;
  if (!crashed) {
    await lab('clear', 'POST', '/api/lab/memory-clear');
    await sleep(3000); // connections the chaos dropped close; jobs finish
    end = { rss_kb: rssKb(srv.pid), fds: fds(srv.pid), fds_added: added(startFds, fdTargets(srv.pid)) };
    if (settleSeconds) { // the symbolizer drops its cache after 60 s idle
      await sleep(settleSeconds * 1000);
      idle = { after_s: settleSeconds, rss_kb: rssKb(srv.pid), fds: fds(srv.pid), fds_added: added(startFds, fdTargets(srv.pid)) };
    }
    stopping = true;
    exit = await srv.stop('SIGTERM', slow(20000));
  } else {
    exit = crashed;
  }
  const sanitizer = SAN_RE.test(srv.stderr) ? srv.stderr.split('\n').filter((l) => SAN_RE.test(l)).slice(0, 5) : [];
  try { fs.rmSync(insp.dir, { recursive: true, force: true }); } catch { /* gone */ }
  const logFile = path.join(os.tmpdir(), `proflab-soak-${srv.pid}.log`);
  fs.writeFileSync(logFile, `${srv.stdout}\n--- stderr ---\n${srv.stderr}`);
  const wrkErrors = wrkResult.errors ? Object.values(wrkResult.errors).reduce((a, b) => a + b, 0) : -1;
  const result = {
    seconds,
    wrk: wrkResult,
    chaos: Object.fromEntries(Object.entries(tally).sort()),
    unexpected: unexpected.slice(0, 20),
    unexpected_count: unexpected.length,
    crashes: crashed ? 1 : 0,
    sanitizer_reports: sanitizer,
    start,
    end,
    idle,
    log: logFile,
    exit: { code: exit.code, signal: exit.signal },
  };
  // Open fds that may remain: the soak's own keep-alive connections and the
  // symbolizer's module files (its cache, dropped after 60 s idle). Any
  // other new fd is a leak.
  const leakedFds = end ? end.fds_added.filter((f) => !/^socket:/.test(f) && !/^\/usr\/lib\//.test(f)) : [];
  const sockets = end ? end.fds_added.filter((f) => /^socket:/.test(f)).length : 0;
  result.leaked_fds = leakedFds;
  result.ok = !crashed && !sanitizer.length && unexpected.length === 0 && wrkErrors === 0 &&
    exit.code === 0 && exit.signal === null && !!end && leakedFds.length === 0 &&
    sockets <= workers * 4 && end.rss_kb - start.rss_kb < 64 * 1024;
  return result;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!process.env.PROFLABD) process.env.PROFLABD = path.join(root, 'build-asan', 'proflabd');
  if (/asan/.test(process.env.PROFLABD) && !process.env.PROFLAB_SANITIZED) process.env.PROFLAB_SANITIZED = '1';
  const seconds = Number(process.argv[2] || process.env.SOAK_SECONDS || 600);
  const r = await runSoak({ seconds, settleSeconds: Number(process.env.SOAK_SETTLE_SECONDS ?? 80) });
  process.stdout.write(`SOAK_RESULT ${JSON.stringify(r)}\n`);
  process.exit(r.ok ? 0 : 1);
}
