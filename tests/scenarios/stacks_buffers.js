'use strict';
// expect: (no verdict) ground truth for the stack profiles: one uniquely named JS function,
// allocateReportBuffers, allocates every Buffer of the run and writes into each page of it, so it is on the
// stack of the ArrayBuffer allocations and of the page faults that bring those pages in. It is called
// continuously for --duration seconds (long enough for several of memlens's sampling windows and for V8 to
// JIT-compile it), keeping a rolling set of about --keep-mb MB so that memory is freed and faulted in anew.
// Prints `ready`, then `final` (with `calls`, `allocated_bytes`) and exits.
const c = require('./lib/common');

// A JS function that TurboFan inlines into its caller has no frame of its own (in any profiler, not only
// memlens's): inlining is turned off so that the function named below stays on the stacks. Set before any
// of this file's functions is optimized.
require('v8').setFlagsFromString('--max-inlined-bytecode-size=0');

const opts = c.parseArgs({ duration: 12, 'keep-mb': 64, 'report-interval': 0 });

const kept = new Array(128);
let calls = 0;
let allocatedBytes = 0;

// Sizes from 64 KiB to 1 MiB: large enough to come from fresh mmap'd or trimmed memory (page faults on
// the first write), small enough to allocate many per second.
function allocateReportBuffers(n) {
  const size = 65536 << (n % 5);
  const b = Buffer.allocUnsafe(size);
  for (let off = 0; off < size; off += 4096) b[off] = n & 0xff;
  kept[n % kept.length] = b;
  allocatedBytes += size;
  return b.length;
}

function main() {
  c.ready({ scenario: 'stacks_buffers' });
  const keepSlots = Math.max(8, Math.min(kept.length, Math.floor((opts['keep-mb'] * 1048576) / 400000)));
  const end = Date.now() + opts.duration * 1000;
  function batch() {
    for (let i = 0; i < 200; i++) {
      allocateReportBuffers(calls);
      calls++;
      // Drop an older slot so that the rolling set stays near --keep-mb.
      kept[(calls + keepSlots) % kept.length] = undefined;
    }
    if (Date.now() < end) setImmediate(batch);
    else c.finishAndExit(0, { calls, allocated_bytes: allocatedBytes });
  }
  batch();
}

main();
