// Wall mode over threads in a program with no proflab code
// (tests/programs/agent-threads.c: one busy thread, threads waiting in
// epoll_wait, a futex, nanosleep and read): by default every thread is
// sampled and the waiting ones are "(idle)"; offcpu=1 keeps their stacks
// (the blocking function and the test program's caller); threads= selects
// and is validated; each sample carries its thread (pprof labels "thread"
// and "thread_name"). Then the SIGPROF refusals: a program that blocks
// SIGPROF in every thread, and one that installs its own handler.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { program, runUnderAgent, labRequest, decodePprof } from './agent-lib.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-agent-threads-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function start(args = []) {
  const p = await runUnderAgent([program('agent-threads'), '120', ...args], { env: { LAB_ARTIFACT_DIR: dir } });
  const out = await p.waitFor((s) => /^ready$/m.test(s.stdout) && s.stdout);
  const tids = {};
  for (const m of out.matchAll(/^thread (\S+) (\d+)$/gm)) tids[m[1]] = Number(m[2]);
  tids['agent-threads'] = tids.main; /* the main thread keeps the program's name */
  return { ...p, tids };
}

async function profile(p, query) {
  const r = await labRequest(p.lab, 'POST', `/api/lab/cpu-profile?seconds=1&format=pprof&${query}`);
  assert.equal(r.status, 200, r.body.toString());
  const prof = decodePprof(fs.readFileSync(path.join(dir, r.json.file)));
  const byThread = {};
  for (const s of prof.samples) {
    const name = s.labels.thread_name;
    (byThread[name] ||= []).push(s);
  }
  return { answer: r.json, prof, byThread };
}

const weight = (samples) => samples.reduce((a, s) => a + s.values[0], 0);

test('wall mode samples every thread; threads waiting in system calls are (idle)', async () => {
  const p = await start();
  try {
    const { answer, byThread } = await profile(p, '');
    const names = answer.thread_list.map((t) => t.name).sort();
    for (const n of ['t-busy', 't-epoll', 't-futex', 't-sleep', 't-read']) assert.ok(names.includes(n), names.join(','));
    assert.ok(!names.some((n) => n.startsWith('proflab-')), `proflab's own threads sampled: ${names}`);
    assert.equal(answer.offcpu, false);
    // each sample is tagged with its thread: the numeric label matches the tid the program printed
    for (const [name, samples] of Object.entries(byThread))
      assert.ok(p.tids[name], `${name} not printed by the program`), assert.ok(samples.every((s) => s.labels.thread === p.tids[name]), name);
    // the busy thread works in its function; the waiting ones are all (idle)
    const busy = byThread['t-busy'];
    assert.ok(busy && weight(busy) > 300, `t-busy: ${busy && weight(busy)}`);
    const inSpin = busy.filter((s) => s.stack.includes('threads_test_busy_spin'));
    assert.ok(weight(inSpin) > weight(busy) * 0.8, `busy stacks: ${busy.slice(0, 3).map((s) => s.stack.join('<'))}`);
    for (const n of ['t-epoll', 't-futex', 't-sleep', 't-read']) {
      const s = byThread[n] || [];
      assert.ok(weight(s) > 300, `${n}: weight ${weight(s)}`);
      const idle = s.filter((x) => x.stack.length === 1 && x.stack[0] === '(idle)');
      assert.ok(weight(idle) >= weight(s) * 0.95, `${n}: ${s.slice(0, 3).map((x) => x.stack.join('<'))}`);
    }
    assert.ok(answer.blocked_samples > 0 && answer.idle_samples >= answer.blocked_samples * 0.95);
  } finally {
    await p.stop('SIGKILL');
  }
});

test('offcpu=1 keeps the stacks of waiting threads: the blocking function and its caller', async () => {
  const p = await start();
  try {
    const { answer, byThread } = await profile(p, 'offcpu=1');
    assert.equal(answer.offcpu, true);
    assert.equal(answer.idle_samples, 0);
    const expect = {
      't-epoll': [/^epoll_wait/, 'threads_test_wait_epoll'],
      't-futex': [/futex|pthread_cond_wait/, 'threads_test_wait_cond'],
      't-sleep': [/nanosleep/, 'threads_test_wait_sleep'],
      't-read': [/^(__libc_)?read$/, 'threads_test_wait_read'],
    };
    for (const [n, [leaf, caller]] of Object.entries(expect)) {
      const s = byThread[n] || [];
      assert.ok(weight(s) > 300, `${n}: weight ${weight(s)}`);
      const good = s.filter((x) => leaf.test(x.stack[0]) && x.stack.includes(caller));
      assert.ok(weight(good) >= weight(s) * 0.9, `${n}: ${s.slice(0, 3).map((x) => x.stack.join(' < '))}`);
    }
  } finally {
    await p.stop('SIGKILL');
  }
});

test('threads= samples the named threads only, and is validated', async () => {
  const p = await start();
  try {
    const { answer, byThread } = await profile(p, `threads=${p.tids['t-busy']},${p.tids['t-epoll']}`);
    assert.deepEqual(answer.thread_list.map((t) => t.tid).sort(), [p.tids['t-busy'], p.tids['t-epoll']].sort());
    assert.deepEqual(Object.keys(byThread).sort(), ['t-busy', 't-epoll']);
    const bad = async (q, status, code, re) => {
      const r = await labRequest(p.lab, 'POST', `/api/lab/cpu-profile?seconds=1&${q}`);
      assert.equal(r.status, status, `${q}: ${r.body}`);
      assert.equal(r.json.error.code, code);
      if (re) assert.match(r.json.error.message, re);
    };
    await bad('threads=1', 422, 'out_of_range', /not a thread of this program/);
    await bad('threads=abc', 400, 'bad_parameter');
    await bad(`threads=${p.tids['t-busy']},${p.tids['t-busy']}`, 400, 'bad_parameter', /twice/);
    await bad(`threads=${p.tids['t-busy']},`, 400, 'bad_parameter');
    await bad(`threads=${p.tids['t-busy']}&mode=cpu`, 400, 'bad_parameter', /mode=wall/);
    await bad('offcpu=2', 422, 'out_of_range');
    // threads=all is the agent's default
    const all = await profile(p, 'threads=all');
    assert.ok(all.answer.thread_list.length >= 6);
  } finally {
    await p.stop('SIGKILL');
  }
});

test('a program that blocks SIGPROF in every thread: status and the profile answer refuse clearly', async () => {
  const p = await start(['block-sigprof']);
  try {
    const st = await labRequest(p.lab, 'GET', '/api/lab/status');
    assert.equal(st.status, 200);
    assert.equal(st.json.profiler.sigprof, 'blocked', JSON.stringify(st.json.profiler));
    assert.match(st.json.profiler.sigprof_message, /blocks SIGPROF/);
    const r = await labRequest(p.lab, 'POST', '/api/lab/cpu-profile?seconds=1');
    assert.equal(r.status, 409, r.body.toString());
    assert.equal(r.json.error.code, 'sigprof_blocked');
    assert.match(r.json.error.message, /blocks SIGPROF/);
    const one = await labRequest(p.lab, 'POST', `/api/lab/cpu-profile?seconds=1&threads=${p.tids['t-busy']}`);
    assert.equal(one.status, 409);
    assert.match(one.json.error.message, new RegExp(`thread ${p.tids['t-busy']} blocks SIGPROF`));
    const cpu = await labRequest(p.lab, 'POST', '/api/lab/cpu-profile?seconds=1&mode=cpu');
    assert.equal(cpu.status, 409, cpu.body.toString());
    // the rest of the lab works
    const snap = await labRequest(p.lab, 'POST', '/api/lab/heap-snapshot');
    assert.equal(snap.status, 200, snap.body.toString());
  } finally {
    await p.stop('SIGKILL');
  }
});

test('a program with its own SIGPROF handler: status says so, a profile is refused', async () => {
  const p = await start(['own-handler']);
  try {
    const st = await labRequest(p.lab, 'GET', '/api/lab/status');
    assert.equal(st.json.profiler.sigprof, 'taken', JSON.stringify(st.json.profiler));
    assert.match(st.json.profiler.sigprof_message, /its own SIGPROF handler/);
    const r = await labRequest(p.lab, 'POST', '/api/lab/cpu-profile?seconds=1');
    assert.equal(r.status, 409, r.body.toString());
    assert.equal(r.json.error.code, 'sigprof_taken');
  } finally {
    await p.stop('SIGKILL');
  }
});

test("a program that replaces the agent's SIGPROF handler during a profile: 409, no profile written", async () => {
  const p = await start(['own-handler-later']);
  try {
    const cpuArtifacts = async () =>
      (await labRequest(p.lab, 'GET', '/api/lab/artifacts')).json.artifacts.filter((a) => a.kind === 'cpu').length;
    const before = await cpuArtifacts();
    const r = await labRequest(p.lab, 'POST', '/api/lab/cpu-profile?seconds=3');
    assert.equal(r.status, 409, r.body.toString());
    assert.equal(r.json.error.code, 'sigprof_taken');
    assert.match(r.json.error.message, /replaced proflab's SIGPROF handler during the profile/);
    const st = await labRequest(p.lab, 'GET', '/api/lab/status');
    assert.equal(st.json.profiler.sigprof, 'taken');
    assert.equal(await cpuArtifacts(), before);
  } finally {
    await p.stop('SIGKILL');
  }
});
