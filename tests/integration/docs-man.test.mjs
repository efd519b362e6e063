// The man pages (docs/man/proflabd.1, proflab.1) are what the programs'
// --help makes now: scripts/docs-man.py --check regenerates them from the
// binaries under test and compares; groff reads them without a warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, PROFLABD } from './helpers.mjs';

const CLI = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || path.join(path.dirname(PROFLABD), 'proflab'));

test('the man pages are generated from the programs\' --help and are current', () => {
  const r = spawnSync('python3', [path.join(REPO_ROOT, 'scripts', 'docs-man.py'), '--check', '--proflabd', PROFLABD, '--proflab', CLI, REPO_ROOT], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const page = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'man', 'proflab.1'), 'utf8');
  const help = spawnSync(CLI, ['--help'], { encoding: 'utf8' }).stdout;
  const commands = [...help.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]);
  assert.ok(commands.length >= 10, help);
  for (const c of commands) assert.match(page, new RegExp(`^\\.SS proflab ${c}$`, 'm'), `a section for proflab ${c}`);
});

test('groff reads both pages without a warning', (t) => {
  if (spawnSync('groff', ['--version']).status !== 0) return t.skip('groff missing (scripts/deps.sh test installs groff-base)');
  for (const p of ['proflabd.1', 'proflab.1']) {
    const r = spawnSync('groff', ['-ww', '-man', '-z', path.join(REPO_ROOT, 'docs', 'man', p)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', `${p}: ${r.stderr}`);
  }
});
