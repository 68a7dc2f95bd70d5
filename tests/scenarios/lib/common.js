'use strict';
// Shared plumbing of the scenario apps: argument parsing, JSON-lines reporting on stdout, and the ground
// truth each scenario reads about itself (/proc/self/status, /proc/self/stat, /proc/self/fd).
//
// Every line on stdout is one JSON object with an "event" field:
//   {"event":"ready","pid":N,"t_s":..,"boot_s":..,...}   once, at start (boot_s: CLOCK_BOOTTIME)
//   {"event":"memory","t_s":..,"memoryUsage":{..},"heap":{..}}   every --report-interval seconds
//   {"event":"fds","count":N,"by_type":{..},"fds":[..]}          fd scenarios, at quiet points
//   {"event":"final","status":{..},"stat":{..},"memoryUsage":{..},"heap":{..}}   last line before exit
// A scenario started with --tag NAME adds "tag":NAME to every line (used by child processes).
// Lines are written with fs.writeSync on fd 1 so that they are out before the process exits, and so that
// the order of lines matches the order of the readings.

const fs = require('fs');
const v8 = require('v8');

const startNs = process.hrtime.bigint();

// Parses --name value / --name=value pairs into an object, with defaults. Values are numbers when the
// default is a number, booleans for flags whose default is a boolean, strings otherwise.
function parseArgs(defaults, argv = process.argv.slice(2)) {
  const opts = Object.assign({ duration: 60, 'report-interval': 1, tag: '' }, defaults);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      const lines = Object.keys(opts).map((k) => `  --${k} (default: ${JSON.stringify(opts[k])})`);
      fs.writeSync(2, `options:\n${lines.join('\n')}\n`);
      process.exit(0);
    }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument: ${arg}`);
    let name = arg.slice(2);
    let value;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (!(name in opts)) throw new Error(`unknown option --${name}`);
    if (typeof opts[name] === 'boolean') {
      opts[name] = value === undefined ? true : value !== 'false' && value !== '0';
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new Error(`--${name} needs a value`);
      value = argv[++i];
    }
    if (typeof opts[name] === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a non-negative number: ${value}`);
      opts[name] = n;
    } else {
      opts[name] = value;
    }
  }
  return opts;
}

let tag = '';

function setTag(t) {
  tag = t || '';
}

function elapsedSeconds() {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}

function writeAll(text) {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(1, buf, off, buf.length - off);
    } catch (e) {
      // stdout may be a non-blocking pipe shared with a parent; wait for room rather than drop a line.
      if (e.code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

function emit(obj) {
  if (tag) obj.tag = tag;
  writeAll(JSON.stringify(obj) + '\n');
}

// Fields of /proc/self/status in kB, returned in bytes under snake_case names.
const STATUS_FIELDS = {
  VmRSS: 'vm_rss',
  VmHWM: 'vm_hwm',
  RssAnon: 'rss_anon',
  RssFile: 'rss_file',
  RssShmem: 'rss_shmem',
  VmSwap: 'vm_swap',
  VmSize: 'vm_size',
};

function readStatus() {
  const out = {};
  const text = fs.readFileSync('/proc/self/status', 'latin1');
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = STATUS_FIELDS[line.slice(0, colon)];
    if (!key) continue;
    const m = /(\d+)\s*kB/.exec(line.slice(colon + 1));
    if (m) out[key] = Number(m[1]) * 1024;
  }
  return out;
}

// minflt is field 10 and majflt field 12 of /proc/self/stat (1-based); comm (field 2) may hold spaces and
// parentheses, so the fields are counted from the last ')'.
function readStat() {
  const text = fs.readFileSync('/proc/self/stat', 'latin1');
  const rest = text.slice(text.lastIndexOf(')') + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state).
  return { minflt: Number(rest[10 - 3]), majflt: Number(rest[12 - 3]) };
}

function memorySnapshot() {
  return { memoryUsage: process.memoryUsage(), heap: v8.getHeapStatistics() };
}

// Seconds since boot, CLOCK_BOOTTIME (the clock of memlens's timestamps and of /proc/PID/stat's start
// time), to 10 ms: lets a test put this process's clock on memlens's without guessing when it saw a line.
function bootSeconds() {
  return Number(fs.readFileSync('/proc/uptime', 'latin1').split(' ')[0]);
}

function ready(extra = {}) {
  const t_s = elapsedSeconds();
  const boot_s = bootSeconds();
  const line = { event: 'ready', pid: process.pid, ppid: process.ppid, node: process.version, t_s, boot_s };
  emit(Object.assign(line, extra));
}

let reportTimer = null;

// Prints a memory line every intervalS seconds. The timer is unref'd: it never keeps a scenario alive.
function startReporting(intervalS) {
  if (!(intervalS > 0)) return;
  const tick = () => {
    const snap = memorySnapshot();
    const line = { event: 'memory', t_s: Number(elapsedSeconds().toFixed(3)), ...snap };
    // Only when started with --expose-gc (manual verification of a scenario, never under memlens): a full
    // GC gives the heap used after GC that a js_heap verdict is judged on.
    if (typeof global.gc === 'function') {
      global.gc();
      line.heap_used_after_gc = process.memoryUsage().heapUsed;
    }
    emit(line);
  };
  tick();
  reportTimer = setInterval(tick, intervalS * 1000);
  reportTimer.unref();
}

function stopReporting() {
  if (reportTimer) clearInterval(reportTimer);
  reportTimer = null;
}

// The kernel's view is read last, right before the line is written and the process exits, so that
// VmRSS/VmHWM/minflt are as close as possible to what a tracer sees at exit.
function finalLine(extra = {}) {
  stopReporting();
  const snap = memorySnapshot();
  const line = { event: 'final', t_s: 0, ...extra, ...snap };
  line.t_s = Number(elapsedSeconds().toFixed(3));
  line.status = readStatus();
  line.stat = readStat();
  emit(line);
}

// Prints the final line and exits at once: nothing is allocated between the reading and the exit.
function finishAndExit(code = 0, extra = {}) {
  finalLine(extra);
  process.exit(code);
}

// Ground truth about the open fds, from readlink of /proc/self/fd/*. Types follow the names memlens uses.
function classifyFd(fd, target) {
  if (target.startsWith('socket:[')) return 'socket';
  if (target.startsWith('pipe:[')) return 'pipe';
  if (target.startsWith('anon_inode:')) {
    const name = target.slice('anon_inode:'.length).replace(/^\[|\]$/g, '');
    const map = {
      eventfd: 'eventfd',
      eventpoll: 'epoll',
      timerfd: 'timerfd',
      signalfd: 'signalfd',
      inotify: 'inotify',
      pidfd: 'pidfd',
      io_uring: 'io_uring',
    };
    return map[name] || 'other';
  }
  if (target.startsWith('/memfd:')) return 'memfd';
  if (target.startsWith('/')) {
    try {
      const st = fs.fstatSync(fd);
      if (st.isFile()) return 'file';
      if (st.isDirectory()) return 'directory';
      if (st.isCharacterDevice()) return 'char_device';
    } catch (e) {
      return 'other';
    }
  }
  return 'other';
}

function listFds() {
  const fds = [];
  for (const name of fs.readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    let target;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${name}`);
    } catch (e) {
      continue; // the directory fd readdirSync used, already closed
    }
    fds.push({ fd, type: classifyFd(fd, target), target });
  }
  fds.sort((a, b) => a.fd - b.fd);
  return fds;
}

function fdSummary(withList = true) {
  const fds = listFds();
  const byType = {};
  for (const f of fds) byType[f.type] = (byType[f.type] || 0) + 1;
  const out = { event: 'fds', t_s: Number(elapsedSeconds().toFixed(3)), count: fds.length, by_type: byType };
  if (withList) out.fds = fds;
  return out;
}

function emitFds(extra = {}, withList = true) {
  emit(Object.assign(fdSummary(withList), extra));
}

// fd scenarios print their fd table on SIGUSR2, so a test can ask for it at the moment it queries memlens.
function fdsOnSignal() {
  process.on('SIGUSR2', () => emitFds({ reason: 'SIGUSR2' }));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Resolves after `seconds`, or earlier on SIGTERM/SIGINT. Returns the reason.
function waitForDurationOrSignal(seconds) {
  return new Promise((resolve) => {
    let timer = null;
    const done = (reason) => {
      if (timer) clearTimeout(timer);
      process.removeAllListeners('SIGTERM');
      process.removeAllListeners('SIGINT');
      resolve(reason);
    };
    process.once('SIGTERM', () => done('SIGTERM'));
    process.once('SIGINT', () => done('SIGINT'));
    timer = setTimeout(() => done('duration'), seconds * 1000);
  });
}

// Deterministic pseudo-random numbers so that runs are repeatable.
function rng(seed = 12345) {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

// Runs fn every periodMs, as a fixed-rate "request" generator; returns a stop function.
function every(periodMs, fn) {
  const t = setInterval(fn, periodMs);
  return () => clearInterval(t);
}

// Transient per-request work: short-lived objects that keep the young generation busy, so that GCs
// happen at a steady pace (a js_heap verdict is judged on heap used after GC).
function transientGarbage(id) {
  const tmp = [];
  for (let i = 0; i < 16; i++) tmp.push({ id, i, s: `req-${id}-${i}` });
  return JSON.stringify(tmp).length;
}

// The common shape of the memory scenarios: ready, memory lines, `rate` simulated requests per second
// handled by onRequest(id), then after --duration seconds the final line and exit 0.
// Requests are issued in batches every 10 ms so that the rate is steady at any value.
function runRequestScenario(name, defaults, onRequest, summary = () => ({})) {
  const opts = parseArgs(Object.assign({ rate: 200 }, defaults));
  setTag(opts.tag);
  ready({ scenario: name });
  startReporting(opts['report-interval']);
  let id = 0;
  let owed = 0;
  const periodMs = 10;
  const timer = setInterval(() => {
    owed += (opts.rate * periodMs) / 1000;
    while (owed >= 1) {
      owed -= 1;
      transientGarbage(id);
      onRequest(id++, opts);
    }
  }, periodMs);
  setTimeout(() => {
    clearInterval(timer);
    finishAndExit(0, Object.assign({ requests: id }, summary()));
  }, opts.duration * 1000);
  return opts;
}

module.exports = {
  transientGarbage,
  runRequestScenario,
  parseArgs,
  setTag,
  emit,
  ready,
  startReporting,
  stopReporting,
  finalLine,
  finishAndExit,
  readStatus,
  readStat,
  memorySnapshot,
  listFds,
  fdSummary,
  emitFds,
  fdsOnSignal,
  sleep,
  waitForDurationOrSignal,
  elapsedSeconds,
  rng,
  every,
};
