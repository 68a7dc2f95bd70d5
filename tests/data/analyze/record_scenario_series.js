'use strict';
// Records a scenario of tests/scenarios as a .series file: every GC from V8's own --trace-gc and a
// process.memoryUsage() sample from each of the scenario's memory lines.
//   node record_scenario_series.js OUT.series SCENARIO.js [scenario options...]
// GC times are V8's milliseconds since the isolate started; sample times are the scenario's seconds since
// its script started (tens of ms later), close enough for series judged over tens of seconds.
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

const [out, script, ...args] = process.argv.slice(2);
const MB = 1024 * 1024;
const child = spawn(process.execPath, ['--trace-gc', path.resolve(script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
const lines = [
  `# Node ${process.version}: node --trace-gc ${path.basename(script)} ${args.join(' ')}`,
  '# sample <t_s> <rss> <heapTotal> <heapUsed> <external> <arrayBuffers>   (process.memoryUsage(), bytes)',
  '# gc <t_s> <heap_used_after_bytes> <full: 1 for Mark-Compact>            (--trace-gc, MB = 2^20 bytes, 0.1 MB resolution)',
];
// "[pid:0x..]    1234 ms: Mark-Compact 310.2 (330.1) -> 301.0 (331.5) MB, ..."
const gcLine = /\s([\d.]+) ms: (Scavenge|Mark-Compact|Minor Mark-Compact|Mark-Compact \(reduce\))[^\d]*[\d.]+ \([\d.]+\) -> ([\d.]+) \(/;
let buf = '';
child.stdout.on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    if (line.startsWith('{')) {
      const e = JSON.parse(line);
      if (e.event !== 'memory') continue;
      const m = e.memoryUsage;
      lines.push(`sample ${e.t_s.toFixed(3)} ${m.rss} ${m.heapTotal} ${m.heapUsed} ${m.external} ${m.arrayBuffers}`);
      continue;
    }
    const g = gcLine.exec(line);
    if (!g) continue;
    const full = g[2].startsWith('Mark-Compact') ? 1 : 0;
    lines.push(`gc ${(Number(g[1]) / 1000).toFixed(3)} ${Math.round(Number(g[3]) * MB)} ${full}`);
  }
});
child.on('exit', () => fs.writeFileSync(out, lines.join('\n') + '\n'));
