'use strict';
// expect: two processes in the report: this parent (small) and a child started with child_process.fork
// that allocates about --child-mb MB (default 100) of its own. Lines of the child carry "tag":"child" and its
// own pid; the parent prints {"event":"child","pid":N} when the child is started and {"event":"child_exit"}.
// The parent exits 0 after the child has exited and printed its final line.
const c = require('./lib/common');
const { fork } = require('child_process');

const opts = c.parseArgs({ duration: 4, 'child-mb': 100, role: 'parent' });

if (opts.role === 'child') {
  c.setTag('child');
  c.ready({ scenario: 'fork_child', role: 'child' });
  c.startReporting(opts['report-interval']);
  const keep = [];
  const chunk = 1024 * 1024;
  const chunks = opts['child-mb'];
  let n = 0;
  // Allocate over the first half of the duration, hold, then exit.
  const period = Math.max(1, (opts.duration * 500) / chunks);
  const timer = setInterval(() => {
    keep.push(Buffer.alloc(chunk, (n & 0xff) | 1));
    if (++n >= chunks) {
      clearInterval(timer);
      setTimeout(() => c.finishAndExit(0, { chunks: keep.length }), opts.duration * 400);
    }
  }, period);
} else {
  c.setTag(opts.tag);
  c.ready({ scenario: 'fork_child', role: 'parent' });
  c.startReporting(opts['report-interval']);
  const args = [
    '--role', 'child', '--duration', String(opts.duration), '--child-mb', String(opts['child-mb']),
    '--report-interval', String(opts['report-interval']),
  ];
  // The child shares stdout, so its JSON lines go straight to whoever reads this process's output.
  const child = fork(__filename, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  c.emit({ event: 'child', pid: child.pid });
  const parentKeep = Buffer.alloc(8 * 1024 * 1024, 1);
  child.on('exit', (code, signal) => {
    c.emit({ event: 'child_exit', pid: child.pid, code, signal });
    c.finishAndExit(code === 0 ? 0 : 1, { child_pid: child.pid, held: parentKeep.length });
  });
}
