// Chrome DevTools' Memory panel ("heap_profiler"), the frontend headless
// Chromium serves, attached to a script-less about:blank page. Files are
// loaded through the panel's own file input (what "Load profile…" uses), and
// the Summary and Comparison views are read as the panel computed them.
import { createRequire } from 'node:module';
import { openTab } from './chromium.mjs';

const require = createRequire(import.meta.url);
const CDP = require('chrome-remote-interface');

export const PANEL = `(await import('/devtools/panels/profiler/profiler.js'))`;
export const REGISTRY = `${PANEL}.ProfilesPanel.ProfilesPanel.registry`;
// Switch a HeapSnapshotView to a perspective ("Summary", "Comparison") as
// its perspective selector does. (changePerspectiveAndWait() waits for the
// grid's first "ContentShown", which a grid already shown never sends again.)
const SWITCH = `(view, title) => {
  const k = view.perspectives.findIndex((p) => p.title() === title);
  if (k < 0) throw new Error('no perspective ' + title);
  if (view.currentPerspectiveIndex === k) return;
  view.perspectiveSelect.select(view.perspectiveSelect.options().find((o) => o.value === String(k)));
  view.changePerspective(k);
}`;

/** A page expression: the number of heap snapshots loaded and parsed is n. */
export const snapshotsReady = (n) =>
  `(async () => { const ps = ${REGISTRY}.heapSnapshotProfileType.getProfiles(); return ps.length === ${n} && ps.every((p) => !!p.snapshotProxy); })()`;

/** Show snapshot `index`; the Summary grid's rows as the panel computed them (optionally under a filter). */
export const SHOW_SUMMARY = (index, filterPattern) => `(async () => {
  const P = ${PANEL};
  const panel = P.HeapProfilerPanel.HeapProfilerPanel.instance();
  const profile = P.ProfilesPanel.ProfilesPanel.registry.heapSnapshotProfileType.getProfiles()[${index}];
  panel.showProfile(profile);
  const view = panel.viewForProfile(profile);
  (${SWITCH})(view, 'Summary');
  const grid = view.constructorsDataGrid;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  for (let i = 0; i < 200 && !grid.rootNode().children.length; i++) await sleep(50);
  let filter = null;
  if (${JSON.stringify(filterPattern ?? null)}) {
    const opts = view.filterSelect.options().map((o) => o.text);
    const k = opts.findIndex((t) => new RegExp(${JSON.stringify(filterPattern ?? '')}).test(t));
    if (k < 0) throw new Error('no Summary filter like ' + ${JSON.stringify(filterPattern ?? '')} + ' in ' + JSON.stringify(opts));
    filter = opts[k];
    const before = grid.rootNode().children.map((n) => n.nameInternal + n.count).join();
    view.filterSelect.setSelectedIndex(k);
    view.changeFilter();
    for (let i = 0; i < 200 && grid.rootNode().children.map((n) => n.nameInternal + n.count).join() === before; i++) await sleep(50);
  }
  const rows = grid.rootNode().children.map((n) => ({
    name: n.nameInternal, count: n.count, distance: n.distance, shallow: n.shallowSize, retained: n.retainedSize,
    text: { ...n.data },
  }));
  return {
    title: profile.title, maxJSObjectId: profile.maxJSObjectId, totalSize: profile.snapshotProxy.totalSize,
    nodeCount: profile.snapshotProxy.nodeCount, filter, rows,
    rendered: [...grid.element.querySelectorAll('tr')].map((tr) => tr.innerText.replace(/\\s+/g, ' ').trim()).filter(Boolean),
  };
})()`;

/** Snapshot `index` in the Comparison view against snapshot `baseIndex`: the rows as the panel computed them. */
export const SHOW_COMPARISON = (index, baseIndex) => `(async () => {
  const P = ${PANEL};
  const panel = P.HeapProfilerPanel.HeapProfilerPanel.instance();
  const ps = P.ProfilesPanel.ProfilesPanel.registry.heapSnapshotProfileType.getProfiles();
  const B = ps[${index}], A = ps[${baseIndex}];
  panel.showProfile(B);
  const view = panel.viewForProfile(B);
  (${SWITCH})(view, 'Comparison');
  const base = view.baseSelect.options().findIndex((o) => o.text === A.title);
  view.baseSelect.setSelectedIndex(base);
  view.changeBase();
  const grid = view.diffDataGrid;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  for (let i = 0; i < 200 && !grid.rootNode().children.length; i++) await sleep(50);
  return {
    base: view.baseSelect.options()[base]?.text,
    rows: grid.rootNode().children.map((n) => ({
      name: n.nameInternal, added: n.addedCount, removed: n.removedCount, countDelta: n.countDelta,
      addedSize: n.addedSize, removedSize: n.removedSize, sizeDelta: n.sizeDelta, text: { ...n.data },
    })),
    rendered: [...grid.element.querySelectorAll('tr')].map((tr) => tr.innerText.replace(/\\s+/g, ' ').trim()).filter(Boolean),
  };
})()`;

/** The Memory panel in a new DevTools tab of `browser` (from launchChromium). */
export class MemoryPanel {
  constructor(browser) {
    this.browser = browser;
    this.tab = null;
    this.inspected = null;
  }

  async open() {
    if (this.tab) return this.tab;
    const port = this.browser.port;
    this.inspected = await CDP.New({ host: '127.0.0.1', port, url: 'about:blank' });
    const ws = `127.0.0.1:${port}/devtools/page/${this.inspected.id}`;
    this.tab = await openTab(port, `http://127.0.0.1:${port}/devtools/devtools_app.html?ws=${ws}&panel=heap_profiler`);
    await this.tab.waitFor(`(async () => { try { return !!${PANEL}.HeapProfilerPanel.HeapProfilerPanel.instance().fileSelectorElement; } catch { return false; } })()`,
      30000, "DevTools' Memory panel");
    await this.tab.client.DOM.enable();
    return this.tab;
  }

  /** Load a file through the panel's file input; wait until `ready` (a page expression) holds. */
  async loadFile(file, ready, what) {
    const tab = await this.open();
    const { result, exceptionDetails } = await tab.client.Runtime.evaluate({
      expression: `import('/devtools/panels/profiler/profiler.js').then((P) => P.HeapProfilerPanel.HeapProfilerPanel.instance().fileSelectorElement)`,
      awaitPromise: true,
    });
    if (exceptionDetails || !result.objectId) throw new Error(`no file input in the Memory panel: ${JSON.stringify(exceptionDetails || result)}`);
    await tab.client.DOM.setFileInputFiles({ files: [file], objectId: result.objectId });
    await tab.waitFor(ready, 60000, what);
  }

  async close() {
    if (!this.tab) return;
    await this.tab.close();
    try { await CDP.Close({ host: '127.0.0.1', port: this.browser.port, id: this.inspected.id }); } catch { /* gone */ }
    this.tab = null;
  }
}
