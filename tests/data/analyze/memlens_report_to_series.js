'use strict';
// Turns a memlens report.json into a .series file: what the verdicts are judged on, as memlens measured it
// (every GC with its after-figure, and per sample each category's resident bytes and the live ArrayBuffer
// bytes), so that the rules can be unit-tested on real runs without root.
//   node memlens_report_to_series.js REPORT.json OUT.series "how it was recorded"
const fs = require('fs');

const [reportPath, out, how] = process.argv.slice(2);
const report = JSON.parse(fs.readFileSync(reportPath, 'utf8'));
const proc = report.processes.find((p) => p.gc && p.gc.events && p.gc.events.length) || report.processes[0];
const lines = [
  `# ${how}`,
  `# memlens report of pid ${proc.pid} (${proc.attached_late ? 'attach' : 'run'}), first seen at ${proc.first_seen_s} s`,
  '# gc <t_s> <heap_used_after_bytes> <full: 1 for mark-compact>',
  '# resident <t_s> <category> <bytes>   (timeline categories; rss is the kernel RSS)',
  '# live_ab <t_s> <bytes>               (live ArrayBuffer/Buffer bytes)',
];
for (const g of proc.gc.events) {
  if (g.heap_used_after_bytes == null) continue;
  lines.push(`gc ${g.t_s.toFixed(3)} ${g.heap_used_after_bytes} ${g.kind === 'mark_compact' ? 1 : 0}`);
}
for (const s of proc.timeline) {
  const t = s.t_s.toFixed(3);
  lines.push(`resident ${t} rss ${s.rss_bytes}`);
  for (const [k, v] of Object.entries(s.categories || {})) {
    if (k.endsWith('_bytes') && k !== 'unexplained_bytes') lines.push(`resident ${t} ${k.slice(0, -6)} ${v}`);
  }
  if (s.array_buffers_bytes != null) lines.push(`live_ab ${t} ${s.array_buffers_bytes}`);
}
fs.writeFileSync(out, lines.join('\n') + '\n');
