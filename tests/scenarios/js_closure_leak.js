'use strict';
// expect: js_heap leak_suspected
// Closures kept in a global array: every simulated request pushes a callback that captures its own
// request state (an array and a string, about 2.5 KB), e.g. a "retry later" queue that is never drained.
// Heap used after GC rises steadily (about 29 MB/min at the default --rate 200).
const c = require('./lib/common');

const pending = [];

c.runRequestScenario(
  'js_closure_leak',
  {},
  (id) => {
    const state = { id, samples: new Array(256).fill(id / 3), label: `job-${id}-`.repeat(20) };
    pending.push(() => state.samples.length + state.label.length);
  },
  () => ({ closures: pending.length }),
);
