// Helpers for the inspector tests (inspector*.test.mjs here, and
// tests/clients/devtools-inspector.test.mjs): start a proflabd with its
// DevTools protocol endpoint (`--inspect`, like `node --inspect`), speak to
// it with the real clients (chrome-remote-interface and ws, from
// tests/node_modules), and, for the byte-level cases, with a hand-rolled
// WebSocket client on node:net (upgrade by hand, masked frames, garbage).
//
// The harness does not know it talks to proflabd: everything goes through
// the inspector's documented surface (its "Debugger listening on ws://…"
// line, /json*, the WebSocket) and the lab's HTTP API, so it also runs
// against `node --inspect` behind a stand-in of the lab endpoints (how it
// was checked before proflabd's inspector existed).
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import {
  startProflabd, stopChecked, labEnv, GOOD_TOKEN, request, slow, sleep, PROFLABD, SANITIZED,
} from './helpers.mjs';

const require = createRequire(import.meta.url);
function npm(name) {
  try {
    return require(name);
  } catch (e) {
    throw new Error(`the npm package ${name} is missing from tests/node_modules: run scripts/npm-deps.sh (${e.message})`);
  }
}
/** chrome-remote-interface (npm), the client most Node tooling uses. */
export const CDP = npm('chrome-remote-interface');
/** ws (npm), what chrome-remote-interface speaks WebSocket with. */
export const WebSocket = npm('ws');

export { startProflabd, stopChecked, labEnv, GOOD_TOKEN, request, slow, sleep, PROFLABD, SANITIZED };

/** The functions the lab's harm runs in (src/lab/harm.c). */
export const JAM_FN = 'lab_event_loop_jam_spin';
export const LEAK_FN = 'lab_memory_leak_allocate';

/** What Node prints (on stderr) when its inspector listens; proflabd prints the same. */
export const DEBUGGER_RE = /Debugger listening on (ws:\/\/(127\.0\.0\.1|\[[0-9a-f:]+\]|[\w.-]+):(\d+)\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}))/;
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** t.diagnostic, one line each. */
export function diag(t, text) {
  for (const l of String(text).split('\n')) t.diagnostic(l);
}

/** Loud line on stderr (shows in node --test output even when the test passes or skips). */
export function loud(msg) {
  process.stderr.write(`\n######## ${msg} ########\n\n`);
}

/** Does the binary under test know --inspect? (its --help mentions it) */
export function binaryHasInspector(bin = PROFLABD) {
  const r = spawnSync(bin, ['--help'], { encoding: 'utf8', timeout: 10000 });
  return /--inspect/.test(`${r.stdout}${r.stderr}`);
}

/** A loopback TCP port free right now (bound, then released). */
export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Is host:port free to bind? */
export function portIsFree(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** Poll srv.stderr (live text) until re matches; the match. */
export async function waitStderr(srv, re, ms = slow(10000), what = String(re)) {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = re.exec(srv.stderr);
    if (m) return m;
    if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) {
      throw new Error(`the process exited (${srv.proc.exitCode ?? srv.proc.signalCode}) before printing ${what}\nstdout:\n${srv.stdout}\nstderr:\n${srv.stderr}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`no ${what} on stderr within ${ms} ms\nstdout:\n${srv.stdout.slice(-3000)}\nstderr:\n${srv.stderr.slice(-3000)}`);
    }
    await sleep(25);
  }
}

/** Parse the "Debugger listening on ws://HOST:PORT/ID" line. */
export function parseDebuggerLine(m) {
  return { wsUrl: m[1], host: m[2], port: Number(m[3]), id: m[4] };
}

/**
 * Start proflabd with the lab on (GOOD_TOKEN, a fresh artifact directory)
 * and the inspector, through `--inspect=ADDR` (via 'flag', or `--inspect`
 * alone when inspect is true) or PROFLAB_INSPECT (via 'env'). ADDR defaults
 * to 127.0.0.1:0 (a free port the inspector picks and prints, as the HTTP
 * side's PROFLAB_LISTEN=127.0.0.1:0 does).
 * Returns {srv, base (lab HTTP), pid, dir, inspector: {wsUrl, host, port, id}, close()}.
 */
export async function startInspected({ inspect = '127.0.0.1:0', via = 'flag', env = {}, args = [] } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-inspector-'));
  const e = labEnv({ LAB_ARTIFACT_DIR: dir, ...env });
  const a = [...args];
  if (via === 'env') e.PROFLAB_INSPECT = inspect;
  else a.unshift(inspect === true ? '--inspect' : `--inspect=${inspect}`);
  let srv;
  try {
    srv = await startProflabd({ env: e, args: a });
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    if (!binaryHasInspector()) {
      err.message = `${PROFLABD} --help does not mention --inspect: this build has no inspector\n${err.message}`;
    }
    throw err;
  }
  const inspector = parseDebuggerLine(await waitStderr(srv, DEBUGGER_RE, slow(10000), 'the "Debugger listening on ws://…" line'));
  return {
    srv,
    base: srv.base,
    pid: srv.pid,
    dir,
    inspector,
    async close({ checked = true } = {}) {
      try {
        if (checked) await stopChecked(srv);
        else await srv.stop('SIGKILL');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** POST a lab endpoint with the token; {status, body, text, ms}. */
export function labPost(base, urlPath, { timeoutMs = slow(30000) } = {}) {
  return request(base, urlPath, { method: 'POST', token: GOOD_TOKEN, timeoutMs });
}

/** Resident set size of a process, bytes (/proc/PID/status VmRSS). */
export function rssOf(pid) {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Sample a process's RSS every 10 ms until the returned function is called; it returns the peak. */
export function rssWatch(pid) {
  let peak = rssOf(pid);
  const iv = setInterval(() => { try { peak = Math.max(peak, rssOf(pid)); } catch { /* gone */ } }, 10);
  return () => {
    clearInterval(iv);
    try { peak = Math.max(peak, rssOf(pid)); } catch { /* gone */ }
    return peak;
  };
}

// ---- plain HTTP to the inspector (with a chosen Host header) ---------------

/**
 * GET a path from the inspector's HTTP side with exactly these headers
 * (Host included: null leaves it out). {status, headers, text, json, raw}.
 */
export function inspectorGet(port, urlPath, { host = `127.0.0.1:${port}`, headers = {}, timeoutMs = slow(10000) } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (host !== null) h.Host = host;
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method: 'GET', headers: h, setHost: false, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} (Host ${host}): no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

// ---- chrome-remote-interface -----------------------------------------------

/**
 * Connect as chrome-remote-interface users do: CDP({host, port}) lists the
 * targets (/json/list), fetches /json/protocol and opens the first
 * target's webSocketDebuggerUrl. Records every event in `events`.
 */
export async function connectCdp(port, opts = {}) {
  const client = await CDP({ host: '127.0.0.1', port, ...opts });
  client.events = [];
  client.on('event', (m) => client.events.push(m));
  return client;
}

/** Await a CDP call that must fail; its error object {code, message, data}. */
export async function cdpError(promise, what = 'the call') {
  let res;
  try {
    res = await promise;
  } catch (e) {
    assert.ok(e.response, `${what} failed without a protocol error (the connection?): ${e.stack || e}`);
    return e.response;
  }
  assert.fail(`${what} succeeded, an error was expected: ${JSON.stringify(res).slice(0, 300)}`);
}

/**
 * client.send with a callback: the callback runs synchronously when the
 * answer is read (in order with the events), unlike a promise's .then.
 * Resolves {error: bool, result, at: index in `log`}.
 */
export function sendOrdered(client, method, params, log) {
  return new Promise((resolve) => {
    client.send(method, params, (error, result) => {
      log.push({ kind: 'answer', method });
      resolve({ error: error !== false && error !== null && error !== undefined, result, at: log.length - 1 });
    });
  });
}

/**
 * HeapProfiler.takeHeapSnapshot through chrome-remote-interface, collecting
 * its addHeapSnapshotChunk and reportHeapSnapshotProgress events.
 * Returns {text, bytes, chunks (sizes), progress, log (the order of chunks,
 * progress events and the answer, and of what came settleMs after it),
 * answer, error, ms (send to answer)}.
 */
export async function takeSnapshot(client, params = { reportProgress: true }, { settleMs = 200 } = {}) {
  const log = [];
  const parts = [];
  const progress = [];
  const onChunk = ({ chunk }) => { parts.push(chunk); log.push({ kind: 'chunk', len: chunk.length }); };
  const onProgress = (p) => { progress.push(p); log.push({ kind: 'progress', ...p }); };
  client.on('HeapProfiler.addHeapSnapshotChunk', onChunk);
  client.on('HeapProfiler.reportHeapSnapshotProgress', onProgress);
  const t0 = performance.now();
  try {
    const r = await sendOrdered(client, 'HeapProfiler.takeHeapSnapshot', params, log);
    const ms = performance.now() - t0;
    // keep listening a moment: a chunk that comes after the answer is a bug
    // to report as such (not as a truncated snapshot)
    if (settleMs) await new Promise((resolve) => setTimeout(resolve, settleMs));
    const text = parts.join('');
    return {
      text, bytes: Buffer.byteLength(text), chunks: parts.map((p) => p.length), progress, log,
      answer: r.result, error: r.error, ms,
    };
  } finally {
    client.removeListener('HeapProfiler.addHeapSnapshotChunk', onChunk);
    client.removeListener('HeapProfiler.reportHeapSnapshotProgress', onProgress);
  }
}

// ---- what the formats must hold ----------------------------------------------

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
export { median };

/**
 * Assert p is a valid CDP Profiler.Profile (a .cpuprofile) and return
 * {byName: {name: {self (samples), selfUs, nodes, url, lineNumber}},
 * medianDeltaUs, samples, durationUs}. selfUs is the time DevTools charges
 * the function: each sample stands for the time until the next one (the
 * last, until endTime).
 */
export function checkCpuProfile(p) {
  assert.ok(p && Array.isArray(p.nodes) && p.nodes.length > 0, 'profile.nodes is a non-empty array');
  assert.equal(p.nodes[0].callFrame?.functionName, '(root)', 'nodes[0] is "(root)"');
  assert.ok(Array.isArray(p.samples) && Array.isArray(p.timeDeltas), 'samples and timeDeltas are arrays');
  assert.equal(p.samples.length, p.timeDeltas.length, 'samples and timeDeltas have the same length');
  assert.ok(Number.isFinite(p.startTime) && p.startTime > 0, `startTime ${p.startTime} > 0 (0 makes DevTools draw nothing)`);
  assert.ok(Number.isFinite(p.endTime) && p.endTime >= p.startTime, `endTime ${p.endTime} >= startTime ${p.startTime}`);
  const byId = new Map();
  for (const n of p.nodes) {
    assert.ok(Number.isInteger(n.id) && n.id > 0, `node id ${n.id}`);
    assert.ok(!byId.has(n.id), `duplicate node id ${n.id}`);
    byId.set(n.id, n);
    const cf = n.callFrame;
    assert.ok(cf && typeof cf.functionName === 'string', `node ${n.id}: callFrame.functionName`);
    assert.equal(typeof cf.scriptId, 'string', `node ${n.id}: callFrame.scriptId is a string`);
    assert.equal(typeof cf.url, 'string', `node ${n.id}: callFrame.url`);
    assert.ok(Number.isInteger(cf.lineNumber) && Number.isInteger(cf.columnNumber), `node ${n.id}: line/column numbers`);
  }
  const parent = new Map();
  for (const n of p.nodes) {
    for (const c of n.children || []) {
      assert.ok(byId.has(c), `node ${n.id} has an unknown child ${c}`);
      assert.ok(!parent.has(c), `node ${c} has two parents`);
      parent.set(c, n.id);
    }
  }
  const byName = Object.create(null);
  const counts = new Map();
  const spanUs = new Map(); // by node: the time its samples stand for
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const s = p.samples[i];
    assert.ok(byId.has(s), `sample of unknown node ${s}`);
    counts.set(s, (counts.get(s) || 0) + 1);
    at += p.timeDeltas[i];
    const next = i + 1 < p.samples.length ? at + p.timeDeltas[i + 1] : p.endTime;
    spanUs.set(s, (spanUs.get(s) || 0) + Math.max(0, next - at));
  }
  for (const n of p.nodes) {
    const e = byName[n.callFrame.functionName] ??= { self: 0, selfUs: 0, nodes: 0, url: n.callFrame.url, lineNumber: n.callFrame.lineNumber };
    e.self += counts.get(n.id) || 0;
    e.selfUs += spanUs.get(n.id) || 0;
    e.nodes++;
  }
  let sum = 0;
  for (const d of p.timeDeltas) {
    assert.ok(Number.isFinite(d), `timeDelta ${d}`);
    sum += d;
  }
  return {
    byName, samples: p.samples.length, medianDeltaUs: median(p.timeDeltas.slice(1)), sumDeltasUs: sum,
    durationUs: p.endTime - p.startTime,
  };
}

/**
 * Assert snap (a parsed .heapsnapshot) is well formed as DevTools reads it
 * and return {byName: {name: {count, bytes}}, nodeCount, edgeCount, keys}.
 */
export function checkHeapSnapshot(snap) {
  const keys = Object.keys(snap);
  assert.equal(keys[0], 'snapshot', `the first key is "snapshot" (DevTools' streaming loader): ${keys}`);
  assert.equal(keys[keys.length - 1], 'strings', `"strings" is the last key: ${keys}`);
  const meta = snap.snapshot.meta;
  const nf = meta.node_fields;
  const ef = meta.edge_fields;
  for (const f of ['type', 'name', 'id', 'self_size', 'edge_count']) assert.ok(nf.includes(f), `node_fields has ${f}`);
  assert.equal(snap.nodes.length, snap.snapshot.node_count * nf.length, 'nodes.length = node_count × node fields');
  assert.equal(snap.edges.length, snap.snapshot.edge_count * ef.length, 'edges.length = edge_count × edge fields');
  const [iType, iName, iId, iSize, iEdges] = ['type', 'name', 'id', 'self_size', 'edge_count'].map((f) => nf.indexOf(f));
  const types = meta.node_types[iType];
  const byName = Object.create(null); // names like "__proto__" occur
  let edges = 0;
  const ids = new Set();
  for (let i = 0; i < snap.nodes.length; i += nf.length) {
    const name = snap.strings[snap.nodes[i + iName]];
    assert.equal(typeof name, 'string', `node ${i / nf.length}: name index ${snap.nodes[i + iName]} outside strings`);
    assert.ok(snap.nodes[i + iType] < types.length, `node ${i / nf.length}: type index`);
    const id = snap.nodes[i + iId];
    assert.ok(!ids.has(id), `duplicate node id ${id}`);
    ids.add(id);
    edges += snap.nodes[i + iEdges];
    const size = snap.nodes[i + iSize];
    if (!size) continue;
    const e = byName[name] ??= { count: 0, bytes: 0 };
    e.count++;
    e.bytes += size;
  }
  assert.equal(edges, snap.snapshot.edge_count, 'the nodes\' edge counts add up to edge_count');
  const iTo = ef.indexOf('to_node');
  for (let i = iTo; i < snap.edges.length; i += ef.length) {
    const to = snap.edges[i];
    assert.ok(to % nf.length === 0 && to < snap.nodes.length, `edge ${(i - iTo) / ef.length}: to_node ${to} is not a node index`);
  }
  return { byName, nodeCount: snap.snapshot.node_count, edgeCount: snap.snapshot.edge_count, keys };
}

/**
 * Assert p is a CDP HeapProfiler.SamplingHeapProfile; return
 * {byName: {name: selfSize}, nodes, samples}.
 */
export function checkSamplingProfile(p) {
  assert.ok(p && p.head && Array.isArray(p.samples), 'profile has head and samples');
  const ids = new Set();
  const byName = Object.create(null);
  let nodes = 0;
  const walk = (n, depth) => {
    assert.ok(depth < 10000, 'tree too deep');
    assert.ok(n.callFrame && typeof n.callFrame.functionName === 'string', 'node callFrame');
    assert.ok(Number.isFinite(n.selfSize) && n.selfSize >= 0, `selfSize ${n.selfSize}`);
    assert.ok(Number.isInteger(n.id), `node id ${n.id}`);
    assert.ok(!ids.has(n.id), `duplicate node id ${n.id}`);
    ids.add(n.id);
    nodes++;
    byName[n.callFrame.functionName] = (byName[n.callFrame.functionName] || 0) + n.selfSize;
    assert.ok(Array.isArray(n.children), 'children array');
    for (const c of n.children) walk(c, depth + 1);
  };
  walk(p.head, 0);
  for (const s of p.samples) {
    assert.ok(ids.has(s.nodeId), `sample of unknown node ${s.nodeId}`);
    assert.ok(Number.isFinite(s.size) && s.size > 0, `sample size ${s.size}`);
    assert.ok(Number.isFinite(s.ordinal), `sample ordinal ${s.ordinal}`);
  }
  return { byName, nodes, samples: p.samples.length };
}

// ---- a WebSocket client by hand (node:net) --------------------------------------

/** One client frame: masked unless mask is false; length as given (lengthOverride: claim another). */
export function wsFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0, lengthOverride } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = lengthOverride ?? data.length;
  let head;
  if (len < 126) {
    head = Buffer.alloc(2);
    head[1] = len;
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (!mask) return Buffer.concat([head, data]);
  head[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) body[i] = data[i] ^ key[i & 3];
  return Buffer.concat([head, key, body]);
}

/**
 * A WebSocket connection upgraded by hand. Reads the server's frames
 * (messages reassembled, pings answered unless told not to), or reads
 * nothing at all after the upgrade when `read` is false (the socket is
 * paused: what the kernel buffers is all the server can hand over).
 */
export class RawWs {
  constructor(port, urlPath, { host = `127.0.0.1:${port}`, origin, read = true, answerPings = true } = {}) {
    Object.assign(this, { port, urlPath, host, origin, read, answerPings });
    this.buf = Buffer.alloc(0);
    this.messages = [];
    this.frames = [];
    this.closeFrame = null;
    this.closed = false;
    this.bytesIn = 0;
    this.waiters = [];
    this.partial = null;
  }

  /** Connect and upgrade. Resolves {status, head} (the response head); the instance is usable when status is 101. */
  open(ms = slow(10000)) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port: this.port });
      this.sock = sock;
      this.key = crypto.randomBytes(16).toString('base64');
      let head = null;
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no upgrade answer within ${ms} ms`)); }, ms);
      sock.on('error', (e) => { this.error = e; if (!head) { clearTimeout(timer); reject(e); } this._wake(); });
      sock.on('close', () => {
        this.closed = true;
        if (!head) {
          clearTimeout(timer);
          head = this.buf.toString('latin1');
          const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
          resolve({ status: m ? Number(m[1]) : 0, head });
        }
        this._wake();
      });
      sock.on('data', (d) => {
        this.bytesIn += d.length;
        this.buf = Buffer.concat([this.buf, d]);
        if (!head) {
          const end = this.buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          head = this.buf.subarray(0, end).toString('latin1');
          this.buf = this.buf.subarray(end + 4);
          clearTimeout(timer);
          const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
          const status = m ? Number(m[1]) : 0;
          if (status === 101) {
            const accept = /^sec-websocket-accept:\s*(\S+)/im.exec(head)?.[1];
            const want = crypto.createHash('sha1').update(this.key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
            this.acceptOk = accept === want;
            if (!this.read) sock.pause();
          }
          resolve({ status, head });
        }
        this._parse();
        this._wake();
      });
      sock.once('connect', () => {
        const lines = [
          `GET ${this.urlPath} HTTP/1.1`,
          ...(this.host !== null ? [`Host: ${this.host}`] : []),
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${this.key}`,
          'Sec-WebSocket-Version: 13',
          ...(this.origin ? [`Origin: ${this.origin}`] : []),
        ];
        sock.write(`${lines.join('\r\n')}\r\n\r\n`);
      });
    });
  }

  _parse() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (masked) off += 4;
      if (b.length < off + len) return;
      const payload = Buffer.from(b.subarray(off, off + len));
      this.buf = b.subarray(off + len);
      this.frames.push({ fin, opcode, masked, len });
      if (opcode === 0x8) {
        this.closeFrame = { code: len >= 2 ? payload.readUInt16BE(0) : null, reason: payload.subarray(2).toString('utf8') };
      } else if (opcode === 0x9) {
        if (this.answerPings && !this.closed) this.sock.write(wsFrame(0xA, payload));
      } else if (opcode === 0x1 || opcode === 0x2) {
        this.partial = [payload];
        if (fin) this._message();
      } else if (opcode === 0x0 && this.partial) {
        this.partial.push(payload);
        if (fin) this._message();
      }
    }
  }

  _message() {
    const text = Buffer.concat(this.partial).toString('utf8');
    this.partial = null;
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    this.messages.push({ text, json });
  }

  _wake() { for (const w of this.waiters.splice(0)) w(); }

  _changed(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(() => { const i = this.waiters.indexOf(done); if (i >= 0) this.waiters.splice(i, 1); resolve(false); }, ms);
      const done = () => { clearTimeout(t); resolve(true); };
      this.waiters.push(done);
    });
  }

  /** Write raw bytes (errors once the peer closed are kept in this.writeError). */
  write(bytes) {
    return new Promise((resolve) => {
      if (this.closed || this.sock.destroyed) { resolve(false); return; }
      this.sock.write(bytes, (e) => { if (e) this.writeError = e; resolve(!e); });
    });
  }

  /** Send a CDP request as one masked text frame. */
  send(obj) {
    return this.write(wsFrame(0x1, typeof obj === 'string' ? obj : JSON.stringify(obj)));
  }

  /** Wait until pred(message.json) holds for a message; that message. */
  async waitMessage(pred, ms = slow(10000), what = 'a message') {
    const deadline = performance.now() + ms;
    for (;;) {
      const m = this.messages.find((x) => x.json && pred(x.json));
      if (m) return m.json;
      if (this.closed) throw new Error(`connection closed while waiting for ${what} (close frame ${JSON.stringify(this.closeFrame)})`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no ${what} within ${ms} ms (messages: ${this.messages.map((x) => x.text.slice(0, 120)).join(' | ').slice(0, 1500)})`);
      await this._changed(left);
    }
  }

  /** Resolve true once the server closed the TCP connection, false after ms. */
  async waitClosed(ms) {
    const deadline = performance.now() + ms;
    while (!this.closed) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await this._changed(left);
    }
    return true;
  }

  /** Resolve once at least n bytes came in (true) or after ms (false). */
  async waitBytes(n, ms) {
    const deadline = performance.now() + ms;
    while (this.bytesIn < n) {
      if (this.closed) return false;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await this._changed(left);
    }
    return true;
  }

  destroy() { this.sock?.destroy(); }
}

// ---- a preloaded helper that fills the heap tracker with many small blocks ---------

const BLOCKS_C = String.raw`
/* LD_PRELOADed into proflabd by the inspector tests: when the file named by
 * PL_TEST_BLOCKS_GO appears, a thread allocates PL_TEST_BLOCKS blocks of
 * 16..48 bytes (through a named function, so a heap snapshot groups
 * them), keeps them, and creates PL_TEST_BLOCKS_GO.done. The lab cannot
 * make many small live blocks by itself (its leak is 1 MiB chunks), and a
 * large heap snapshot is what the back-pressure cases need. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void **blocks;

__attribute__((noinline, used)) void *inspector_test_block_alloc(size_t n) {
  void *p = malloc(n);
  if (p) memset(p, 0x5a, n < 16 ? n : 16);
  __asm__ volatile("" ::: "memory");
  return p;
}

static void *run(void *arg) {
  (void)arg;
  const char *go = getenv("PL_TEST_BLOCKS_GO");
  unsigned long n = strtoul(getenv("PL_TEST_BLOCKS"), NULL, 10);
  while (access(go, F_OK) != 0) usleep(20000);
  blocks = calloc(n ? n : 1, sizeof(void *));
  unsigned long x = 88172645463325252ul;
  for (unsigned long i = 0; blocks && i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    blocks[i] = inspector_test_block_alloc(16 + x % 33);
  }
  char done[4096];
  snprintf(done, sizeof(done), "%s.done", go);
  FILE *f = fopen(done, "w");
  if (f) fclose(f);
  return NULL;
}

__attribute__((constructor)) static void start(void) {
  if (!getenv("PL_TEST_BLOCKS") || !getenv("PL_TEST_BLOCKS_GO")) return;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread takes none of the process's signals */
  pthread_t t;
  if (pthread_create(&t, NULL, run, NULL) == 0) pthread_detach(t);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}
`;

let blocksSo;
/**
 * Build the blocks preload (cc, into a temp dir, once per process).
 * Returns its path, or {skip: reason}.
 */
export function blocksPreload() {
  if (blocksSo) return blocksSo;
  if (SANITIZED) return (blocksSo = { skip: 'an ASan proflabd cannot take a non-ASan LD_PRELOAD' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-inspector-blocks-'));
  const src = path.join(dir, 'blocks.c');
  const so = path.join(dir, 'blocks.so');
  fs.writeFileSync(src, BLOCKS_C);
  const r = spawnSync(process.env.CC || 'cc', ['-O2', '-g', '-fPIC', '-shared', '-pthread', '-fno-omit-frame-pointer', '-o', so, src], { encoding: 'utf8' });
  if (r.status !== 0) return (blocksSo = { skip: `cannot build the blocks preload with cc: ${r.error?.message || r.stderr}` });
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return (blocksSo = so);
}

/** Environment for a proflabd that will hold n extra blocks once blocksGo(env) runs. */
export function blocksEnv(so, n) {
  const go = path.join(os.tmpdir(), `pl-inspector-blocks-go-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  return { LD_PRELOAD: so, PL_TEST_BLOCKS: String(n), PL_TEST_BLOCKS_GO: go };
}

/** Trigger the allocation and wait until it is done. */
export async function blocksGo(env, ms = slow(60000)) {
  const go = env.PL_TEST_BLOCKS_GO;
  fs.writeFileSync(go, '');
  const deadline = Date.now() + ms;
  try {
    while (!fs.existsSync(`${go}.done`)) {
      if (Date.now() > deadline) throw new Error(`the blocks preload did not finish within ${ms} ms`);
      await sleep(50);
    }
  } finally {
    fs.rmSync(go, { force: true });
    fs.rmSync(`${go}.done`, { force: true });
  }
}

/** Where test artifacts (screenshots) go: $PROFLAB_ARTIFACTS_DIR or build/test-artifacts/. */
export function artifactsDir(repoRoot) {
  const d = process.env.PROFLAB_ARTIFACTS_DIR || path.join(repoRoot, 'build', 'test-artifacts');
  fs.mkdirSync(d, { recursive: true });
  return d;
}
