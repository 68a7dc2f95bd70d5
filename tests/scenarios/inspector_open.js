'use strict';
// expect: an inspector the app opened itself stays open after memlens used it
// The app opens its own inspector before memlens comes (a developer's debugger session, say) on
// --inspector-port (default 9229), prints `inspector` with its URL, then runs a small Map cache leak.
// The final line says whether the inspector is still open (inspector.url()).
const c = require('./lib/common');
const inspector = require('inspector');

const opts0 = c.parseArgs({ 'inspector-port': 9229 });
inspector.open(opts0['inspector-port'], '127.0.0.1');
c.emit({ event: 'inspector', url: inspector.url() });

const cache = new Map();
c.runRequestScenario(
  'inspector_open',
  { 'inspector-port': 9229 },
  (id) => cache.set(id, { id, body: `payload-${id}-`.repeat(20) }),
  () => ({ inspector_url: inspector.url() || null }),
);
