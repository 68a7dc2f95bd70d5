'use strict';
// expect: rss grows by about --mb MB (default 200) within a few seconds, then the process exits 0.
// Ground truth for the tracer core: the final line's status (VmRSS, VmHWM, RssAnon, RssFile) and stat
// (minflt) are read right before exit; memlens's final/peak RSS, anon/file split and minor faults must match.
// The memory is split between JS arrays (V8 heap), Buffers (ArrayBuffer backing stores, malloc'd) and one
// big Uint8Array (mmap'd by malloc), all written so that every page is resident.
const c = require('./lib/common');

const opts = c.parseArgs({ duration: 3, mb: 200 });
c.setTag(opts.tag);
c.ready({ scenario: 'rss_growth' });
c.startReporting(opts['report-interval']);

const MB = 1024 * 1024;
const total = opts.mb * MB;
const keep = [];
const steps = 20;
let step = 0;

function allocateStep() {
  // Each step adds total/steps bytes: 40% JS arrays, 30% Buffers, 30% into the big typed array (written
  // progressively, so its pages become resident step by step).
  const jsBytes = (total * 0.4) / steps;
  const bufBytes = (total * 0.3) / steps;
  // A packed double array costs 8 bytes per element in the V8 heap.
  const arr = new Array(Math.floor(jsBytes / 8 / 1024));
  for (let i = 0; i < arr.length; i++) {
    const a = new Array(1024);
    for (let j = 0; j < 1024; j++) a[j] = i + j + 0.5;
    arr[i] = a;
  }
  keep.push(arr);
  const bufSize = 256 * 1024;
  for (let n = 0; n < bufBytes / bufSize; n++) keep.push(Buffer.alloc(bufSize, (n & 0xff) | 1));
  const from = Math.floor((big.length * step) / steps);
  const to = Math.floor((big.length * (step + 1)) / steps);
  big.fill(7, from, to);
}

const big = new Uint8Array(Math.floor(total * 0.3));
const period = (opts.duration * 1000) / (steps + 1);
const timer = setInterval(() => {
  allocateStep();
  if (++step >= steps) {
    clearInterval(timer);
    setTimeout(() => c.finishAndExit(0, { kept: keep.length, big: big.length }), Math.max(0, period));
  }
}, period);
