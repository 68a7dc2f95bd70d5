'use strict';
// expect: stable (no fds/sockets leak verdict)
// A healthy HTTP server under bounded loopback load: --concurrency (default 4) clients, each opening a new
// connection per request (Connection: close, no keep-alive), so sockets are accepted and closed all the
// time while the number open stays bounded. At the end the load stops, and at a quiet point the scenario
// prints its fd table from /proc/self/fd, holds for --hold seconds, then the final line.
const c = require('./lib/common');
const { quietEnd } = require('./lib/fdscenario');
const http = require('http');

const opts = c.parseArgs({ duration: 60, concurrency: 4, 'period-ms': 10, hold: 0 });
c.setTag(opts.tag);
c.fdsOnSignal();

let served = 0;
let completed = 0;
let failed = 0;
let stopping = false;
const server = http.createServer((req, res) => {
  served++;
  res.setHeader('connection', 'close');
  res.end('ok\n');
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  c.ready({ scenario: 'fd_healthy_server', port });
  c.startReporting(opts['report-interval']);
  const client = () => {
    if (stopping) return;
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      res.resume();
      res.on('end', () => {
        completed++;
        setTimeout(client, opts['period-ms']);
      });
    });
    req.on('error', () => {
      failed++;
      setTimeout(client, 100);
    });
  };
  for (let i = 0; i < opts.concurrency; i++) client();
  const counter = setInterval(() => {
    const s = c.fdSummary(false);
    c.emit({ event: 'fd_count', t_s: c.elapsedSeconds(), open: s.count, completed });
  }, 1000);
  setTimeout(() => {
    stopping = true;
    clearInterval(counter);
    quietEnd(opts, () => server.close(), () => ({ served, completed, failed }));
  }, opts.duration * 1000);
});
