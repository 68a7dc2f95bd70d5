'use strict';
// expect: native_heap leak_suspected
// Intl.Segmenter objects kept in a Map (a per-request "cache" keyed by request id that is never evicted).
// Each Segmenter owns an ICU BreakIterator allocated with malloc outside the V8 heap; segmenting a text
// with it makes ICU build its per-iterator state. Native memory (rss - heapTotal - arrayBuffers) grows
// faster than the JS heap.
const c = require('./lib/common');

const segmenters = new Map();
const granularities = ['word', 'sentence', 'grapheme'];
const sample = 'The quick brown fox jumps over the lazy dog. Ünïcödé tëxt, 日本語のテキスト, and emoji 👍🏽 too. ';

c.runRequestScenario(
  'intl_segmenter_leak',
  { rate: 200 },
  (id) => {
    const seg = new Intl.Segmenter('en', { granularity: granularities[id % 3] });
    let n = 0;
    for (const s of seg.segment(sample)) n += s.segment.length;
    segmenters.set(`req-${id}`, { seg, n });
  },
  () => ({ segmenters: segmenters.size }),
);
