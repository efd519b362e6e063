// Names for programs without a symbol table and for Debian's libraries
// (issue 12): a stripped copy of tests/programs/agent-threads
// (strip --strip-all keeps .dynsym, where --export-dynamic put its
// functions) is named from .dynsym, its static functions show as
// "agent-threads-stripped+0xOFFSET" (never an empty name), and libc's
// frames get file:line from libc6-dbg's /usr/lib/debug/.build-id files
// when that package is installed (scripts/deps.sh test). C++ names are
// demangled: agent.test.mjs's C++ test.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { program, runUnderAgent, labRequest } from './agent-lib.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proflab-agent-symbols-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** libc's separate debug file from libc6-dbg, found by build id, or null. */
function libcDebugFile() {
  const libc = '/lib/x86_64-linux-gnu/libc.so.6';
  if (!fs.existsSync(libc)) return null;
  const notes = execFileSync('readelf', ['-n', libc], { encoding: 'utf8' });
  const id = (notes.match(/Build ID: ([0-9a-f]+)/) || [])[1];
  if (!id) return null;
  const f = `/usr/lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`;
  return fs.existsSync(f) ? f : null;
}

test('a stripped program: names from .dynsym, module+0xoffset otherwise, libc with file:line', async () => {
  const exe = program('agent-threads-stripped');
  const sections = execFileSync('readelf', ['-S', '-W', exe], { encoding: 'utf8' });
  assert.doesNotMatch(sections, /\.symtab|\.debug_info/, 'the copy is not stripped');
  assert.match(sections, /\.dynsym/);
  const p = await runUnderAgent([exe, '120'], { env: { LAB_ARTIFACT_DIR: dir } });
  try {
    await p.waitFor((s) => /^ready$/m.test(s.stdout));
    const r = await labRequest(p.lab, 'POST', '/api/lab/cpu-profile?seconds=1&offcpu=1');
    assert.equal(r.status, 200, r.body.toString());
    const prof = JSON.parse(fs.readFileSync(path.join(dir, r.json.file), 'utf8'));
    const frames = prof.nodes.map((n) => n.callFrame);
    const names = new Set(frames.map((f) => f.functionName));
    const list = [...names].join(', ');
    for (const f of ['threads_test_busy_spin', 'threads_test_wait_epoll', 'threads_test_wait_cond',
      'threads_test_wait_sleep', 'threads_test_wait_read', 'main'])
      assert.ok(names.has(f), `${f} missing in ${list}`);
    assert.ok(!names.has(''), `an empty name in ${list}`);
    // the static thread functions have no symbol left: module+offset
    assert.ok([...names].some((n) => /^agent-threads-stripped\+0x[0-9a-f]+$/.test(n)), list);
    const debug = libcDebugFile();
    if (!debug) {
      console.log('# libc6-dbg is not installed: libc file:line not checked (scripts/deps.sh test)');
      return;
    }
    for (const [fn, file] of [['epoll_wait', /epoll_wait\.c$/], ['start_thread', /pthread_create\.c$/],
      ['read', /read\.c$/]]) {
      const f = frames.find((x) => x.functionName === fn);
      assert.ok(f, `${fn} missing in ${list}`);
      assert.match(f.url, file, `${fn}: ${JSON.stringify(f)} (debug file ${debug})`);
      assert.ok(f.lineNumber >= 0, `${fn}: ${JSON.stringify(f)}`);
    }
  } finally {
    await p.stop('SIGKILL');
  }
});
