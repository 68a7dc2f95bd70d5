'use strict';
// The common ending of the fd scenarios: after the activity stops, wait for a quiet point, print the fd
// table (ground truth from /proc/self/fd), hold quietly for --hold seconds (or until SIGTERM/SIGINT) so
// that a test can query memlens at the same moment, print the table again, then the final line.
const c = require('./common');

async function quietEnd(opts, cleanup = () => {}, extra = () => ({})) {
  await c.sleep(300);
  c.emitFds({ reason: 'quiet' });
  if (opts.hold > 0) {
    const reason = await c.waitForDurationOrSignal(opts.hold);
    c.emitFds({ reason: `hold_end:${reason}` });
  }
  cleanup();
  c.finishAndExit(0, extra());
}

module.exports = { quietEnd };
