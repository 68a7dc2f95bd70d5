'use strict';
// expect: memlens attach reports every fd already open (at least --count, default 1000)
// Opens --count fds before printing ready: 80% regular files (one temporary file opened many times) and
// 20% sockets (connected pairs on 127.0.0.1), then prints its fd table from /proc/self/fd and waits until
// SIGTERM/SIGINT or --duration seconds (default 600), without opening or closing anything. SIGUSR2
// prints the table again. Final line, then exit 0.
const c = require('./lib/common');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const opts = c.parseArgs({ duration: 600, count: 1000 });
c.setTag(opts.tag);
c.fdsOnSignal();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memlens-fd-many-'));
const file = path.join(dir, 'shared.txt');
fs.writeFileSync(file, 'x\n');

const held = [];
const sockets = [];
const socketFds = Math.floor(opts.count * 0.2) & ~1;
for (let i = 0; i < opts.count - socketFds; i++) held.push(fs.openSync(file, 'r'));

const server = net.createServer((s) => {
  sockets.push(s);
  s.on('error', () => {});
});
server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  for (let i = 0; i < socketFds / 2; i++) {
    await new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', resolve);
      s.on('error', reject);
      sockets.push(s);
    });
  }
  // Wait until the server side has accepted every connection.
  while (sockets.length < socketFds) await c.sleep(10);
  await c.sleep(200);
  const summary = c.fdSummary(true);
  c.ready({ scenario: 'fd_many', opened: held.length + sockets.length, fds_open: summary.count });
  c.emit(summary);
  c.startReporting(opts['report-interval']);
  const reason = await c.waitForDurationOrSignal(opts.duration);
  c.emitFds({ reason: `end:${reason}` });
  fs.rmSync(dir, { recursive: true, force: true });
  c.finishAndExit(0, { files: held.length, sockets: sockets.length });
});
