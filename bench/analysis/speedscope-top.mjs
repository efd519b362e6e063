// speedscope's own importer (npm speedscope, the browser bundle the tests
// serve in tests/clients) run in Node on a profile file: the bundle is
// loaded into a vm context with its final statement (rendering the app into
// document.body) replaced by handing out its importer, and the file goes
// through importProfilesFromArrayBuffer — what dropping the file on
// speedscope does: format detection, JSON parse, call tree, frames' self
// and total weights. Then functions by self weight, the table `proflab top`
// prints. `node speedscope-top.mjs FILE [N]`.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const mods = process.env.PROFLAB_SPEEDSCOPE_NODE_MODULES || path.resolve(here, '..', '..', 'tests', 'node_modules');
const require = createRequire(path.join(mods, 'x.js'));
const dist = path.join(path.dirname(require.resolve('speedscope/package.json')), 'dist', 'release');

/** speedscope's importer module, from its bundle (speedscope 1.25's layout: checked, with a clear error). */
function loadImporter() {
  const js = fs.readdirSync(dist).find((f) => /^speedscope-.*\.js$/.test(f));
  let src = fs.readFileSync(path.join(dist, js), 'utf8');
  // `async function NAME(t,e){return(await MOD).importProfilesFromArrayBuffer(t,e)}`
  const m = /async function ([\w$]+)\(\w,\w\)\{return\(await ([\w$]+)\)\.importProfilesFromArrayBuffer\(/.exec(src);
  // the app's last statement: render into document.body, then the bundle's IIFE closes
  const end = src.lastIndexOf('})();');
  const render = src.lastIndexOf(';', src.lastIndexOf('document.body', end)) + 1;
  if (!m || end < 0 || render <= 0) throw new Error(`speedscope bundle ${js}: importer not found (a new layout?)`);
  src = `${src.slice(0, render)}globalThis.__speedscopeImporter=${m[2]};${src.slice(end)}`;
  const noop = () => {};
  const el = () => ({ style: {}, appendChild: noop, addEventListener: noop, setAttribute: noop, getContext: () => null });
  const sandbox = {
    console: { log: noop, warn: noop, error: console.error, info: noop },
    setTimeout, clearTimeout, TextDecoder, TextEncoder, URL, Blob, performance,
    location: { hash: '', search: '', href: 'file:///', protocol: 'file:' },
    navigator: { userAgent: 'node', platform: 'Linux' },
    localStorage: { getItem: () => null, setItem: noop },
    document: { body: el(), head: el(), createElement: el, addEventListener: noop, querySelector: () => null, documentElement: el() },
    addEventListener: noop, removeEventListener: noop, matchMedia: () => ({ matches: false, addEventListener: noop, addListener: noop }),
    requestAnimationFrame: noop,
  };
  sandbox.window = sandbox;
  sandbox.self = sandbox;
  vm.createContext(sandbox);
  vm.runInContext(src, sandbox, { filename: js });
  return sandbox.__speedscopeImporter;
}

const file = process.argv[2];
const limit = Number(process.argv[3] || 20);
const t0 = performance.now();
const importer = await loadImporter();
const data = fs.readFileSync(file);
const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
const group = await importer.importProfilesFromArrayBuffer(path.basename(file), ab);
if (!group || !group.profiles.length) throw new Error(`speedscope did not import ${file}`);
const t1 = performance.now();
const prof = group.profiles[0];
const rows = [];
prof.forEachFrame((f) => rows.push({ name: f.name, file: f.file, line: f.line, self: f.getSelfWeight(), total: f.getTotalWeight() }));
rows.sort((a, b) => b.self - a.self);
const t2 = performance.now();
process.stdout.write(`${prof.getName()}: ${rows.length} functions, total weight ${prof.getTotalWeight()}\n`);
for (const r of rows.slice(0, limit)) process.stdout.write(`${r.self}\t${r.total}\t${r.name}\t${r.file || ''}:${r.line || ''}\n`);
process.stderr.write(`speedscope phases: import ${((t1 - t0) / 1000).toFixed(2)} s, table ${((t2 - t1) / 1000).toFixed(2)} s\n`);
