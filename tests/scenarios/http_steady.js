'use strict';
// expect: stable
// A steady HTTP server on 127.0.0.1 under bounded loopback load generated in-process: --concurrency
// (default 8) keep-alive clients, each issuing a request every --period-ms (default 10 ms) and waiting for
// its response. Handlers build a small JSON body from per-request objects that die young. Nothing is kept,
// so heap used after GC, array buffers, native memory and fds stay flat after warm-up.
const c = require('./lib/common');
const http = require('http');

const opts = c.parseArgs({ duration: 60, concurrency: 8, 'period-ms': 10 });
c.setTag(opts.tag);

let served = 0;
const server = http.createServer((req, res) => {
  const items = [];
  for (let i = 0; i < 20; i++) items.push({ i, url: req.url, at: served });
  const body = JSON.stringify({ ok: true, items });
  served++;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});

let stopping = false;
let completed = 0;
let failed = 0;

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  c.ready({ scenario: 'http_steady', port });
  c.startReporting(opts['report-interval']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const client = (n) => {
    if (stopping) return;
    const req = http.get({ host: '127.0.0.1', port, path: `/item/${n}`, agent }, (res) => {
      res.resume();
      res.on('end', () => {
        completed++;
        setTimeout(() => client(n + opts.concurrency), opts['period-ms']);
      });
    });
    req.on('error', () => {
      failed++;
      if (!stopping) setTimeout(() => client(n), 100);
    });
  };
  for (let i = 0; i < opts.concurrency; i++) client(i);

  setTimeout(() => {
    stopping = true;
    // Let in-flight requests finish, then stop.
    setTimeout(() => {
      agent.destroy();
      server.close();
      c.finishAndExit(0, { served, completed, failed });
    }, 200);
  }, opts.duration * 1000);
});
