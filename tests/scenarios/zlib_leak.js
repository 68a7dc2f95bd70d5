'use strict';
// expect: native_heap leak_suspected
// zlib streams that are written to and never closed: every --every-ms (default 250 ms) a request creates a
// deflate or gzip stream, writes --write-kb KB (default 64) of compressible text to it, flushes, and keeps
// the stream in a global array without end()/close(). Each open stream holds zlib's native state (window,
// hash chains, pending buffer: about 256 KB at the default level and memLevel) in malloc'd memory, so
// rss - heapTotal - arrayBuffers grows (about 60-65 MB/min) while the JS heap grows only by the small
// stream objects.
const c = require('./lib/common');
const zlib = require('zlib');

const opts = c.parseArgs({ duration: 60, 'every-ms': 250, 'write-kb': 64 });
c.setTag(opts.tag);
c.ready({ scenario: 'zlib_leak' });
c.startReporting(opts['report-interval']);

const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', 'iota', 'kappa'];
const rnd = c.rng(7);
function text(bytes) {
  const parts = [];
  let n = 0;
  while (n < bytes) {
    const w = `${words[Math.floor(rnd() * words.length)]}${Math.floor(rnd() * 100000)} `;
    parts.push(w);
    n += w.length;
  }
  return parts.join('').slice(0, bytes);
}

const streams = [];
let id = 0;
const timer = setInterval(() => {
  const s = id++ % 2 === 0 ? zlib.createDeflate() : zlib.createGzip();
  // The compressed output is read and dropped, as a response body would be sent.
  s.on('data', () => {});
  s.write(text(opts['write-kb'] * 1024));
  s.flush();
  streams.push(s);
}, opts['every-ms']);

setTimeout(() => {
  clearInterval(timer);
  c.finishAndExit(0, { streams: streams.length });
}, opts.duration * 1000);
