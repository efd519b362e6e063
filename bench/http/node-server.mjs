// Node 20 peer for bench/http/run.sh: the plainest http.createServer that
// answers GET /api/health like proflabd does (same body, content-type and
// x-lab-task header). No logging, no framework.
//   PORT=18080 LAB_TASK_ID=bench node bench/http/node-server.mjs
import http from 'node:http';
import os from 'node:os';

const port = Number(process.env.PORT || 8080);
const task = process.env.LAB_TASK_ID || os.hostname();
const body = Buffer.from('{"status":"ok"}');
const notFound = Buffer.from('{"error":"not found"}');

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/api/health') {
    res.writeHead(200, {
      'content-type': 'application/json',
      'x-lab-task': task,
      'content-length': body.length,
    });
    res.end(body);
    return;
  }
  res.writeHead(404, {
    'content-type': 'application/json',
    'x-lab-task': task,
    'content-length': notFound.length,
  });
  res.end(notFound);
});

// wrk keeps its connections busy; make sure idle gaps (warm-up to run) never
// close them under it.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;

server.listen(port, '127.0.0.1');

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)).closeAllConnections());
}
