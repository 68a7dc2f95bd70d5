'use strict';
// expect: (no verdict) ground truth for JS frames named without a perf map: one uniquely named JS function,
// leakLargeArraysForNames, builds every large array of the run (about --mb MiB of elements each, pushed one
// by one). V8 keeps an object that large in its large-object space, one mmap per object (the elements grow
// by copying: a few per array), called from the function's frame: it is on the stack of those mmap calls
// (mmap_growth) and of the page faults that bring their pages in (page_faults). It keeps the last --keep
// arrays (the others are collected: munmap) and runs every --period-ms for --duration seconds.
// Prints `ready` (with `function` and `script`, the name and script file V8 knows it by), then `final`
// (with `calls`) and exits. Started without any perf-map flag.
const c = require('./lib/common');

// Inlined into its caller, the function would have no frame of its own (in any profiler).
require('v8').setFlagsFromString('--max-inlined-bytecode-size=0');

const opts = c.parseArgs({ duration: 20, mb: 4, keep: 4, 'period-ms': 50, 'report-interval': 0 });

const kept = [];
let calls = 0;

function leakLargeArraysForNames(n) {
  const elements = (opts.mb * 1048576) / 8;
  const a = [];
  for (let i = 0; i < elements; i++) a.push((i + n) & 0xffff);
  kept.push(a);
  if (kept.length > opts.keep) kept.shift();
  return a.length;
}

function main() {
  c.ready({ scenario: 'js_named_mmap_leak', function: leakLargeArraysForNames.name, script: __filename });
  const end = Date.now() + opts.duration * 1000;
  const timer = setInterval(() => {
    leakLargeArraysForNames(calls++);
    if (Date.now() >= end) {
      clearInterval(timer);
      c.finishAndExit(0, { calls });
    }
  }, opts['period-ms']);
}

main();
