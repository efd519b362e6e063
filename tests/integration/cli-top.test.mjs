// proflab top and proflab convert on real artifacts from a proflabd:
// a CPU profile taken during an event-loop jam names lab_event_loop_jam_spin
// first by self time, at its definition in src/lab/harm.c, in every CPU
// format; --json says the same; .cpuprofile -> pprof through `convert`
// agrees with `go tool pprof -top` on the original; a leak in a heap
// profile and a pprof heap shows under lab_memory_leak_allocate, through a
// heapprofile <-> pprof-heap round trip; bad input is one line on stderr
// with the right exit code, and `convert` never leaves a file under OUT
// when it fails.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startProflabd, stopChecked, labEnv, request, GOOD_TOKEN, REPO_ROOT, slow } from './helpers.mjs';
import { profileDuringJam, haveGo, pprof, parseTop, jamSource, JAM_FN, JAM_FILE } from '../clients/lib.mjs';

/** The CLI under test: $PROFLAB_CLI (relative to the repo root), default build/proflab. */
const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
const LEAK_FN = 'lab_memory_leak_allocate';
const GO = haveGo();

let srv;
let labDir;
let work;
let jamProfile; // {info, jam, data} of a 2 s .cpuprofile with a ~1.7 s jam

before(async () => {
  labDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-top-lab-'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-top-'));
  srv = await startProflabd({ env: labEnv({ LAB_ARTIFACT_DIR: labDir, LAB_MAX_LEAK_MB: 64 }) });
  jamProfile = await profileDuringJam(srv, { format: 'cpuprofile', seconds: 2, jamMs: 1700, delayMs: 150 });
});
after(async () => {
  await stopChecked(srv);
  for (const d of [labDir, work]) fs.rmSync(d, { recursive: true, force: true });
});

/** Run the CLI: {code, stdout, stderr}. */
function cli(args, { input, timeoutMs = slow(60000) } = {}) {
  const env = { PATH: process.env.PATH || '/usr/bin:/bin' };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
  return new Promise((resolve, reject) => {
    const p = spawn(CLI, args, { env, cwd: work, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out = [];
    let stderr = '';
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => { stderr += d; });
    if (input !== undefined) p.stdin.end(input);
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`proflab ${args.join(' ')}: no exit within ${timeoutMs} ms`)); }, timeoutMs);
    p.on('error', (e) => { clearTimeout(t); reject(e); });
    p.on('close', (code) => {
      clearTimeout(t);
      const buf = Buffer.concat(out);
      resolve({ code, stdout: buf.toString('utf8'), raw: buf, stderr });
    });
  });
}

async function ok(args, opts) {
  const r = await cli(args, opts);
  assert.equal(r.code, 0, `proflab ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  assert.equal(r.stderr, '', `proflab ${args.join(' ')}: stderr`);
  return r;
}

function assertOneLineError(r, code, pattern, what) {
  assert.equal(r.code, code, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `${what}: one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^proflab (top|convert): /, what);
  if (pattern) assert.match(lines[0], pattern, what);
}

/** Rows of `proflab top` text output: {self, selfPct, total, totalPct, fn, loc}. */
function parseRows(text) {
  const lines = text.split('\n');
  const hi = lines.findIndex((l) => /^\s*self\s+self%\s+total\s+total%\s+function/.test(l));
  assert.ok(hi > 0, `no header in:\n${text}`);
  const rows = [];
  for (const l of lines.slice(hi + 1)) {
    const m = /^\s*([\d.]+)(ms|s)?\s+([\d.]+)%\s+([\d.]+)(ms|s)?\s+([\d.]+)%\s\s(\S.*?)\s*$/.exec(l);
    if (!m) break;
    const ms = (v, u) => Number(v) * (u === 's' ? 1000 : 1);
    const rest = m[7].split(/\s{2,}/);
    rows.push({ self: ms(m[1], m[2]), selfPct: Number(m[3]), total: ms(m[4], m[5]), totalPct: Number(m[6]), fn: rest[0], loc: rest[1] || '' });
  }
  return rows;
}

const isMeta = (name) => /^\(.*\)$/.test(name);

function write(name, data) {
  const p = path.join(work, name);
  fs.writeFileSync(p, data);
  return p;
}

// ---- CPU ----------------------------------------------------------------------

test('top on a real .cpuprofile from the lab: the jam function first by self time, at its definition', async (t) => {
  const { info, jam } = jamProfile;
  const r = await ok(['top', info.path]);
  t.diagnostic(r.stdout.split('\n').slice(0, 8).join(' | '));
  const header = r.stdout.split('\n')[0];
  assert.match(header, /\.cpuprofile \(wall\), \d+ samples, .* at 1\.0\d\d ms each; idle \d+\.\d%/);
  const rows = parseRows(r.stdout);
  assert.equal(rows[0].fn, JAM_FN, `first row by self:\n${r.stdout}`);
  assert.equal(rows.filter((x) => !isMeta(x.fn))[0].fn, JAM_FN);
  const src = jamSource();
  assert.ok(rows[0].loc.endsWith(`${JAM_FILE}:${src.line}`), `location ${rows[0].loc}, want ...${JAM_FILE}:${src.line}`);
  // the jam's own time: what the lab measured, within 10 %
  assert.ok(Math.abs(rows[0].self - jam.jammed_ms) <= 0.1 * jam.jammed_ms, `${rows[0].self} ms self, jammed ${jam.jammed_ms} ms`);
  // total >= self; main is on every non-idle stack
  for (const x of rows) assert.ok(x.total >= x.self - 0.05, `${x.fn}: total < self`);
  // by total, main holds every non-idle sample: as much as the first row (the
  // callers above it tie with it, and how many there are depends on the build)
  const byTotal = parseRows((await ok(['top', '--by', 'total', '--limit', '0', info.path])).stdout);
  const main = byTotal.find((x) => x.fn === 'main');
  assert.ok(main, `main by total:\n${byTotal.map((x) => x.fn)}`);
  assert.ok(Math.abs(main.total - byTotal[0].total) <= 0.01 * byTotal[0].total,
    `main ${main.total} ms total, first row ${byTotal[0].fn} ${byTotal[0].total} ms`);
  for (let i = 1; i < byTotal.length; i++) assert.ok(byTotal[i].total <= byTotal[i - 1].total);
});

test('top --json: the same functions, shares and locations, machine-readable', async () => {
  const { info, jam } = jamProfile;
  const j = JSON.parse((await ok(['top', '--json', '--limit', '0', info.path])).stdout);
  assert.equal(j.format, 'cpuprofile');
  assert.equal(j.type, 'cpu');
  assert.equal(j.mode, 'wall');
  assert.equal(j.samples, info.weight, 'samples = the answer\'s weight (one entry per period)');
  assert.equal(j.functions.length, j.functions_total);
  const first = j.functions[0];
  assert.equal(first.function, JAM_FN);
  assert.ok(first.file.endsWith(JAM_FILE), first.file);
  assert.equal(first.line, jamSource().line);
  assert.ok(Math.abs(first.self_ms - jam.jammed_ms) <= 0.1 * jam.jammed_ms, `${first.self_ms} ms`);
  const idle = j.functions.find((f) => f.function === '(idle)');
  assert.ok(idle && idle.meta, '(idle) is a row of its own, marked meta');
  assert.equal(idle.self_samples, j.idle_samples);
  // top counts periods (a sample's weight fills the periods a loaded machine
  // missed), the answer counts sample entries: they differ by at most the
  // filled-in share
  const filledPct = 100 * (info.weight - info.samples) / info.weight;
  assert.ok(Math.abs(j.idle_pct - 100 * info.idle_samples / info.samples) < 5 + filledPct,
    `idle ${j.idle_pct}% vs answer ${100 * info.idle_samples / info.samples}% (${filledPct}% filled in)`);
  const selfSum = j.functions.reduce((a, f) => a + f.self_samples, 0);
  assert.equal(selfSum, j.samples, 'self over all functions = all samples');
  // crt1's _start has no debug info: no location, not the line of the code before it
  const start = j.functions.find((f) => f.function === '_start');
  if (start) assert.deepEqual([start.file, start.line], ['', 0], 'no source location for _start');
});

test('top reads the lab\'s own pprof and folded profiles, and converted ones, with the same answer', async () => {
  const { info } = jamProfile;
  const want = JSON.parse((await ok(['top', '--json', info.path])).stdout);
  for (const [to, name] of [['pprof', 'c.pb.gz'], ['folded', 'c.folded'], ['cpuprofile', 'c.cpuprofile']]) {
    const out = path.join(work, name);
    await ok(['convert', info.path, '-o', out]);
    assert.ok(!fs.existsSync(`${out}.partial`), 'no .partial left');
    const got = JSON.parse((await ok(['top', '--json', out])).stdout);
    assert.equal(got.format, to);
    assert.equal(got.samples, want.samples, `${to}: samples`);
    for (let i = 0; i < 5; i++) {
      assert.equal(got.functions[i].function, want.functions[i].function, `${to}: row ${i}`);
      assert.equal(got.functions[i].self_samples, want.functions[i].self_samples, `${to}: ${want.functions[i].function}`);
      assert.equal(got.functions[i].total_samples, want.functions[i].total_samples, `${to}: ${want.functions[i].function}`);
    }
  }
  // stdin, and a name that lies about the content
  const data = fs.readFileSync(path.join(work, 'c.pb.gz'));
  const lie = write('really-pprof.cpuprofile', data);
  assert.equal(parseRows((await ok(['top', lie])).stdout)[0].fn, JAM_FN);
  assert.equal(parseRows((await ok(['top', '-'], { input: data })).stdout)[0].fn, JAM_FN);
  // the lab's own pprof and folded artifacts
  for (const format of ['pprof', 'folded']) {
    const p = await profileDuringJam(srv, { format, seconds: 1, jamMs: 800, delayMs: 100 });
    const rows = parseRows((await ok(['top', p.info.path])).stdout);
    assert.equal(rows.filter((x) => !isMeta(x.fn))[0].fn, JAM_FN, `${format}: first non-idle function`);
  }
});

test('convert .cpuprofile -> pprof: go tool pprof -top agrees with proflab top on the original', async (t) => {
  if (!GO) return t.skip('go not installed');
  const { info } = jamProfile;
  const out = path.join(work, 'go.pb.gz');
  await ok(['convert', info.path, '-o', out, '--to', 'pprof']);
  const ours = JSON.parse((await ok(['top', '--json', '--limit', '0', info.path])).stdout);
  const top = parseTop((await pprof(['-top', '-unit=ms', '-nodecount=100', '-nodefraction=0', out])).stdout);
  t.diagnostic(`pprof total ${top.totalMs} ms; ours ${ours.total_ms} ms`);
  const first = [...top.rows].sort((a, b) => b.flat - a.flat)[0];
  assert.equal(first.name, ours.functions[0].function, 'the same top function');
  assert.ok(Math.abs(top.totalMs - ours.total_ms) <= Math.max(2, 0.01 * ours.total_ms), 'the same total');
  for (const f of ours.functions.slice(0, 5)) {
    const row = top.rows.find((r) => r.name === f.function);
    assert.ok(row, `${f.function} missing from pprof -top`);
    assert.ok(Math.abs(row.flatPct - f.self_pct) <= 1, `${f.function}: flat ${row.flatPct}% vs self ${f.self_pct}%`);
    assert.ok(Math.abs(row.cumPct - f.total_pct) <= 1, `${f.function}: cum ${row.cumPct}% vs total ${f.total_pct}%`);
  }
});

// ---- heap ---------------------------------------------------------------------

async function heapArtifact(format) {
  const r = await request(srv.base, `/api/lab/heap-snapshot?format=${format}`, { method: 'POST', token: GOOD_TOKEN, timeoutMs: slow(30000) });
  assert.equal(r.status, 200, r.text);
  return r.body.path;
}

test('top on the lab\'s heap profiles: the leak first by bytes; heapprofile <-> pprof-heap keeps it', async (t) => {
  const leak = await request(srv.base, '/api/lab/memory-leak?mb=32', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(leak.status, 200, leak.text);
  try {
    for (const format of ['heapprofile', 'pprof']) {
      const file = await heapArtifact(format);
      const r = await ok(['top', file]);
      t.diagnostic(r.stdout.split('\n').slice(0, 4).join(' | '));
      const j = JSON.parse((await ok(['top', '--json', file])).stdout);
      assert.equal(j.type, 'heap');
      assert.equal(j.format, format === 'pprof' ? 'pprof-heap' : 'heapprofile');
      assert.equal(j.functions[0].function, LEAK_FN);
      const mib = j.functions[0].self_bytes / 1048576;
      assert.ok(mib > 32 * 0.7 && mib < 32 * 1.3, `${LEAK_FN}: ${mib.toFixed(1)} MiB, want ~32`);
      assert.match(r.stdout.split('\n')[2], new RegExp(`MiB .* ${LEAK_FN} `));
      // through the other heap format and back
      const other = path.join(work, format === 'pprof' ? 'h.heapprofile' : 'h.pb.gz');
      await ok(['convert', file, '-o', other]);
      const back = JSON.parse((await ok(['top', '--json', other])).stdout);
      assert.equal(back.functions[0].function, LEAK_FN);
      assert.ok(Math.abs(back.functions[0].self_bytes - j.functions[0].self_bytes) <= 2, 'bytes survive the conversion');
    }
  } finally {
    await request(srv.base, '/api/lab/memory-clear', { method: 'POST', token: GOOD_TOKEN });
  }
});

// ---- errors -------------------------------------------------------------------

test('--help, bad command lines (exit 2), unreadable input (exit 1), one line on stderr', async () => {
  for (const cmd of ['top', 'convert']) {
    const h = await ok([cmd, '--help']);
    assert.match(h.stdout, new RegExp(`^usage: proflab ${cmd} `));
    assert.match(h.stdout, /exit status:/);
  }
  assert.match((await ok(['--help'])).stdout, /^\s+top\s+.*\n\s+convert\s+/m);
  const { info } = jamProfile;
  assertOneLineError(await cli(['top']), 2, /no FILE given/, 'top without a file');
  assertOneLineError(await cli(['top', '--by', 'name', info.path]), 2, /--by 'name' must be self or total/, '--by name');
  assertOneLineError(await cli(['top', '--limit', '-1', info.path]), 2, /--limit/, '--limit -1');
  assertOneLineError(await cli(['top', '--bogus', info.path]), 2, /unknown option/, 'unknown option');
  assertOneLineError(await cli(['top', info.path, info.path]), 2, /one FILE only/, 'two files');
  assertOneLineError(await cli(['convert', info.path]), 2, /no output given/, 'convert without -o');
  assertOneLineError(await cli(['convert', info.path, '-o', 'x.txt']), 2, /cannot tell the output format/, 'unknown extension');
  assertOneLineError(await cli(['convert', info.path, '-o', 'x', '--to', 'svg']), 2, /--to 'svg' must be/, '--to svg');
  assertOneLineError(await cli(['convert', info.path, '-o', '-']), 2, /needs --to/, '-o - without --to');

  const missing = path.join(work, 'missing.cpuprofile');
  assertOneLineError(await cli(['top', missing]), 1, /missing\.cpuprofile: No such file or directory$/, 'missing file');
  // truncated: the offset and what was expected
  const data = fs.readFileSync(info.path);
  const cut = write('cut.cpuprofile', data.subarray(0, Math.floor(data.length / 2)));
  assertOneLineError(await cli(['top', cut]), 1, /cut\.cpuprofile: offset \d+: expected .*, found the end of the file \(truncated\?\)$/, 'truncated');
  const gz = fs.readFileSync(path.join(work, 'c.pb.gz'));
  const cutgz = write('cut.pb.gz', gz.subarray(0, gz.length - 20));
  assertOneLineError(await cli(['top', cutgz]), 1, /gzip data ends early/, 'truncated gzip');
  // garbled: a node pointing nowhere
  const bad = JSON.parse(data.toString('utf8'));
  bad.nodes[0].children.push(999999);
  assertOneLineError(await cli(['top', write('bad.cpuprofile', JSON.stringify(bad))]), 1,
    /offset \d+: node 1 lists child 999999, which does not exist$/, 'child pointing nowhere');
  assertOneLineError(await cli(['top', write('bin.dat', Buffer.from([0x08, 0x96, 0x01, 0x1f, 0xff, 0x02]))]), 1,
    /bin\.dat: offset \d+: expected/, 'binary garbage');
  assertOneLineError(await cli(['top', write('empty', '')]), 1, /empty: offset 0: expected a profile, found an empty file$/, 'empty');

  // a heap snapshot: read (cli-top-heapsnapshot.test.mjs checks it against DevTools);
  // the other commands refuse it
  const snap = await heapArtifact('heapsnapshot');
  const rs = await cli(['top', snap]);
  assert.equal(rs.code, 0, rs.stderr);
  assert.match(rs.stdout, /heapsnapshot, \d+ objects/);
  assertOneLineError(await cli(['convert', snap, '-o', '-', '--to', 'pprof']), 1, /\.heapsnapshot: heap snapshots: not supported by proflab convert \(only by top, flame and diff\)$/, 'heapsnapshot');
});

test('convert: OUT.partial then rename; nothing under OUT when it fails; -o - writes to stdout', async () => {
  const { info } = jamProfile;
  const out = path.join(work, 'conv.heapprofile');
  assertOneLineError(await cli(['convert', info.path, '-o', out]), 1,
    /a \.cpuprofile cannot be written as heapprofile \(a heap format\)$/, 'CPU to a heap format');
  assert.ok(!fs.existsSync(out) && !fs.existsSync(`${out}.partial`), 'nothing written');
  // an existing OUT stays as it was when the input is bad
  const keep = write('keep.pb.gz', 'previous');
  assertOneLineError(await cli(['convert', write('junk.cpuprofile', '{"nodes":['), '-o', keep]), 1, /offset/, 'bad input');
  assert.equal(fs.readFileSync(keep, 'utf8'), 'previous');
  assert.ok(!fs.existsSync(`${keep}.partial`));
  // an unwritable destination: the reason, nothing left
  const ro = path.join(work, 'nodir', 'x.pb.gz');
  assertOneLineError(await cli(['convert', info.path, '-o', ro]), 1, /cannot create .*: No such file or directory$/, 'no directory');
  // to pprof, samples of one stack are merged, and split again above 2^32 - 1
  const huge = write('huge.folded', 'main;a 4294967295\nmain;b 1\nmain;a 4294967295\n');
  await ok(['convert', huge, '-o', path.join(work, 'huge.pb.gz')]);
  const hj = JSON.parse((await ok(['top', '--json', path.join(work, 'huge.pb.gz')])).stdout);
  assert.equal(hj.samples, 2 * 4294967295 + 1);
  assert.equal(hj.functions[0].function, 'a');
  assert.equal(hj.functions[0].self_samples, 2 * 4294967295);
  // stdout
  const r = await cli(['convert', info.path, '-o', '-', '--to', 'folded']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`;${JAM_FN} \\d+\\n`));
  const again = await ok(['top', '-'], { input: r.raw });
  assert.equal(parseRows(again.stdout)[0].fn, JAM_FN);
});
