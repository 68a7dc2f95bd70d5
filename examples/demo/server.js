'use strict';
// memlens demo: a small "orders" HTTP service with the kind of slow leaks real services have.
//
//   node examples/demo/server.js [--duration SECONDS] [--concurrency N] [--port N]
//
// It serves on 127.0.0.1 and drives itself with a bounded loopback load (--concurrency keep-alive clients,
// default 4), then exits by itself after --duration seconds (default 30). Three slow leaks hide in it:
//   1. a per-request cache of rendered responses keyed by request id that is never evicted (JS heap);
//   2. an "audit log" that keeps a copy of every upload body as a Buffer (ArrayBuffer memory);
//   3. a listener added to a long-lived emitter for every request and never removed (JS heap, closures).
// Everything else is healthy: short-lived objects, a bounded LRU of product lookups, sockets reused.
const http = require('http');
const { EventEmitter } = require('events');

const opts = { duration: 30, concurrency: 4, port: 0 };
for (let i = 2; i < process.argv.length; i++) {
  const name = process.argv[i].replace(/^--/, '');
  if (!(name in opts) || i + 1 >= process.argv.length) {
    console.error(`usage: node server.js [--duration S] [--concurrency N] [--port N]`);
    process.exit(2);
  }
  opts[name] = Number(process.argv[++i]);
}

// --- the service ---------------------------------------------------------------------------------------
const settings = new EventEmitter(); // lives as long as the process
settings.setMaxListeners(0);

const renderedCache = new Map(); // leak 1: keyed by request id, never evicted
const auditLog = []; // leak 2: every upload body, kept forever

const productLru = new Map(); // healthy: bounded
const PRODUCT_LRU_MAX = 500;

function lookupProduct(id) {
  let p = productLru.get(id);
  if (p) {
    productLru.delete(id);
  } else {
    p = { id, name: `Product ${id}`, price: (id % 97) + 0.99, tags: ['demo', `group-${id % 13}`] };
    if (productLru.size >= PRODUCT_LRU_MAX) productLru.delete(productLru.keys().next().value);
  }
  productLru.set(id, p);
  return p;
}

let requestId = 0;
function handleOrder(req, res, body) {
  const id = ++requestId;
  const order = {
    id,
    items: Array.from({ length: 8 }, (_, i) => lookupProduct((id * 7 + i) % 5000)),
    customer: `customer-${id % 1000}`,
    createdAt: new Date().toISOString(),
  };
  const json = JSON.stringify(order);
  renderedCache.set(`order-${id}`, { json, order, at: Date.now() });
  // Leak 3: a per-request "refresh prices when the settings change" hook, never removed.
  settings.on('change', () => {
    order.stale = true;
  });
  if (body.length > 0) auditLog.push(Buffer.from(body));
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
  res.end(json);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (req.url.startsWith('/orders')) handleOrder(req, res, body);
    else if (req.url === '/health') res.end('ok\n');
    else {
      res.statusCode = 404;
      res.end();
    }
  });
});

// --- the load: bounded, loopback, in-process -----------------------------------------------------------
let completed = 0;
let failed = 0;
let stopping = false;

function startLoad(port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const upload = Buffer.alloc(4096, 'x');
  const client = (n) => {
    if (stopping) return;
    const isUpload = n % 4 === 0;
    const req = http.request(
      { host: '127.0.0.1', port, agent, method: isUpload ? 'POST' : 'GET', path: `/orders?n=${n}` },
      (res) => {
        res.resume();
        res.on('end', () => {
          completed++;
          setTimeout(() => client(n + opts.concurrency), 10);
        });
      },
    );
    req.on('error', () => {
      failed++;
      if (!stopping) setTimeout(() => client(n), 100);
    });
    req.end(isUpload ? upload : undefined);
  };
  for (let i = 0; i < opts.concurrency; i++) client(i);
  return agent;
}

const MB = 1024 * 1024;
function status(prefix) {
  const m = process.memoryUsage();
  console.log(
    `${prefix} requests=${completed} rss=${(m.rss / MB).toFixed(1)}MB heapUsed=${(m.heapUsed / MB).toFixed(1)}MB ` +
      `arrayBuffers=${(m.arrayBuffers / MB).toFixed(1)}MB cached=${renderedCache.size} ` +
      `audit=${auditLog.length} listeners=${settings.listenerCount('change')}`,
  );
}

server.listen(opts.port, '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`demo: pid ${process.pid}, serving on http://127.0.0.1:${port}/orders for ${opts.duration} s`);
  const agent = startLoad(port);
  const ticker = setInterval(() => status('demo:'), 10000);
  setTimeout(() => {
    stopping = true;
    clearInterval(ticker);
    setTimeout(() => {
      agent.destroy();
      server.close();
      status('demo: done,');
      process.exit(failed > completed / 10 ? 1 : 0);
    }, 200);
  }, opts.duration * 1000);
});
