// memlens report page. Everything that comes from the traced process reaches the DOM through textContent
// or SVG/canvas text, never as markup. The data sits in two <script type="application/json"> blocks.
(function () {
  'use strict';

  // ---------------------------------------------------------------------------------------------------
  // Small DOM helpers.
  function el(tag, attrs) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        if (k === 'class') e.className = attrs[k];
        else if (k === 'text') e.textContent = attrs[k];
        else e.setAttribute(k, attrs[k]);
      }
    }
    for (let i = 2; i < arguments.length; i++) {
      const c = arguments[i];
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  }
  const SVGNS = 'http://www.w3.org/2000/svg';
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    if (attrs) for (const k of Object.keys(attrs)) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function readJson(id) {
    const node = document.getElementById(id);
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (err) {
      console.error('memlens: cannot parse ' + id + ': ' + err);
      return null;
    }
  }
  const isNum = (v) => typeof v === 'number' && isFinite(v);
  const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const arr = (v) => (Array.isArray(v) ? v : []);

  // ---------------------------------------------------------------------------------------------------
  // Formatting.
  function fmtBytes(b) {
    if (!isNum(b)) return '\u2013';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Math.abs(b);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    const digits = i === 0 ? 0 : v < 10 ? 2 : v < 100 ? 1 : 0;
    return (b < 0 ? '-' : '') + v.toFixed(digits) + ' ' + units[i];
  }
  function fmtCount(n) {
    if (!isNum(n)) return '\u2013';
    return Math.round(n).toLocaleString('en-US');
  }
  function fmtMs(ms) {
    if (!isNum(ms)) return '\u2013';
    if (ms >= 1000) return (ms / 1000).toFixed(2) + ' s';
    return (ms < 10 ? ms.toFixed(2) : ms.toFixed(1)) + ' ms';
  }
  function fmtSeconds(s) {
    if (!isNum(s)) return '\u2013';
    if (s < 120) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    if (s < 7200) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }
  function fmtValue(v, unit) {
    if (unit === 'bytes') return fmtBytes(v);
    if (unit === 'nanoseconds') return fmtMs(v / 1e6);
    return fmtCount(v) + (unit && unit !== 'count' ? ' ' + unit : '');
  }
  function fmtPct(part, whole) {
    if (!isNum(part) || !isNum(whole) || whole <= 0) return '\u2013';
    const p = (100 * part) / whole;
    return (p < 0.1 && p > 0 ? p.toFixed(3) : p.toFixed(1)) + '%';
  }

  const CATEGORIES = [
    ['js_heap', 'JS heap', '#4e79a7'],
    ['array_buffers', 'ArrayBuffers/Buffers', '#f28e2b'],
    ['native_heap', 'Native heap', '#e15759'],
    ['code', 'Code', '#76b7b2'],
    ['stacks', 'Thread stacks', '#59a14f'],
    ['file_mapped', 'File-mapped', '#edc948'],
    ['other_anon', 'Other anonymous', '#b07aa1'],
    ['unexplained', 'Unexplained', '#bab0ac'],
  ];
  const CATEGORY_NAME = {fds: 'File descriptors', sockets: 'Sockets'};
  const CATEGORY_COLOR = {};
  for (const [k, name, color] of CATEGORIES) {
    CATEGORY_NAME[k] = name;
    CATEGORY_COLOR[k] = color;
  }
  const catName = (c) => CATEGORY_NAME[c] || String(c || 'memory');

  const VERDICT_WORDS = {
    leak_suspected: ['leak suspected', 'bad'],
    growth_unconfirmed: ['growing, not yet confirmed by a full GC', 'warn'],
    growth_then_plateau: ['grew, then levelled off', 'warn'],
    retained_not_leak: ['retained, not a leak', 'info'],
    stable: ['stable', 'good'],
  };
  const VERDICT_ORDER = ['leak_suspected', 'growth_unconfirmed', 'retained_not_leak', 'growth_then_plateau', 'stable'];

  function procLabel(p) {
    const name = p.comm || (p.exe ? String(p.exe).split('/').pop() : 'process');
    return name + (isNum(p.pid) ? ' (pid ' + p.pid + ')' : '');
  }

  // ---------------------------------------------------------------------------------------------------
  // A floating tooltip shared by charts and flame graphs.
  const tip = el('div', {class: 'tip', role: 'tooltip'});
  function showTip(ev, lines) {
    tip.replaceChildren();
    lines.forEach((line, i) => tip.append(el(i === 0 ? 'b' : 'div', {text: line})));
    tip.style.display = 'block';
    const pad = 14;
    let left = ev.clientX + pad;
    let top = ev.clientY + pad;
    const r = tip.getBoundingClientRect();
    if (left + r.width > window.innerWidth - 4) left = Math.max(4, ev.clientX - r.width - pad);
    if (top + r.height > window.innerHeight - 4) top = Math.max(4, ev.clientY - r.height - pad);
    tip.style.left = left + 'px';
    tip.style.top = top + 'px';
  }
  function hideTip() {
    tip.style.display = 'none';
  }

  // ---------------------------------------------------------------------------------------------------
  // Time-series chart in SVG: stacked areas and/or lines, or bars (GC pauses), with a hover read-out.
  function niceStep(range, target) {
    if (!(range > 0)) return 1;
    const raw = range / target;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return m * mag;
    return 10 * mag;
  }
  function niceByteStep(range, target) {
    if (!(range > 0)) return 1;
    const raw = range / target;
    let unit = 1;
    while (raw >= unit * 1024 && unit < Math.pow(1024, 4)) unit *= 1024;
    return niceStep(range / unit, target) * unit;
  }

  // opts: {title, t: [...], areas: [{name, color, values}], lines: [{name, color, values, dash}],
  //        bars: [{t, v, color, label}], yFmt, note}
  function timeChart(opts) {
    // A viewBox near the drawn size keeps the axis text readable when two charts share a row.
    const W = 640, H = 220, L = 70, R = 12, T = 10, B = 28;
    const box = el('div', {class: 'chart'});
    box.append(el('h4', {text: opts.title}));
    const t = opts.t || [];
    const areas = (opts.areas || []).filter((s) => s.values.some((v) => isNum(v) && v !== 0));
    const lines = (opts.lines || []).filter((s) => s.values.some(isNum));
    const bars = opts.bars || [];
    const yFmt = opts.yFmt || fmtCount;
    if ((t.length === 0 || (areas.length === 0 && lines.length === 0)) && bars.length === 0) {
      box.append(el('p', {class: 'muted', text: opts.empty || 'No samples.'}));
      return box;
    }
    const n = t.length;
    const stacked = areas.map(() => new Float64Array(n));
    let ymax = 0;
    for (let i = 0; i < n; i++) {
      let acc = 0;
      areas.forEach((s, k) => {
        const v = s.values[i];
        acc += isNum(v) && v > 0 ? v : 0;
        stacked[k][i] = acc;
      });
      ymax = Math.max(ymax, acc);
      for (const s of lines) if (isNum(s.values[i])) ymax = Math.max(ymax, s.values[i]);
    }
    let tmin = n ? t[0] : Infinity, tmax = n ? t[n - 1] : -Infinity;
    for (const b of bars) {
      tmin = Math.min(tmin, b.t);
      tmax = Math.max(tmax, b.t);
      ymax = Math.max(ymax, b.v);
    }
    if (!(tmax > tmin)) tmax = tmin + 1;
    if (!(ymax > 0)) ymax = 1;
    const ystep = opts.bytes ? niceByteStep(ymax, 4) : niceStep(ymax, 4);
    ymax = Math.ceil(ymax / ystep) * ystep;
    const X = (v) => L + ((v - tmin) / (tmax - tmin)) * (W - L - R);
    const Y = (v) => T + (1 - v / ymax) * (H - T - B);

    const svg = sv('svg', {viewBox: '0 0 ' + W + ' ' + H, class: 'chart-svg', role: 'img'});
    svg.append(sv('title', {}, opts.title));
    for (let v = 0; v <= ymax + ystep / 2; v += ystep) {
      svg.append(sv('line', {x1: L, x2: W - R, y1: Y(v), y2: Y(v), class: 'grid'}));
      svg.append(sv('text', {x: L - 6, y: Y(v) + 4, class: 'axis', 'text-anchor': 'end'}, yFmt(v)));
    }
    const tstep = niceStep(tmax - tmin, 8);
    for (let v = Math.ceil(tmin / tstep) * tstep; v <= tmax + 1e-9; v += tstep) {
      svg.append(sv('line', {x1: X(v), x2: X(v), y1: H - B, y2: H - B + 4, class: 'tick'}));
      svg.append(sv('text', {x: X(v), y: H - B + 16, class: 'axis', 'text-anchor': 'middle'}, fmtSeconds(v)));
    }
    svg.append(sv('line', {x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'tick'}));

    for (let k = areas.length - 1; k >= 0; k--) {
      let d = '';
      for (let i = 0; i < n; i++) d += (i ? 'L' : 'M') + X(t[i]).toFixed(1) + ',' + Y(stacked[k][i]).toFixed(1);
      for (let i = n - 1; i >= 0; i--) d += 'L' + X(t[i]).toFixed(1) + ',' + Y(k ? stacked[k - 1][i] : 0).toFixed(1);
      svg.append(sv('path', {d: d + 'Z', fill: areas[k].color, 'fill-opacity': 0.85, class: 'area'}));
    }
    for (const s of lines) {
      let d = '';
      let pen = false;
      for (let i = 0; i < n; i++) {
        const v = s.values[i];
        if (!isNum(v)) {
          pen = false;
          continue;
        }
        d += (pen ? 'L' : 'M') + X(t[i]).toFixed(1) + ',' + Y(v).toFixed(1);
        pen = true;
      }
      const attrs = {d: d, stroke: s.color, fill: 'none', 'stroke-width': 2, class: 'line'};
      if (s.dash) attrs['stroke-dasharray'] = '5 4';
      svg.append(sv('path', attrs));
      if (s.dots) {
        for (let i = 0; i < n; i++) {
          if (isNum(s.values[i])) svg.append(sv('circle', {cx: X(t[i]), cy: Y(s.values[i]), r: 2.5, fill: s.color}));
        }
      }
    }
    const barW = Math.max(2, Math.min(8, (W - L - R) / Math.max(1, bars.length) / 2));
    for (const b of bars) {
      const h = Math.max(1, H - B - Y(b.v));
      svg.append(sv('rect', {x: X(b.t) - barW / 2, y: H - B - h, width: barW, height: h, fill: b.color, class: 'bar'}));
    }

    // Hover read-out: the nearest sample's values.
    const cursor = sv('line', {y1: T, y2: H - B, class: 'cursor', visibility: 'hidden'});
    svg.append(cursor);
    const hit = sv('rect', {x: L, y: T, width: W - L - R, height: H - T - B, fill: 'transparent'});
    svg.append(hit);
    hit.addEventListener('mousemove', (ev) => {
      const r = svg.getBoundingClientRect();
      const tv = tmin + (((ev.clientX - r.left) * (W / r.width) - L) / (W - L - R)) * (tmax - tmin);
      const out = [];
      if (n) {
        let lo = 0, hi = n - 1;
        while (hi - lo > 1) {
          const mid = (lo + hi) >> 1;
          if (t[mid] < tv) lo = mid;
          else hi = mid;
        }
        const i = Math.abs(t[lo] - tv) <= Math.abs(t[hi] - tv) ? lo : hi;
        cursor.setAttribute('x1', X(t[i]));
        cursor.setAttribute('x2', X(t[i]));
        cursor.setAttribute('visibility', 'visible');
        out.push('t = ' + fmtSeconds(t[i]));
        for (const s of lines) if (isNum(s.values[i])) out.push(s.name + ': ' + yFmt(s.values[i]));
        for (let k = areas.length - 1; k >= 0; k--) out.push(areas[k].name + ': ' + yFmt(areas[k].values[i] || 0));
      } else if (bars.length) {
        let best = bars[0];
        for (const b of bars) if (Math.abs(b.t - tv) < Math.abs(best.t - tv)) best = b;
        out.push('t = ' + fmtSeconds(best.t), best.label);
      }
      if (out.length) showTip(ev, out);
    });
    hit.addEventListener('mouseleave', () => {
      cursor.setAttribute('visibility', 'hidden');
      hideTip();
    });
    box.append(svg);

    const legend = el('div', {class: 'legend'});
    for (const s of lines) legend.append(el('span', {class: 'key'}, el('i', {style: 'background:' + s.color}), s.name));
    for (const s of areas) legend.append(el('span', {class: 'key'}, el('i', {style: 'background:' + s.color}), s.name));
    for (const [name, color] of opts.barKeys || []) {
      legend.append(el('span', {class: 'key'}, el('i', {style: 'background:' + color}), name));
    }
    box.append(legend);
    if (opts.note) box.append(el('p', {class: 'muted', text: opts.note}));
    return box;
  }

  // ---------------------------------------------------------------------------------------------------
  // Verdicts, in plain words.
  // "Limit in ~4 min: the 512 MiB memory limit of cgroup v1 /a (430 MiB used, at +20 MiB/min)".
  function limitText(v) {
    if (!isNum(v.seconds_to_limit) || !v.limit || typeof v.limit !== 'object') return '';
    const l = v.limit;
    const what = l.kind === 'host' ? "the host's " + fmtBytes(l.value) + ' of memory'
      : l.kind === 'cgroup' ? 'the ' + fmtBytes(l.value) + ' memory limit of ' + String(l.where)
        : l.kind === 'heap' ? 'the ' + fmtBytes(l.value) + ' JS heap limit'
          : 'the limit of ' + String(l.value);
    const bytes = l.kind !== 'nofile';
    const used = bytes ? fmtBytes(l.used) + ' used' : String(Math.round(l.used)) + ' used';
    const rate = bytes ? '+' + fmtBytes(l.rate_per_s * 60) + '/min' : '+' + Number(l.rate_per_s).toFixed(1) + '/s';
    const when = v.seconds_to_limit <= 0 ? 'Limit reached: ' : 'Limit in ~' + fmtSeconds(v.seconds_to_limit) + ': ';
    return when + what + ' (' + used + ', at ' + rate + ' of ' + arr(l.growing).map(catName).join(' + ') + ')';
  }

  function describeRate(v) {
    const per = (x) => (x >= 0 ? '+' : '') + x;
    if (isNum(v.rate_bytes_per_s)) {
      if (v.category === 'fds' || v.category === 'sockets') return per((v.rate_bytes_per_s * 60).toFixed(1)) + ' per min';
      return (v.rate_bytes_per_s >= 0 ? '+' : '') + fmtBytes(v.rate_bytes_per_s * 60) + '/min';
    }
    if (isNum(v.rate_per_s)) return per((v.rate_per_s * 60).toFixed(1)) + ' per min';
    return '';
  }
  function stackText(s) {
    if (typeof s === 'string') return s;
    if (Array.isArray(s)) return s.slice(-4).reverse().map(String).join(' \u2190 ');
    if (isObj(s)) {
      const frames = s.stack !== undefined ? s.stack : s.frames;
      let text = frames !== undefined ? stackText(frames) : s.leaf || s.function || JSON.stringify(s);
      const val = isNum(s.bytes) ? fmtBytes(s.bytes) : isNum(s.value) ? fmtCount(s.value) : isNum(s.count) ? fmtCount(s.count) : '';
      if (val) text = val + '  ' + text;
      return text;
    }
    return String(s);
  }
  function renderVerdicts(report, root) {
    const sec = el('section', {id: 'verdicts'});
    sec.append(el('h2', {text: 'Verdicts'}));
    const all = [];
    for (const p of arr(report.processes)) for (const v of arr(p && p.verdicts)) if (isObj(v)) all.push([p, v]);
    for (const v of arr(report.verdicts)) if (isObj(v)) all.push([null, v]);
    if (!all.length) {
      sec.append(el('p', {class: 'muted', text: 'No verdicts in this report: the analysis did not run or the trace was too short to judge.'}));
      root.append(sec);
      return;
    }
    const rank = (k) => {
      const i = VERDICT_ORDER.indexOf(k);
      return i < 0 ? VERDICT_ORDER.length : i;
    };
    all.sort((a, b) => rank(a[1].kind) - rank(b[1].kind));
    const list = el('ul', {class: 'verdicts'});
    for (const [p, v] of all) {
      const words = VERDICT_WORDS[v.kind] || [String(v.kind || 'verdict').replace(/_/g, ' '), 'info'];
      // A growth another one brings: part of that leak, or of that growth while no full GC has confirmed it.
      const whose = v.kind === 'growth_unconfirmed' ? ' growth)' : ' leak)';
      const head = catName(v.category) + ' ' + words[0] + (v.part_of ? ' (part of the ' + catName(v.part_of) + whose : '');
      const rate = describeRate(v);
      const li = el('li', {class: 'verdict ' + words[1]});
      const line = el('div', {class: 'vhead'}, el('span', {class: 'badge', text: words[0]}), el('b', {text: head}));
      if (rate && v.kind !== 'stable') line.append(el('span', {class: 'rate', text: rate}));
      if (p) line.append(el('span', {class: 'muted', text: procLabel(p)}));
      if (isNum(v.confidence)) line.append(el('span', {class: 'muted', text: 'confidence ' + Math.round(v.confidence * 100) + '%'}));
      else if (typeof v.confidence === 'string') line.append(el('span', {class: 'muted', text: 'confidence ' + v.confidence}));
      li.append(line);
      const eta = limitText(v);
      if (eta) li.append(el('p', {class: 'limit', text: eta}));
      if (v.evidence) li.append(el('p', {text: String(v.evidence)}));
      const stacks = arr(v.top_stacks);
      if (stacks.length) {
        const det = el('details', {}, el('summary', {text: 'Top stacks (' + stacks.length + ')'}));
        const ol = el('ol', {class: 'stacks'});
        for (const s of stacks.slice(0, 10)) ol.append(el('li', {text: stackText(s)}));
        det.append(ol);
        li.append(det);
      }
      list.append(li);
    }
    sec.append(list);
    root.append(sec);
  }

  // ---------------------------------------------------------------------------------------------------
  // Per-process sections.
  function figure(label, value) {
    return el('div', {class: 'fig'}, el('span', {class: 'flabel', text: label}), el('span', {class: 'fval', text: value}));
  }
  function breakdownBar(bd, rss) {
    const wrap = el('div', {class: 'breakdown'});
    const parts = [];
    for (const [k, name, color] of CATEGORIES) {
      const v = k === 'unexplained' ? bd.unexplained_bytes : isNum(bd[k + '_bytes']) ? bd[k + '_bytes'] : bd[k];
      if (isNum(v) && v > 0) parts.push([name, color, v]);
    }
    if (!parts.length) return null;
    const total = parts.reduce((a, p) => a + p[2], 0);
    const bar = el('div', {class: 'bar'});
    const legend = el('div', {class: 'legend'});
    for (const [name, color, v] of parts) {
      const seg = el('span', {style: 'width:' + ((100 * v) / total).toFixed(3) + '%;background:' + color});
      seg.addEventListener('mousemove', (ev) => showTip(ev, [name, fmtBytes(v) + ' (' + fmtPct(v, total) + ')']));
      seg.addEventListener('mouseleave', hideTip);
      bar.append(seg);
      legend.append(el('span', {class: 'key'}, el('i', {style: 'background:' + color}), name + ' ' + fmtBytes(v)));
    }
    wrap.append(el('h4', {text: 'Where the RSS is now' + (isNum(rss) ? ' (' + fmtBytes(rss) + ')' : '')}), bar, legend);
    return wrap;
  }
  function seriesOf(tl, key) {
    return tl.map((s) => (isObj(s) && isNum(s[key]) ? s[key] : undefined));
  }
  function renderProcess(p, root) {
    const sec = el('section', {class: 'process'});
    sec.append(el('h2', {text: procLabel(p)}));
    const sub = [];
    if (p.exe) sub.push(String(p.exe));
    if (Array.isArray(p.cmdline)) sub.push(p.cmdline.map(String).join(' '));
    else if (p.cmdline) sub.push(String(p.cmdline));
    if (isNum(p.exit_status)) sub.push('exited with status ' + p.exit_status);
    if (sub.length) sec.append(el('p', {class: 'muted mono', text: sub.join('  \u00b7  ')}));

    const figs = el('div', {class: 'figs'});
    figs.append(figure('RSS', fmtBytes(p.rss_bytes)), figure('Peak RSS', fmtBytes(p.rss_peak_bytes)));
    if (isObj(p.rss)) {
      figs.append(figure('Anonymous', fmtBytes(p.rss.anon_bytes)), figure('File', fmtBytes(p.rss.file_bytes)));
      if (p.rss.shmem_bytes) figs.append(figure('Shmem', fmtBytes(p.rss.shmem_bytes)));
      if (p.rss.swap_bytes) figs.append(figure('Swap', fmtBytes(p.rss.swap_bytes)));
    }
    if (isObj(p.gc)) {
      figs.append(figure('GCs', fmtCount(p.gc.count)));
      if (isObj(p.gc.pause_ms)) figs.append(figure('Time in GC', fmtMs(p.gc.pause_ms.total)));
      if (isNum(p.gc.heap_used_after_gc_bytes)) figs.append(figure('Heap used after last GC', fmtBytes(p.gc.heap_used_after_gc_bytes)));
    }
    if (isObj(p.array_buffers) && isNum(p.array_buffers.live_bytes)) figs.append(figure('Live ArrayBuffers', fmtBytes(p.array_buffers.live_bytes)));
    if (isObj(p.fds)) figs.append(figure('Open fds', fmtCount(p.fds.open) + (isNum(p.fds.peak) ? ' (peak ' + fmtCount(p.fds.peak) + ')' : '')));
    if (isObj(p.page_faults)) figs.append(figure('Page faults', fmtCount(p.page_faults.minor) + ' minor, ' + fmtCount(p.page_faults.major) + ' major'));
    sec.append(figs);

    if (isObj(p.breakdown)) {
      const bb = breakdownBar(p.breakdown, p.rss_bytes);
      if (bb) sec.append(bb);
    }

    const tl = arr(p.timeline).filter(isObj);
    const t = tl.map((s) => (isNum(s.t_s) ? s.t_s : 0));
    const charts = el('div', {class: 'charts'});
    if (tl.length) {
      let areas = [];
      const cats = tl.map((s) => (isObj(s) && isObj(s.categories) ? s.categories : {}));
      const hasCategories = CATEGORIES.some(([k]) => cats.some((c) => isNum(c[k + '_bytes'])));
      if (hasCategories) {
        for (const [k, name, color] of CATEGORIES) areas.push({name: name, color: color, values: seriesOf(cats, k + '_bytes')});
      } else {
        areas = [
          {name: 'Anonymous', color: '#e15759', values: seriesOf(tl, 'anon_bytes')},
          {name: 'File-backed', color: '#edc948', values: seriesOf(tl, 'file_bytes')},
        ];
      }
      charts.append(timeChart({
        title: hasCategories ? 'RSS by category' : 'RSS (anonymous and file-backed; no category breakdown in this report)',
        t: t, areas: areas, bytes: true, yFmt: fmtBytes,
        lines: [
          {name: 'RSS', color: '#222', values: seriesOf(tl, 'rss_bytes')},
          {name: 'JS heap used', color: '#1f3a93', values: seriesOf(tl, 'js_heap_used_bytes'), dash: true},
        ],
      }));
    } else {
      charts.append(el('p', {class: 'muted', text: 'No timeline samples for this process.'}));
    }

    if (isObj(p.gc)) {
      const events = arr(p.gc.events).filter((e) => isObj(e) && isNum(e.t_s));
      const kinds = {};
      const palette = ['#4e79a7', '#e15759', '#59a14f', '#f28e2b', '#b07aa1', '#76b7b2'];
      for (const e of events) {
        const k = String(e.kind || 'gc');
        if (!(k in kinds)) kinds[k] = palette[Object.keys(kinds).length % palette.length];
      }
      const pm = isObj(p.gc.pause_ms) ? p.gc.pause_ms : {};
      const note = 'GC pauses: ' + fmtCount(p.gc.count) + ' GCs, total ' + fmtMs(pm.total) + ', max ' + fmtMs(pm.max) +
        ', p50 ' + fmtMs(pm.p50) + ', p99 ' + fmtMs(pm.p99) +
        (isObj(p.gc.by_kind) ? '; by kind: ' + Object.keys(p.gc.by_kind).map((k) => k + ' ' + p.gc.by_kind[k]).join(', ') : '');
      charts.append(timeChart({
        title: 'GC pauses',
        bars: events.filter((e) => isNum(e.pause_ms)).map((e) => ({
          t: e.t_s, v: e.pause_ms, color: kinds[String(e.kind || 'gc')],
          label: String(e.kind || 'gc') + ': ' + fmtMs(e.pause_ms),
        })),
        barKeys: Object.keys(kinds).map((k) => [k, kinds[k]]),
        yFmt: fmtMs, note: note, empty: 'No GC events recorded. ' + note,
      }));
      const et = events.map((e) => e.t_s);
      charts.append(timeChart({
        title: 'JS heap used after each GC',
        t: et, bytes: true, yFmt: fmtBytes,
        lines: [
          {name: 'Heap used after GC', color: '#4e79a7', values: events.map((e) => e.heap_used_after_bytes), dots: true},
          {name: 'Heap used before GC', color: '#bab0ac', values: events.map((e) => e.heap_used_before_bytes), dash: true},
        ],
        empty: 'No per-GC heap figures recorded.',
      }));
    }

    const fdSeries = seriesOf(tl, 'fds_open');
    if (isObj(p.fds) || fdSeries.some(isNum)) {
      let note = '';
      if (isObj(p.fds) && isObj(p.fds.by_type)) {
        note = 'Open now by type: ' + Object.keys(p.fds.by_type).map((k) => k + ' ' + p.fds.by_type[k]).join(', ');
      }
      charts.append(timeChart({
        title: 'Open file descriptors', t: t, yFmt: fmtCount,
        lines: [{name: 'Open fds', color: '#59a14f', values: fdSeries}], note: note,
        empty: 'No fd samples in the timeline. ' + note,
      }));
    }
    sec.append(charts);
    root.append(sec);
  }

  // ---------------------------------------------------------------------------------------------------
  // Flame graph: the C++ side has merged the stacks into a tree and sent it in preorder (node 0 is the
  // root, children sorted by name): per node its name index, depth and one total per sample type.
  // Layout is one linear pass; drawing skips whole subtrees narrower than MIN_W pixels, so the cost
  // follows what is visible, not the number of stacks.
  const ROW = 18, MIN_W = 0.5;
  const registry = {};

  function FlameGraph(f, container) {
    const names = arr(f.names).map(String);
    const nameKind = arr(f.name_kind);
    const N = arr(f.n).length;
    const nameOf = Int32Array.from(f.n);
    const depth = Int32Array.from(f.d);
    const parent = new Int32Array(N);
    const end = new Int32Array(N);
    const types = arr(f.sample_types);
    let typeIdx = 0;
    let val = new Float64Array(N);
    const x = new Float64Array(N);
    let zoom = 0;
    let matchName = null;  // Uint8Array over names, or null when no search
    let matchedValue = 0;
    let drawn = {i: [], x: [], w: [], y: []};

    // Parent and subtree end from the preorder depths.
    {
      const open = [];
      for (let i = 0; i < N; i++) {
        while (open.length && depth[open[open.length - 1]] >= depth[i]) end[open.pop()] = i;
        parent[i] = open.length ? open[open.length - 1] : -1;
        open.push(i);
      }
      while (open.length) end[open.pop()] = N;
    }
    function layout() {
      const src = arr(arr(f.v)[typeIdx]);
      val = new Float64Array(N);
      for (let i = 0; i < N; i++) val[i] = Math.max(0, +src[i] || 0);
      // cur[d]: where the next child of the open node at depth d starts.
      let cur = new Float64Array(64);
      for (let i = 0; i < N; i++) {
        const d = depth[i];
        if (d + 1 >= cur.length) {
          const grown = new Float64Array(2 * (d + 2));
          grown.set(cur);
          cur = grown;
        }
        x[i] = d === 0 || parent[i] < 0 ? 0 : cur[d - 1];
        if (d > 0) cur[d - 1] += val[i];
        cur[d] = x[i];
      }
    }

    const unit = () => (types[typeIdx] && types[typeIdx].unit) || 'count';
    const total = () => (N ? val[0] : 0);

    const sec = el('section', {class: 'flame', 'data-kind': String(f.kind)});
    const title = f.title || String(f.kind);
    const head = el('h3', {text: title});
    const summary = el('p', {class: 'muted'});
    const controls = el('div', {class: 'controls'});
    const search = el('input', {type: 'search', placeholder: 'Search functions (text or /regex/)', class: 'fg-search', 'aria-label': 'Search ' + title});
    const reset = el('button', {type: 'button', class: 'fg-reset', text: 'Reset zoom'});
    const zoomLabel = el('span', {class: 'fg-zoom muted', text: ''});
    const matchLabel = el('span', {class: 'fg-match', text: ''});
    controls.append(search, reset);
    let typeSelect = null;
    if (types.length > 1) {
      typeSelect = el('select', {class: 'fg-type', 'aria-label': 'Sample type'});
      types.forEach((st, i) => typeSelect.append(el('option', {value: String(i), text: String(st.type) + ' (' + String(st.unit) + ')'})));
      controls.append(typeSelect);
    }
    controls.append(zoomLabel, matchLabel);
    const wrap = el('div', {class: 'fg-wrap'});
    const canvas = el('canvas', {class: 'fg-canvas'});
    wrap.append(canvas);
    sec.append(head, summary, controls, wrap);
    container.append(sec);
    const ctx = canvas.getContext('2d');
    const FONT = '12px ui-monospace, "DejaVu Sans Mono", monospace';
    ctx.font = FONT;
    const charW = ctx.measureText('MMMMMMMMMM').width / 10 || 7;

    const colorCache = new Array(names.length);
    function color(ni) {
      if (matchName && matchName[ni]) return '#d63bd6';
      let c = colorCache[ni];
      if (c) return c;
      let h = 2166136261;
      const s = names[ni] || '';
      for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 16777619);
      const r = ((h >>> 0) % 1000) / 1000;
      const kind = nameKind[ni];
      if (kind === 1) c = 'hsl(' + (48 + 52 * r).toFixed(0) + ',70%,' + (58 + 10 * r).toFixed(0) + '%)';  // JS
      else if (kind === 2) c = 'hsl(0,0%,' + (68 + 12 * r).toFixed(0) + '%)';  // unnamed
      else c = 'hsl(' + (8 + 30 * r).toFixed(0) + ',80%,' + (58 + 10 * r).toFixed(0) + '%)';  // native
      colorCache[ni] = c;
      return c;
    }

    function updateMatch() {
      matchedValue = 0;
      if (!matchName) {
        matchLabel.textContent = '';
        return;
      }
      // Sum the outermost matching frames only, so recursion is not counted twice.
      const e = end[zoom];
      let i = zoom;
      while (i < e) {
        if (matchName[nameOf[i]]) {
          matchedValue += val[i];
          i = end[i];
        } else {
          i++;
        }
      }
      matchLabel.textContent = 'Matched: ' + fmtValue(matchedValue, unit()) + ' (' + fmtPct(matchedValue, val[zoom]) + ' of ' + (zoom ? 'the zoomed frame' : 'all') + ')';
    }

    function render() {
      const W = Math.max(200, wrap.clientWidth || 800);
      drawn = {i: [], x: [], w: [], y: []};
      if (!N || !(val[zoom] > 0)) {
        canvas.width = W;
        canvas.height = 0;
        return;
      }
      const x0 = x[zoom];
      const scale = W / val[zoom];
      let maxD = 0;
      const push = (i, px, w) => {
        drawn.i.push(i);
        drawn.x.push(px);
        drawn.w.push(w);
        drawn.y.push(depth[i] * ROW);
        if (depth[i] > maxD) maxD = depth[i];
      };
      for (let a = zoom; a >= 0; a = parent[a]) push(a, 0, W);
      const e = end[zoom];
      let i = zoom + 1;
      while (i < e) {
        const w = val[i] * scale;
        if (w < MIN_W) {
          i = end[i];
          continue;
        }
        push(i, (x[i] - x0) * scale, w);
        i++;
      }
      const dpr = window.devicePixelRatio || 1;
      const H = (maxD + 1) * ROW;
      canvas.width = Math.round(W * dpr);
      canvas.height = Math.round(H * dpr);
      canvas.style.width = W + 'px';
      canvas.style.height = H + 'px';
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, W, H);
      ctx.font = FONT;
      ctx.textBaseline = 'middle';
      for (let k = 0; k < drawn.i.length; k++) {
        const ni = nameOf[drawn.i[k]];
        const w = drawn.w[k];
        const px = drawn.x[k];
        const py = drawn.y[k];
        const dim = depth[drawn.i[k]] < depth[zoom];
        ctx.globalAlpha = dim ? 0.55 : 1;
        ctx.fillStyle = color(ni);
        ctx.fillRect(px, py, w > 2 ? w - 1 : w, ROW - 1);
        if (w > 3 * charW + 6) {
          const label = names[ni] || '';
          const fit = Math.floor((w - 6) / charW);
          ctx.fillStyle = '#111';
          ctx.fillText(label.length > fit ? label.slice(0, Math.max(1, fit - 1)) + '\u2026' : label, px + 3, py + ROW / 2);
        }
      }
      ctx.globalAlpha = 1;
    }

    function hitTest(ev) {
      const r = canvas.getBoundingClientRect();
      const mx = ev.clientX - r.left, my = ev.clientY - r.top;
      for (let k = drawn.i.length - 1; k >= 0; k--) {
        if (my >= drawn.y[k] && my < drawn.y[k] + ROW && mx >= drawn.x[k] && mx < drawn.x[k] + Math.max(drawn.w[k], 1)) return drawn.i[k];
      }
      return -1;
    }
    function setZoom(i) {
      zoom = i;
      reset.disabled = zoom === 0;
      zoomLabel.textContent = zoom ? 'Zoomed to: ' + names[nameOf[zoom]] : '';
      sec.dataset.zoom = zoom ? names[nameOf[zoom]] : '';
      updateMatch();
      render();
    }
    function setSearch(term) {
      matchName = null;
      term = term.trim();
      if (term) {
        let re;
        const m = /^\/(.+)\/([a-z]*)$/.exec(term);
        try {
          re = m ? new RegExp(m[1], m[2].includes('i') ? 'i' : '') : null;
        } catch {
          re = null;  // not a valid pattern: the term is matched as text
        }
        const needle = term.toLowerCase();
        matchName = new Uint8Array(names.length);
        for (let k = 0; k < names.length; k++) matchName[k] = re ? re.test(names[k]) : names[k].toLowerCase().includes(needle);
      }
      sec.dataset.search = term;
      updateMatch();
      render();
    }

    canvas.addEventListener('mousemove', (ev) => {
      const i = hitTest(ev);
      if (i < 0) {
        hideTip();
        canvas.style.cursor = '';
        return;
      }
      canvas.style.cursor = 'pointer';
      const lines = [names[nameOf[i]] || '', fmtValue(val[i], unit()) + ' \u00b7 ' + fmtPct(val[i], total()) + ' of all'];
      if (zoom && depth[i] >= depth[zoom]) lines.push(fmtPct(val[i], val[zoom]) + ' of the zoomed frame');
      showTip(ev, lines);
    });
    canvas.addEventListener('mouseleave', hideTip);
    canvas.addEventListener('click', (ev) => {
      const i = hitTest(ev);
      if (i >= 0) setZoom(i);
    });
    reset.addEventListener('click', () => setZoom(0));
    let timer = 0;
    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => setSearch(search.value), 120);
    });
    search.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        clearTimeout(timer);
        setSearch(search.value);
      }
    });
    if (typeSelect) {
      typeSelect.addEventListener('change', () => {
        typeIdx = +typeSelect.value;
        layout();
        summarise();
        setZoom(0);
      });
    }
    function summarise() {
      const st = types[typeIdx] || {};
      summary.textContent = fmtValue(total(), unit()) + ' ' + (st.type && st.type !== st.unit ? String(st.type) + ' ' : '') +
        'in ' + fmtCount(f.stacks) + ' distinct stacks, ' + fmtCount(N) + ' frames in the merged tree. Click a frame to zoom in, Reset to zoom out.';
    }

    layout();
    summarise();
    setZoom(0);
    let lastW = wrap.clientWidth;
    window.addEventListener('resize', () => {
      if (wrap.clientWidth !== lastW) {
        lastW = wrap.clientWidth;
        render();
      }
    });

    // Read-only hooks for automated checks of the page: where a frame is drawn, and the current state.
    registry[String(f.kind)] = {
      findFrame(name) {
        // The widest drawn frame of that name.
        const r = canvas.getBoundingClientRect();
        let best = -1;
        for (let k = 0; k < drawn.i.length; k++) {
          if (names[nameOf[drawn.i[k]]] === name && depth[drawn.i[k]] > 0 && (best < 0 || drawn.w[k] > drawn.w[best])) best = k;
        }
        return best < 0 ? null : {x: r.left + drawn.x[best], y: r.top + drawn.y[best], width: drawn.w[best], height: ROW - 1};
      },
      state() {
        return {zoom: zoom ? names[nameOf[zoom]] : null, zoomValue: val[zoom], total: total(), matchedValue: matchedValue,
                drawnFrames: drawn.i.length, canvasWidth: canvas.clientWidth, nodes: N};
      },
      search: setSearch,
    };
  }

  function renderFlames(flames, root) {
    const sec = el('section', {id: 'flamegraphs'});
    sec.append(el('h2', {text: 'Flame graphs'}));
    const list = arr(flames).filter(isObj);
    if (!list.length) {
      sec.append(el('p', {class: 'muted', text: 'No stacks were recorded in this trace.'}));
      root.append(sec);
      return;
    }
    sec.append(el('p', {class: 'muted', text: 'Callers on top, callees below; width is the share of the value. Colours: native code orange-red, JavaScript yellow-green, unnamed grey; search matches magenta.'}));
    root.append(sec);
    for (const f of list) {
      try {
        FlameGraph(f, sec);
      } catch (err) {
        console.error('memlens: flame graph ' + f.kind + ': ' + err);
        sec.append(el('p', {class: 'error', text: 'This flame graph could not be drawn: ' + err}));
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------
  function renderHeader(report, root) {
    const h = el('header');
    h.append(el('h1', {text: 'memlens report'}));
    const what = Array.isArray(report.command) ? report.command.map(String).join(' ')
      : isNum(report.attached_pid) ? 'attached to pid ' + report.attached_pid : '';
    if (what) h.append(el('p', {class: 'mono cmd', text: what}));
    const meta = [];
    if (report.started_at) meta.push('started ' + String(report.started_at));
    if (isNum(report.duration_s)) meta.push('traced for ' + fmtSeconds(report.duration_s));
    if (report.kernel) meta.push('kernel ' + String(report.kernel));
    if (report.memlens_version) meta.push('memlens ' + String(report.memlens_version));
    if (report.schema_version !== undefined) meta.push('schema ' + String(report.schema_version));
    if (meta.length) h.append(el('p', {class: 'muted', text: meta.join('  \u00b7  ')}));
    // Loss accounting (docs/report-schema.md): events lost by cause, and apart the processes that ran
    // untraced.
    const loss = isObj(report.loss) ? report.loss : null;
    if (loss) {
      const causes = isObj(loss.events_lost_by_cause) ? loss.events_lost_by_cause : {};
      const lost = Object.keys(causes).filter((k) => isNum(causes[k]) && causes[k] > 0);
      const nLost = isNum(loss.events_lost) ? loss.events_lost : 0;
      h.append(el('p', {class: nLost > 0 ? 'warnline' : 'muted',
        text: nLost > 0 ? 'Events lost: ' + fmtCount(nLost) + ' (' + lost.map((k) => k + ' ' + fmtCount(causes[k])).join(', ') + '). Figures may be incomplete.'
                        : 'No events lost.'}));
      const nUntraced = isNum(loss.untraced_processes) ? loss.untraced_processes : 0;
      if (nUntraced > 0) {
        const who = arr(report.processes).filter((p) => isObj(p) && isObj(p.loss) && typeof p.loss.untraced_reason === 'string')
          .slice(0, 5).map((p) => 'pid ' + p.pid + ' ' + String(p.comm || '') + ': ' + p.loss.untraced_reason);
        h.append(el('p', {class: 'warnline',
          text: 'Untraced processes: ' + fmtCount(nUntraced) + ' (' + (isNum(loss.untraced_s) ? loss.untraced_s.toFixed(3) : '?') +
                ' s untraced in all). ' + who.join('; ')}));
      }
    }
    root.append(h);
    const procs = arr(report.processes).filter(isObj);
    if (procs.length) document.title = 'memlens: ' + procs.map(procLabel).join(', ');
  }
  // js_objects.diff of a process (heap snapshots): the growing groups with their retainer paths, the
  // collections whose entries grew, and the snapshots' pauses.
  function renderJsSnapshots(p, root) {
    const js = isObj(p.js_objects) ? p.js_objects : null;
    if (!js || (!isObj(js.diff) && !arr(js.snapshots).length)) return;
    const sec = el('section', {class: 'js-snapshots'}, el('h3', {text: 'What grows in the JS heap: ' + procLabel(p)}));
    const snaps = arr(js.snapshots).filter(isObj);
    for (const s of snaps) {
      sec.append(el('p', {class: s.ok ? 'muted' : 'error', text: 'Heap snapshot (' + String(s.reason || '') + ') at ' +
        (isNum(s.t_s) ? s.t_s.toFixed(1) : '?') + ' s: ' + (s.ok ? 'pause ' + (isNum(s.pause_ms) ? s.pause_ms.toFixed(0) : '?') +
        ' ms, ' + fmtCount(s.nodes) + ' objects, memlens peak RSS ' + fmtBytes(s.memlens_peak_rss_bytes) : String(s.error || 'failed'))}));
    }
    if (isObj(js.diff)) {
      const paths = {};
      for (const r of arr(js.retainers)) if (isObj(r)) paths[String(r.type) + '\t' + String(r.group)] = String(r.text || '');
      const table = el('table', {class: 'js-growth'});
      table.append(el('thead', null, el('tr', null, el('th', {text: 'Group'}), el('th', {text: 'Objects +'}),
        el('th', {text: 'Bytes +'}), el('th', {text: 'New objects'}), el('th', {text: 'Retained'}), el('th', {text: 'Held by'}))));
      const body = el('tbody');
      for (const g of arr(js.diff.groups).filter(isObj))
        body.append(el('tr', null, el('td', {text: String(g.name)}), el('td', {text: fmtCount(g.count_delta)}),
          el('td', {text: fmtBytes(g.bytes_delta)}), el('td', {text: fmtCount(g.new_objects)}),
          el('td', {text: isNum(g.retained_bytes) ? fmtBytes(g.retained_bytes) : ''}),
          el('td', {text: paths[String(g.type) + '\t' + String(g.name)] || ''})));
      for (const c of arr(js.diff.collections).filter(isObj))
        body.append(el('tr', null, el('td', {text: String(c.name) + ' (collection)'}),
          el('td', {text: fmtCount(c.entries_before) + ' -> ' + fmtCount(c.entries_after) + ' entries'}),
          el('td', {text: ''}), el('td', {text: ''}), el('td', {text: ''}), el('td', {text: String(c.text || '')})));
      table.append(body);
      sec.append(table);
    }
    root.append(sec);
  }

  function renderProbes(report, root) {
    if (!isObj(report.probes)) return;
    const det = el('details', {id: 'probes'}, el('summary', {text: 'Probes'}));
    const attached = arr(report.probes.attached);
    det.append(el('p', {text: 'Attached (' + attached.length + '): ' + attached.map(String).join(', ')}));
    const skipped = arr(report.probes.skipped);
    if (skipped.length) {
      const ul = el('ul');
      for (const s of skipped) ul.append(el('li', {text: isObj(s) ? String(s.name) + ': ' + String(s.reason || '') : String(s)}));
      det.append(el('p', {text: 'Skipped (' + skipped.length + '):'}), ul);
    }
    root.append(det);
  }

  function main() {
    const report = readJson('memlens-report');
    const rep = isObj(report) ? report : {};
    const flames = readJson('memlens-flames');
    const root = document.getElementById('app');
    document.body.append(tip);
    const guard = (what, fn) => {
      try {
        fn();
      } catch (err) {
        console.error('memlens: ' + what + ': ' + err);
        root.append(el('p', {class: 'error', text: 'The ' + what + ' section could not be drawn: ' + err}));
      }
    };
    guard('header', () => renderHeader(rep, root));
    guard('verdicts', () => renderVerdicts(rep, root));
    const procs = arr(rep.processes).filter(isObj);
    if (!procs.length) root.append(el('p', {class: 'muted', text: 'No processes in this report.'}));
    for (const p of procs) guard('process ' + procLabel(p), () => renderProcess(p, root));
    for (const p of procs) guard('JS heap snapshots', () => renderJsSnapshots(p, root));
    guard('flame graphs', () => renderFlames(flames, root));
    guard('probes', () => renderProbes(rep, root));
    window.memlensReport = {flames: registry, ready: true};
    document.body.dataset.ready = '1';
  }
  main();
})();
