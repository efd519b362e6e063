// The CDP side of bench/inspector/run.sh, with chrome-remote-interface (the
// npm client of tests/package.json; scripts/npm-deps.sh installs it), the
// same for proflabd and for node --inspect. One line of key=value figures
// per measurement on stdout.
//
//   node bench/inspector/client.mjs snapshot PORT REPEAT [RECORD_FILE]
//       REPEAT × HeapProfiler.takeHeapSnapshot{reportProgress:false} on one
//       session: bytes (the chunks, UTF-8), ms from the request to the
//       answer, MB/s (10^6 bytes per second); with RECORD_FILE, the first
//       snapshot's chunks are saved there as a JSON array (replay.mjs);
//       ENABLE_PAUSE_MS (environment, default 0): wait that long between
//       HeapProfiler.enable and the first snapshot, as a user of DevTools'
//       Memory panel does between opening it (DevTools enables the
//       HeapProfiler then) and asking for a snapshot
//   node bench/inspector/client.mjs profile PORT SECONDS INTERVAL_US READY_FILE
//       Profiler.enable, setSamplingInterval{interval}, start; creates
//       READY_FILE; SECONDS later stop: the samples delivered (the length
//       of profile.samples, each one sample, whatever its time delta)
//       against the nominal count (profile duration / interval)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'tests', 'package.json'));
let CDP;
try {
  CDP = require('chrome-remote-interface');
} catch {
  console.error('bench/inspector: chrome-remote-interface is missing: run scripts/npm-deps.sh');
  process.exit(2);
}

const [cmd, portArg, ...rest] = process.argv.slice(2);
const port = Number(portArg);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function snapshot(repeat, recordFile) {
  const client = await CDP({ host: '127.0.0.1', port });
  try {
    await client.HeapProfiler.enable();
    await sleep(Number(process.env.ENABLE_PAUSE_MS || 0));
    for (let i = 1; i <= repeat; i++) {
      let bytes = 0;
      let chunks = 0;
      const record = recordFile && i === 1 ? [] : null;
      const onChunk = ({ chunk }) => {
        bytes += Buffer.byteLength(chunk);
        chunks++;
        if (record) record.push(chunk);
      };
      client.on('HeapProfiler.addHeapSnapshotChunk', onChunk);
      const t0 = process.hrtime.bigint();
      await client.HeapProfiler.takeHeapSnapshot({ reportProgress: false });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      client.removeListener('HeapProfiler.addHeapSnapshotChunk', onChunk);
      if (record) fs.writeFileSync(recordFile, JSON.stringify(record));
      console.log(`run=${i} bytes=${bytes} chunks=${chunks} ms=${ms.toFixed(1)} mb_per_s=${(bytes / 1e6 / (ms / 1e3)).toFixed(1)}`);
    }
  } finally {
    await client.close();
  }
}

async function profile(seconds, intervalUs, readyFile) {
  const client = await CDP({ host: '127.0.0.1', port });
  try {
    await client.Profiler.enable();
    await client.Profiler.setSamplingInterval({ interval: intervalUs });
    await client.Profiler.start();
    const t0 = process.hrtime.bigint();
    fs.writeFileSync(readyFile, '');
    await sleep(seconds * 1000);
    const { profile: p } = await client.Profiler.stop();
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const durUs = p.endTime - p.startTime;
    const nominal = durUs / intervalUs;
    const counts = new Map();
    for (const s of p.samples) counts.set(s, (counts.get(s) || 0) + 1);
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([id, c]) => `${byId.get(id)?.callFrame.functionName || '?'}:${c}`).join(',');
    console.log(`samples=${p.samples.length} nominal=${Math.round(nominal)} delivered=${(p.samples.length / nominal).toFixed(4)} ` +
      `median_delta_us=${median(p.timeDeltas.slice(1))} duration_ms=${(durUs / 1000).toFixed(1)} wall_ms=${wallMs.toFixed(1)} ` +
      `nodes=${p.nodes.length} top=${top}`);
  } finally {
    await client.close();
  }
}

try {
  if (cmd === 'snapshot') await snapshot(Number(rest[0] || 5), rest[1]);
  else if (cmd === 'profile') await profile(Number(rest[0]), Number(rest[1]), rest[2]);
  else {
    console.error('usage: client.mjs snapshot PORT REPEAT | profile PORT SECONDS INTERVAL_US READY_FILE');
    process.exit(2);
  }
} catch (e) {
  console.error(`bench/inspector: ${cmd} on port ${port}: ${e.stack || e}`);
  process.exit(1);
}
