'use strict';
// expect: sockets leak_suspected
// Client connections to a local server that are never destroyed: --rate (default 5) TCP connections per
// second from this process to its own server on 127.0.0.1. Neither side closes, so each connection leaks
// two socket fds (client and accepted end): about 600 in 60 s. At the end, at a quiet point, the scenario
// prints its fd table from /proc/self/fd, holds for --hold seconds, then the final line. SIGUSR2 prints the
// table at any time.
const c = require('./lib/common');
const { quietEnd } = require('./lib/fdscenario');
const net = require('net');

const opts = c.parseArgs({ duration: 60, rate: 5, hold: 0 });
c.setTag(opts.tag);
c.fdsOnSignal();

const accepted = [];
const clients = [];
const server = net.createServer((sock) => {
  accepted.push(sock);
  sock.on('data', () => {});
  sock.on('error', () => {});
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  c.ready({ scenario: 'fd_leak_sockets', port });
  c.startReporting(opts['report-interval']);
  const stop = c.every(1000 / opts.rate, () => {
    const s = net.connect(port, '127.0.0.1', () => s.write('hello\n'));
    s.on('error', () => {});
    clients.push(s);
  });
  const counter = setInterval(
    () => c.emit({ event: 'fd_count', t_s: c.elapsedSeconds(), clients: clients.length, accepted: accepted.length }),
    1000,
  );
  setTimeout(() => {
    stop();
    clearInterval(counter);
    quietEnd(opts, () => {}, () => ({ clients: clients.length, accepted: accepted.length }));
  }, opts.duration * 1000);
});
