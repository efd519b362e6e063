// Shared helpers for the proflabd HTTP integration tests.
//
// Every test file starts its own proflabd (startProflabd) on an ephemeral
// loopback port and stops it in an `after` hook, so files are independent.
// Ordinary requests use the built-in fetch; byte-level checks (raw response
// comparison, pipelining, oversized headers, slowloris) use node:net.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';

export { sleep };

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');
/** The binary under test: $PROFLABD (relative paths are relative to the repo root). */
export const PROFLABD = path.resolve(REPO_ROOT, process.env.PROFLABD || 'build/proflabd');
/** ASan+UBSan build: slower, different allocator. */
export const SANITIZED = process.env.PROFLAB_SANITIZED === '1';
/** Scale a time bound for the sanitized build (it runs several times slower). */
export const slow = (ms) => (SANITIZED ? ms * 3 : ms);

/** A token long enough for LAB_ENABLE=true. */
export const GOOD_TOKEN = 'it-token-0123456789abcdef-XYZ';

// Sanitizer settings from the caller (make test-asan) reach the child: the
// clean environment would otherwise drop them and change what ASan reports.
const PASS_THROUGH = ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'];

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

let seq = 0;

function cleanEnv(extra = {}) {
  const env = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    PROFLAB_LISTEN: '127.0.0.1:0',
    LAB_TASK_ID: `it-${process.pid}-${++seq}`,
  };
  for (const k of PASS_THROUGH) if (process.env[k] !== undefined) env[k] = process.env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined || v === null) delete env[k];
    else env[k] = String(v);
  }
  return env;
}

/** Environment for a server with the lab on and GOOD_TOKEN. */
export function labEnv(extra = {}) {
  return { LAB_ENABLE: 'true', LAB_TOKEN: GOOD_TOKEN, ...extra };
}

/**
 * Spawn proflabd and wait for its "listening" line.
 * Returns {port, base, proc, pid, task, env, lines (parsed JSON log lines, live),
 *          listening (that line), stdout, stderr (text so far, live),
 *          waitForLine(pred, ms), exited, stop(signal, ms)}.
 */
export async function startProflabd({ env = {}, args = [], timeoutMs = 10000 } = {}) {
  const childEnv = cleanEnv(env);
  const proc = spawn(PROFLABD, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  const lines = [];
  const waiters = [];
  let out = '';
  let err = '';
  let partial = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    out += chunk;
    partial += chunk;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (!text.trim()) continue;
      let obj;
      try {
        obj = JSON.parse(text);
      } catch {
        obj = { event: '__unparsable__', text };
      }
      lines.push(obj);
      for (const w of [...waiters]) {
        if (w.pred(obj)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(obj);
        }
      }
    }
  });
  proc.stderr.on('data', (chunk) => { err += chunk; });

  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      live.delete(proc);
      // let the pipes drain so stdout/stderr are complete
      setImmediate(() => {
        for (const w of waiters.splice(0)) w.reject(new Error(`proflabd exited (${code ?? signal}) before the expected log line\nstdout:\n${out}\nstderr:\n${err}`));
        resolve(exitInfo);
      });
    });
    proc.on('error', (e) => {
      exitInfo = { code: null, signal: null, error: e };
      live.delete(proc);
      resolve(exitInfo);
    });
  });

  function waitForLine(pred, ms = 5000) {
    const found = lines.find(pred);
    if (found) return Promise.resolve(found);
    if (exitInfo) return Promise.reject(new Error(`proflabd already exited\nstdout:\n${out}\nstderr:\n${err}`));
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject };
      waiters.push(w);
      const t = setTimeout(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) waiters.splice(i, 1);
        reject(new Error(`no matching log line within ${ms} ms\nstdout:\n${out}\nstderr:\n${err}`));
      }, ms);
      t.unref();
    });
  }

  let listening;
  try {
    listening = await Promise.race([
      waitForLine((l) => l.event === 'listening', timeoutMs),
      exited.then((e) => {
        throw new Error(`proflabd exited (code ${e.code}, signal ${e.signal}${e.error ? ', ' + e.error.message : ''}) before listening\nstdout:\n${out}\nstderr:\n${err}`);
      }),
    ]);
  } catch (e) {
    try { proc.kill('SIGKILL'); } catch { /* gone */ }
    throw e;
  }

  async function stop(signal = 'SIGTERM', ms = slow(10000)) {
    if (!exitInfo) {
      try { proc.kill(signal); } catch { /* gone */ }
      const timer = setTimeout(() => { try { proc.kill('SIGKILL'); } catch { /* gone */ } }, ms);
      await exited;
      clearTimeout(timer);
    } else {
      await exited;
    }
    return exitInfo;
  }

  return {
    port: listening.port,
    base: `http://127.0.0.1:${listening.port}`,
    proc,
    pid: proc.pid,
    task: childEnv.LAB_TASK_ID,
    env: childEnv,
    listening,
    lines,
    /** everything written so far (live) */
    get stdout() { return out; },
    get stderr() { return err; },
    waitForLine,
    exited,
    stop,
  };
}

/** Stop a server (SIGTERM) and check it left cleanly: exit 0, no sanitizer report. */
export async function stopChecked(srv) {
  if (!srv) return;
  const { code, signal } = await srv.stop('SIGTERM');
  const err = srv.stderr;
  assert.doesNotMatch(err, /(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:)/,
    `sanitizer report in proflabd's stderr:\n${err}`);
  assert.equal(signal, null, `proflabd was killed by ${signal}\nstderr:\n${err}`);
  assert.equal(code, 0, `proflabd exited with ${code} after SIGTERM\nstderr:\n${err}`);
}

/** Run proflabd expecting it to exit by itself (start-up errors). */
export function runProflabd({ env = {}, args = [], timeoutMs = slow(5000) } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const proc = spawn(PROFLABD, args, { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    let out = '';
    let err = '';
    proc.stdout.on('data', (c) => { out += c; });
    proc.stderr.on('data', (c) => { err += c; });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`proflabd did not exit within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`));
    }, timeoutMs);
    proc.on('error', (e) => { clearTimeout(timer); live.delete(proc); reject(e); });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(proc);
      resolve({ code, signal, stdout: out, stderr: err, ms: Date.now() - t0 });
    });
  });
}

// ---- HTTP helpers --------------------------------------------------------

/** fetch + JSON: {status, headers, body (parsed or null), text, ms}. */
export async function request(base, urlPath, { method = 'GET', token, headers = {}, body, timeoutMs = slow(10000) } = {}) {
  const h = { ...headers };
  if (token !== undefined) h['x-lab-token'] = token;
  const t0 = performance.now();
  const res = await fetch(base + urlPath, { method, headers: h, body, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  const ms = performance.now() - t0;
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, body: json, text, ms };
}

/** Assert an answer is the contract's JSON error with this status and code. */
export function assertError(res, status, code, what = '') {
  assert.equal(res.status, status, `${what}: status ${res.status}, body ${res.text}`);
  assert.match(res.headers.get('content-type') || '', /^application\/json/, `${what}: content-type`);
  assert.ok(res.body && typeof res.body.error === 'object', `${what}: no error object in ${res.text}`);
  assert.equal(res.body.error.code, code, `${what}: ${res.text}`);
  assert.equal(typeof res.body.error.message, 'string');
  assert.ok(res.body.error.message.length > 0);
}

/**
 * Parse as many complete HTTP/1.1 responses as buf holds.
 * Returns {responses, rest}. With `eof`, a response without a length ends at eof.
 * Each response: {status, reason, headers: [[name, value]], get(name), body: Buffer, raw: Buffer}.
 */
export function parseResponses(buf, eof = false) {
  const responses = [];
  let off = 0;
  for (;;) {
    const headEnd = buf.indexOf('\r\n\r\n', off);
    if (headEnd < 0) break;
    const head = buf.subarray(off, headEnd).toString('latin1');
    const [statusLine, ...hl] = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(statusLine)}`);
    const headers = hl.map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i), l.slice(i + 1).trim()];
    });
    const get = (name) => {
      const h = headers.find(([n]) => n.toLowerCase() === name.toLowerCase());
      return h ? h[1] : undefined;
    };
    let bodyStart = headEnd + 4;
    let body;
    let end;
    const te = get('transfer-encoding');
    const cl = get('content-length');
    if (te && /chunked/i.test(te)) {
      const chunks = [];
      let p = bodyStart;
      let complete = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p);
        if (le < 0) break;
        const size = parseInt(buf.subarray(p, le).toString('latin1'), 16);
        if (size === 0) {
          // last chunk: optional trailers, then an empty line
          if (buf.length >= le + 4 && buf.subarray(le + 2, le + 4).toString('latin1') === '\r\n') {
            end = le + 4;
            complete = true;
          } else {
            const te2 = buf.indexOf('\r\n\r\n', le + 2);
            if (te2 >= 0) { end = te2 + 4; complete = true; }
          }
          break;
        }
        if (buf.length < le + 2 + size + 2) break;
        chunks.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(chunks);
    } else if (cl !== undefined) {
      const n = Number(cl);
      if (buf.length < bodyStart + n) break;
      body = buf.subarray(bodyStart, bodyStart + n);
      end = bodyStart + n;
    } else if (Number(m[1]) === 204 || Number(m[1]) === 304 || Number(m[1]) < 200) {
      body = Buffer.alloc(0);
      end = bodyStart;
    } else {
      if (!eof) break;
      body = buf.subarray(bodyStart);
      end = buf.length;
    }
    responses.push({ status: Number(m[1]), reason: m[2], headers, get, body, raw: buf.subarray(off, end) });
    off = end;
  }
  return { responses, rest: buf.subarray(off) };
}

/** A raw TCP connection that reads HTTP responses one by one. */
export class RawConn {
  constructor(port, opts = {}) {
    this.port = port;
    this.opts = opts;
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.error = null;
    this.waiters = [];
  }

  connect() {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: this.port, ...this.opts });
      this.sock = s;
      s.once('connect', () => { s.off('error', reject); s.on('error', (e) => { this.error = e; this._wake(); }); resolve(this); });
      s.once('error', reject);
      s.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this._wake(); });
      s.on('close', () => { this.closed = true; this.closedAt = performance.now(); this._wake(); });
    });
  }

  _wake() { for (const w of this.waiters.splice(0)) w(); }

  _changed(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(() => { const i = this.waiters.indexOf(done); if (i >= 0) this.waiters.splice(i, 1); resolve(false); }, ms);
      const done = () => { clearTimeout(t); resolve(true); };
      this.waiters.push(done);
    });
  }

  write(data) {
    return new Promise((resolve, reject) => this.sock.write(data, (e) => (e ? reject(e) : resolve())));
  }

  /** Wait for the next complete response. */
  async read(ms = slow(10000)) {
    const deadline = performance.now() + ms;
    for (;;) {
      const { responses, rest } = parseResponses(this.buf, this.closed);
      if (responses.length) {
        const r = responses[0];
        this.buf = this.buf.subarray(r.raw.length);
        return r;
      }
      if (this.closed) throw new Error(`connection closed before a complete response (${rest.length} bytes pending: ${JSON.stringify(rest.toString('latin1').slice(0, 200))})`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no complete response within ${ms} ms; have ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))}`);
      await this._changed(left);
    }
  }

  /** Resolve true once the peer closed the connection, false after ms. */
  async waitClosed(ms) {
    const deadline = performance.now() + ms;
    while (!this.closed) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await this._changed(left);
    }
    return true;
  }

  destroy() { this.sock?.destroy(); }
}

/** Send bytes on a new connection, read until the server closes; the raw answer. */
export async function rawExchange(port, data, ms = slow(10000)) {
  const c = new RawConn(port);
  await c.connect();
  // the server may answer and close while we still write: keep what came
  await c.write(data).catch(() => {});
  const closed = await c.waitClosed(ms);
  c.destroy();
  if (!closed) throw new Error(`server did not close within ${ms} ms; got ${JSON.stringify(c.buf.toString('latin1').slice(0, 300))}`);
  return c.buf;
}

/** A GET/POST request head as text. */
export function httpText(method, urlPath, headers = {}, body = '') {
  const h = { Host: '127.0.0.1', ...headers };
  if (body.length || method === 'POST') h['Content-Length'] = Buffer.byteLength(body);
  return `${method} ${urlPath} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`;
}

/** Attempt a TCP connection: resolves 'connected' or the error code. */
export function tryConnect(port, ms = 2000) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, ms);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve('connected'); });
    s.once('error', (e) => { clearTimeout(t); resolve(e.code || String(e)); });
  });
}

/** CRC-32 (IEEE 802.3, zlib's crc32) of a Buffer. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
export function crc32(buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Poll fn until it returns a truthy value or ms pass; returns the last value. */
export async function eventually(fn, ms = slow(3000), every = 25) {
  const deadline = performance.now() + ms;
  let v;
  for (;;) {
    v = await fn();
    if (v || performance.now() >= deadline) return v;
    await sleep(every);
  }
}

/** promise's value, or `fallback` after ms (the timer does not keep node alive). */
export function within(promise, ms, fallback = null) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve(fallback), ms);
    t.unref();
    promise.then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}

/**
 * Servers, temporary directories and tmpfs mounts a test file creates; cleanup()
 * (call it from after()) kills the servers, unmounts and removes everything.
 */
export function scratch() {
  const servers = [];
  const dirs = [];
  const mounts = [];
  return {
    tmpDir(tag) {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), `pl-${tag}-`));
      dirs.push(d);
      return d;
    },
    async start(env, args = []) {
      const srv = await startProflabd({ env, args });
      servers.push(srv);
      return srv;
    },
    /** A 64 KiB tmpfs filled up (a 'filler' file in it); null when it cannot be mounted (the reason in .why). */
    fullTmpfs(tag) {
      const d = this.tmpDir(tag);
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', d], { stdio: 'pipe' });
      } catch (e) {
        this.why = `cannot mount a tmpfs (needs root): ${String(e.stderr || e.message).trim()}`;
        return null;
      }
      mounts.push(d);
      const fd = fs.openSync(path.join(d, 'filler'), 'w');
      const chunk = Buffer.alloc(4096, 0x61);
      let full = false;
      for (let i = 0; i < 1000 && !full; i++) {
        try { fs.writeSync(fd, chunk); } catch (e) { assert.equal(e.code, 'ENOSPC'); full = true; }
      }
      fs.closeSync(fd);
      assert.ok(full, 'the tmpfs filled up');
      return d;
    },
    unmount(d) {
      execFileSync('umount', [d]);
      mounts.splice(mounts.indexOf(d), 1);
    },
    async cleanup() {
      for (const s of servers) await s.stop('SIGKILL');
      for (const m of mounts) { try { execFileSync('umount', [m], { stdio: 'ignore' }); } catch { /* gone */ } }
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    },
  };
}

/** A .heapsnapshot read back: {count, bytes} of its nodes of self size > 0, by name (allocating function). */
export function heapSnapshotByName(file) {
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  const nf = j.snapshot.meta.node_fields.length;
  const byName = {};
  for (let i = 0; i < j.nodes.length; i += nf) {
    const size = j.nodes[i + 3];
    if (!size) continue;
    const e = byName[j.strings[j.nodes[i + 1]]] ??= { count: 0, bytes: 0 };
    e.count++;
    e.bytes += size;
  }
  return byName;
}
