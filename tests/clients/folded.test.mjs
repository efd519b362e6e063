// Folded stacks (FlameGraph's input format) taken while the loop is jammed:
// - the grammar every folded-stack consumer relies on, checked line by line;
// - FlameGraph's flamegraph.pl renders them, when it is installed (Debian 12
//   does not package FlameGraph, so this part usually skips);
// - speedscope imports them as "collapsed stacks" in headless Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import {
  diag, startLab, profileDuringJam, parseFolded, which, tempFile, loud, JAM_FN,
} from './lib.mjs';
import {
  CHROMIUM, launchChromium, serveSpeedscope, speedscopeLoad, speedscopeWeights,
} from './chromium.mjs';

let HAVE_CHROMIUM = true;
try { fs.accessSync(CHROMIUM, fs.constants.X_OK); } catch { HAVE_CHROMIUM = false; }
if (!HAVE_CHROMIUM) loud(`${CHROMIUM} is not installed: speedscope's import of folded stacks is SKIPPED (CI must have chromium)`);

const near = (a, b, rel) => Math.abs(a - b) <= rel * Math.abs(b);

let lab;
let prof; // {info, jam, data}
let stacks; // parsed lines

before(async () => {
  lab = await startLab();
  prof = await profileDuringJam(lab.srv, { format: 'folded', seconds: 3, jamMs: 1500, delayMs: 200 });
});

after(async () => {
  await lab?.close();
});

test('folded stacks: every line is "frames count", and the jam function\'s stacks dominate', (t) => {
  const { info, jam, data } = prof;
  const text = data.toString('utf8');
  assert.equal(Buffer.byteLength(text), data.length, 'folded output is not valid UTF-8');
  stacks = parseFolded(text);
  const total = stacks.reduce((a, s) => a + s.count, 0);
  // counts are sampling periods: they add up to the answer's weight
  assert.equal(total, info.weight, `counts add up to ${total}, the profile's weight is ${info.weight}`);
  const idle = stacks.filter((s) => s.frames.length === 1 && s.frames[0] === '(idle)');
  assert.equal(idle.length, 1, 'one (idle) line');
  const nonIdle = total - idle[0].count;
  const jamStacks = stacks.filter((s) => s.frames.includes(JAM_FN));
  const jamCount = jamStacks.reduce((a, s) => a + s.count, 0);
  assert.ok(jamCount >= 0.9 * nonIdle, `${JAM_FN}'s stacks hold ${jamCount} of ${nonIdle} non-idle periods`);
  const periodMs = info.interval_us / 1000;
  assert.ok(near(jamCount * periodMs, jam.jammed_ms, 0.1), `${JAM_FN}: ${jamCount * periodMs} ms, jam ${jam.jammed_ms} ms`);
  // root first: the jam function sits under its callers, the innermost frames last
  for (const s of jamStacks) {
    const k = s.frames.indexOf(JAM_FN);
    assert.equal(s.frames[k - 1], 'on_jam', `caller of ${JAM_FN}: ${s.frames.join(';')}`);
    assert.ok(s.frames.indexOf('main') >= 0 && s.frames.indexOf('main') < k, `main is not above ${JAM_FN}: ${s.frames.join(';')}`);
    assert.ok(!s.frames.slice(0, k).includes(JAM_FN), 'the jam function is not recursive');
  }
  const heaviest = [...stacks].sort((a, b) => b.count - a.count)[0];
  diag(t, `${stacks.length} lines, ${total} periods; (idle) ${idle[0].count}; ${JAM_FN} ${jamCount} (${(100 * jamCount / nonIdle).toFixed(1)}% of non-idle)`);
  diag(t, `heaviest line: ...;${heaviest.frames.slice(-3).join(';')} ${heaviest.count}`);
});

test("FlameGraph's flamegraph.pl renders the folded stacks", async (t) => {
  const fg = which('flamegraph.pl', 'flamegraph');
  if (!fg) {
    return t.skip('flamegraph.pl not installed (FlameGraph is not packaged in Debian 12: apt-cache search flamegraph finds nothing)');
  }
  const file = tempFile('jam.folded', prof.data);
  const svg = await new Promise((resolve, reject) => {
    execFile(fg, ['--title', 'proflab jam', file], { maxBuffer: 64 << 20, timeout: 30000 }, (err, out, errOut) => {
      if (err) { err.message += `\n${errOut}`; reject(err); } else resolve(out);
    });
  });
  fs.rmSync(file, { force: true });
  assert.match(svg, /^<\?xml|<svg/);
  const m = new RegExp(`<title>${JAM_FN} \\(([\\d,]+) samples?, ([\\d.]+)%\\)</title>`).exec(svg);
  assert.ok(m, `no ${JAM_FN} box in the SVG`);
  assert.ok(Number(m[2]) >= 40, `${JAM_FN} box is ${m[2]}% wide`);
  diag(t, `flamegraph.pl: ${JAM_FN} ${m[1]} samples, ${m[2]}%`);
});

test('speedscope imports the folded stacks', async (t) => {
  if (!HAVE_CHROMIUM) return t.skip('chromium not installed');
  const { info } = prof;
  const browser = await launchChromium();
  const ss = await serveSpeedscope({ 'jam.folded': info.path });
  try {
    const r = await speedscopeLoad(browser.port, ss, 'jam.folded');
    assert.deepEqual(r.exceptions, [], 'exceptions in speedscope');
    assert.deepEqual(r.dialogs, [], 'speedscope alerted');
    assert.equal(r.importer, 'collapsed stack format', 'speedscope did not take the file for collapsed stacks');
    const w = speedscopeWeights(r.exported);
    const totalSelf = [...w.frames.values()].reduce((a, f) => a + f.self, 0);
    assert.equal(totalSelf, info.weight, `speedscope counts ${totalSelf}, the profile's weight is ${info.weight}`);
    const idle = w.frames.get('(idle)')?.self ?? 0;
    const j = w.frames.get(JAM_FN);
    assert.ok(j, `no ${JAM_FN} in speedscope's frames`);
    const byself = [...w.frames.entries()].filter(([n]) => n !== '(idle)').sort((a, b) => b[1].self - a[1].self);
    assert.equal(byself[0][0], JAM_FN, 'heaviest non-idle frame in speedscope');
    assert.ok(j.total >= 0.9 * (totalSelf - idle), `${JAM_FN}: ${j.total} of ${totalSelf - idle} non-idle`);
    // the frames as written: every line's stack is one speedscope stack
    const names = new Set(r.exported.shared.frames.map((f) => f.name));
    for (const s of stacks ?? parseFolded(prof.data.toString('utf8'))) {
      for (const f of s.frames) assert.ok(names.has(f), `frame ${JSON.stringify(f)} missing in speedscope`);
    }
    diag(t, `speedscope: ${JAM_FN} ${j.total} of ${totalSelf - idle} non-idle periods, (idle) ${idle}; first sandwich row ${JSON.stringify(r.sandwich[1])}`);
  } finally {
    await ss.close();
    await browser.close();
  }
});
