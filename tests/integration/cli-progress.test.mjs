// proflab's progress line (programs/proflab/progress.c) on a real terminal:
// the CLI runs under a pseudo-terminal (`script` from util-linux) with its
// stdout sent to a file, so what reaches the terminal is stderr alone. A
// long `proflab profile --seconds 2` against a real proflabd, `proflab top`
// on a generated 8 MiB folded file and on a Node heap snapshot over 4 MiB
// show "\r...\x1b[K" redraws that end erased; with stderr piped (or
// PROFLAB_PROGRESS=0, or TERM=dumb) there is no progress text at all, and
// stdout is byte-identical either way.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { labEnv, scratch, GOOD_TOKEN, REPO_ROOT, slow } from './helpers.mjs';

/** The CLI under test: $PROFLAB_CLI (relative to the repo root), default build/proflab. */
const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
const HAVE_SCRIPT = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0
  ? false : 'script (util-linux, Debian package bsdutils) is not installed';

const sc = scratch();
let srv;
let work;
let bigFolded; // > 4 MiB: top shows "reading FILE"
let bigSnap; // a Node .heapsnapshot > 4 MiB: "reading", then "computing retained sizes"

before(async () => {
  work = sc.tmpDir('progress');
  srv = await sc.start(labEnv({ LAB_ARTIFACT_DIR: sc.tmpDir('progress-lab') }));
  bigFolded = path.join(work, 'big.folded');
  // 8 MiB of distinct stacks of 6 frames (deterministic)
  const lines = [];
  let x = 12345;
  const rnd = (n) => { x = (x * 1103515245 + 12345) % 2147483648; return x % n; };
  for (let size = 0; size < 8 << 20;) {
    const stack = [];
    for (let d = 0; d < 6; d++) stack.push(`fn_${d}_${rnd(40)}`);
    const l = `${stack.join(';')} ${1 + rnd(99)}\n`;
    lines.push(l);
    size += l.length;
  }
  fs.writeFileSync(bigFolded, lines.join(''));
  bigSnap = path.join(work, 'objects.heapsnapshot');
  execFileSync(process.execPath, ['-e', `
    class Held { constructor(i) { this.i = i; this.s = 'x' + i; this.a = [i, i + 1]; } }
    globalThis.held = []; for (let i = 0; i < 60000; i++) held.push(new Held(i));
    require('v8').writeHeapSnapshot(${JSON.stringify(bigSnap)});`], { stdio: 'pipe' });
  assert.ok(fs.statSync(bigSnap).size > 4 << 20, 'the heap snapshot is over 4 MiB');
});
after(() => sc.cleanup());

function baseEnv(extra) {
  const env = { PATH: process.env.PATH || '/usr/bin:/bin', SHELL: '/bin/sh', LAB_URL: srv.base, LAB_TOKEN: GOOD_TOKEN };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
  const full = { ...env, ...extra };
  for (const [k, v] of Object.entries(full)) if (v === undefined) delete full[k];
  return full;
}

const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** Runs `proflab args` with stdout (and stdin) redirected and stderr on a
 * pseudo-terminal: {code, term (what the terminal got), stdout (Buffer)}. */
function onTerminal(args, { env = {}, timeoutMs = slow(60000) } = {}) {
  const outFile = path.join(work, `tty-out-${process.hrtime.bigint()}`);
  const cmd = `${[CLI, ...args].map(shq).join(' ')} >${shq(outFile)} </dev/null`;
  return new Promise((resolve, reject) => {
    // stdin a pipe kept open: script then only waits for the command
    const p = spawn('script', ['-qfec', cmd, '/dev/null'], { env: baseEnv(env), cwd: work, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    let err = '';
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`script proflab ${args.join(' ')}: no exit within ${timeoutMs} ms`)); }, timeoutMs);
    p.on('error', (e) => { clearTimeout(t); reject(e); });
    p.on('close', (code) => {
      clearTimeout(t);
      p.stdin.destroy();
      const stdout = fs.readFileSync(outFile);
      fs.rmSync(outFile, { force: true });
      resolve({ code, term: Buffer.concat(out).toString('utf8'), stdout, scriptErr: err });
    });
  });
}

/** Runs `proflab args` with stdout and stderr piped: {code, stdout (Buffer), stderr}. */
function piped(args, { env = {}, timeoutMs = slow(60000) } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(CLI, args, { env: baseEnv(env), cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    let stderr = '';
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`proflab ${args.join(' ')}: no exit within ${timeoutMs} ms`)); }, timeoutMs);
    p.on('error', (e) => { clearTimeout(t); reject(e); });
    p.on('close', (code) => { clearTimeout(t); resolve({ code, stdout: Buffer.concat(out), stderr }); });
  });
}

/** The redraws in what the terminal got: each "\r" TEXT "\x1b[K". */
const REDRAW = /\r([^\r\n\x1b]*)\x1b\[K/g;
function redraws(term) {
  return [...term.matchAll(REDRAW)].map((m) => m[1]);
}

/** Progress on the terminal, and nothing else: redraws only, the last one erasing the line. */
function assertProgressOnly(r, what) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}; terminal: ${JSON.stringify(r.term)}`);
  assert.ok(r.term.includes('\r'), `${what}: the terminal got \\r redraws: ${JSON.stringify(r.term)}`);
  assert.equal(r.term.replace(REDRAW, ''), '', `${what}: only progress on stderr: ${JSON.stringify(r.term)}`);
  assert.ok(r.term.endsWith('\r\x1b[K'), `${what}: the line is erased at the end: ${JSON.stringify(r.term.slice(-120))}`);
  for (const line of redraws(r.term)) assert.ok(line.length <= 79, `${what}: within 80 columns: ${line}`);
  return redraws(r.term).filter(Boolean);
}

test('proflab top on an 8 MiB folded file: "reading FILE" with percentage, bytes and rate on a terminal; nothing piped; same stdout', { skip: HAVE_SCRIPT }, async () => {
  const tty = await onTerminal(['top', bigFolded, '--limit', '5']);
  const lines = assertProgressOnly(tty, 'top on a terminal');
  assert.ok(lines.every((l) => l.startsWith('proflab top: reading ')), lines.join('\n'));
  assert.ok(lines.some((l) => /\d+% \d+\.\d\/8\.\d MiB/.test(l)), `a percentage of the 8 MiB: ${lines.join('\n')}`);
  // the rate appears once 0.2 s have passed: on a fast machine the whole read may be quicker
  for (const l of lines.filter((x) => x.includes('/s'))) assert.match(l, /, \d+(\.\d)? (B|[KMG]iB)\/s$/, 'a well-formed rate');
  const pipe = await piped(['top', bigFolded, '--limit', '5']);
  assert.equal(pipe.code, 0, pipe.stderr);
  assert.equal(pipe.stderr, '', 'no progress text when stderr is piped');
  assert.ok(pipe.stdout.length > 0);
  assert.ok(pipe.stdout.equals(tty.stdout), 'stdout is byte-identical on a terminal and piped');
});

test('proflab top on a Node heap snapshot over 4 MiB: reading, then "computing retained sizes"; same stdout piped', { skip: HAVE_SCRIPT }, async () => {
  const tty = await onTerminal(['top', bigSnap, '--limit', '5']);
  const lines = assertProgressOnly(tty, 'top on a snapshot');
  assert.ok(lines.some((l) => l.startsWith('proflab top: reading ')), lines.join('\n'));
  assert.ok(lines.some((l) => l === 'proflab top: computing retained sizes'), lines.join('\n'));
  const pipe = await piped(['top', bigSnap, '--limit', '5']);
  assert.equal(pipe.code, 0, pipe.stderr);
  assert.equal(pipe.stderr, '');
  assert.ok(pipe.stdout.equals(tty.stdout), 'stdout is byte-identical on a terminal and piped');
});

test('PROFLAB_PROGRESS=0 and TERM=dumb: nothing on the terminal, same stdout', { skip: HAVE_SCRIPT }, async () => {
  const shown = await onTerminal(['top', bigFolded, '--limit', '3'], { env: { TERM: 'xterm' } });
  assert.ok(shown.term.includes('reading'), 'shown with TERM=xterm');
  for (const env of [{ PROFLAB_PROGRESS: '0', TERM: 'xterm' }, { TERM: 'dumb' }]) {
    const r = await onTerminal(['top', bigFolded, '--limit', '3'], { env });
    assert.equal(r.code, 0);
    assert.equal(r.term, '', `${JSON.stringify(env)}: nothing on the terminal`);
    assert.ok(r.stdout.equals(shown.stdout), `${JSON.stringify(env)}: the same stdout`);
  }
  // a small file shows nothing either
  const small = path.join(work, 'small.folded');
  fs.writeFileSync(small, 'main;work 10\nmain;idle 5\n');
  const r = await onTerminal(['top', small]);
  assert.equal(r.code, 0);
  assert.equal(r.term, '', 'no progress for a file under 4 MiB');
});

test('proflab profile --seconds 2 against a real proflabd: elapsed/total seconds with a bar, then the download; piped: nothing', { skip: HAVE_SCRIPT }, async () => {
  const tty = await onTerminal(['profile', '--seconds', '2', '-o', 'tty.cpuprofile']);
  const lines = assertProgressOnly(tty, 'profile on a terminal');
  assert.ok(lines.some((l) => /^proflab profile: recording a CPU profile {2}\[#*\.*\] [01]\/2 s$/.test(l)),
    `a bar with elapsed/total seconds: ${lines.join('\n')}`);
  assert.ok(lines.some((l) => /^proflab profile: downloading cpu-/.test(l)), lines.join('\n'));
  assert.match(tty.stdout.toString(), /^tty\.cpuprofile: cpu-\S+ \(.+\) from task \S+, sha256 [0-9a-f]{64} \(verified\)\n$/);
  assert.ok(fs.statSync(path.join(work, 'tty.cpuprofile')).size > 0);

  const pipe = await piped(['profile', '--seconds', '2', '-o', 'pipe.cpuprofile']);
  assert.equal(pipe.code, 0, pipe.stderr);
  assert.equal(pipe.stderr, '', 'no progress text when stderr is piped');
  assert.match(pipe.stdout.toString(), /^pipe\.cpuprofile: cpu-\S+ \(.+\) from task \S+, sha256 [0-9a-f]{64} \(verified\)\n$/);
});

test('proflab snapshot on a terminal: waiting, then the download; --json output unchanged in shape', { skip: HAVE_SCRIPT }, async () => {
  const tty = await onTerminal(['snapshot', '-o', 'tty.heapsnapshot', '--json']);
  const lines = assertProgressOnly(tty, 'snapshot on a terminal');
  assert.ok(lines.some((l) => /^proflab snapshot: (the lab takes a heap snapshot|downloading heapdump-)/.test(l)), lines.join('\n'));
  const j = JSON.parse(tty.stdout.toString());
  assert.equal(j.file, 'tty.heapsnapshot');
  assert.equal(j.verified, true);
});
