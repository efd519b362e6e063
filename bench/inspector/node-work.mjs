// Node 20 peer of proflabd's GET /api/work?n=N for bench/inspector/run.sh:
// the same work in JavaScript (build n records with xorshift32, serialize
// them to JSON, SHA-256 the JSON, sort by score descending), so a CPU
// profile of Node under wrk has something of the same shape to sample.
//   PORT=18080 node --inspect=127.0.0.1:0 bench/inspector/node-work.mjs
import crypto from 'node:crypto';
import http from 'node:http';

const port = Number(process.env.PORT || 8080);

function work_build_records(n, seed) {
  const recs = new Array(n);
  let x = (seed || 2463534242) >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    recs[i] = { id: i, name: `item-${x.toString(16).padStart(8, '0')}`, score: x % 100000 };
  }
  return recs;
}
const work_serialize = (recs) => JSON.stringify(recs);
const work_hash = (s) => crypto.createHash('sha256').update(s).digest('hex');
const work_sort = (recs) => recs.sort((a, b) => (b.score - a.score) || (a.id - b.id));

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/api/work') {
    const n = Math.min(200000, Math.max(1, Number(u.searchParams.get('n') || 1000)));
    const recs = work_build_records(n, Number(u.searchParams.get('seed') || 1));
    const hash = work_hash(work_serialize(recs));
    work_sort(recs);
    const body = JSON.stringify({ n, sha256: hash, top: recs.slice(0, 3) });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  const body = '{"status":"ok"}';
  res.writeHead(u.pathname === '/api/health' ? 200 : 404, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.listen(port, '127.0.0.1');
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.closeAllConnections(); server.close(() => process.exit(0)); });
