// The lab guide's exercises (docs/lab.md, step 7), hidden in proflabd's
// business code and switched on by LAB_EXERCISES:
//  - off (the default, or without the lab): broad searches stay fast and
//    reports for many distinct customers leave memory flat;
//  - cpu: broad searches are >= 10x slower than narrow ones, and
//    `proflab top` on a profile under that load names distinct_find;
//  - memory: `proflab leaks --url … --every 1s --count 4` under wrk load with
//    distinct customers ranks report_cache_insert first as a likely leak.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { startProflabd, runProflabd, labEnv, GOOD_TOKEN, REPO_ROOT, SANITIZED, sleep } from './helpers.mjs';

const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-exercises-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const hasWrk = !spawnSync('wrk', ['--version']).error;
const cliEnv = { PATH: process.env.PATH, LAB_TOKEN: GOOD_TOKEN };
for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS']) if (process.env[k]) cliEnv[k] = process.env[k];

async function timed(url) {
  const t0 = performance.now();
  const r = await fetch(url);
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return { ms: performance.now() - t0, body };
}
// the fastest of n timings: the request's own cost on a machine shared with
// other work (which only ever adds time)
async function fastest(url, n = 7) {
  let best = Infinity;
  for (let i = 0; i < n; i++) best = Math.min(best, (await timed(url)).ms);
  return best;
}
async function heapLive(srv) {
  const r = await fetch(`${srv.base}/api/lab/status`, { headers: { 'x-lab-token': GOOD_TOKEN } });
  const j = await r.json();
  return { rss: j.memory.rss_bytes, malloc: j.memory.malloc_in_use_bytes };
}
function wrkLua(name, body) {
  const f = path.join(dir, name);
  fs.writeFileSync(f, body);
  return f;
}
const CUSTOMERS = `local n = 0
request = function() n = n + 1; return wrk.format("GET", "/api/report?customer=" .. n) end
`;

test('settings: LAB_EXERCISES values, the log line, and off without the lab', async () => {
  let r = await runProflabd({ env: labEnv({ LAB_EXERCISES: 'cpu,bogus' }) });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /LAB_EXERCISES: 'cpu,bogus': expected cpu, memory, all or none/);
  r = await runProflabd({ args: ['--help'] });
  assert.match(r.stdout, /--exercises LIST +LAB_EXERCISES/);
  const off = await startProflabd({ env: { LAB_EXERCISES: 'all' } });
  assert.equal(off.listening.exercises, 'off (they need the lab on)');
  await off.stop();
  const on = await startProflabd({ env: labEnv({ LAB_EXERCISES: 'memory' }) });
  assert.equal(on.listening.exercises, 'memory');
  // the endpoints' answers are the same either way
  const a = await timed(`${on.base}/api/search?q=*steel-h*&limit=3`);
  assert.deepEqual(a.body, { q: '*steel-h*', items: 288, distinct: 72, names: ['compact-steel-hinge', 'compact-steel-handle', 'compact-steel-hook'] });
  const bad = await fetch(`${on.base}/api/search?q=a%20b`);
  assert.equal(bad.status, 400);
  const rep = await timed(`${on.base}/api/report?customer=42&days=7`);
  assert.equal(rep.body.customer, 42);
  assert.equal(rep.body.orders.length, rep.body.order_count);
  assert.deepEqual((await timed(`${on.base}/api/report?customer=42&days=7`)).body, rep.body);
  await on.stop();
});

test('exercise 1 off: broad searches stay fast', async () => {
  const srv = await startProflabd({ env: labEnv({ LAB_EXERCISES: 'none' }) });
  try {
    await timed(`${srv.base}/api/search?q=*`);
    const broad = await fastest(`${srv.base}/api/search?q=*`, 5);
    assert.ok(broad < (SANITIZED ? 150 : 40), `q=* took ${broad} ms with the exercise off`);
    const j = (await timed(`${srv.base}/api/search?q=*`)).body;
    assert.equal(j.items, 24000);
    assert.equal(j.distinct, 6000);
  } finally {
    await srv.stop();
  }
});

test('exercise 1 on: broad searches >= 10x slower, proflab top names distinct_find', async (t) => {
  const srv = await startProflabd({ env: labEnv({ LAB_EXERCISES: 'cpu', LAB_ARTIFACT_DIR: path.join(dir, 'cpu'), PROFLAB_REQUEST_LOG: 'false' }) });
  try {
    const narrow = await fastest(`${srv.base}/api/search?q=*bracket*`, 9);
    const broad = await fastest(`${srv.base}/api/search?q=*`, 3);
    assert.ok(broad >= 10 * narrow, `q=* ${broad} ms vs q=*bracket* ${narrow} ms`);
    const j = (await timed(`${srv.base}/api/search?q=*`)).body;
    assert.equal(j.distinct, 6000); // same answer, slower
    // a profile while searches (the broad kind among them) run
    let stop = false;
    const load = (async () => {
      const qs = ['*bracket*', 'heavy-*', '*e*', '*steel*'];
      for (let i = 0; !stop; i++) await timed(`${srv.base}/api/search?q=${qs[i % qs.length]}`);
    })();
    const out = path.join(dir, 'search.cpuprofile');
    // (spawn, not spawnSync: the load runs in this process meanwhile)
    const prof = spawn(CLI, ['profile', '--url', srv.base, '--seconds', '2', '-o', out], { env: cliEnv, stdio: ['ignore', 'ignore', 'pipe'] });
    let perr = '';
    prof.stderr.on('data', (d) => { perr += d; });
    const code = await new Promise((r) => prof.on('close', r));
    stop = true;
    await load;
    assert.equal(code, 0, perr);
    const top = spawnSync(CLI, ['top', out, '--json', '--limit', '5'], { encoding: 'utf8' });
    assert.equal(top.status, 0, top.stderr);
    const fns = JSON.parse(top.stdout).functions.filter((f) => !f.meta);
    assert.equal(fns[0].function, 'distinct_find', JSON.stringify(fns.slice(0, 3)));
    assert.ok(fns[0].self_pct > 40, `distinct_find self ${fns[0].self_pct}%`);
    const text = spawnSync(CLI, ['top', out, '--limit', '3'], { encoding: 'utf8' }).stdout;
    assert.match(text, /distinct_find +\S*programs\/proflabd\/business\.c:\d+/);
  } finally {
    await srv.stop();
  }
});

test('exercise 2 off: many distinct customers leave memory flat', async (t) => {
  if (!hasWrk) return t.skip('wrk is not installed (scripts/deps.sh test)');
  const srv = await startProflabd({ env: labEnv({ LAB_EXERCISES: 'cpu', PROFLAB_REQUEST_LOG: 'false' }) });
  try {
    const lua = wrkLua('c-off.lua', CUSTOMERS);
    spawnSync('wrk', ['-t1', '-c2', '-d1s', '-s', lua, srv.base]); // the cache fills
    const a = await heapLive(srv);
    const w = spawnSync('wrk', ['-t1', '-c2', '-d3s', '-s', lua, srv.base], { encoding: 'utf8' });
    const reqs = Number(/(\d+) requests in/.exec(w.stdout)?.[1]);
    assert.ok(reqs > 1000, w.stdout);
    const b = await heapLive(srv);
    assert.ok(b.malloc - a.malloc < 8 << 20, `malloc in use grew ${a.malloc} -> ${b.malloc} over ${reqs} distinct customers`);
    assert.ok(b.rss - a.rss < 16 << 20, `rss grew ${a.rss} -> ${b.rss}`);
  } finally {
    await srv.stop();
  }
});

test('exercise 2 on: proflab leaks ranks report_cache_insert first as a likely leak', async (t) => {
  if (!hasWrk) return t.skip('wrk is not installed (scripts/deps.sh test)');
  const srv = await startProflabd({ env: labEnv({ LAB_EXERCISES: 'memory', LAB_MAX_LEAK_MB: 512, LAB_ARTIFACT_DIR: path.join(dir, 'mem'), PROFLAB_REQUEST_LOG: 'false' }) });
  try {
    const lua = wrkLua('c-on.lua', CUSTOMERS);
    const wrk = spawn('wrk', ['-t1', '-c2', `-d${SANITIZED ? 8 : 5}s`, '-s', lua, srv.base], { stdio: 'ignore' });
    const wrkDone = new Promise((r) => wrk.on('close', r));
    await sleep(700);
    const r = spawnSync(CLI, ['leaks', '--url', srv.base, '--every', '1s', '--count', '4', '--json'], { env: cliEnv, encoding: 'utf8', timeout: 60000 });
    await wrkDone;
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    const top = j.sites[0];
    assert.equal(top.name, 'report_cache_insert', JSON.stringify(j.sites.slice(0, 4), null, 1));
    assert.equal(top.verdict, 'likely leak');
  } finally {
    await srv.stop();
  }
});
