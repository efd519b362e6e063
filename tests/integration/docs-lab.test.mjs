// The lab guide cannot rot: every ```console block of docs/lab.md marked
// `<!-- lab-run -->` is run, in order, in one working directory (whose
// build/ holds the binaries under test), against a real proflabd started
// here (LAB_URL, LAB_TOKEN, LAB_ARTIFACT_DIR in the environment, task
// "task-a", LAB_EXERCISES=all), and each command's output must match the
// lines the guide shows under it (numbers may differ; `…` trims). Blocks
// marked `not-run` (Chrome, AWS, Kubernetes, ports of their own) are only
// parsed. The parser and matcher: docs-lab-lib.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startProflabd, labEnv, GOOD_TOKEN, REPO_ROOT, SANITIZED } from './helpers.mjs';
import { GUIDE, parseGuide, linePattern, matchOutput, runBlock, makeWorkdir } from './docs-lab-lib.mjs';

const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
const DAEMON = path.resolve(REPO_ROOT, process.env.PROFLABD || 'build/proflabd');
const blocks = parseGuide(fs.readFileSync(GUIDE, 'utf8'));

test('the matcher: numbers vary, … trims, text must match', () => {
  assert.match('task task-a: jammed the event loop for 1202.9 ms (lag now 1195.4 ms)',
    linePattern('task task-a: jammed the event loop for 1531.6 ms (lag now 1529.7 ms)'));
  assert.doesNotMatch('task task-b: jammed the event loop for 1202.9 ms',
    linePattern('task task-a: jammed the event loop for 1531.6 ms'));
  assert.match('   12.5ms  3.1%  distinct_find  /x.c:9', linePattern('  2.679s  88.9%  distinct_find  …'.replace('2.679s', '12.5ms')));
  assert.equal(matchOutput(['a 1', '…', 'z'], ['a 22', 'b', 'c', 'z']), null);
  assert.notEqual(matchOutput(['a 1'], ['a 1', 'extra']), null);
  assert.notEqual(matchOutput(['x'], ['y']), null);
});

test('every console block of the guide says whether it runs here', () => {
  assert.ok(blocks.length >= 20, `${blocks.length} blocks`);
  for (const b of blocks) {
    assert.ok(b.marker, `docs/lab.md:${b.line}: a console block without <!-- lab-run --> or <!-- not-run: why -->`);
    if (b.marker === 'not-run') assert.ok(b.reason, `docs/lab.md:${b.line}: not-run needs a reason`);
    assert.ok(b.commands.length > 0, `docs/lab.md:${b.line}: no $ command`);
  }
  const run = blocks.filter((b) => b.marker === 'lab-run');
  assert.ok(run.length >= 12, `${run.length} blocks run`);
});

let srv;
let work;
const missing = ['wrk', 'curl', 'jq', 'go'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);

before(async () => {
  work = makeWorkdir({ proflab: CLI, proflabd: DAEMON });
  const art = path.join(work, 'artifacts');
  srv = await startProflabd({
    env: labEnv({ LAB_TASK_ID: 'task-a', LAB_ARTIFACT_DIR: art, LAB_EXERCISES: 'all', LAB_MAX_LEAK_MB: 512, PROFLAB_REQUEST_LOG: 'false' }),
  });
});
after(async () => {
  if (srv) await srv.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('the guide\'s lab-run blocks print what the guide says', { timeout: 170000 }, async (t) => {
  if (SANITIZED) return t.skip('timings and sizes of the guide are the normal build\'s');
  if (missing.length) return t.skip(`not installed: ${missing.join(', ')} (scripts/deps.sh test)`);
  const env = {
    PATH: process.env.PATH, HOME: process.env.HOME || '/root', TERM: 'dumb',
    LAB_URL: srv.base, LAB_TOKEN: GOOD_TOKEN, LAB_ARTIFACT_DIR: path.join(work, 'artifacts'),
  };
  const failures = [];
  for (const b of blocks.filter((x) => x.marker === 'lab-run')) {
    const t0 = Date.now();
    const results = await runBlock(b, { cwd: work, env, timeoutMs: 40000 });
    b.commands.forEach((c, i) => {
      const r = results[i];
      const where = `docs/lab.md:${b.line}: $ ${c.cmd.split('\n')[0]}`;
      if (r.rc === null) failures.push(`${where}: did not run to its end`);
      else if (r.rc !== 0 && b.mode !== 'any-exit') failures.push(`${where}: exit ${r.rc}\n${r.output.join('\n')}`);
      const why = matchOutput(c.expected, r.output);
      if (why) failures.push(`${where}: ${why}\n--- output:\n${r.output.join('\n')}`);
    });
    t.diagnostic(`docs/lab.md:${b.line}: ${b.commands.length} commands, ${Date.now() - t0} ms`);
  }
  assert.equal(failures.length, 0, failures.join('\n\n'));
});
