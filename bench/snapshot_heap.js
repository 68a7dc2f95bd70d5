'use strict';
// A large JS heap for the heap-snapshot rows of make bench: --mb of V8 heap (default 100) held by a
// module-scope array of plain objects, then idle. By default each object has one number property (about 40
// bytes each with the array's slot, Node builds V8 without pointer compression): the most objects per MB,
// the worst case for a snapshot. With --record-bytes N each object also holds its own flat string of N
// characters, as a cache of records does: fewer, larger objects. Prints one JSON line when the heap is built:
// {"event":"ready","pid":..,"objects":..,"heap_used":..} with V8's used heap after a full GC when --expose-gc
// is on (else as it stands). With --write FILE it writes a heap snapshot there and exits.
const v8 = require('v8');

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const mb = Number(arg('mb', '100'));
const recordBytes = Number(arg('record-bytes', '0'));
// A record's string is written in a buffer and decoded: one flat string per record (padStart and
// concatenation build trees of string pieces, each an object of its own in the snapshot).
const scratch = Buffer.alloc(Math.max(recordBytes, 1), 'x');
const recordString = (i) => {
  scratch.fill('x');
  scratch.write(String(i));
  return scratch.toString('latin1');
};
const make = recordBytes > 0 ? (i) => ({ i, s: recordString(i) }) : (i) => ({ i });
const held = [];
const target = mb * 1024 * 1024;
// Filled until V8's heap used reaches --mb, then again after a full GC (with --expose-gc) has taken the
// garbage of building it, so that the live heap is about --mb.
for (let round = 0; round < 4; round++) {
  while (v8.getHeapStatistics().used_heap_size < target) {
    for (let k = 0; k < 100000; k++) held.push(make(held.length));
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
