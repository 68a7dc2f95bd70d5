'use strict';
// Buffer-heavy workload for the run-time benchmark: many small Buffer.alloc calls (64 B to 4 KB, each a
// separate ArrayBuffer backing store) mixed with large ones (256 KB to 4 MB). Only a small window is kept,
// so backing stores are allocated and freed all the time. This is the case where per-allocation probes on
// V8's backing stores cost the most. Runs a few seconds.
// Usage: node bench/buffer_heavy.js [--small N] [--large N] [--result-file PATH]
// Prints (or writes to the result file) {"workload":"buffer_heavy","elapsed_s":..,"small":N,"large":N}.
const fs = require('fs');

let small = 1500000;
let large = 1500;
let resultFile = '';
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--small') small = Number(process.argv[++i]);
  else if (process.argv[i] === '--large') large = Number(process.argv[++i]);
  else if (process.argv[i] === '--result-file') resultFile = process.argv[++i];
  else throw new Error(`unknown argument ${process.argv[i]}`);
}

const start = process.hrtime.bigint();
const window = new Array(1024);
const largeEvery = Math.max(1, Math.floor(small / Math.max(1, large)));
let bytes = 0;
let largeDone = 0;
for (let i = 0; i < small; i++) {
  const size = 64 << (i % 7); // 64 B .. 4 KB
  const b = Buffer.alloc(size);
  b[0] = i & 0xff;
  window[i & 1023] = b;
  bytes += size;
  if (i % largeEvery === 0 && largeDone < large) {
    const big = Buffer.alloc(256 * 1024 << (largeDone % 5)); // 256 KB .. 4 MB
    big[big.length - 1] = 1;
    window[(i + 512) & 1023] = big;
    bytes += big.length;
    largeDone++;
  }
}

const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
const result = JSON.stringify({
  workload: 'buffer_heavy',
  elapsed_s: elapsed,
  small,
  large: largeDone,
  allocated_mb: Math.round(bytes / 1048576),
});
if (resultFile) fs.writeFileSync(resultFile, result);
else console.log(result);
