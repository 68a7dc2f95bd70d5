'use strict';
// expect: array_buffers leak_suspected; js_heap leak_suspected; native_heap, if it grows, part_of array_buffers
// A Map of user records that is never evicted, each record holding its own 4 KB Buffer and about 3 KB
// of JS objects (headers, an array of numbers): live ArrayBuffer memory and heap used after GC both grow,
// the JS part well beyond what the Buffers' own objects take (about 200 bytes each).
const c = require('./lib/common');

const users = new Map();

c.runRequestScenario(
  'buffer_records_leak',
  { rate: 200, size: 4096 },
  (id, opts) => {
    const headers = {};
    for (let i = 0; i < 12; i++) headers[`x-header-${i}`] = `value-${id}-${i}`;
    users.set(`u-${id}`, { id, headers, history: new Array(200).fill(id), blob: Buffer.alloc(opts.size, id & 0xff) });
  },
  () => ({ users: users.size }),
);
