#!/usr/bin/env node
// Loads a memlens report.html in headless Chromium and checks that it works:
//   node check-html.js PAGE.html EXPECT.json [SCREENSHOT.png]
// EXPECT.json: {
//   charts_min: number of SVG charts at least,
//   flames: [{kind, total, click?: frame name, click_value?: its value,
//             search?: term, search_value?: value matched by the term, search_frame?: a frame it matches}],
//   texts: [strings the page text must contain], absent_selectors: [CSS selectors that must match nothing],
//   load_limit_ms: bound on load + first render (generous; the time is printed either way)}
// Fails on any console error, page error or network request other than the page itself.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const {chromium} = require('playwright-core');

const [page_file, expect_file, screenshot] = process.argv.slice(2);
if (!page_file || !expect_file) {
  console.error('usage: check-html.js PAGE.html EXPECT.json [SCREENSHOT.png]');
  process.exit(2);
}
const expect = JSON.parse(fs.readFileSync(expect_file, 'utf8'));
const failures = [];
const check = (ok, what) => {
  if (!ok) failures.push(what);
};

async function main() {
  const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'memlens-chromium-'));
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: {width: 1360, height: 900},
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const errors = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push('console: ' + msg.text());
    });
    page.on('pageerror', (err) => errors.push('page error: ' + err.message));
    const url = 'file://' + path.resolve(page_file);
    await page.route('**/*', (route) => {
      if (route.request().url() === url) return route.continue();
      errors.push('network request: ' + route.request().url());
      return route.abort();
    });

    const t0 = Date.now();
    await page.goto(url, {waitUntil: 'load', timeout: 120000});
    await page.waitForFunction(() => document.body.dataset.ready === '1', null, {timeout: 120000});
    const loadMs = Date.now() - t0;
    console.log(`check-html: ${path.basename(page_file)} (${fs.statSync(page_file).size} bytes) loaded and drawn in ${loadMs} ms`);
    if (expect.load_limit_ms) check(loadMs <= expect.load_limit_ms, `load took ${loadMs} ms > ${expect.load_limit_ms} ms`);

    const charts = await page.locator('svg.chart-svg').count();
    check(charts >= (expect.charts_min || 0), `${charts} charts < ${expect.charts_min}`);
    const text = await page.evaluate(() => document.body.textContent);
    for (const s of expect.texts || []) check(text.includes(s), `page text lacks "${s}"`);
    for (const css of expect.absent_selectors || []) check((await page.locator(css).count()) === 0, `page has "${css}" elements`);

    const flames = expect.flames || [];
    check((await page.locator('section.flame').count()) === flames.length, 'flame graph count differs');
    for (const f of flames) {
      const sel = `section.flame[data-kind="${f.kind}"]`;
      const state = () => page.evaluate((k) => window.memlensReport.flames[k].state(), f.kind);
      const find = (name) => page.evaluate(([k, n]) => window.memlensReport.flames[k].findFrame(n), [f.kind, name]);
      let s = await state();
      check(s.total === f.total, `${f.kind}: flame total ${s.total} != ${f.total}`);
      check(s.drawnFrames > 1, `${f.kind}: nothing drawn`);
      const box = await page.locator(sel + ' canvas').boundingBox();
      check(box && box.width > 100 && box.height >= 18, `${f.kind}: canvas missing or empty`);

      if (f.click) {
        await page.locator(sel + ' canvas').scrollIntoViewIfNeeded();
        let r = await find(f.click);
        check(r, `${f.kind}: frame "${f.click}" not drawn`);
        if (r) {
          await page.mouse.move(r.x + r.width / 2, r.y + r.height / 2);
          const tipText = await page.locator('.tip').innerText();
          check(tipText.includes(f.click), `${f.kind}: tooltip "${tipText}" lacks the frame name`);
          const t1 = Date.now();
          await page.mouse.click(r.x + r.width / 2, r.y + r.height / 2);
          s = await state();
          console.log(`check-html: ${f.kind}: zoom to "${f.click}" took ${Date.now() - t1} ms`);
          check(s.zoom === f.click, `${f.kind}: click did not zoom (zoom=${s.zoom})`);
          if (f.click_value !== undefined) check(s.zoomValue === f.click_value, `${f.kind}: zoomed value ${s.zoomValue} != ${f.click_value}`);
          r = await find(f.click);
          check(r && Math.abs(r.width - s.canvasWidth) < 1, `${f.kind}: zoomed frame is not full width`);
          const label = await page.locator(sel + ' .fg-zoom').innerText();
          check(label.includes(f.click), `${f.kind}: zoom label "${label}"`);
          await page.locator(sel + ' .fg-reset').click();
          s = await state();
          check(s.zoom === null, `${f.kind}: reset did not zoom out`);
        }
      }
      if (f.search) {
        await page.locator(sel + ' .fg-search').fill(f.search);
        await page.locator(sel + ' .fg-search').press('Enter');
        s = await state();
        if (f.search_value !== undefined) check(s.matchedValue === f.search_value, `${f.kind}: matched ${s.matchedValue} != ${f.search_value}`);
        const matchText = await page.locator(sel + ' .fg-match').innerText();
        check(/Matched/.test(matchText), `${f.kind}: no match read-out`);
        if (f.search_frame) {
          // The matched frame is painted in the highlight colour.
          const px = await page.evaluate(([k, n, css]) => {
            const r = window.memlensReport.flames[k].findFrame(n);
            if (!r) return null;
            const c = document.querySelector(css + ' canvas');
            const cr = c.getBoundingClientRect();
            const dpr = c.width / cr.width;
            const d = c.getContext('2d').getImageData(Math.floor((r.x - cr.left + 2) * dpr), Math.floor((r.y - cr.top + 2) * dpr), 1, 1).data;
            return [d[0], d[1], d[2]];
          }, [f.kind, f.search_frame, sel]);
          check(px && Math.abs(px[0] - 0xd6) < 8 && Math.abs(px[1] - 0x3b) < 8 && Math.abs(px[2] - 0xd6) < 8,
                `${f.kind}: matched frame "${f.search_frame}" not highlighted (pixel ${px})`);
        }
      }
    }
    if (screenshot) {
      fs.mkdirSync(path.dirname(screenshot), {recursive: true});
      await page.mouse.move(0, 0);
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({path: screenshot, fullPage: true});
      console.log('check-html: screenshot ' + screenshot);
    }
    for (const e of errors) failures.push(e);
  } finally {
    await context.close();
    fs.rmSync(profileDir, {recursive: true, force: true});
  }
}

main().then(
  () => {
    if (failures.length) {
      for (const f of failures.slice(0, 30)) console.error('FAIL: ' + f);
      process.exit(1);
    }
    console.log('check-html: OK');
  },
  (err) => {
    console.error('check-html: ' + (err && err.stack ? err.stack : err));
    process.exit(1);
  });
