'use strict';
// expect: no leak
// A service whose request contexts live a couple of seconds (--hold-s) before they are dropped: they
// survive scavenges, get promoted to old space and die there, so old space fills with garbage between full
// GCs (a sawtooth of tens to a couple of hundred MB every few seconds) while nothing leaks.
const c = require('./lib/common');

const inflight = [];

c.runRequestScenario(
  'js_promoted_sawtooth',
  { rate: 2000, 'hold-s': 2 },
  (id, o) => {
    const ctx = { id, at: Date.now(), headers: {}, body: new Array(600).fill(id) };
    for (let i = 0; i < 8; i++) ctx.headers[`x-h-${i}`] = `v-${id}-${i}`;
    inflight.push(ctx);
    const horizon = o['hold-s'] * o.rate;
    while (inflight.length > horizon) inflight.shift();
  },
  () => ({ inflight: inflight.length }),
);
