// A real Prometheus (Debian's `prometheus` package) on loopback, with a temp
// config (1 s scrapes) and storage directory, scrapes a running proflabd.
// After `proflab jam` and `proflab leak`, queries on Prometheus' own HTTP API
// return the event-loop lag histogram (with the jam in its upper buckets) and
// the heap series (the leak in them); then every query of the Grafana
// dashboard (deploy/grafana/) runs on that Prometheus and returns data.
// Skipped, with the reason, when the prometheus binary is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { startProflabd, labEnv, stopChecked, sleep, slow, GOOD_TOKEN, PROFLABD } from './helpers.mjs';
import { readJson, dashboardQueries, grafanaExpand } from './deploy-lib.mjs';

const PROFLAB = process.env.PROFLAB_CLI ? path.resolve(process.env.PROFLAB_CLI) : path.join(path.dirname(PROFLABD), 'proflab');
const PROMETHEUS = process.env.PROMETHEUS || '/usr/bin/prometheus';
const whyNot = fs.existsSync(PROMETHEUS) ? null : `${PROMETHEUS} is missing (scripts/deps.sh test installs Debian's prometheus)`;

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});

async function query(base, expr) {
  const r = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = await r.json();
  assert.equal(body.status, 'success', `${expr}: ${JSON.stringify(body)}`);
  return body.data.result;
}

/** Waits until EXPR returns a result that PRED accepts (Prometheus scrapes every second). */
async function until(base, expr, pred, what, ms = slow(15000)) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < ms) {
    last = await query(base, expr);
    if (pred(last)) return last;
    await sleep(250);
  }
  assert.fail(`${what}: ${expr} gave ${JSON.stringify(last)}`);
}

function cli(args, base) {
  const r = spawnSync(PROFLAB, [...args, '--url', base, '--token', GOOD_TOKEN, '--json'], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `proflab ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test('a real Prometheus scrapes proflabd: the lag histogram after a jam, the heap series after a leak, the dashboard\'s queries', { skip: whyNot ?? false, timeout: 120000 }, async () => {
  const srv = await startProflabd({ env: labEnv({ LAB_MAX_LEAK_MB: 64 }) });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-prom-'));
  const promPort = await freePort();
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: proflab',
    '    metrics_path: /metrics',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${srv.port}']`,
    '',
  ].join('\n'));
  const check = spawnSync('/usr/bin/promtool', ['check', 'config', path.join(dir, 'prometheus.yml')], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  let log = '';
  const prom = spawn(PROMETHEUS, [
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`,
    '--storage.tsdb.retention.time=1h',
    '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  prom.stderr.on('data', (c) => { log += c; });
  const promBase = `http://127.0.0.1:${promPort}`;
  try {
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      try { ready = (await fetch(`${promBase}/-/ready`)).ok; } catch { await sleep(100); }
    }
    assert.ok(ready, `prometheus did not become ready:\n${log}`);
    await until(promBase, 'up{job="proflab"}', (r) => r.length === 1 && r[0].value[1] === '1', 'the target is up');
    const before = Number((await until(promBase, 'proflab_heap_live_bytes', (r) => r.length === 1, 'heap series'))[0].value[1]);

    const jam = cli(['jam', '--ms', '400'], srv.base);
    assert.ok(jam, 'jam answered');
    const leakMb = 48;
    cli(['leak', '--mb', String(leakMb)], srv.base);

    // The lag histogram: after a 400 ms jam, lag beyond 0.25 s was counted.
    const buckets = await until(promBase, 'proflab_event_loop_lag_seconds_bucket', (r) => {
      const inf = r.find((s) => s.metric.le === '+Inf');
      const below = r.filter((s) => s.metric.le !== '+Inf' && Number(s.metric.le) <= 0.25)
        .sort((a, b) => Number(b.metric.le) - Number(a.metric.le))[0];
      return inf && below && Number(inf.value[1]) > Number(below.value[1]);
    }, 'a lag above 0.25 s in the histogram');
    assert.ok(buckets.length >= 5, `${buckets.length} buckets`);
    for (const s of buckets) assert.equal(s.metric.job, 'proflab');
    const q = await query(promBase, 'histogram_quantile(1, sum by (le) (proflab_event_loop_lag_seconds_bucket))');
    assert.ok(Number(q[0].value[1]) > 0.25, `max bucket ${JSON.stringify(q)}`);
    const max = await query(promBase, 'proflab_event_loop_lag_max_seconds');
    assert.ok(Number(max[0].value[1]) >= 0.3, `lag max ${JSON.stringify(max)}`);

    // The heap series: the leak is in the tracker's live bytes, the lab's leak gauge and RSS.
    const leakBytes = leakMb * 1024 * 1024;
    await until(promBase, 'proflab_lab_leak_bytes', (r) => r.length === 1 && Number(r[0].value[1]) === leakBytes, 'the leak gauge');
    await until(promBase, 'proflab_heap_live_bytes', (r) => r.length === 1 && Number(r[0].value[1]) - before > leakBytes * 0.7,
      `the heap tracker's live bytes grew by the leak (before ${before})`);
    await until(promBase, 'proflab_process_resident_memory_bytes', (r) => r.length === 1 && Number(r[0].value[1]) > leakBytes, 'RSS');
    const range = await fetch(`${promBase}/api/v1/query_range?query=proflab_heap_live_bytes&start=${Date.now() / 1000 - 60}&end=${Date.now() / 1000}&step=1`).then((r) => r.json());
    assert.equal(range.status, 'success');
    const values = range.data.result[0].values.map((v) => Number(v[1]));
    assert.ok(Math.max(...values) - Math.min(...values) > leakBytes * 0.7, 'the leak shows as a step over time');

    // The Grafana dashboard's queries run on this Prometheus and return data.
    await sleep(2500); // two more scrapes, so rate() has points after the last counters appeared
    for (const { where, expr } of dashboardQueries(readJson('grafana/proflab-dashboard.json'))) {
      const r = await query(promBase, grafanaExpand(expr));
      assert.ok(r.length >= 1, `${where}: no data for ${grafanaExpand(expr)}`);
    }
  } finally {
    prom.kill('SIGTERM');
    await new Promise((resolve) => (prom.exitCode !== null ? resolve() : prom.on('exit', resolve)));
    await stopChecked(srv);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
