'use strict';
// expect: js_heap leak_suspected; native_heap leak_suspected
// Two independent leaks in one process: an unbounded JS cache (about 2.5 KB of JS objects per request)
// and Intl.Segmenter objects kept in a second Map (each owns ICU state allocated with malloc, outside the
// V8 heap). The native growth is not the JS leak's bookkeeping: it is a leak of its own.
const c = require('./lib/common');

const cache = new Map();
const segmenters = new Map();
const sample = 'The quick brown fox jumps over the lazy dog. Ünïcödé tëxt, 日本語のテキスト. ';

c.runRequestScenario(
  'js_and_intl_leak',
  { rate: 200 },
  (id) => {
    cache.set(`req-${id}`, { id, values: new Array(256).fill(id % 1000), path: `/api/items/${id}` });
    const seg = new Intl.Segmenter('en', { granularity: 'word' });
    let n = 0;
    for (const s of seg.segment(sample)) n += s.segment.length;
    segmenters.set(`req-${id}`, { seg, n });
  },
  () => ({ cached: cache.size, segmenters: segmenters.size }),
);
