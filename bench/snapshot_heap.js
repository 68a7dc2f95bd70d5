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
while (v8.getHeapStatistics().used_heap_size < target) {
  for (let k = 0; k < 100000; k++) held.push({ i: held.length });
}
globalThis.held = held;
if (global.gc) global.gc();
const used = v8.getHeapStatistics().used_heap_size;
const out = arg('write', '');
if (out) v8.writeHeapSnapshot(out);
console.log(JSON.stringify({ event: 'ready', pid: process.pid, objects: held.length, heap_used: used }));
if (!out) setInterval(() => {}, 1000);
