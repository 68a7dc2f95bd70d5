'use strict';
// expect: js_heap leak_suspected
// Closures kept alive by intervals that are never cleared: every simulated request starts a polling
// interval (an hour apart, so it never fires in the run) whose callback captures the request's state
// (an array of 256 numbers and a string, about 2.5 KB). Heap used after GC grows by hundreds of MB per minute at the
// default --rate 1500.
const c = require('./lib/common');

let intervals = 0;

c.runRequestScenario(
  'js_interval_closure_leak',
  { rate: 1500 },
  (id) => {
    const state = { id, samples: new Array(256).fill(id / 7), label: JSON.stringify({ id, poll: `/jobs/${id}` }) };
    setInterval(() => state.samples.length + state.label.length, 3600 * 1000).unref();
    intervals++;
  },
  () => ({ intervals }),
);
