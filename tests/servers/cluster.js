// SPDX-License-Identifier: MIT
//
// A Node.js cluster (node:cluster, its default round-robin scheduling on
// Linux: the primary accepts every connection and hands it to a worker).
// Stopped as systemd stops a service (KillMode=control-group: SIGTERM to
// every process of it) and as pm2 stops its cluster workers (a signal to
// each): every worker closes its server, which waits for its connections;
// the primary exits once its workers have.
const cluster = require('node:cluster');
const http = require('node:http');
const port = Number(process.argv[2]);
if (cluster.isPrimary) {
  for (let i = 0; i < 2; i++) cluster.fork();
  process.on('SIGTERM', () => {}); // its workers end it
  cluster.on('exit', () => {
    if (Object.keys(cluster.workers).length === 0) process.exit(0);
  });
} else {
  const server = http.createServer((req, res) => res.end('ok\n'));
  server.keepAliveTimeout = 600000;
  server.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
