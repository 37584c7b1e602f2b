// SPDX-License-Identifier: MIT
//
// A Node.js cluster (node:cluster, its default round-robin scheduling on
// Linux: the primary accepts every connection and hands it to a worker).
//   node cluster.js PORT group
//     stopped as systemd stops a service by default (KillMode=control-group:
//     SIGTERM to every process of it) and as pm2 stops its cluster workers
//     (a signal to each): every worker closes its server, which waits for its
//     connections; the primary exits once its workers have.
//   node cluster.js PORT primary
//     stopped as systemd does with KillMode=mixed (SIGTERM to the main
//     process only): the primary tells each worker over its channel
//     (worker.send), and the worker closes its server.
const cluster = require('node:cluster');
const http = require('node:http');
const port = Number(process.argv[2]);
const mode = process.argv[3];
if (cluster.isPrimary) {
  for (let i = 0; i < 2; i++) cluster.fork();
  process.on('SIGTERM', () => {
    if (mode === 'primary')
      for (const w of Object.values(cluster.workers)) w.send('shutdown');
  });
  cluster.on('exit', () => {
    if (Object.keys(cluster.workers).length === 0) process.exit(0);
  });
} else {
  const server = http.createServer((req, res) => res.end('ok\n'));
  server.keepAliveTimeout = 600000;
  server.listen(port, '127.0.0.1');
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('message', (m) => { if (m === 'shutdown') stop(); });
}
