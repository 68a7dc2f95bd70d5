'use strict';
// expect: stable. For the V8 attach checks: holds --mb MB of Buffers (allocated before any tracer
// attaches), then allocates and drops one small Buffer every 50 ms, as a server handling a request now and
// then does: a tracer attached later learns where Node's ArrayBuffer allocator is from such an allocation.
// Prints ready, a memory line every --report-interval s, and final on SIGTERM/SIGINT or after --duration s.
const c = require('./lib/common');

const opts = c.parseArgs({ duration: 600, mb: 8 });

const held = [];
for (let i = 0; i < opts.mb; i++) held.push(Buffer.alloc(1024 * 1024, 1));

c.ready({ scenario: 'v8_attach_buffers' });
c.startReporting(opts['report-interval']);

let ticks = 0;
setInterval(() => {
  // Buffer.alloc never uses the pool, and above 64 bytes V8 keeps a typed array's data off its heap: a
  // backing store of its own, small so that the garbage it leaves until the next GC hardly moves
  // memoryUsage().arrayBuffers.
  const b = Buffer.alloc(256, ticks & 0xff);
  ticks += b.length > 0 ? 1 : 0;
}, 50).unref();

c.waitForDurationOrSignal(opts.duration).then((reason) => c.finishAndExit(0, { reason, held: held.length, ticks }));
