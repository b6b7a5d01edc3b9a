/**
 * The HTML report in a real browser: Debian's chromium, headless, driven by playwright-core. It must render,
 * show its plots (SVG elements with a size), and log no console errors. Skipped where chromium is not installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { readFeedback, readPredictions } from '../../src/monitor/log.ts';
import { monitor } from '../../src/monitor/report.ts';
import { renderHtml } from '../../src/monitor/html.ts';
import { makeDeployment } from './fixture.ts';

function chromiumPath(): string | undefined {
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const executablePath = chromiumPath();

test(
  'HTML report renders in headless chromium with its plots and no console errors',
  { skip: executablePath ? false : 'chromium is not installed (apt-get install chromium)', timeout: 60000 },
  async () => {
    const d = makeDeployment();
    const preds = await readPredictions(d.home, { model: 'tickets' });
    const fb = await readFeedback(d.home);
    const report = await monitor(preds.rows, d.profile, { windowMs: 3600e3 }, fb.rows);
    const file = path.join(d.home, 'report.html');
    fs.writeFileSync(file, renderHtml(report));
    const browser = await chromium.launch({
      executablePath,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(e.message));
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      assert.equal(await page.title(), 'Tailor monitor: tickets v3');
      const svgs = await page.$$eval('svg.chart', (els) =>
        els.map((e) => {
          const r = e.getBoundingClientRect();
          return { w: r.width, h: r.height, marks: e.querySelectorAll('rect, path, circle').length };
        }),
      );
      assert.equal(svgs.length, 7); // drift over time, accuracy over time, five columns
      for (const s of svgs) assert.ok(s.w > 100 && s.h > 100 && s.marks > 2, JSON.stringify(s));
      const rows = await page.$$eval('table tr', (els) => els.length);
      assert.equal(rows, 5); // header + four windows
      assert.deepEqual(errors, []);
      assert.deepEqual(requests, [pathToFileURL(file).href]);
    } finally {
      await browser.close();
    }
  },
);
