'use strict';
// expect: js_heap leak_suspected; js_live grows at rememberUser in this file
// A plain object at module scope used as a cache: every simulated request stores the user it saw, with a
// copy of the request's headers, under a key that never repeats, and nothing is ever deleted (the Express
// "cache every user" leak). About 2 KB per request: heap used after GC rises by about 25 MB/min at the
// default --rate 200.
const c = require('./lib/common');

const userCache = {};

function rememberUser(id) {
  const headers = {};
  for (let i = 0; i < 10; i++) headers[`x-header-${i}`] = `value-${id}-${i}-`.repeat(4);
  userCache[`user-${id}`] = { id, seen: Date.now(), headers, tags: new Array(64).fill(id) };
}

c.runRequestScenario('js_object_cache_leak', {}, (id) => rememberUser(id), () => ({
  cached: Object.keys(userCache).length,
}));
