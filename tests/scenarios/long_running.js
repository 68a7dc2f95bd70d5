'use strict';
// expect: stable (a small, steady process). Used by the attach tests: it prints ready, holds some memory
// and a few fds, then waits until SIGTERM/SIGINT or --duration seconds (default 600), prints final and exits 0.
const c = require('./lib/common');

const opts = c.parseArgs({ duration: 600, mb: 32 });
c.setTag(opts.tag);

const held = [];
for (let i = 0; i < opts.mb; i++) held.push(Buffer.alloc(1024 * 1024, 1));
const objs = [];
for (let i = 0; i < 50000; i++) objs.push({ id: i, name: `item-${i}` });

c.ready({ scenario: 'long_running' });
c.startReporting(opts['report-interval']);

// A little periodic activity so that GC and timers run while attached.
setInterval(() => {
  const tmp = [];
  for (let i = 0; i < 1000; i++) tmp.push({ i });
}, 100).unref();

c.waitForDurationOrSignal(opts.duration).then((reason) => c.finishAndExit(0, { reason, held: held.length + objs.length }));
