'use strict';
// expect: (no verdict) ground truth for V8 figures: GCs of every kind, Buffers kept and dropped, then a
// quiet point.
// Waits --start-delay s idle (a tracer started with the process attaches meanwhile), then: --rounds rounds
// of short-lived JS objects (scavenges) while keeping a growing retained set (mark-compacts); Buffers of
// many sizes (Buffer.alloc small and large, Buffer.allocUnsafe from the pool, new ArrayBuffer,
// Buffer.from(string)), about --keep-mb MB of them kept, the rest dropped. Then it waits 0.5 s for V8 to
// finish freeing what died, reads process.memoryUsage() and prints a `quiet` line (`memoryUsage`), holds
// still for --hold s (no allocation: a tracer sampling meanwhile sees the same state), prints `final`, exits.
// Run it with --trace-gc to get V8's own line per GC.
const c = require('./lib/common');

const opts = c.parseArgs({ 'start-delay': 0.5, rounds: 6, 'keep-mb': 24, hold: 2, duration: 0, 'report-interval': 0 });

const retained = [];
const kept = [];

function jsRound(r) {
  let junk = [];
  for (let i = 0; i < 200000; i++) {
    junk.push({ id: i, name: 'obj' + i, list: [i, i + 1, i + 2] });
    if (junk.length > 5000) junk = [];
  }
  // A retained set that grows by a few MB per round: the old generation fills and mark-compacts run.
  for (let i = 0; i < 40000; i++) retained.push({ r, i, s: 'retained-' + r + '-' + i });
}

function bufferRound(r, keepBytes) {
  let keptBytes = 0;
  for (let i = 0; i < 4000; i++) {
    const size = (i % 5 === 0 ? 65536 : 200) + ((i * 37) % 1000);
    const b = Buffer.alloc(size, i & 0xff);
    const u = Buffer.allocUnsafe(100 + (i % 300));  // from the 8 KiB pool
    u[0] = 1;
    const ab = new ArrayBuffer(1000 + (i % 7));
    const s = Buffer.from('round ' + r + ' item ' + i);
    if (keptBytes < keepBytes && i % 3 === 0) {
      kept.push(b);
      keptBytes += b.length;
    }
    if (i % 50 === 0) kept.push(ab, s);
  }
}

function main() {
  c.ready({ scenario: 'v8_gc_buffers' });
  setTimeout(() => {
    const perRound = (opts['keep-mb'] * 1048576) / opts.rounds;
    for (let r = 0; r < opts.rounds; r++) {
      jsRound(r);
      bufferRound(r, perRound);
    }
    c.emit({ event: 'work_done', t_s: process.uptime(), kept: kept.length, retained: retained.length });
    setTimeout(() => {
      c.emit({ event: 'quiet', t_s: process.uptime(), ...c.memorySnapshot() });
      setTimeout(() => c.finishAndExit(0, { kept: kept.length, retained: retained.length }), opts.hold * 1000);
    }, 500);
  }, opts['start-delay'] * 1000);
}

main();
