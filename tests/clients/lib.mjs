// Shared helpers for the real-client tests (tests/clients/*.test.mjs).
//
// Each test file starts its own proflabd through the integration harness
// (../integration/helpers.mjs), takes real profiles through
// POST /api/lab/cpu-profile while the server does something known (a jam of
// the event loop, or /api/work requests), and hands the artifact to a
// third-party client: `go tool pprof`, speedscope or Chromium's own DevTools
// frontend (see chromium.mjs), FlameGraph when installed.
import { execFile, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import {
  startProflabd, stopChecked, labEnv, GOOD_TOKEN, request, sleep, slow, PROFLABD, REPO_ROOT,
  heapSnapshotByName,
} from '../integration/helpers.mjs';

export { startProflabd, stopChecked, request, sleep, slow, PROFLABD, REPO_ROOT, GOOD_TOKEN, heapSnapshotByName };

/** The function that POST /api/lab/event-loop-jam spins in (src/lab/harm.c). */
export const JAM_FN = 'lab_event_loop_jam_spin';
export const JAM_FILE = 'src/lab/harm.c';

/**
 * The jam function in the source: {line (1-based line of its definition),
 * end (1-based line of its closing brace), lines (the file's lines, 0-based)}.
 */
export function jamSource() {
  const lines = fs.readFileSync(path.join(REPO_ROOT, JAM_FILE), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(`${JAM_FN}(`) && !l.trim().endsWith(';'));
  assert.ok(i >= 0, `no definition of ${JAM_FN} in ${JAM_FILE}`);
  const j = lines.findIndex((l, k) => k > i && /^}/.test(l));
  assert.ok(j > i, `no end of ${JAM_FN} in ${JAM_FILE}`);
  return { line: i + 1, end: j + 1, lines };
}

/** t.diagnostic, one line each (TAP escapes newlines inside one diagnostic). */
export function diag(t, text) {
  for (const l of String(text).split('\n')) t.diagnostic(l);
}

/** Loud line on stderr (shows in node --test output even when the test passes or skips). */
export function loud(msg) {
  process.stderr.write(`\n######## ${msg} ########\n\n`);
}

/**
 * A proflabd with the lab on and a fresh artifact directory.
 * Returns {srv, dir, close()}; close() stops the server (checked) and removes dir.
 */
export async function startLab(extraEnv = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-clients-'));
  const srv = await startProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: dir, ...extraEnv }) });
  return {
    srv,
    dir,
    async close() {
      try {
        await stopChecked(srv);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function profileQuery({ seconds, format, hz, mode }) {
  const q = new URLSearchParams({ seconds: String(seconds), format });
  if (hz) q.set('hz', String(hz));
  if (mode) q.set('mode', mode);
  return q.toString();
}

async function finishProfile(res, what) {
  assert.equal(res.status, 200, `${what}: POST /api/lab/cpu-profile answered ${res.status}: ${res.text}`);
  const body = res.body;
  assert.ok(body && typeof body.path === 'string', `${what}: no artifact path in ${res.text}`);
  assert.ok(body.samples > 0, `${what}: no samples: ${res.text}`);
  const data = fs.readFileSync(body.path);
  assert.equal(data.length, body.bytes, `${what}: file size differs from the answer's bytes`);
  return { info: body, data };
}

/**
 * Take a wall-mode profile of `seconds` s and jam the loop for jamMs ms
 * starting delayMs after the profile request.
 * Returns {info (the profile answer), jam (the jam answer), data (file bytes)}.
 */
export async function profileDuringJam(srv, { format, seconds = 3, jamMs = 1500, delayMs = 200, hz, mode } = {}) {
  const prof = request(srv.base, `/api/lab/cpu-profile?${profileQuery({ seconds, format, hz, mode })}`, {
    method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(seconds * 1000 + 20000),
  });
  // let the profiler start before the loop is jammed (a rejection is reported below)
  prof.catch(() => {});
  await sleep(delayMs);
  const jam = await request(srv.base, `/api/lab/event-loop-jam?ms=${jamMs}`, {
    method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(jamMs + 20000),
  });
  assert.equal(jam.status, 200, `jam answered ${jam.status}: ${jam.text}`);
  assert.equal(jam.body.function, JAM_FN, `the jam says it spins in ${jam.body.function}`);
  const res = await prof;
  const { info, data } = await finishProfile(res, `${format} profile during a jam`);
  return { info, jam: jam.body, data };
}

/**
 * Take a profile while a client keeps requesting GET /api/work?n=... back to
 * back (one request at a time) until the profile answers.
 * Returns {info, data, requests}.
 */
export async function profileDuringWork(srv, { format = 'pprof', seconds = 3, mode = 'cpu', n = 200000, hz } = {}) {
  let done = false;
  const prof = request(srv.base, `/api/lab/cpu-profile?${profileQuery({ seconds, format, hz, mode })}`, {
    method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(seconds * 1000 + 30000),
  }).finally(() => { done = true; });
  prof.catch(() => {});
  let requests = 0;
  const loop = (async () => {
    while (!done) {
      const r = await request(srv.base, `/api/work?n=${n}`, { timeoutMs: slow(20000) });
      assert.equal(r.status, 200, `GET /api/work answered ${r.status}: ${r.text.slice(0, 300)}`);
      requests++;
    }
  })();
  const res = await prof;
  await loop;
  const { info, data } = await finishProfile(res, `${mode}-mode ${format} profile under /api/work`);
  return { info, data, requests };
}

/**
 * Keep every CPU busy (one spinning node process per CPU) until stop():
 * the profiled thread then waits for a CPU now and then, as on a loaded host,
 * and its timer expirations pile up into overruns (samples of weight > 1).
 */
export function startHogs(n = os.availableParallelism?.() ?? os.cpus().length) {
  const procs = [];
  for (let i = 0; i < n; i++) procs.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  const gone = procs.map((p) => new Promise((resolve) => p.once('exit', resolve)));
  const onExit = () => { for (const p of procs) try { p.kill('SIGKILL'); } catch { /* gone */ } };
  process.once('exit', onExit);
  return async () => {
    for (const p of procs) try { p.kill('SIGKILL'); } catch { /* gone */ }
    await Promise.all(gone);
    process.off('exit', onExit);
  };
}

/** Write bytes to a new temp file with this name; returns its path. */
export function tempFile(name, data) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-clients-'));
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return p;
}

// ---- go tool pprof --------------------------------------------------------

/** Is the go command here? (deps.sh test installs golang-go; CI must have it.) */
export function haveGo() {
  const r = spawnSync('go', ['version'], { encoding: 'utf8' });
  return r.status === 0;
}

/** Run `go tool pprof -symbolize=none ARGS`; resolves {stdout, stderr}; rejects on a non-zero exit. */
export function pprof(args, { cwd = REPO_ROOT, timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile('go', ['tool', 'pprof', '-symbolize=none', ...args], {
      cwd, timeout: timeoutMs, maxBuffer: 64 << 20,
      // pprof reads no binary and asks no symbolization server: what it
      // prints comes from the profile alone (-symbolize=none)
      env: { ...process.env, PPROF_BINARY_PATH: '/nonexistent', PPROF_TMPDIR: os.tmpdir() },
    }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\ngo tool pprof ${args.join(' ')}\nstdout:\n${stdout}\nstderr:\n${stderr}`;
        reject(err);
      } else {
        resolve({ stdout, stderr });
      }
    });
  });
}

/** Milliseconds from a pprof value printed with -unit=ms ("1496ms", "0", "1.5ms"). */
function msOf(v) {
  if (v === '0') return 0;
  const m = /^([\d.]+)(ns|us|µs|ms|s)$/.exec(v);
  assert.ok(m, `unexpected pprof value ${JSON.stringify(v)}`);
  const f = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000 }[m[2]];
  return Number(m[1]) * f;
}

/**
 * Parse `go tool pprof -top -unit=ms` output.
 * Returns {totalMs, header (text before the table), rows: [{flat, flatPct, cum, cumPct, name}]}.
 */
export function parseTop(text) {
  const lines = text.split('\n');
  const hi = lines.findIndex((l) => /^\s*flat\s+flat%\s+sum%\s+cum\s+cum%/.test(l));
  assert.ok(hi >= 0, `no table header in pprof -top output:\n${text}`);
  const tm = /Total samples = (\S+)/.exec(text) || /of (\S+) total/.exec(text);
  const rows = [];
  for (const l of lines.slice(hi + 1)) {
    if (!l.trim()) continue;
    const m = /^\s*(\S+)\s+([\d.]+)%\s+([\d.]+)%\s+(\S+)\s+([\d.]+)%\s+(.+?)\s*$/.exec(l);
    assert.ok(m, `unparsable pprof -top row ${JSON.stringify(l)}`);
    rows.push({ flat: msOf(m[1]), flatPct: Number(m[2]), cum: msOf(m[4]), cumPct: Number(m[5]), name: m[6] });
  }
  return { totalMs: tm ? msOf(tm[1]) : NaN, header: lines.slice(0, hi).join('\n'), rows };
}

/** Parse `go tool pprof -top -unit=B` output (heap profiles): [{flat, cum, name}] in bytes. */
export function parseTopBytes(text) {
  const rows = [];
  for (const l of text.split('\n')) {
    const m = /^\s*(\d+)B?\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)B?\s+([\d.]+)%\s+(.+?)\s*$/.exec(l);
    if (m) rows.push({ flat: Number(m[1]), cum: Number(m[4]), name: m[6] });
  }
  return rows;
}

/**
 * Parse `go tool pprof -traces -unit=ms` output into [{ms, stack: [leaf, ..., root], labels}].
 */
export function parseTraces(text) {
  const blocks = text.split(/^-+\+-+$/m).slice(1);
  const out = [];
  for (const b of blocks) {
    const lines = b.split('\n').filter((l) => l.trim());
    if (!lines.length) continue;
    const labels = {};
    const stack = [];
    let ms = null;
    for (const l of lines) {
      const lab = /^\s*(\w[\w.-]*):\s+(.*)$/.exec(l);
      if (ms === null && lab && !/^\s*[\d.]+(ns|us|µs|ms|s)\s/.test(l)) {
        labels[lab[1]] = lab[2].trim();
        continue;
      }
      const v = /^\s*([\d.]+(?:ns|us|µs|ms|s)|0)\s{2,}(.+?)\s*$/.exec(l);
      if (ms === null && v) {
        ms = msOf(v[1]);
        stack.push(v[2]);
      } else if (ms !== null) {
        stack.push(l.trim());
      }
    }
    if (ms !== null) out.push({ ms, stack, labels });
  }
  return out;
}

// ---- folded stacks ----------------------------------------------------------

/**
 * Parse folded stacks ("f1;f2;f3 count" per line). Asserts the grammar:
 * every line is frames, one space, a positive integer; no empty frame; no
 * line break inside; no duplicate stack. Returns [{frames, count}].
 */
export function parseFolded(text) {
  assert.ok(text.length > 0, 'empty folded file');
  assert.ok(text.endsWith('\n'), 'folded output does not end with a newline');
  const seen = new Set();
  const out = [];
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const m = /^(.+) ([1-9]\d*)$/.exec(line);
    assert.ok(m, `line ${i + 1} is not "frames count" with a positive integer count: ${JSON.stringify(line)}`);
    const frames = m[1].split(';');
    for (const f of frames) {
      assert.ok(f.length > 0, `line ${i + 1} has an empty frame: ${JSON.stringify(line)}`);
      assert.doesNotMatch(f, /[\r\n\t]/, `line ${i + 1}: control character in a frame`);
    }
    assert.ok(!seen.has(m[1]), `line ${i + 1} repeats the stack ${JSON.stringify(m[1])}`);
    seen.add(m[1]);
    const count = Number(m[2]);
    assert.ok(Number.isSafeInteger(count), `line ${i + 1}: count ${m[2]} is not a safe integer`);
    out.push({ frames, count });
  });
  return out;
}

/** Which of these commands is on PATH (first found) or null. */
export function which(...names) {
  for (const n of names) {
    const r = spawnSync('sh', ['-c', `command -v "$0"`, n], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}
