// Stand-in for ArgusAI's Next.js frontend, for the infrastructure tests.
//
// Listens on 0.0.0.0:3000:
//   GET /            -> 200, a small HTML page (what the healthcheck fetches)
//   GET /api/health  -> the status (and body) of GET ${BACKEND_URL}/health,
//                       or 502 when the backend cannot be reached
// SIGTERM/SIGINT close the server at once: node as PID 1 would otherwise
// ignore SIGTERM and `docker stop` would wait for its timeout.
'use strict';

const http = require('http');

const HOST = '0.0.0.0';
const PORT = 3000;
// Default matches the backend's service name and port in the deployment.
const BACKEND_URL = (process.env.BACKEND_URL || 'http://backend:8000').replace(/\/+$/, '');
// A healthcheck must not hang on a backend that does not answer.
const PROXY_TIMEOUT_MS = 3000;

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>ArgusAI</title></head>
<body><h1>ArgusAI</h1><p>Frontend stand-in for infrastructure tests.</p></body>
</html>
`;

function proxyHealth(res) {
  const req = http.get(`${BACKEND_URL}/health`, { timeout: PROXY_TIMEOUT_MS }, (upstream) => {
    const chunks = [];
    upstream.on('data', (chunk) => chunks.push(chunk));
    upstream.on('end', () => {
      res.writeHead(upstream.statusCode, { 'Content-Type': 'application/json' });
      res.end(Buffer.concat(chunks));
    });
  });
  req.on('timeout', () => req.destroy(new Error('backend timed out')));
  req.on('error', (err) => {
    if (res.headersSent) return;
    res.writeHead(502, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ status: 'backend unreachable', error: err.message }));
  });
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  if (req.method === 'GET' && path === '/') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  } else if (req.method === 'GET' && path === '/api/health') {
    proxyHealth(res);
  } else {
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: 'not found' }));
  }
});

function stop(signal) {
  console.log(`argusai-frontend: ${signal}, stopping`);
  server.close();
  // Keep-alive connections would hold close() open; nothing here needs them.
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

server.listen(PORT, HOST, () => {
  console.log(`argusai-frontend: listening on ${HOST}:${PORT}, backend ${BACKEND_URL}`);
});
