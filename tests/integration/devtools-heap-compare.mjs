// DevTools' own Comparison view of two .heapsnapshot files (the npm package
// chrome-devtools-frontend's heap-snapshot worker, bundled as
// devtools-heap-summary.mjs does, run in Node): the base snapshot's
// aggregatesForDiff() with the other's interface definitions, then
// calculateSnapshotDiff(), exactly as the Memory panel's Comparison grid asks.
// `node devtools-heap-compare.mjs A B BUNDLE` prints {classes: [{key, name,
// addedCount, removedCount, countDelta, addedSize, removedSize, sizeDelta,
// addedIds}]}; the module exports devtoolsComparison(a, b).
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bundle, devtoolsModules } from './devtools-heap-summary.mjs';

/** DevTools' Comparison of b against base a, run in a child node. */
export async function devtoolsComparison(a, b) {
  const mods = devtoolsModules();
  if (!mods) throw new Error('chrome-devtools-frontend and esbuild are not installed');
  const js = await bundle(mods);
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), a, b, js], { maxBuffer: 1 << 28 });
  return JSON.parse(out.toString());
}

async function load(mod, file) {
  const loader = new mod.HeapSnapshotLoader({ sendEvent() {} });
  const text = fs.readFileSync(file, 'utf8');
  for (let i = 0; i < text.length; i += 1 << 20) loader.write(text.slice(i, i + (1 << 20)));
  loader.close();
  const channel = new MessageChannel();
  new mod.SecondaryInitManager(channel.port2);
  const snap = await loader.buildSnapshot(channel.port1);
  return { snap, close() { channel.port1.close(); channel.port2.close(); } };
}

async function main(a, b, js) {
  if (!Promise.withResolvers)
    Promise.withResolvers = function withResolvers() {
      let resolve, reject;
      const promise = new Promise((y, n) => { resolve = y; reject = n; });
      return { promise, resolve, reject };
    };
  const mod = await import(pathToFileURL(js).href);
  const base = await load(mod, a);
  const snap = await load(mod, b);
  const aggregates = base.snap.aggregatesForDiff(snap.snap.interfaceDefinitions());
  const diff = snap.snap.calculateSnapshotDiff(1, aggregates);
  const classes = Object.entries(diff).map(([key, d]) => ({
    key, name: d.name, addedCount: d.addedCount, removedCount: d.removedCount, countDelta: d.countDelta,
    addedSize: d.addedSize, removedSize: d.removedSize, sizeDelta: d.sizeDelta, addedIds: d.addedIds,
  }));
  process.stdout.write(JSON.stringify({ classes }));
  base.close();
  snap.close();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(process.argv[2], process.argv[3], process.argv[4]);
