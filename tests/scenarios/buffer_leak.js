'use strict';
// expect: array_buffers leak_suspected
// Buffers kept in a global array: every simulated request keeps a Buffer of --size bytes (default 8 KB,
// filled so that its pages are resident). Live ArrayBuffer bytes (process.memoryUsage().arrayBuffers) and
// RSS grow by about 96 MB/min at the default --rate 200; heap used after GC stays nearly flat.
const c = require('./lib/common');

const kept = [];

c.runRequestScenario(
  'buffer_leak',
  { size: 8192 },
  (id, opts) => {
    kept.push(Buffer.alloc(opts.size, (id & 0xff) | 1));
  },
  () => ({ buffers: kept.length }),
);
