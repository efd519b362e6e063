// GET /metrics parses as Prometheus text exposition format 0.0.4 (with a
// strict parser written here) and its figures match what we did.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startProflabd, stopChecked, request, labEnv, GOOD_TOKEN } from './helpers.mjs';

const MiB = 1024 * 1024;

// ---- a strict parser for the text format -------------------------------

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s, where) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`${where}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

/** Parse `{a="x",b="y"}` starting at s[i] === '{'; returns [labels, index after '}']. */
function parseLabels(s, i, where) {
  const labels = {};
  i++; // '{'
  for (;;) {
    if (s[i] === '}') return [labels, i + 1];
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(s.slice(i));
    if (!m) throw new Error(`${where}: bad label at ${JSON.stringify(s.slice(i))}`);
    const name = m[1];
    i += m[0].length;
    let v = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') { i++; break; }
      if (c === '\\') {
        const e = s[i + 1];
        if (e === '\\') v += '\\';
        else if (e === '"') v += '"';
        else if (e === 'n') v += '\n';
        else throw new Error(`${where}: bad escape \\${e}`);
        i += 2;
        continue;
      }
      if (c === '\n') throw new Error(`${where}: raw newline in label value`);
      v += c;
      i++;
    }
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    labels[name] = v;
    if (s[i] === ',') { i++; continue; }
    if (s[i] !== '}') throw new Error(`${where}: expected , or } at ${JSON.stringify(s.slice(i))}`);
  }
}

/** Which family a sample name belongs to, given the declared types. */
function familyOf(name, families) {
  if (families.has(name) && families.get(name).type !== 'histogram' && families.get(name).type !== 'summary') return name;
  for (const suf of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suf)) {
      const base = name.slice(0, -suf.length);
      const f = families.get(base);
      if (f && (f.type === 'histogram' || (f.type === 'summary' && suf !== '_bucket'))) return base;
    }
  }
  if (families.has(name) && families.get(name).type === 'summary') return name;
  return null;
}

export function parsePrometheus(text) {
  if (!text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const families = new Map();
  const seenSeries = new Set();
  const closed = new Set(); // families whose block has ended
  let current = null;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, idx) => {
    const where = `line ${idx + 1} ${JSON.stringify(line)}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a comment
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      let f = families.get(name);
      if (!f) {
        f = { name, help: undefined, type: undefined, samples: [] };
        families.set(name, f);
      }
      if (closed.has(name)) throw new Error(`${where}: ${name} appears again after other metrics`);
      if (current && current !== name) closed.add(current);
      current = name;
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP`);
        f.help = rest;
      } else {
        if (f.type !== undefined) throw new Error(`${where}: second TYPE`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        if (f.samples.length) throw new Error(`${where}: TYPE after samples`);
        f.type = rest;
      }
      return;
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nm) throw new Error(`${where}: bad sample line`);
    const name = nm[0];
    let i = name.length;
    let labels = {};
    if (line[i] === '{') [labels, i] = parseLabels(line, i, where);
    if (line[i] !== ' ') throw new Error(`${where}: expected a space before the value`);
    const parts = line.slice(i + 1).split(' ');
    if (parts.length < 1 || parts.length > 2 || parts[0] === '') throw new Error(`${where}: expected value [timestamp]`);
    const value = parseValue(parts[0], where);
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1])) throw new Error(`${where}: bad timestamp`);
    const fam = familyOf(name, families);
    if (!fam) throw new Error(`${where}: sample ${name} without a TYPE line before it`);
    if (closed.has(fam)) throw new Error(`${where}: ${fam} samples are not grouped together`);
    if (current && current !== fam) closed.add(current);
    current = fam;
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seenSeries.has(key)) throw new Error(`${where}: duplicate series`);
    seenSeries.add(key);
    for (const l of Object.keys(labels)) if (!LABEL.test(l)) throw new Error(`${where}: bad label name ${l}`);
    families.get(fam).samples.push({ name, labels, value });
  });
  for (const f of families.values()) {
    if (f.type === undefined) throw new Error(`${f.name}: HELP without TYPE`);
    if (f.type === 'counter') for (const s of f.samples) if (!(s.value >= 0)) throw new Error(`${f.name}: negative counter`);
    if (f.type === 'histogram') checkHistogram(f);
  }
  return families;
}

function checkHistogram(f) {
  // group by the labels other than le
  const groups = new Map();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    if (!groups.has(key)) groups.set(key, { buckets: [], sum: undefined, count: undefined });
    const g = groups.get(key);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}: bucket without le`);
      g.buckets.push({ le: parseValue(le, `${f.name} le`), value: s.value });
    } else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else throw new Error(`${f.name}: unexpected sample ${s.name}`);
  }
  for (const g of groups.values()) {
    if (!g.buckets.length) throw new Error(`${f.name}: no buckets`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i].le > g.buckets[i - 1].le)) throw new Error(`${f.name}: le not increasing`);
      if (g.buckets[i].value < g.buckets[i - 1].value) throw new Error(`${f.name}: buckets not cumulative (${g.buckets[i - 1].le}: ${g.buckets[i - 1].value} > ${g.buckets[i].le}: ${g.buckets[i].value})`);
    }
    const inf = g.buckets[g.buckets.length - 1];
    if (inf.le !== Infinity) throw new Error(`${f.name}: no le="+Inf" bucket last`);
    if (g.count === undefined || g.sum === undefined) throw new Error(`${f.name}: _sum or _count missing`);
    if (inf.value !== g.count) throw new Error(`${f.name}: +Inf bucket ${inf.value} != _count ${g.count}`);
  }
}

// ---- the tests ----------------------------------------------------------

let srv;
before(async () => { srv = await startProflabd({ env: labEnv() }); });
after(async () => { await stopChecked(srv); });

async function scrape() {
  const res = await fetch(`${srv.base}/metrics`);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return { res, text, fam: parsePrometheus(text) };
}

/** The value of the one sample called `name` with these labels. */
const one = (fam, name, labels = {}) => {
  const all = [...fam.values()].flatMap((f) => f.samples);
  const s = all.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  assert.equal(s.length, 1, `one ${name}${JSON.stringify(labels)} sample, found ${s.length}`);
  return s[0].value;
};

test('the parser itself rejects broken expositions', () => {
  const ok = '# HELP a_total x\n# TYPE a_total counter\na_total{r="1"} 3\n';
  assert.ok(parsePrometheus(ok).get('a_total'));
  for (const bad of [
    'a 1\n', // no TYPE
    '# TYPE a gauge\na 1', // no final newline
    '# TYPE a gauge\na{b="x} 1\n', // unterminated
    '# TYPE a gauge\na one\n', // bad value
    '# TYPE a gauge\na 1\na 2\n', // duplicate series
    '# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x="1"} 1\n', // interleaved
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', // not cumulative
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', // +Inf != count
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', // no +Inf
  ]) {
    assert.throws(() => parsePrometheus(bad), Error, JSON.stringify(bad));
  }
});

test('GET /metrics: content type, x-lab-task, and every family has HELP and TYPE', async () => {
  const { res, fam } = await scrape();
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  assert.equal(res.headers.get('x-lab-task'), srv.task);
  for (const f of fam.values()) {
    assert.ok(f.help && f.help.length > 0, `${f.name} has HELP`);
    assert.ok(f.type, `${f.name} has TYPE`);
  }
});

test('the expected metrics are there with the right types and sane values', async () => {
  const { fam } = await scrape();
  const lag = fam.get('proflab_event_loop_lag_seconds');
  assert.equal(lag?.type, 'histogram');
  const count = one(fam, 'proflab_event_loop_lag_seconds_count');
  assert.ok(count > 0, 'the lag timer has ticked');
  assert.ok(one(fam, 'proflab_event_loop_lag_seconds_sum') >= 0);
  assert.equal(one(fam, 'proflab_event_loop_lag_seconds_bucket', { le: '+Inf' }), count);

  const util = fam.get('proflab_event_loop_utilization');
  assert.equal(util?.type, 'gauge');
  assert.ok(util.samples.length >= 1);
  for (const s of util.samples) assert.ok(s.value >= 0 && s.value <= 1, `utilization ${s.value}`);

  assert.equal(fam.get('proflab_process_resident_memory_bytes')?.type, 'gauge');
  assert.ok(one(fam, 'proflab_process_resident_memory_bytes') > MiB);
  assert.equal(fam.get('proflab_lab_leak_bytes')?.type, 'gauge');
  assert.equal(one(fam, 'proflab_lab_leak_bytes'), 0);
  assert.equal(fam.get('proflab_http_requests_total')?.type, 'counter');
});

test('proflab_http_requests_total counts our requests by route and status', async () => {
  const { fam: f0 } = await scrape();
  const count = (fam, route, status) => {
    const s = fam.get('proflab_http_requests_total').samples.find((x) => x.labels.route === route && x.labels.status === String(status));
    return s ? s.value : 0;
  };
  for (const s of fam_samples(f0)) assert.deepEqual(Object.keys(s.labels).sort(), ['route', 'status']);
  for (let i = 0; i < 3; i++) assert.equal((await request(srv.base, '/api/health')).status, 200);
  for (let i = 0; i < 2; i++) assert.equal((await request(srv.base, '/api/nope')).status, 404);
  assert.equal((await request(srv.base, '/api/health', { method: 'POST', body: '' })).status, 405);
  assert.equal((await request(srv.base, '/api/work?n=abc')).status, 400);
  assert.equal((await request(srv.base, '/api/lab/status', { token: 'wrong-token-wrong-token' })).status, 401);
  assert.equal((await request(srv.base, '/api/lab/status', { token: GOOD_TOKEN })).status, 200);
  const { fam: f1 } = await scrape();
  assert.equal(count(f1, '/api/health', 200) - count(f0, '/api/health', 200), 3);
  assert.equal(count(f1, '/api/health', 405) - count(f0, '/api/health', 405), 1);
  assert.equal(count(f1, '/api/work', 400) - count(f0, '/api/work', 400), 1);
  assert.equal(count(f1, '/api/lab/status', 401) - count(f0, '/api/lab/status', 401), 1);
  assert.equal(count(f1, '/api/lab/status', 200) - count(f0, '/api/lab/status', 200), 1);
  const unmatched = f1.get('proflab_http_requests_total').samples.filter((x) => x.labels.status === '404');
  assert.equal(unmatched.length, 1, 'unknown paths share one route label (bounded cardinality)');
  assert.equal(unmatched[0].value - count(f0, unmatched[0].labels.route, 404), 2);
  // the previous scrape itself is counted once it has been answered
  assert.equal(count(f1, '/metrics', 200) - count(f0, '/metrics', 200), 1);
});

function fam_samples(fam) { return fam.get('proflab_http_requests_total').samples; }

test('unknown paths do not add route labels (no cardinality blow-up)', async () => {
  for (let i = 0; i < 5; i++) await request(srv.base, `/api/random-${i}-${Date.now()}`);
  const { fam } = await scrape();
  for (const s of fam_samples(fam)) assert.doesNotMatch(s.labels.route, /random/);
});

test('proflab_lab_leak_bytes follows memory-leak and memory-clear', async () => {
  const l = await request(srv.base, '/api/lab/memory-leak?mb=2', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(l.status, 200);
  assert.equal(one((await scrape()).fam, 'proflab_lab_leak_bytes'), 2 * MiB);
  await request(srv.base, '/api/lab/memory-clear', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(one((await scrape()).fam, 'proflab_lab_leak_bytes'), 0);
});

test('a 300 ms jam shows in the lag histogram (a sample above 0.25 s) and stays well-formed', async () => {
  const { fam: f0 } = await scrape();
  const above = (fam) => one(fam, 'proflab_event_loop_lag_seconds_bucket', { le: '+Inf' }) - one(fam, 'proflab_event_loop_lag_seconds_bucket', { le: '0.25' });
  const j = await request(srv.base, '/api/lab/event-loop-jam?ms=300', { method: 'POST', token: GOOD_TOKEN });
  assert.equal(j.status, 200);
  await new Promise((r) => setTimeout(r, 50)); // let the lag timer record the late tick
  const { fam: f1 } = await scrape();
  assert.ok(above(f1) - above(f0) >= 1, `samples above 0.25 s: ${above(f0)} -> ${above(f1)}`);
  assert.ok(one(f1, 'proflab_event_loop_lag_seconds_sum') - one(f0, 'proflab_event_loop_lag_seconds_sum') >= 0.25);
});
