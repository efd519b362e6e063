// The diagrams of docs/architecture.md cannot drift from the code:
// - docs/diagrams/layers.dot is what scripts/docs-layers.py makes now from
//   the layer table of docs/internals.md (the rows check-layers reads) and
//   the #include lines of src/, programs/ and include/; the generator is
//   deterministic (two runs, same bytes); on a small fake tree it draws an
//   upward include in red and a folder of no row dashed;
// - every docs/images/architecture-*.svg is well-formed XML (Python's
//   expat) with an <svg> root, names the SHA-256 of its .dot, and is, byte
//   for byte, what `dot -Tsvg` of that .dot makes (when the installed
//   graphviz is the one that drew it);
// - every repository path and every pl_/lab_ name the hand-written
//   dataflow.dot shows exists in the tree.
// On a failure: scripts/docs-diagrams.sh rewrites the .dot and the SVGs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from './helpers.mjs';

const FIX = 'run scripts/docs-diagrams.sh and commit docs/diagrams/ and docs/images/';
const DIAGRAMS = ['dataflow', 'layers'];
const dotFile = (n) => path.join(REPO_ROOT, 'docs', 'diagrams', `${n}.dot`);
const svgFile = (n) => path.join(REPO_ROOT, 'docs', 'images', `architecture-${n}.svg`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: REPO_ROOT, timeout: 60000, maxBuffer: 64 << 20, ...opts });
  if (r.error) throw r.error;
  return r;
}

function generate(root) {
  const r = run('python3', [path.join(REPO_ROOT, 'scripts', 'docs-layers.py'), ...(root ? [root] : [])]);
  assert.equal(r.status, 0, `scripts/docs-layers.py: exit ${r.status}\n${r.stderr}`);
  return r.stdout;
}

/** The first line where two texts differ, for a readable failure. */
function firstDifference(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] !== y[i]) return `line ${i + 1}:\n  committed: ${x[i] ?? '(end)'}\n  now:       ${y[i] ?? '(end)'}`;
  }
  return 'same';
}

const haveDot = run('sh', ['-c', 'command -v dot']).status === 0;

test('layers.dot is what the layer table and the #include lines make now, deterministically', () => {
  const now = generate();
  assert.equal(generate(), now, 'two runs of scripts/docs-layers.py differ');
  const committed = fs.readFileSync(dotFile('layers'), 'utf8');
  assert.ok(committed === now, `docs/diagrams/layers.dot is stale (${FIX}); first difference at ${firstDifference(committed, now)}`);
  // every row of the table is a box of the diagram
  const md = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'internals.md'), 'utf8');
  const table = md.split('<!-- layers:begin -->')[1].split('<!-- layers:end -->')[0];
  const folders = [...table.matchAll(/^\|\s*\d+\s*\|\s*`([^`]+)`/gm)].map((m) => m[1].replace(/\/?$/, '/'));
  assert.ok(folders.length >= 10, `only ${folders.length} rows read from the table`);
  for (const f of folders) assert.match(now, new RegExp(`^  "${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}" \\[label=`, 'm'), `no box for ${f}`);
});

test('the generator on a fake tree: one edge per pair of folders, an upward include red, a folder of no row dashed', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-docs-layers-'));
  try {
    const put = (rel, text) => {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), text);
    };
    put('docs/internals.md', [
      '<!-- layers:begin -->',
      '| layer | folder | public headers | what | rules |',
      '|---|---|---|---|---|',
      '| 1 | `src/base/` | `base.h` | | |',
      '| 2 | `src/top/` | | | |',
      '<!-- layers:end -->', ''].join('\n'));
    put('include/proflab/base.h', '#pragma once\n');
    put('src/base/a.c', '#include "top/t.h"\n');           // upward: red
    put('src/top/t.h', '#include "proflab/base.h"\n');
    put('src/top/t.c', '#include "t.h"\n#include "base/b.h"\n/* #include "base/b.h" */\n');
    put('src/base/b.h', '\n');
    put('programs/new/m.c', '#include "top/t.h"\n');       // no row
    const dot = generate(root);
    assert.match(dot, /^ {2}"src\/top\/" -> "src\/base\/" \[penwidth=1\.0, tooltip="src\/top\/ includes src\/base\/"\];$/m);
    assert.match(dot, /^ {2}"src\/base\/" -> "src\/top\/" \[[^\]]*color="#d02020"/m, 'the upward include is not red');
    assert.match(dot, /^ {2}"programs\/new\/" \[label=<[^\n]*no row in the layer table \(1 files\)[^\n]*style="rounded,dashed"/m);
    assert.match(dot, /^ {2}"programs\/new\/" -> "src\/top\/" /m);
    assert.match(dot, /\{ rank=same; "layer 2"; "src\/top\/"; \}/);
    if (haveDot) {
      const r = run('dot', ['-Tsvg'], { input: dot });
      assert.equal(r.status, 0, `dot rejects the generated graph: ${r.stderr}`);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

for (const name of DIAGRAMS) {
  test(`architecture-${name}.svg: well-formed XML, drawn from the committed ${name}.dot`, (t) => {
    const svg = fs.readFileSync(svgFile(name), 'utf8');
    const dotText = fs.readFileSync(dotFile(name));
    const x = run('python3', ['-c', [
      'import sys, xml.dom.minidom',
      'd = xml.dom.minidom.parse(sys.argv[1])',
      'print(d.documentElement.tagName, len(d.getElementsByTagName("g")))',
    ].join('\n'), svgFile(name)]);
    assert.equal(x.status, 0, `docs/images/architecture-${name}.svg is not well-formed XML:\n${x.stderr}`);
    const [root, groups] = x.stdout.trim().split(' ');
    assert.equal(root, 'svg');
    assert.ok(Number(groups) > 10, `only ${groups} <g> elements`);
    const sum = crypto.createHash('sha256').update(dotText).digest('hex');
    const m = /<!-- drawn by scripts\/docs-diagrams\.sh from docs\/diagrams\/([\w-]+)\.dot \(sha256 ([0-9a-f]{64})\)/.exec(svg);
    assert.ok(m, 'the SVG does not say which .dot it was drawn from');
    assert.equal(m[1], name);
    assert.equal(m[2], sum, `the SVG was drawn from another version of ${name}.dot: ${FIX}`);
    if (!haveDot) {
      t.diagnostic('no dot (graphviz) installed: the byte-for-byte redraw is skipped (scripts/deps.sh test installs it)');
      return;
    }
    const drawnBy = /<!-- Generated by graphviz version ([^\n]*)/.exec(svg)?.[1]?.trim();
    const v = run('dot', ['-V']);
    const have = /graphviz version (.*)$/m.exec(v.stderr)?.[1]?.trim();
    if (drawnBy !== have) {
      t.diagnostic(`drawn by graphviz ${drawnBy}, this machine has ${have}: the byte-for-byte redraw is skipped`);
      return;
    }
    // as scripts/docs-diagrams.sh draws it: dot -Tsvg, the source note after line 1
    const r = run('dot', ['-Tsvg', dotFile(name)]);
    assert.equal(r.status, 0, `dot -Tsvg ${name}.dot: ${r.stderr}`);
    const lines = r.stdout.split('\n');
    lines.splice(1, 0, `<!-- drawn by scripts/docs-diagrams.sh from docs/diagrams/${name}.dot (sha256 ${sum}); do not edit -->`);
    const redrawn = lines.join('\n');
    assert.ok(redrawn === svg, `docs/images/architecture-${name}.svg is not what dot draws from ${name}.dot (${FIX}); first difference at ${firstDifference(svg, redrawn)}`);
  });
}

test('every path and pl_/lab_ name in dataflow.dot exists', () => {
  const text = fs.readFileSync(dotFile('dataflow'), 'utf8').replace(/^\s*\/\/.*$/gm, '');
  const paths = [...new Set([...text.matchAll(/\b((?:src|programs|include|tests|docs)\/[\w./-]*[\w/])/g)].map((m) => m[1]))];
  assert.ok(paths.length >= 20, `only ${paths.length} paths found`);
  for (const p of paths) assert.ok(fs.existsSync(path.join(REPO_ROOT, p)), `dataflow.dot names ${p}, which does not exist`);
  // bare file names listed after a path ("src/lab/lab.c, answer.c") live in that path's folder
  for (const line of text.split('\n')) {
    const dir = /\b((?:src|programs)\/\w+)\//.exec(line)?.[1];
    if (!dir) continue;
    for (const m of line.matchAll(/(?<![\w/.])(\w+\.[ch])\b/g)) {
      assert.ok(fs.existsSync(path.join(REPO_ROOT, dir, m[1])), `dataflow.dot names ${m[1]} next to ${dir}/, where it does not exist`);
    }
  }
  const names = [...new Set([...text.matchAll(/\b((?:pl__?|lab_)[a-z]\w*)\b/g)].map((m) => m[1]))];
  assert.ok(names.length >= 4, `names: ${names}`);
  for (const n of names) {
    const g = run('grep', ['-rqw', '--include=*.c', '--include=*.h', n, 'src', 'programs', 'include']);
    assert.equal(g.status, 0, `dataflow.dot names ${n}, which no source file has`);
  }
});
