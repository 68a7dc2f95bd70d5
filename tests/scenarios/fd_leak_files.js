'use strict';
// expect: fds leak_suspected
// fs.openSync without close at a steady rate: --rate (default 10) opens per second of a few files in a
// private temporary directory, never closed (about 600 leaked regular-file fds in 60 s). Each second the
// scenario prints {"event":"fd_count",...}; at the end, at a quiet point, it prints its fd table read from
// /proc/self/fd ({"event":"fds","by_type":{"file":N,...}}), holds for --hold seconds, then the final line.
// SIGUSR2 prints the table at any time.
const c = require('./lib/common');
const { quietEnd } = require('./lib/fdscenario');
const fs = require('fs');
const os = require('os');
const path = require('path');

const opts = c.parseArgs({ duration: 60, rate: 10, hold: 0 });
c.setTag(opts.tag);
c.fdsOnSignal();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memlens-fd-leak-'));
const files = [];
for (let i = 0; i < 8; i++) {
  const p = path.join(dir, `data-${i}.txt`);
  fs.writeFileSync(p, `file ${i}\n`);
  files.push(p);
}

c.ready({ scenario: 'fd_leak_files', dir });
c.startReporting(opts['report-interval']);

const leaked = [];
const timer = c.every(1000 / opts.rate, () => {
  leaked.push(fs.openSync(files[leaked.length % files.length], 'r'));
});
const counter = setInterval(() => c.emit({ event: 'fd_count', t_s: c.elapsedSeconds(), leaked: leaked.length }), 1000);

setTimeout(() => {
  timer();
  clearInterval(counter);
  quietEnd(
    opts,
    () => fs.rmSync(dir, { recursive: true, force: true }),
    () => ({ leaked: leaked.length }),
  );
}, opts.duration * 1000);
