'use strict';
// expect: growth_then_plateau or stable; growth_unconfirmed when V8 runs too few full GCs to tell the evicted
// entries (old-space garbage) from growth; never leak_suspected
// A cache with an LRU bound: every simulated request looks up a key from a large key space and, on a miss,
// inserts a ~4 KB entry; when --max-entries (default 4000) is reached the least recently used entry is
// evicted. Heap used after GC grows while the cache fills (about 20 s at the default --rate 200 and key
// space), then stays flat.
const c = require('./lib/common');

class Lru {
  constructor(max) {
    this.max = max;
    this.map = new Map(); // insertion order is recency order
    this.hits = 0;
    this.misses = 0;
  }
  get(key) {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    this.map.delete(key);
    this.map.set(key, v);
    this.hits++;
    return v;
  }
  set(key, value) {
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value);
  }
}

let cache;
const rnd = c.rng(99);

c.runRequestScenario(
  'lru_cache',
  { 'max-entries': 4000, 'key-space': 1000000 },
  (id, opts) => {
    if (!cache) cache = new Lru(opts['max-entries']);
    const key = `k${Math.floor(rnd() * opts['key-space'])}`;
    if (cache.get(key) === undefined) {
      cache.misses++;
      cache.set(key, { key, at: id, values: new Array(400).fill(id % 997), label: `entry-${key}-`.repeat(8) });
    }
  },
  () => ({ entries: cache ? cache.map.size : 0, hits: cache ? cache.hits : 0, misses: cache ? cache.misses : 0 }),
);
