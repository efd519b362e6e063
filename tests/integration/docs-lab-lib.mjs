// The lab guide's command blocks (docs/lab.md), parsed, run and compared.
//
// Every ```console block of the guide has a marker comment on the line
// before it:
//   <!-- lab-run -->             run here; its output must match the block's
//   <!-- lab-run: any-exit -->   the same, and a command may exit non-zero
//   <!-- not-run: REASON -->     shown only (needs Chrome, AWS, Kubernetes, …)
// In a block, `$ CMD` is a command (continued by a trailing `\` or, for a
// heredoc, `> ` lines up to the delimiter); the lines after it, up to the next
// `$ `, are what the reader should see. Expected lines are patterns: numbers
// (and runs of spaces) may differ, `…` inside a line stands for any text, and
// a line that is only `…` for any number of lines (output the guide trims).
//
// `node tests/integration/docs-lab-lib.mjs --print [FROM]` runs the blocks
// (from the FROMth on) against a fresh proflabd and prints what each command
// printed: the raw material for the guide.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const GUIDE = path.resolve(here, '..', '..', 'docs', 'lab.md');

/** The guide's console blocks: [{index, line, marker, mode, reason, commands: [{cmd, expected: [lines]}]}]. */
export function parseGuide(text) {
  const lines = text.split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```console\s*$/.test(lines[i])) continue;
    let j = i - 1;
    while (j >= 0 && lines[j].trim() === '') j--;
    const m = j >= 0 ? /^<!--\s*(lab-run|not-run)(?::\s*(.*?))?\s*-->$/.exec(lines[j].trim()) : null;
    const body = [];
    let k = i + 1;
    for (; k < lines.length && !/^```\s*$/.test(lines[k]); k++) body.push(lines[k]);
    const block = {
      index: blocks.length,
      line: i + 1,
      marker: m ? m[1] : null,
      mode: m && m[1] === 'lab-run' ? (m[2] || '') : '',
      reason: m && m[1] === 'not-run' ? (m[2] || '') : '',
      commands: [],
    };
    let cur = null;
    let heredoc = null;
    for (const l of body) {
      if (cur && (cur.continued || heredoc)) {
        const t = l.replace(/^> ?/, '');
        cur.cmd += '\n' + t;
        if (heredoc) {
          if (t === heredoc) heredoc = null;
        } else {
          cur.continued = /\\$/.test(t);
        }
        continue;
      }
      if (l.startsWith('$ ')) {
        cur = { cmd: l.slice(2), expected: [], continued: /\\$/.test(l) };
        const h = /<<-?\s*'?(\w+)'?/.exec(l);
        if (h) heredoc = h[1];
        block.commands.push(cur);
      } else if (cur) {
        cur.expected.push(l);
      }
    }
    for (const c of block.commands) {
      delete c.continued;
      while (c.expected.length && c.expected[c.expected.length - 1].trim() === '') c.expected.pop();
    }
    blocks.push(block);
    i = k;
  }
  return blocks;
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** One expected line as a RegExp over one output line. */
export function linePattern(line) {
  const parts = line.trimEnd().split('…').map((seg) => {
    let p = '';
    // numbers (with decimals or digit grouping), hex runs, spaces
    const re = /([0-9a-f]{16,})|(\d[\d.,]*)|( +)/g;
    let last = 0;
    let m;
    while ((m = re.exec(seg))) {
      p += escape(seg.slice(last, m.index));
      if (m[1]) p += '[0-9a-f]+';
      else if (m[2]) p += /[.,]$/.test(m[2]) ? '[\\d.,]*\\d' + escape(m[2].slice(-1)) : '\\d[\\d.,]*';
      else p += ' +';
      last = m.index + m[0].length;
    }
    p += escape(seg.slice(last));
    return p;
  });
  // leading spaces: columns move with the width of numbers
  return new RegExp('^' + parts.join('.*').replace(/^( \+| )/, ' *') + '\\s*$');
}

/** Does actual (lines) match expected (lines, with `…` lines)? Returns null or a reason. */
export function matchOutput(expected, actual) {
  const pats = expected.map((l) => (l.trim() === '…' ? null : linePattern(l)));
  const memo = new Map();
  let deepest = { e: 0, a: 0 };
  const go = (e, a) => {
    const key = e * 100000 + a;
    if (memo.has(key)) return memo.get(key);
    if (e > deepest.e || (e === deepest.e && a > deepest.a)) deepest = { e, a };
    let ok;
    if (e === pats.length) ok = a === actual.length;
    else if (pats[e] === null) ok = go(e + 1, a) || (a < actual.length && go(e, a + 1));
    else ok = a < actual.length && pats[e].test(actual[a]) && go(e + 1, a + 1);
    memo.set(key, ok);
    return ok;
  };
  if (go(0, 0)) return null;
  const exp = expected[deepest.e];
  const act = actual[deepest.a];
  return `expected line ${deepest.e + 1} ${JSON.stringify(exp)} (as ${pats[deepest.e] || '…'}), ` +
    `got output line ${deepest.a + 1} ${JSON.stringify(act)}`;
}

/** Run one block's commands in one bash (cwd, env); resolves [{cmd, rc, output: [lines]}]. */
export function runBlock(block, { cwd, env, timeoutMs = 30000 }) {
  const mark = `@@lab-${process.pid}`;
  let script = 'exec 2>&1\n';
  block.commands.forEach((c, i) => {
    script += `printf '\\n${mark} cmd ${i}\\n'\n${c.cmd}\nprintf '\\n${mark} rc ${i} %d\\n' $?\n`;
  });
  script += 'wait\n';
  return new Promise((resolve, reject) => {
    const p = spawn('bash', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => {
      try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
      reject(new Error(`block at docs/lab.md:${block.line} did not finish within ${timeoutMs} ms; output so far:\n${out}`));
    }, timeoutMs);
    p.on('close', () => {
      clearTimeout(timer);
      const results = block.commands.map((c) => ({ cmd: c.cmd, rc: null, output: [] }));
      let cur = null;
      for (const l of out.split('\n')) {
        const m = new RegExp(`^${mark} (cmd|rc) (\\d+)(?: (\\d+))?$`).exec(l);
        if (m && m[1] === 'cmd') { cur = results[+m[2]]; continue; }
        if (m && m[1] === 'rc') { results[+m[2]].rc = +m[3]; cur = null; continue; }
        if (cur) cur.output.push(l);
      }
      for (const r of results) {
        // the marker's own leading newline
        while (r.output.length && r.output[r.output.length - 1] === '') r.output.pop();
      }
      resolve(results);
    });
  });
}

/** A working directory whose build/ holds the binaries under test, as the guide names them. */
export function makeWorkdir({ proflab, proflabd }) {
  const w = fs.mkdtempSync(path.join(os.tmpdir(), 'pl-docs-lab-'));
  fs.mkdirSync(path.join(w, 'build'));
  fs.symlinkSync(proflab, path.join(w, 'build', 'proflab'));
  fs.symlinkSync(proflabd, path.join(w, 'build', 'proflabd'));
  const agent = path.join(path.dirname(proflab), 'libproflab-agent.so');
  if (fs.existsSync(agent)) fs.symlinkSync(agent, path.join(w, 'build', 'libproflab-agent.so'));
  return w;
}

// --print: run the guide and show what each command printed.
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--print') {
  const { startProflabd, labEnv, GOOD_TOKEN, REPO_ROOT } = await import('./helpers.mjs');
  const from = Number(process.argv[3] || 0);
  const cli = path.resolve(REPO_ROOT, process.env.PROFLAB_CLI || 'build/proflab');
  const daemon = path.resolve(REPO_ROOT, process.env.PROFLABD || 'build/proflabd');
  const w = makeWorkdir({ proflab: cli, proflabd: daemon });
  const art = path.join(w, 'artifacts');
  const srv = await startProflabd({ env: labEnv({ LAB_TASK_ID: 'task-a', LAB_ARTIFACT_DIR: art, LAB_EXERCISES: 'all', LAB_MAX_LEAK_MB: 512, PROFLAB_REQUEST_LOG: 'false' }) });
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, LAB_URL: srv.base, LAB_TOKEN: GOOD_TOKEN, LAB_ARTIFACT_DIR: art, TERM: 'dumb' };
  for (const b of parseGuide(fs.readFileSync(GUIDE, 'utf8'))) {
    if (b.marker !== 'lab-run' || b.index < from) continue;
    console.log(`\n===== block ${b.index} (docs/lab.md:${b.line})`);
    for (const r of await runBlock(b, { cwd: w, env, timeoutMs: 120000 })) {
      console.log(`$ ${r.cmd}`);
      for (const l of r.output) console.log(l);
      if (r.rc) console.log(`[exit ${r.rc}]`);
    }
  }
  await srv.stop();
  console.log(`\n(workdir ${w})`);
}
