'use strict';
// expect: memlens's fd table follows reuse: the fd that ends open refers to the last file opened on it
// Close-then-open returns the same fd number (the lowest free one). Every --period-ms (default 200 ms),
// --cycles times (default 10), the scenario closes its open fd and opens a different file, which gets the
// same number; it prints {"event":"reuse","cycle":i,"closed_fd":n,"closed_path":..,"opened_fd":n,
// "opened_path":..,"same":true}. At the end it prints its fd table, holds for --hold seconds, and exits.
const c = require('./lib/common');
const { quietEnd } = require('./lib/fdscenario');
const fs = require('fs');
const os = require('os');
const path = require('path');

const opts = c.parseArgs({ duration: 10, cycles: 10, 'period-ms': 200, hold: 0 });
c.setTag(opts.tag);
c.fdsOnSignal();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memlens-fd-reuse-'));
const paths = [];
for (let i = 0; i <= opts.cycles; i++) {
  paths.push(path.join(dir, `gen-${i}.txt`));
  fs.writeFileSync(paths[i], `${i}\n`);
}

c.ready({ scenario: 'fd_reuse', dir });
c.startReporting(opts['report-interval']);

let current = { fd: fs.openSync(paths[0], 'r'), path: paths[0] };
c.emit({ event: 'opened', fd: current.fd, path: current.path });
let cycle = 0;
const timer = setInterval(() => {
  cycle++;
  const closed = current;
  // Both calls are synchronous on the main thread: nothing else can take the freed number in between.
  fs.closeSync(closed.fd);
  current = { fd: fs.openSync(paths[cycle], 'r'), path: paths[cycle] };
  c.emit({
    event: 'reuse',
    cycle,
    closed_fd: closed.fd,
    closed_path: closed.path,
    opened_fd: current.fd,
    opened_path: current.path,
    same: closed.fd === current.fd,
  });
  if (cycle >= opts.cycles) {
    clearInterval(timer);
    quietEnd(
      opts,
      () => fs.rmSync(dir, { recursive: true, force: true }),
      () => ({ cycles: cycle, fd: current.fd, path: current.path }),
    );
  }
}, opts['period-ms']);
