'use strict';
// expect: js_heap leak_suspected
// Listeners added to a long-lived EventEmitter on every simulated request and never removed (the classic
// "forgot removeListener" leak; setMaxListeners(0) silences Node's warning, as apps that hit it often do).
// Each listener is a closure that captures a per-request context of about 2 KB. Heap used after GC rises
// steadily (about 23 MB/min at the default --rate 200).
const c = require('./lib/common');
const { EventEmitter } = require('events');

const bus = new EventEmitter();
bus.setMaxListeners(0);

c.runRequestScenario(
  'js_listener_leak',
  {},
  (id) => {
    const ctx = { id, headers: {}, trace: new Array(128).fill(id) };
    for (let i = 0; i < 16; i++) ctx.headers[`x-header-${i}`] = `value-${id}-${i}`;
    bus.on('config-changed', (cfg) => {
      ctx.config = cfg;
    });
  },
  () => ({ listeners: bus.listenerCount('config-changed') }),
);
