// The floor of bench/inspector/run.sh's heap part: a DevTools endpoint
// that does no work. It answers HeapProfiler.takeHeapSnapshot by sending
// the addHeapSnapshotChunk messages recorded from proflabd's snapshot
// (client.mjs snapshot PORT 1 RECORD_FILE), prebuilt as strings, then the
// answer; every other method gets an empty result. The same client timed
// against it shows what the client alone costs: no server can answer a
// snapshot of that size faster than this one does.
//
//   node bench/inspector/replay.mjs RECORD_FILE PORT
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'tests', 'package.json'));
let WebSocket;
try {
  WebSocket = require('ws');
} catch {
  console.error('bench/inspector: ws is missing: run scripts/npm-deps.sh');
  process.exit(2);
}

const [recordFile, portArg] = process.argv.slice(2);
const port = Number(portArg);
if (!recordFile || !port) {
  console.error('usage: node bench/inspector/replay.mjs RECORD_FILE PORT');
  process.exit(2);
}
const chunks = JSON.parse(fs.readFileSync(recordFile, 'utf8'));
// Every chunk event as a finished WebSocket frame (a server's: unmasked,
// text), all in one buffer: one write answers a snapshot.
const frame = (text) => {
  const payload = Buffer.from(text, 'utf8');
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, n])
    : n < 65536 ? Buffer.from([0x81, 126, n >> 8, n & 255])
      : Buffer.concat([Buffer.from([0x81, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  return Buffer.concat([head, payload]);
};
const events = Buffer.concat(chunks.map((chunk) =>
  frame(JSON.stringify({ method: 'HeapProfiler.addHeapSnapshotChunk', params: { chunk } }))));

const protocol = require('chrome-remote-interface/lib/protocol.json');
const id = 'replay-0000-0000-0000-000000000000';
const target = {
  description: 'replay', devtoolsFrontendUrl: '', id, title: 'replay', type: 'node', url: 'file://',
  webSocketDebuggerUrl: `ws://127.0.0.1:${port}/${id}`,
};
const server = http.createServer((req, res) => {
  let body;
  if (req.url === '/json' || req.url === '/json/list') body = [target];
  else if (req.url === '/json/version') body = { Browser: 'replay', 'Protocol-Version': '1.3' };
  else if (req.url === '/json/protocol') body = protocol;
  else {
    res.writeHead(404).end();
    return;
  }
  const s = JSON.stringify(body);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(s) });
  res.end(s);
});
const wss = new WebSocket.Server({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    const m = JSON.parse(data);
    const answer = frame(JSON.stringify({ id: m.id, result: {} }));
    /* ws's own socket: nothing of ws's sender runs, so none of its warm-up is timed */
    if (m.method === 'HeapProfiler.takeHeapSnapshot') ws._socket.write(events);
    ws._socket.write(answer);
  });
});
server.listen(port, '127.0.0.1');
