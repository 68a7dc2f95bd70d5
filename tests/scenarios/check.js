'use strict';
// Self-check of the scenario apps, without memlens: runs each one briefly with plain node and checks its
// output protocol and its own ground truth (see README.md). Exit status 0 when every check passes.
//
//   node tests/scenarios/check.js [NAME...]      (default: every scenario; about 40 s)
//
// It checks that the first line is "ready" with the child's pid, that memory lines carry
// process.memoryUsage(), that "final" is the last line with /proc figures that agree with the last memory
// reading, the exit status, and each scenario's specific facts (the child's pid in fork_child, leaked
// fds counted in the fd table, the same fd number on reuse, ...).
const { spawn } = require('child_process');
const path = require('path');

const dir = __dirname;
const MB = 1024 * 1024;

// Runs a scenario; onLine(line, child) sees each parsed line as it arrives.
function run(file, args, { timeoutS = 60, onLine = () => {} } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(dir, file), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let seen = 0;
    child.stdout.on('data', (d) => {
      out += d;
      const complete = out.slice(0, out.lastIndexOf('\n') + 1).split('\n').filter(Boolean);
      for (; seen < complete.length; seen++) {
        try {
          onLine(JSON.parse(complete[seen]), child);
        } catch (e) {
          // unparsable lines are reported after exit
        }
      }
    });
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const lines = [];
      for (const l of out.split('\n')) {
        if (!l) continue;
        try {
          lines.push(JSON.parse(l));
        } catch (e) {
          lines.push({ event: 'unparsable', text: l });
        }
      }
      resolve({ pid: child.pid, code, signal, lines, err });
    });
  });
}

function expect(cond, msg, failures) {
  if (!cond) failures.push(msg);
}

function checkCommon(r, failures, { exitCode = 0, final = true, tag } = {}) {
  const own = r.lines.filter((l) => (tag === undefined ? !l.tag : l.tag === tag));
  expect(r.code === exitCode, `exit status ${r.code} (signal ${r.signal}), expected ${exitCode}: ${r.err.trim()}`, failures);
  expect(!r.lines.some((l) => l.event === 'unparsable'), 'a line is not JSON', failures);
  expect(own.length > 0 && own[0].event === 'ready', 'first line is not ready', failures);
  if (tag === undefined) expect(own[0] && own[0].pid === r.pid, `ready pid ${own[0] && own[0].pid} != ${r.pid}`, failures);
  const mem = own.filter((l) => l.event === 'memory');
  for (const m of mem) {
    expect(m.memoryUsage && m.memoryUsage.rss > 0 && m.heap && m.heap.used_heap_size > 0, 'bad memory line', failures);
  }
  if (!final) {
    expect(!own.some((l) => l.event === 'final'), 'unexpected final line', failures);
    return own;
  }
  const last = own[own.length - 1];
  expect(last && last.event === 'final', 'final is not the last line', failures);
  if (last && last.event === 'final') {
    const s = last.status;
    expect(s && s.vm_rss > 0 && s.vm_hwm >= s.vm_rss, 'final status: VmRSS/VmHWM missing or inconsistent', failures);
    expect(s && Math.abs(s.rss_anon + s.rss_file + s.rss_shmem - s.vm_rss) <= 64 * 1024, 'RssAnon+RssFile+RssShmem != VmRSS', failures);
    // The kernel's RSS and process.memoryUsage().rss are read a moment apart: within 5%.
    const rel = Math.abs(s.vm_rss - last.memoryUsage.rss) / s.vm_rss;
    expect(rel < 0.05, `final VmRSS ${s.vm_rss} vs memoryUsage.rss ${last.memoryUsage.rss}`, failures);
    expect(last.stat && last.stat.minflt > 1000 && last.stat.majflt >= 0, 'final stat: minflt missing', failures);
  }
  return own;
}

const lastFds = (own) => own.filter((l) => l.event === 'fds').pop();
// stdio that node's spawn connects with 'pipe' is a Unix socket pair: those sockets are not the
// scenario's own.
const stdioSockets = (fds) => fds.fds.filter((e) => e.fd <= 2 && e.type === 'socket').length;

const checks = {
  async rss_growth() {
    const f = [];
    const r = await run('rss_growth.js', ['--duration', '2', '--mb', '120']);
    const own = checkCommon(r, f);
    const first = own.find((l) => l.event === 'memory');
    const fin = own[own.length - 1];
    if (first && fin.status) expect(fin.status.vm_rss - first.memoryUsage.rss > 100 * MB, 'RSS grew by less than 100 MB', f);
    return f;
  },
  async fork_child() {
    const f = [];
    const r = await run('fork_child.js', ['--duration', '2', '--child-mb', '60']);
    const own = checkCommon(r, f);
    const kid = checkCommon({ ...r, pid: undefined }, f, { tag: 'child' });
    const childLine = own.find((l) => l.event === 'child');
    expect(childLine && kid[0] && childLine.pid === kid[0].pid && kid[0].ppid === r.pid, 'child pid/ppid mismatch', f);
    const kfin = kid[kid.length - 1];
    expect(kfin && kfin.status && kfin.status.rss_anon > 60 * MB, 'child RssAnon below 60 MB', f);
    return f;
  },
  async exit_midway() {
    const f = [];
    const r = await run('exit_midway.js', ['--duration', '1']);
    checkCommon(r, f, { exitCode: 3, final: false });
    return f;
  },
  async long_running() {
    const f = [];
    // Stopped with SIGTERM after its second memory line.
    let memLines = 0;
    const r = await run('long_running.js', ['--duration', '30'], {
      onLine: (l, child) => {
        if (l.event === 'memory' && ++memLines === 2) child.kill('SIGTERM');
      },
    });
    const own = checkCommon(r, f);
    expect(own[own.length - 1].reason === 'SIGTERM', 'did not stop on SIGTERM', f);
    return f;
  },
  async js_cache_leak() {
    return leakCheck('js_cache_leak.js', (a, b) => b.heapUsed - a.heapUsed > 1 * MB, 'heapUsed did not grow 1 MB');
  },
  async js_listener_leak() {
    return leakCheck('js_listener_leak.js', (a, b) => b.heapUsed - a.heapUsed > 1 * MB, 'heapUsed did not grow 1 MB');
  },
  async js_closure_leak() {
    return leakCheck('js_closure_leak.js', (a, b) => b.heapUsed - a.heapUsed > 1 * MB, 'heapUsed did not grow 1 MB');
  },
  async buffer_leak() {
    return leakCheck('buffer_leak.js', (a, b) => b.arrayBuffers - a.arrayBuffers > 4 * MB, 'arrayBuffers did not grow 4 MB');
  },
  async zlib_leak() {
    return leakCheck('zlib_leak.js', (a, b) => b.rss - b.heapTotal - b.arrayBuffers - (a.rss - a.heapTotal - a.arrayBuffers) > 4 * MB, 'native memory did not grow 4 MB');
  },
  async intl_segmenter_leak() {
    return leakCheck('intl_segmenter_leak.js', (a, b) => b.rss - b.heapTotal - b.arrayBuffers - (a.rss - a.heapTotal - a.arrayBuffers) > 3 * MB, 'native memory did not grow 3 MB');
  },
  async js_listener_fast_leak() {
    return leakCheck('js_listener_fast_leak.js', (a, b) => b.heapUsed - a.heapUsed > 8 * MB, 'heapUsed did not grow 8 MB');
  },
  async js_interval_closure_leak() {
    return leakCheck('js_interval_closure_leak.js', (a, b) => b.heapUsed - a.heapUsed > 8 * MB, 'heapUsed did not grow 8 MB');
  },
  async js_large_heap_slow() {
    return leakCheck('js_large_heap_slow.js', (a, b) => b.heapUsed > 250 * MB, 'heapUsed below 250 MB: the large state was not built');
  },
  async js_promoted_sawtooth() {
    return leakCheck('js_promoted_sawtooth.js', (a, b) => b.heapTotal > a.heapTotal, 'heapTotal did not grow');
  },
  async buffer_records_leak() {
    return leakCheck('buffer_records_leak.js', (a, b) => b.arrayBuffers - a.arrayBuffers > 2 * MB && b.heapUsed - a.heapUsed > 1 * MB, 'arrayBuffers or heapUsed did not grow');
  },
  async js_and_intl_leak() {
    const native = (m) => m.rss - m.heapTotal - m.arrayBuffers;
    return leakCheck('js_and_intl_leak.js', (a, b) => native(b) - native(a) > 3 * MB && b.heapUsed - a.heapUsed > 1 * MB, 'native memory or heapUsed did not grow');
  },
  async burst_then_quiet() {
    const f = [];
    const r = await run('burst_then_quiet.js', ['--duration', '3', '--burst-s', '1', '--burst-mb', '60']);
    const own = checkCommon(r, f);
    expect(own.some((l) => l.event === 'burst_done'), 'no burst_done line', f);
    return f;
  },
  async http_steady() {
    const f = [];
    const r = await run('http_steady.js', ['--duration', '2']);
    const own = checkCommon(r, f);
    const fin = own[own.length - 1];
    expect(fin.completed > 100 && fin.failed === 0, `completed ${fin.completed}, failed ${fin.failed}`, f);
    return f;
  },
  async lru_cache() {
    const f = [];
    const r = await run('lru_cache.js', ['--duration', '3', '--max-entries', '200']);
    const own = checkCommon(r, f);
    expect(own[own.length - 1].entries === 200, 'LRU not at its bound', f);
    return f;
  },
  async fd_leak_files() {
    const f = [];
    const r = await run('fd_leak_files.js', ['--duration', '2', '--rate', '20']);
    const own = checkCommon(r, f);
    const fds = lastFds(own);
    const fin = own[own.length - 1];
    expect(fin.leaked >= 30, `only ${fin.leaked} fds leaked`, f);
    expect(fds && fds.by_type.file === fin.leaked, `fd table has ${fds && fds.by_type.file} files, leaked ${fin.leaked}`, f);
    return f;
  },
  async fd_leak_sockets() {
    const f = [];
    const r = await run('fd_leak_sockets.js', ['--duration', '2', '--rate', '10']);
    const own = checkCommon(r, f);
    const fds = lastFds(own);
    const fin = own[own.length - 1];
    expect(fin.clients >= 15 && fin.accepted === fin.clients, `clients ${fin.clients}, accepted ${fin.accepted}`, f);
    const sockets = fds ? fds.by_type.socket - stdioSockets(fds) : -1;
    expect(sockets === 2 * fin.clients + 1, `fd table has ${sockets} sockets besides stdio, clients ${fin.clients}`, f);
    return f;
  },
  async fd_healthy_server() {
    const f = [];
    const r = await run('fd_healthy_server.js', ['--duration', '2']);
    const own = checkCommon(r, f);
    const fds = lastFds(own);
    expect(own[own.length - 1].completed > 50, 'too few requests', f);
    const sockets = fds ? fds.by_type.socket - stdioSockets(fds) : -1;
    expect(sockets === 1, `sockets open at the quiet point besides stdio: ${sockets}`, f);
    return f;
  },
  async fd_many() {
    const f = [];
    const r = await run('fd_many.js', ['--duration', '2', '--count', '1000']);
    const own = checkCommon(r, f);
    const fds = own.find((l) => l.event === 'fds');
    expect(fds && fds.count >= 1000 && fds.by_type.file === 800 && fds.by_type.socket >= 200, 'fewer than 1000 fds', f);
    return f;
  },
  async fd_reuse() {
    const f = [];
    const r = await run('fd_reuse.js', ['--cycles', '5', '--period-ms', '50']);
    const own = checkCommon(r, f);
    const reuse = own.filter((l) => l.event === 'reuse');
    expect(reuse.length === 5 && reuse.every((l) => l.same), 'fd numbers not reused', f);
    const fds = lastFds(own);
    const last = reuse[reuse.length - 1];
    const entry = fds && fds.fds.find((e) => e.fd === last.opened_fd);
    expect(entry && entry.target === last.opened_path, 'fd table does not show the last path', f);
    return f;
  },
};

async function leakCheck(file, grew, msg) {
  const f = [];
  const r = await run(file, ['--duration', '4']);
  const own = checkCommon(r, f);
  const mem = own.filter((l) => l.event === 'memory' || l.event === 'final');
  if (mem.length >= 2) expect(grew(mem[0].memoryUsage, mem[mem.length - 1].memoryUsage), `${msg} in 4 s`, f);
  return f;
}

(async () => {
  const names = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(checks);
  let failed = 0;
  for (const name of names) {
    if (!checks[name]) {
      console.log(`FAIL ${name}: no such scenario check`);
      failed++;
      continue;
    }
    const t0 = Date.now();
    const failures = await checks[name]();
    const s = ((Date.now() - t0) / 1000).toFixed(1);
    if (failures.length) {
      failed++;
      console.log(`FAIL ${name} (${s} s): ${failures.join('; ')}`);
    } else {
      console.log(`ok   ${name} (${s} s)`);
    }
  }
  console.log(failed ? `${failed} scenario check(s) failed` : 'all scenario checks passed');
  process.exit(failed ? 1 : 0);
})();
