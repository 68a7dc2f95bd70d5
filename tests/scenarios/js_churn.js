'use strict';
// expect: no leak; js_live shows no growing site
// Steady churn: every simulated request builds a context of about 4 KB that lives for a few hundred
// milliseconds (kept in a small ring of the last requests) and is then dropped. The live heap stays flat.
const c = require('./lib/common');

const ring = new Array(64).fill(null);

function handle(id) {
  const ctx = { id, body: new Array(256).fill(id), note: `request-${id}-`.repeat(20) };
  ring[id % ring.length] = ctx;
}

c.runRequestScenario('js_churn', {}, (id) => handle(id), () => ({ ring: ring.length }));
