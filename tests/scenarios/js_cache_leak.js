'use strict';
// expect: js_heap leak_suspected
// An unbounded cache keyed by request id: every simulated request stores a ~2.5 KB object (strings, an array
// of numbers, a nested record) that is never evicted. Heap used after GC rises steadily (about 30 MB/min at
// the default --rate 200 requests/s); Buffers and native memory stay flat.
const c = require('./lib/common');

const cache = new Map();

c.runRequestScenario(
  'js_cache_leak',
  {},
  (id) => {
    const values = new Array(256);
    for (let i = 0; i < values.length; i++) values[i] = (id * 31 + i) % 1000;
    cache.set(`req-${id}`, {
      id,
      at: Date.now(),
      user: { name: `user-${id % 5000}`, roles: ['reader', 'writer'] },
      path: `/api/items/${id}?page=${id % 17}`,
      values,
      body: `payload-${id}-`.repeat(40),
    });
  },
  () => ({ cached: cache.size }),
);
