// `go tool pprof` (Debian's golang-go) reads proflab's pprof profiles.
//
// 1. A wall-mode profile taken while the event loop is jammed: -top names the
//    jam function as the hot non-idle function, -traces shows it under its
//    callers down to main, -lines and -list put the time on the jam loop's
//    lines in src/lab/harm.c.
// 2. A cpu-mode profile taken under back-to-back GET /api/work?n=200000:
//    the time is in the handler's named work functions.
// 3. The source files are usable by pprof from the repository (no flags).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  diag, startLab, profileDuringJam, profileDuringWork, haveGo, pprof, parseTop, parseTraces, loud,
  JAM_FN, JAM_FILE, jamSource, PROFLABD, REPO_ROOT,
} from './lib.mjs';

const GO = haveGo();
if (!GO) loud('go is not installed: the go tool pprof tests are SKIPPED (scripts/deps.sh test installs golang-go; CI must have it)');

const isMeta = (name) => /^\(.*\)$/.test(name); // (idle), (program), (root)
const WORK_FN = /^work_(build_records|serialize|hash|sort)(\.|$)/; // GCC may add .isra.0/.part.N
const share = (a, b) => (b > 0 ? a / b : 0);

let lab;
let jamProfile; // {info, jam, data} of test 1, reused by test 3

before(async () => {
  if (GO) lab = await startLab();
});
after(async () => {
  await lab?.close();
});

test('go tool pprof: the jam function is the top non-idle function of a wall-mode profile, at src/lab/harm.c', async (t) => {
  if (!GO) return t.skip('go not installed');
  jamProfile = await profileDuringJam(lab.srv, { format: 'pprof', seconds: 3, jamMs: 1500, delayMs: 200 });
  const { info, jam } = jamProfile;
  const file = info.path;
  assert.match(file, /\.pb\.gz$/);
  const periodMs = info.interval_us / 1000;

  // -top
  const topOut = (await pprof(['-top', '-unit=ms', '-nodecount=50', '-nodefraction=0', file])).stdout;
  const top = parseTop(topOut);
  diag(t, `pprof -top:\n${topOut.split('\n').slice(0, 16).join('\n')}`);
  assert.match(top.header, /Type: cpu/, 'sample type');
  assert.ok(Math.abs(top.totalMs - info.weight * periodMs) <= Math.max(2, 0.01 * top.totalMs),
    `pprof's total ${top.totalMs} ms vs the answer's weight ${info.weight} × ${periodMs} ms`);
  assert.ok(Math.abs(top.totalMs - info.duration_ms) <= 0.03 * info.duration_ms,
    `wall mode: pprof's total ${top.totalMs} ms vs the profile's duration ${info.duration_ms} ms`);
  const idle = top.rows.find((r) => r.name === '(idle)');
  assert.ok(idle, `no (idle) row in:\n${topOut}`);
  const nonIdleMs = top.totalMs - idle.flat;
  const first = top.rows.filter((r) => !isMeta(r.name)).sort((a, b) => b.flat - a.flat)[0];
  assert.equal(first.name, JAM_FN, `top non-idle function by flat time:\n${topOut}`);
  assert.ok(share(first.flat, nonIdleMs) >= 0.9,
    `${JAM_FN} has ${first.flat} ms of ${nonIdleMs} ms non-idle (${(100 * share(first.flat, nonIdleMs)).toFixed(1)}%, want >= 90%)`);
  assert.ok(Math.abs(first.cum - jam.jammed_ms) <= 0.1 * jam.jammed_ms,
    `${JAM_FN}: ${first.cum} ms cumulative in the profile, the jam lasted ${jam.jammed_ms} ms`);

  // -traces: the jam's stacks keep their callers through libmicrohttpd and libuv
  const traces = parseTraces((await pprof(['-traces', '-unit=ms', file])).stdout);
  const jamTraces = traces.filter((tr) => tr.stack.includes(JAM_FN));
  const jamMs = jamTraces.reduce((a, tr) => a + tr.ms, 0);
  assert.ok(Math.abs(jamMs - first.cum) <= 2, `-traces has ${jamMs} ms under ${JAM_FN}, -top ${first.cum} ms`);
  const whole = jamTraces.filter((tr) => {
    const k = tr.stack.indexOf(JAM_FN);
    return tr.stack[k + 1] === 'on_jam' && tr.stack.includes('main') && tr.stack.includes('uv_run');
  }).reduce((a, tr) => a + tr.ms, 0);
  assert.ok(share(whole, jamMs) >= 0.99,
    `only ${whole} of ${jamMs} ms of ${JAM_FN}'s stacks go on_jam ... uv_run ... main; e.g.\n${jamTraces.slice(0, 3).map((tr) => tr.stack.join(' <- ')).join('\n')}`);

  // -lines: file:line of the jam's samples, inside the function in src/lab/harm.c
  const src = jamSource();
  const linesOut = (await pprof(['-top', '-lines', '-unit=ms', '-nodecount=500', '-nodefraction=0', file])).stdout;
  const lineRows = parseTop(linesOut).rows.filter((r) => r.name.startsWith(`${JAM_FN} `));
  assert.ok(lineRows.length > 0, `no ${JAM_FN} rows in pprof -lines:\n${linesOut}`);
  let onLines = 0;
  for (const r of lineRows) {
    const m = /^\S+ (\S+):(\d+)$/.exec(r.name);
    assert.ok(m, `pprof -lines row without file:line: ${JSON.stringify(r.name)}`);
    assert.ok(m[1].endsWith(JAM_FILE), `${JAM_FN}'s samples are attributed to ${m[1]}, not ${JAM_FILE}`);
    const line = Number(m[2]);
    assert.ok(line >= src.line && line <= src.end, `${JAM_FN} sample at line ${line}, outside its body ${src.line}..${src.end}`);
    onLines += r.flat;
  }
  assert.ok(Math.abs(onLines - first.flat) <= Math.max(3, 0.01 * first.flat),
    `-lines gives ${onLines} ms to ${JAM_FN}'s lines, -top ${first.flat} ms (some rows lost their line?)`);
  diag(t, `pprof -lines: ${lineRows.slice(0, 4).map((r) => `${r.name} ${r.flat}ms`).join(', ')}`);

  // -list with the build directory as source path (the compiler ran there,
  // and the profile's file names are relative to it; see the last test)
  const buildDir = path.dirname(PROFLABD);
  const listOut = (await pprof(['-list', `^${JAM_FN}$`, '-unit=ms', '-source_path', buildDir, file], { cwd: buildDir })).stdout;
  assert.match(listOut, new RegExp(`ROUTINE =+ ${JAM_FN} in \\S*${JAM_FILE.replace(/\./g, '\\.')}`), listOut);
  assert.doesNotMatch(listOut, /could not find file/, listOut);
  const listed = [];
  for (const l of listOut.split('\n')) {
    const m = /^\s*(\S+)\s+(\S+)\s+(\d+):(.*)$/.exec(l);
    if (m) listed.push({ flat: m[1] === '.' ? 0 : parseFloat(m[1]), line: Number(m[3]), text: m[4] });
  }
  assert.ok(listed.length >= src.end - src.line, `pprof -list printed ${listed.length} source lines:\n${listOut}`);
  for (const l of listed) {
    assert.equal(l.text.trim(), (src.lines[l.line - 1] ?? '').trim(), `pprof -list line ${l.line} is not ${JAM_FILE}'s`);
  }
  const hottest = listed.reduce((a, b) => (b.flat > a.flat ? b : a));
  assert.ok(hottest.line > src.line && hottest.line < src.end, `hottest line ${hottest.line} outside ${JAM_FN}`);
  assert.ok(share(hottest.flat, first.flat) >= 0.3, `hottest line has ${hottest.flat} of ${first.flat} ms`);
  diag(t, `pprof -list: hottest ${JAM_FILE}:${hottest.line} ${hottest.flat} ms: ${hottest.text.trim()}`);
});

test('go tool pprof: a cpu-mode profile under GET /api/work names the work functions', async (t) => {
  if (!GO) return t.skip('go not installed');
  const { info, requests } = await profileDuringWork(lab.srv, { format: 'pprof', seconds: 3, mode: 'cpu', n: 200000 });
  assert.equal(info.mode, 'cpu');
  assert.ok(requests >= 3, `only ${requests} /api/work requests during the profile`);
  const file = info.path;
  const topOut = (await pprof(['-top', '-unit=ms', '-nodecount=30', '-nodefraction=0', file])).stdout;
  const top = parseTop(topOut);
  diag(t, `${requests} requests; pprof -top:\n${topOut.split('\n').slice(0, 18).join('\n')}`);
  const periodMs = info.interval_us / 1000;
  assert.ok(Math.abs(top.totalMs - info.weight * periodMs) <= Math.max(2, 0.01 * top.totalMs),
    `pprof's total ${top.totalMs} ms vs the answer's weight ${info.weight} × ${periodMs} ms`);
  assert.ok(top.totalMs >= 500, `only ${top.totalMs} ms of CPU accounted in 3 s of back-to-back work`);
  assert.ok(!top.rows.some((r) => r.name === '(idle)' && r.flat > 0.05 * top.totalMs), 'cpu mode should hardly see (idle)');

  const traces = parseTraces((await pprof(['-traces', '-unit=ms', file])).stdout);
  const total = traces.reduce((a, tr) => a + tr.ms, 0);
  assert.ok(Math.abs(total - top.totalMs) <= 2, `-traces sums to ${total} ms, -top ${top.totalMs} ms`);
  // the handler: on_work; its work: the named functions, or qsort (work_sort
  // tail-calls qsort, so its own frame may be gone from the stack)
  const inWork = (tr) => tr.stack.some((f) => WORK_FN.test(f) || /^qsort(_r)?$/.test(f));
  const handlerMs = traces.filter((tr) => tr.stack.includes('on_work')).reduce((a, tr) => a + tr.ms, 0);
  const workMs = traces.filter((tr) => tr.stack.includes('on_work') && inWork(tr)).reduce((a, tr) => a + tr.ms, 0);
  assert.ok(share(handlerMs, total) >= 0.8, `on_work has ${handlerMs} of ${total} ms`);
  assert.ok(share(workMs, handlerMs) >= 0.8, `the work functions have ${workMs} of on_work's ${handlerMs} ms`);
  const perFn = {};
  for (const tr of traces) {
    for (const f of new Set(tr.stack)) {
      const m = WORK_FN.exec(f);
      if (m) perFn[`work_${m[1]}`] = (perFn[`work_${m[1]}`] || 0) + tr.ms;
    }
  }
  diag(t, `under on_work: ${handlerMs}/${total} ms; in work functions: ${workMs} ms; per function: ${JSON.stringify(perFn)}`);
  assert.ok(Object.keys(perFn).length >= 2, `work functions seen in the stacks: ${JSON.stringify(perFn)}`);

  // the hottest function (flat) does its time inside the work functions
  const hottest = top.rows.filter((r) => !isMeta(r.name)).sort((a, b) => b.flat - a.flat)[0];
  const hotTraces = traces.filter((tr) => tr.stack[0] === hottest.name);
  const hotMs = hotTraces.reduce((a, tr) => a + tr.ms, 0);
  const hotInWork = hotTraces.filter(inWork).reduce((a, tr) => a + tr.ms, 0);
  assert.ok(hotMs > 0, `no trace ends in ${hottest.name}`);
  assert.ok(share(hotInWork, hotMs) >= 0.9,
    `the top function ${hottest.name} (${hottest.flat} ms flat) runs under a work function for only ${hotInWork} of ${hotMs} ms`);
});

// Expected to fail while the symbolizer keeps DWARF's file names relative to
// the compilation directory: pprof looks them up under -source_path (default:
// the current directory), so from the repository it looks for
// <repo>/../src/lab/harm.c and finds nothing.
test('go tool pprof -list finds src/lab/harm.c when run from the repository (file names usable by clients)', async (t) => {
  if (!GO) return t.skip('go not installed');
  assert.ok(jamProfile, 'needs the jam profile of the first test');
  const out = await pprof(['-list', `^${JAM_FN}$`, jamProfile.info.path], { cwd: REPO_ROOT });
  const routine = /ROUTINE =+ \S+ in (\S+)/.exec(out.stdout)?.[1];
  assert.doesNotMatch(out.stdout + out.stderr, /could not find file/,
    `pprof cannot open the profile's source file name ${JSON.stringify(routine)} from ${REPO_ROOT}: ` +
    'the file names in the profile are relative to the build directory (DWARF comp_dir), not absolute\n' + out.stdout);
  assert.match(out.stdout, /lab_event_loop_jam_spin\(uint64_t ms/, out.stdout);
});
