'use strict';
// A large JS heap of small objects for the heap-snapshot rows of make bench: --mb of V8 heap (default 100)
// held by a module-scope array of plain objects of one property (about 40 bytes each with the array's slot,
// Node builds V8 without pointer compression), then idle. Prints one JSON line when the heap is built:
// {"event":"ready","pid":..,"objects":..,"heap_used":..} with V8's used heap after a full GC when --expose-gc
// is on (else as it stands). With --write FILE it writes a heap snapshot there and exits.
const v8 = require('v8');

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const mb = Number(arg('mb', '100'));
const held = [];
const target = mb * 1024 * 1024;
// Filled until V8's heap used reaches --mb, then again after a full GC (with --expose-gc) has taken the
// garbage of building it, so that the live heap is about --mb.
for (let round = 0; round < 4; round++) {
  while (v8.getHeapStatistics().used_heap_size < target) {
    for (let k = 0; k < 100000; k++) held.push({ i: held.length });
  }
  if (!global.gc) break;
  global.gc();
  if (v8.getHeapStatistics().used_heap_size >= 0.97 * target) break;
}
globalThis.held = held;
const used = v8.getHeapStatistics().used_heap_size;
const out = arg('write', '');
if (out) v8.writeHeapSnapshot(out);
console.log(JSON.stringify({ event: 'ready', pid: process.pid, objects: held.length, heap_used: used }));
if (!out) setInterval(() => {}, 1000);
