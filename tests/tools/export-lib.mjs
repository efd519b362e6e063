// Shared by the `proflab export` tests (tests/integration/export-*.test.mjs):
// runs the client against exec-sim and the fake aws/kubectl/docker, makes
// source files, and checks the export property after every run:
//   exit 0  -> LOCAL has the source's SHA-256
//   exit !0 -> LOCAL does not exist (and exit 3 leaves resume state)
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');
export const PROFLABD = path.resolve(REPO_ROOT, process.env.PROFLABD || 'build/proflabd');
export const BUILD = path.dirname(PROFLABD);
export const PROFLAB = path.join(BUILD, 'proflab');
export const SIM_DIR = path.join(BUILD, 'tests', 'tools');
export const FAKE_BIN = path.join(here, 'fake-bin');
export const SANITIZED = process.env.PROFLAB_SANITIZED === '1';
export const EXIT = { OK: 0, FAIL: 1, USAGE: 2, RESUMABLE: 3 };

const PASS = ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS', 'HOME'];

/** A fresh temporary directory, removed at exit. */
const made = [];
process.on('exit', () => { for (const d of made) fs.rmSync(d, { recursive: true, force: true }); });
export function tmpdir(tag = 'export') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `proflab-${tag}-`));
  made.push(d);
  return d;
}

/** PATH with the fakes, exec-sim and the build's proflabd first. */
export function testPath(extra = []) {
  return [...extra, FAKE_BIN, SIM_DIR, BUILD, process.env.PATH || '/usr/bin:/bin'].join(':');
}

/** Runs `proflab export ARGS`; resolves {code, signal, stdout, stderr}. */
export function runExport(args, { env = {}, timeoutMs = 120000, onSpawn, cwd } = {}) {
  const e = { PATH: testPath(), PROFLAB_EXPORT_BACKOFF_MS: '0', TMPDIR: os.tmpdir() };
  for (const k of PASS) if (process.env[k] !== undefined) e[k] = process.env[k];
  Object.assign(e, env);
  return new Promise((resolve, reject) => {
    const p = spawn(PROFLAB, ['export', ...args], { env: e, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { p.kill('SIGKILL'); }, timeoutMs);
    if (onSpawn) onSpawn(p);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Writes `size` bytes of half-compressible data (JSON-ish text and noise). */
export function makeSource(file, size, seed = 1) {
  let x = seed >>> 0 || 1;
  const rnd = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
  const buf = Buffer.alloc(size);
  let i = 0;
  while (i < size) {
    if (rnd() % 3 === 0) {
      const n = Math.min(size - i, 64 + (rnd() % 512));
      for (let k = 0; k < n; k++) buf[i + k] = rnd() & 255;
      i += n;
    } else {
      const line = Buffer.from(`{"id":${rnd() % 100000},"name":"node_${rnd() % 97}","self":${rnd() % 4096}}\n`);
      i += line.copy(buf, i);
    }
  }
  fs.writeFileSync(file, buf);
  return buf;
}

/**
 * Writes about `size` bytes of a .cpuprofile-like JSON (one node object per
 * line, as bench/export/run.sh makes): what `proflab export` mostly carries,
 * and as compressible. Deterministic for a seed.
 */
export function makeProfile(file, size, seed = 12345) {
  const fns = ['work_build_records', 'work_serialize', 'work_hash', 'work_sort', 'on_access', 'MHD_run',
    'uv_run', 'main'];
  const parts = [];
  let n = 0, total = 0, x = seed;
  while (total < size) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const line = `{"id":${n},"callFrame":{"functionName":"${fns[x % 8]}","scriptId":"${1000000 + (x % 7)}",`
      + `"url":"file:///src/app/${fns[(x >> 3) % 8]}.c","lineNumber":${x % 900},"columnNumber":0},`
      + `"hitCount":${x % 50},"children":[${n + 1}]},\n`;
    parts.push(line);
    total += line.length;
    n++;
  }
  fs.writeFileSync(file, parts.join(''));
}

/** A fresh directory holding src.bin of `size` bytes: {dir, src}. */
export function sourceIn(tag, size, seed = 1) {
  const dir = tmpdir(tag);
  const src = path.join(dir, 'src.bin');
  makeSource(src, size, seed);
  return { dir, src };
}

export function sha256File(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Checks the property for one finished run (see the top of this file). */
export function checkRun(r, src, local, what) {
  const ctx = `${what}: exit ${r.code} ${r.signal || ''}\n${r.stderr}`;
  if (r.code === EXIT.OK) {
    assert.ok(fs.existsSync(local), `${ctx}\nexit 0 but no ${local}`);
    assert.equal(sha256File(local), sha256File(src), `${ctx}\nWRONG FILE under the destination name`);
    assert.ok(!fs.existsSync(`${local}.proflab-state`), `${ctx}\nstate left after success`);
    return true;
  }
  assert.ok(!fs.existsSync(local), `${ctx}\nfailed run left ${local}`);
  assert.ok(r.code === EXIT.RESUMABLE || r.code === EXIT.FAIL, `${ctx}\nunexpected exit`);
  if (r.code === EXIT.RESUMABLE) {
    assert.ok(fs.existsSync(`${local}.proflab-state`), `${ctx}\nexit 3 without resume state`);
    assert.ok(fs.existsSync(`${local}.proflab-partial`), `${ctx}\nexit 3 without partial data`);
  }
  return false;
}

/** Reads the sim's session counter (sessions used so far). */
export function sessions(counter) {
  try { return Number.parseInt(fs.readFileSync(counter, 'utf8'), 10) || 0; } catch { return 0; }
}

/**
 * Runs the same export until it succeeds (at most maxRuns), checking the
 * property after each run. Returns {runs, sessions, log}.
 */
export async function exportUntilDone({ dir, src, helper = 'auto', faults = 'none', seed = 1,
  p = 0.35, scale = 0.02, timeout = SANITIZED ? 1.5 : 0.5, retries = 12, maxRuns = 6, channel, extraEnv = {},
  span }) {
  const local = path.join(dir, 'out.bin');
  const counter = path.join(dir, 'sessions');
  const log = path.join(dir, 'sim.log');
  const env = {
    EXECSIM_SEED: String(seed), EXECSIM_FAULTS: faults, EXECSIM_P: String(p),
    EXECSIM_SCALE: String(scale), EXECSIM_COUNTER: counter, EXECSIM_LOG: log,
    EXECSIM_SOURCE: src, ...extraEnv,
  };
  if (span) env.EXECSIM_SPAN = String(span);
  const args = [...(channel || ['--exec', 'exec-sim']), '--helper', helper, '--timeout', String(timeout),
    '--retries', String(retries), '-q', src, local];
  for (let run = 1; run <= maxRuns; run++) {
    const r = await runExport(args, { env });
    const what = `faults=${faults} seed=${seed} helper=${helper} run=${run}`;
    if (checkRun(r, src, local, what)) return { runs: run, sessions: sessions(counter), log };
  }
  const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').slice(-8).join('\n') : '';
  assert.fail(`faults=${faults} seed=${seed} helper=${helper}: not done after ${maxRuns} runs `
    + `(${sessions(counter)} sessions); never a wrong file, but the retry logic should finish\n${tail}`);
}

/** Runs async jobs with at most `limit` at a time. */
export async function pool(jobs, limit) {
  const results = [];
  let next = 0;
  async function worker() {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return results;
}
