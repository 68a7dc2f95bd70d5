'use strict';
// expect: js_heap leak_suspected (--base-mb under attach: growth_unconfirmed until V8 runs a full GC)
// A connection handler that adds a listener to a long-lived emitter for every connection and never removes
// it, under connection load: each listener captures its connection's context (headers, a parsed body,
// about 3 KB), so heap used after GC grows by hundreds of MB per minute (--rate 2000: about 6 MB/s). V8
// runs few full GCs while the heap grows this fast. --base-mb builds that much long-lived state first (a
// process whose heap is already large when memlens attaches).
const c = require('./lib/common');
const { EventEmitter } = require('events');

const server = new EventEmitter();
server.setMaxListeners(0);
const base = [];

const opts = c.runRequestScenario(
  'js_listener_fast_leak',
  { rate: 2000, 'base-mb': 0 },
  (id) => {
    const ctx = { id, headers: {}, body: new Array(160).fill(id) };
    for (let i = 0; i < 12; i++) ctx.headers[`x-header-${i}`] = `value-${id}-${i}`;
    server.on('shutdown', () => ctx.headers['x-header-0']);
  },
  () => ({ listeners: server.listenerCount('shutdown'), base_records: base.length }),
);
// About 1 KB per record: 128 small integers, 8 bytes each (Node builds V8 without pointer compression).
for (let i = 0; i < opts['base-mb'] * 1024; i++) base.push(new Array(128).fill(i));
