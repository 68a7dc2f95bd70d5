'use strict';
// expect: js_heap growth_unconfirmed or leak_suspected (--healthy: no leak; js_heap growth_unconfirmed or stable)
// A large, quiet heap: --base-mb of long-lived state (300 MB by default) built at start, then a slow leak of
// about 30 MB/min (--rate 100 requests/s, each keeping ~5 KB) with little other allocation, so that V8
// runs no full GC for minutes after start-up. With --healthy nothing leaks: each request's record is kept
// for --hold-s seconds (long enough to be promoted to old space) and then dropped, so old space fills with
// garbage at the same rate and only a full GC could tell the two apart.
const c = require('./lib/common');

const base = [];
const kept = [];
const recent = [];

const opts = c.runRequestScenario(
  'js_large_heap_slow',
  { rate: 100, 'base-mb': 300, healthy: false, 'hold-s': 30 },
  (id, o) => {
    const rec = { id, at: Date.now(), values: new Array(600).fill(id) };
    if (!o.healthy) {
      kept.push(rec);
      return;
    }
    recent.push(rec);
    const horizon = o['hold-s'] * o.rate;
    while (recent.length > horizon) recent.shift();
  },
  () => ({ kept: kept.length, held: recent.length, base_records: base.length }),
);
// About 1 KB per record: 128 small integers, 8 bytes each (Node builds V8 without pointer compression).
for (let i = 0; i < opts['base-mb'] * 1024; i++) base.push(new Array(128).fill(i));
