// Shared helpers for the agent's tests (agent*.test.mjs): programs with no
// proflab code run under `proflab run` (the agent preloaded), and requests
// to the agent's lab over TCP or its Unix socket.
//
// $PROFLAB_AGENT: the agent under test (default build/libproflab-agent.so);
// $PROFLAB_CLI: the CLI (default build/proflab); $PROFLAB_TEST_PROGRAMS: the
// test programs (default tests/programs next to the agent). The agent is
// always a normal build: an ASan agent cannot be preloaded into programs
// built without ASan (the sanitized run checks the agent's settings and
// the shared library code through unit tests and proflabd instead).
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { REPO_ROOT, GOOD_TOKEN } from './helpers.mjs';

export const AGENT = path.resolve(REPO_ROOT, process.env.PROFLAB_AGENT || 'build/libproflab-agent.so');
export const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
export const PROGRAMS = path.resolve(REPO_ROOT, process.env.PROFLAB_TEST_PROGRAMS || path.join(path.dirname(AGENT), 'tests', 'programs'));
export const program = (name) => path.join(PROGRAMS, name);
export { GOOD_TOKEN };

const live = new Set();
process.on('exit', () => { for (const p of live) try { p.kill('SIGKILL'); } catch { /* gone */ } });

let seq = 0;
/** A clean environment for a program under the agent. */
export function agentEnv(extra = {}) {
  const env = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    PROFLAB_AGENT_LIB: AGENT,
    LAB_TASK_ID: `agent-${process.pid}-${++seq}`,
  };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined || v === null) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

/**
 * Spawn argv (e.g. [CLI, 'run', '--', prog]) and collect its output.
 * Returns {proc, stdout, stderr (live), lines (stderr JSON lines, live),
 * waitFor(pred on {stdout, stderr, lines}, ms), exited: Promise<{code, signal}>, stop()}.
 */
export function spawnWatched(argv, env, { stdin = 'ignore' } = {}) {
  const proc = spawn(argv[0], argv.slice(1), { env, stdio: [stdin, 'pipe', 'pipe'] });
  live.add(proc);
  const st = { stdout: '', stderr: '', lines: [] };
  const waiters = [];
  const check = () => {
    for (const w of [...waiters]) {
      const v = w.pred(st);
      if (v) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(v);
      }
    }
  };
  let partial = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (c) => { st.stdout += c; check(); });
  proc.stderr.on('data', (c) => {
    st.stderr += c;
    partial += c;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const t = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (t.startsWith('{')) try { st.lines.push(JSON.parse(t)); } catch { /* not ours */ }
    }
    check();
  });
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      live.delete(proc);
      setImmediate(() => {
        for (const w of waiters.splice(0)) w.reject(new Error(`exited (${code ?? signal}) first\nstdout:\n${st.stdout}\nstderr:\n${st.stderr}`));
        resolve(exitInfo);
      });
    });
  });
  function waitFor(pred, ms = 10000) {
    const v = pred(st);
    if (v) return Promise.resolve(v);
    if (exitInfo) return Promise.reject(new Error(`already exited\nstdout:\n${st.stdout}\nstderr:\n${st.stderr}`));
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject };
      waiters.push(w);
      setTimeout(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) {
          waiters.splice(i, 1);
          reject(new Error(`not seen within ${ms} ms\nstdout:\n${st.stdout}\nstderr:\n${st.stderr}`));
        }
      }, ms).unref();
    });
  }
  async function stop(signal = 'SIGTERM', ms = 10000) {
    if (!exitInfo) {
      try { proc.kill(signal); } catch { /* gone */ }
      const t = setTimeout(() => { try { proc.kill('SIGKILL'); } catch { /* gone */ } }, ms);
      await exited;
      clearTimeout(t);
    }
    return exitInfo;
  }
  return {
    proc, exited, waitFor, stop, pid: proc.pid,
    get stdout() { return st.stdout; },
    get stderr() { return st.stderr; },
    get lines() { return st.lines; },
  };
}

/**
 * `proflab run [runArgs] -- cmd...` and wait for the agent's start line.
 * Returns the watched process plus lab: {url} for TCP or {socketPath} for
 * a Unix socket, and appPort when the program printed "port N".
 */
export async function runUnderAgent(cmd, { runArgs = [], env = {}, waitPort = false } = {}) {
  const w = spawnWatched([CLI, 'run', ...runArgs, '--', ...cmd], agentEnv(env));
  const start = await w.waitFor((s) => s.lines.find((l) => l.event === 'agent_start'));
  let lab = null;
  if (start.lab && start.lab.startsWith('unix:')) lab = { socketPath: start.lab.slice(5) };
  else if (start.lab) lab = { url: start.lab };
  let appPort = null;
  if (waitPort) appPort = Number(await w.waitFor((s) => (s.stdout.match(/^port (\d+)$/m) || [])[1]));
  return { ...w, start, lab, appPort };
}

/** An HTTP request to a lab ({url} or {socketPath}): {status, headers, body (Buffer), json}. */
export function labRequest(lab, method, pathname, { headers = {}, timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const opts = { method, path: pathname, headers, timeout: timeoutMs };
    if (lab.socketPath) opts.socketPath = lab.socketPath;
    else {
      const u = new URL(lab.url);
      opts.host = u.hostname.replace(/^\[|\]$/g, '');
      opts.port = u.port;
    }
    const req = http.request(opts, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        let json;
        try { json = JSON.parse(body.toString('utf8')); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${pathname}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** GET http://127.0.0.1:port/path of the test program (a fresh connection each). */
export function appGet(port, pathname) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, agent: false }, (res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: b }));
    });
    req.on('error', reject);
  });
}

/**
 * A pprof profile (gzipped or not) decoded far enough for the tests:
 * {samples: [{stack: [function names, leaf first], values, labels: {key: str|num}}], strings}.
 * A minimal protobuf reader (varints and length-delimited fields of
 * profile.proto; other wire types skipped), so the tests need no package.
 */
export function decodePprof(buf) {
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  function* fields(b) {
    let i = 0;
    const varint = () => {
      let v = 0n, shift = 0n;
      for (;;) {
        const c = b[i++];
        v |= BigInt(c & 0x7f) << shift;
        if (!(c & 0x80)) return v;
        shift += 7n;
      }
    };
    while (i < b.length) {
      const key = Number(varint());
      const f = key >> 3, wt = key & 7;
      if (wt === 0) yield [f, varint()];
      else if (wt === 2) { const n = Number(varint()); yield [f, b.subarray(i, i + n)]; i += n; }
      else if (wt === 1) i += 8;
      else if (wt === 5) i += 4;
      else throw new Error(`wire type ${wt}`);
    }
  }
  const packed = (v) => {
    if (typeof v === 'bigint') return [Number(v)];
    const out = [];
    let i = 0;
    while (i < v.length) {
      let x = 0n, shift = 0n;
      for (;;) { const c = v[i++]; x |= BigInt(c & 0x7f) << shift; if (!(c & 0x80)) break; shift += 7n; }
      out.push(Number(x));
    }
    return out;
  };
  const strings = [], rawSamples = [], locations = new Map(), functions = new Map();
  for (const [f, v] of fields(buf)) {
    if (f === 6) strings.push(Buffer.from(v).toString('utf8'));
    else if (f === 2) {
      const s = { locs: [], values: [], labels: [] };
      for (const [g, w] of fields(v)) {
        if (g === 1) s.locs.push(...packed(w));
        else if (g === 2) s.values.push(...packed(w));
        else if (g === 3) {
          const l = {};
          for (const [h, x] of fields(w)) l[h] = Number(x);
          s.labels.push(l);
        }
      }
      rawSamples.push(s);
    } else if (f === 4) {
      const l = { id: 0, fns: [] };
      for (const [g, w] of fields(v)) {
        if (g === 1) l.id = Number(w);
        else if (g === 4) for (const [h, x] of fields(w)) if (h === 1) l.fns.push(Number(x));
      }
      locations.set(l.id, l);
    } else if (f === 5) {
      const fn = {};
      for (const [g, w] of fields(v)) if (g === 1 || g === 2) fn[g] = Number(w);
      functions.set(fn[1], fn[2] || 0);
    }
  }
  const samples = rawSamples.map((s) => ({
    stack: s.locs.flatMap((id) => (locations.get(id)?.fns || []).map((fid) => strings[functions.get(fid)] ?? '')),
    values: s.values,
    labels: Object.fromEntries(s.labels.map((l) => [strings[l[1]], l[2] !== undefined ? strings[l[2]] : l[3]])),
  }));
  return { samples, strings };
}
