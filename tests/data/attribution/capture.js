'use strict';
// Records the fixture of tests/unit/model_attribution_test.cpp: a node process's /proc/self/smaps and its
// own memory figures (process.memoryUsage()) read back to back, after building a JS heap of a few tens of
// MB and some Buffers. Usage: node capture.js > node20_smaps.json
const fs = require('fs');

const keep = [];
for (let i = 0; i < 150000; i++) keep.push({ id: i, s: `item-${i}`.repeat(4), a: [i, i + 1, i + 2] });
const bufs = [];
for (let i = 0; i < 2000; i++) bufs.push(Buffer.alloc(8192, i & 0xff));

setTimeout(() => {
  const before = process.memoryUsage();
  const smaps = fs.readFileSync('/proc/self/smaps', 'latin1');
  const after = process.memoryUsage();
  process.stdout.write(
    JSON.stringify({ node: process.version, exe: process.execPath, before, after, smaps, kept: keep.length + bufs.length }) + '\n',
  );
}, 500);
