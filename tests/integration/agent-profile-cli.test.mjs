// `proflab profile --mode/--threads/--offcpu` against a real agent
// (tests/programs/agent-threads: one busy thread, threads waiting in
// epoll_wait, a futex, nanosleep and read): --offcpu in wall mode shows
// where a waiting thread waits (the blocking function under the program's
// caller) instead of "(idle)"; --threads samples only the named threads;
// --mode cpu reaches the lab; bad values are refused before anything is
// sent (exit 2), a tid that is not the program's by the lab (exit 1, its
// message).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CLI, program, runUnderAgent, agentEnv, decodePprof } from './agent-lib.mjs';

const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-agent-profile-cli-'));
let p;
let url;
const tids = {};

before(async () => {
  p = await runUnderAgent([program('agent-threads'), '120'], { env: { LAB_ARTIFACT_DIR: dir } });
  const out = await p.waitFor((s) => /^ready$/m.test(s.stdout) && s.stdout);
  for (const m of out.matchAll(/^thread (\S+) (\d+)$/gm)) tids[m[1]] = Number(m[2]);
  url = `unix:${p.lab.socketPath}`;
});
after(async () => {
  if (p) await p.stop('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

const cliEnv = () => agentEnv({ LAB_TOKEN: undefined, PROFLAB_PROGRESS: '0' });
const cli = (args) => run(CLI, ['profile', '--url', url, ...args], { env: cliEnv(), timeout: 120000 });
const cliFails = (args) => cli(args).then(
  (r) => assert.fail(`proflab profile ${args.join(' ')} succeeded: ${r.stdout}`),
  (e) => e);

/** proflab profile ARGS --format pprof --json: the CLI's answer and the samples by thread name. */
async function profile(name, args) {
  const out = path.join(dir, `${name}.pb.gz`);
  const r = await cli(['--seconds', '1', '--format', 'pprof', '-o', out, '--json', ...args]);
  const answer = JSON.parse(r.stdout);
  assert.equal(answer.verified, true);
  const byThread = {};
  for (const s of decodePprof(fs.readFileSync(out)).samples) (byThread[s.labels.thread_name] ||= []).push(s);
  return { lab: answer.lab, byThread };
}
const weight = (samples) => (samples || []).reduce((a, s) => a + s.values[0], 0);

test('--mode wall --offcpu: a waiting thread shows where it waits; without it, (idle)', async () => {
  const off = await profile('offcpu', ['--mode', 'wall', '--offcpu']);
  assert.equal(off.lab.mode, 'wall');
  assert.equal(off.lab.offcpu, true);
  const futex = off.byThread['t-futex'] || [];
  assert.ok(weight(futex) > 0, `no samples of t-futex: ${Object.keys(off.byThread)}`);
  const waiting = futex.filter((s) => s.stack.includes('threads_test_wait_cond') && /futex|pthread_cond_wait/.test(s.stack[0]));
  assert.ok(weight(waiting) >= weight(futex) * 0.9, `t-futex: ${futex.slice(0, 3).map((s) => s.stack.join(' < '))}`);
  const sleep = off.byThread['t-sleep'] || [];
  assert.ok(weight(sleep.filter((s) => s.stack.includes('threads_test_wait_sleep'))) >= weight(sleep) * 0.9);

  const idle = await profile('idle', []);
  assert.equal(idle.lab.offcpu, false);
  const f = idle.byThread['t-futex'] || [];
  assert.ok(weight(f) > 0);
  assert.ok(f.every((s) => s.stack.length === 1 && s.stack[0] === '(idle)'), `t-futex without --offcpu: ${f.slice(0, 3).map((s) => s.stack.join(' < '))}`);
});

test('--threads samples only the named threads', async () => {
  const want = [tids['t-busy'], tids['t-read']].sort();
  const r = await profile('threads', ['--threads', `${tids['t-busy']},${tids['t-read']}`]);
  assert.deepEqual(r.lab.thread_list.map((t) => t.tid).sort(), want);
  assert.deepEqual(Object.keys(r.byThread).sort(), ['t-busy', 't-read']);
  assert.ok(weight(r.byThread['t-busy'].filter((s) => s.stack.includes('threads_test_busy_spin'))) > 0);
  const all = await profile('all', ['--threads', 'all']);
  assert.ok(all.lab.thread_list.length >= 6, JSON.stringify(all.lab.thread_list));
});

test('--mode cpu reaches the lab', async () => {
  const r = await profile('cpu', ['--mode', 'cpu']);
  assert.equal(r.lab.mode, 'cpu');
  assert.ok(weight(r.byThread['t-busy']) > 0, Object.keys(r.byThread).join(','));
});

test('bad values: refused before anything is sent (2); a tid not of the program: the lab says so (1)', async () => {
  const usage = [
    [['--mode', 'fast'], /--mode 'fast' must be wall or cpu/],
    [['--threads', 'busy'], /--threads 'busy' must be all or thread ids/],
    [['--threads', `${tids['t-busy']},`], /--threads .* must be all or thread ids/],
    [['--threads', `${tids['t-busy']},${tids['t-busy']}`], /names thread \d+ twice/],
    [['--threads', Array.from({ length: 65 }, (_, i) => i + 1).join(',')], /more than 64 threads/],
    [['--mode', 'cpu', '--threads', String(tids['t-busy'])], /--threads is for --mode wall/],
    [['--mode', 'cpu', '--offcpu'], /--offcpu is for --mode wall/],
    [['--offcpu=1'], /doesn't allow an argument|unknown option|needs no value/],
  ];
  const artifacts = () => fs.readdirSync(dir).filter((f) => f.startsWith('cpu-')).length;
  const before = artifacts();
  for (const [args, re] of usage) {
    const e = await cliFails(args);
    assert.equal(e.code, 2, `${args.join(' ')}: ${e.stderr}`);
    assert.equal(e.stderr.trim().split('\n').length, 1, e.stderr);
    assert.match(e.stderr, re, args.join(' '));
  }
  assert.equal(artifacts(), before, 'a refused command line started a profile');
  const e = await cliFails(['--seconds', '1', '--threads', '1']);
  assert.equal(e.code, 1, e.stderr);
  assert.match(e.stderr, /not a thread of this program/);
});
