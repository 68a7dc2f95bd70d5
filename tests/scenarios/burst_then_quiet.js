'use strict';
// expect: retained_not_leak or stable (never leak_suspected)
// A large burst of objects (about --burst-mb MB, default 150: JS objects and Buffers) is built during the
// first --burst-s seconds (default 5), then dropped all at once. After that the process is quiet: a trickle
// of short-lived garbage only, so GCs still happen and collect the burst. Heap used after GC falls back to
// its starting level; RSS may stay high because V8 and malloc keep some freed pages.
const c = require('./lib/common');

const opts = c.parseArgs({ duration: 60, 'burst-mb': 150, 'burst-s': 5 });
c.setTag(opts.tag);
c.ready({ scenario: 'burst_then_quiet' });
c.startReporting(opts['report-interval']);

let burst = [];
const stepMs = 50;
const steps = Math.max(1, Math.floor((opts['burst-s'] * 1000) / stepMs));
// Half of the burst in JS objects (~100 bytes each with their strings), half in 64 KB Buffers.
const jsPerStep = Math.floor((opts['burst-mb'] * 1024 * 1024 * 0.5) / 100 / steps);
const bufPerStep = Math.max(1, Math.floor((opts['burst-mb'] * 16 * 0.5) / steps));
let step = 0;
const burstTimer = setInterval(() => {
  for (let i = 0; i < jsPerStep; i++) burst.push({ i, step, name: `o${step}-${i}` });
  for (let i = 0; i < bufPerStep; i++) burst.push(Buffer.alloc(64 * 1024, 3));
  if (++step >= steps) {
    clearInterval(burstTimer);
    c.emit({ event: 'burst_done', t_s: c.elapsedSeconds(), items: burst.length });
    burst = null; // everything becomes garbage at once
  }
}, stepMs);

// The quiet phase still runs a little: short-lived garbage every 20 ms.
const quiet = setInterval(() => c.transientGarbage(step), 20);

setTimeout(() => {
  clearInterval(quiet);
  c.finishAndExit(0, { burst_steps: step });
}, opts.duration * 1000);
