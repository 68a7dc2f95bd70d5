'use strict';
// expect: the process exits with status 3 after --duration seconds (default 2), in the middle of its work:
// no final line, no cleanup. memlens must report exit_status 3, keep what it saw of the process, and exit 3.
const c = require('./lib/common');

const opts = c.parseArgs({ duration: 2 });
c.setTag(opts.tag);
c.ready({ scenario: 'exit_midway' });
c.startReporting(opts['report-interval']);

// Steady work that is still running when the process exits.
const keep = [];
setInterval(() => {
  keep.push(Buffer.alloc(64 * 1024, 1));
  if (keep.length > 200) keep.splice(0, 100);
}, 10);

setTimeout(() => {
  c.emit({ event: 'exiting', status: 3 });
  process.exit(3);
}, opts.duration * 1000);
