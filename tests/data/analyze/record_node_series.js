// Records 1 s samples of process.memoryUsage() while running a scenario; GC lines come from --trace-gc.
const scenario = process.argv[2];
const dur = Number(process.argv[3] || 70) * 1000;
const t0 = Date.now();
const out = [];
function sample() {
  const m = process.memoryUsage();
  const t = (Date.now() - t0) / 1000;
  console.log(`SAMPLE ${t.toFixed(3)} ${m.rss} ${m.heapTotal} ${m.heapUsed} ${m.external} ${m.arrayBuffers}`);
}
console.log(`START ${process.hrtime.bigint()} ${performance.now().toFixed(1)}`);
setInterval(sample, 1000);
const keep = [];
let i = 0;
function garbage(n) { let a = []; for (let k = 0; k < n; k++) a.push({k, s: 'x' + k + Math.random()}); return a.length; }
if (scenario === 'leak') {
  // unbounded cache keyed by request id, ~ 10 req per 100 ms each retaining ~6 KB
  const cache = new Map();
  setInterval(() => { for (let k = 0; k < 10; k++) { const id = i++; cache.set('req' + id, {id, body: 'y'.repeat(2000) + id, hdr: {a: id, b: [1,2,3]}}); } garbage(2000); }, 100);
} else if (scenario === 'burst') {
  // large burst of objects then dropped, then quiet with light garbage
  let burst = [];
  setTimeout(() => { for (let k = 0; k < 1500000; k++) burst.push({k, s: 'z' + k}); }, 5000);
  setTimeout(() => { burst = null; }, 12000);
  setInterval(() => garbage(500), 100);
} else if (scenario === 'lru') {
  const cache = new Map(); const cap = 8000;
  setInterval(() => { for (let k = 0; k < 20; k++) { const id = i++; cache.set('req' + id, {id, body: 'y'.repeat(2000) + id}); if (cache.size > cap) cache.delete(cache.keys().next().value); } garbage(1500); }, 100);
} else if (scenario === 'steady') {
  setInterval(() => garbage(3000), 50);
} else if (scenario === 'buffers') {
  setInterval(() => { keep.push(Buffer.alloc(64 * 1024, 1)); garbage(500); }, 100);
}
setTimeout(() => process.exit(0), dur);
