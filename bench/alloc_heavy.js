'use strict';
// Allocation-heavy workload for the run-time benchmark: about --total-mb MB (default 4096) allocated and
// written in total, half as short-lived JS objects and arrays (young-generation GC churn, some promoted
// through a sliding window), half as Buffers of 4 KB to 512 KB kept in a sliding window of about 32 MB (so
// that memory is freed and reused all the time). Runs a few seconds (about 2.5 s here): long enough that
// the ratio measures the cost per allocation, not a trace's one-off costs (at 1 GB, 0.7 s, memlens's first
// smaps read of the grown process, about 10 ms, was 1.4% of the run on its own).
// Usage: node bench/alloc_heavy.js [--total-mb N] [--result-file PATH]
// Prints (or writes to the result file) {"workload":"alloc_heavy","elapsed_s":..,"touched_mb":..,
// "started_epoch_s":..,"ended_epoch_s":..}: the wall-clock ends of the timed work, against which
// bench/run.sh takes a tracer's work done meanwhile.
const fs = require('fs');

let totalMb = 4096;
let resultFile = '';
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--total-mb') totalMb = Number(process.argv[++i]);
  else if (process.argv[i] === '--result-file') resultFile = process.argv[++i];
  else throw new Error(`unknown argument ${process.argv[i]}`);
}

const MB = 1024 * 1024;
const start = process.hrtime.bigint();
const startedEpochS = Date.now() / 1000;
let jsBytes = 0;
let bufBytes = 0;
const jsWindow = new Array(262144);
const bufWindow = [];
let bufWindowBytes = 0;
let seed = 1;
// A 31-bit LCG in integer arithmetic (Math.imul): with plain `*` the product passes 2^53, loses its low
// bits, and `next() % 8` soon returns only 0 (every Buffer 4 KB). The low bits of an LCG cycle with a short
// period, so the size class comes from the high bits.
const next = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
  return seed >>> 16;
};

let n = 0;
while (jsBytes + bufBytes < totalMb * MB) {
  // JS side: an object with a small array and a string (~200 bytes with headers); 1 in 8 survives for a
  // while in the window.
  for (let k = 0; k < 64; k++) {
    const o = { id: n, tag: `o${n & 1023}`, values: [n, n + 1, n + 2, n + 3, n + 4, n + 5, n + 6, n + 7] };
    // 1 in 4 objects survives in a window of 256 K entries, so it is promoted and later dies in the old
    // generation (mark-compact GCs, not only scavenges).
    if ((n & 3) === 0) jsWindow[(n >> 2) & 262143] = o;
    n++;
    jsBytes += 200;
  }
  // Buffer side: sizes from 4 KB to 512 KB, log-uniform, filled so the pages are really touched.
  while (bufBytes < jsBytes) {
    const size = 4096 << (next() % 8);
    bufWindow.push(Buffer.alloc(size, n & 0xff));
    bufBytes += size;
    bufWindowBytes += size;
    while (bufWindowBytes > 32 * MB) bufWindowBytes -= bufWindow.shift().length;
  }
}

const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
const result = JSON.stringify({
  workload: 'alloc_heavy',
  elapsed_s: elapsed,
  touched_mb: Math.round((jsBytes + bufBytes) / MB),
  js_window: jsWindow.length,
  started_epoch_s: startedEpochS,
  ended_epoch_s: Date.now() / 1000,
});
if (resultFile) fs.writeFileSync(resultFile, result);
else console.log(result);
