// Drives the dashboard in Debian's headless Chromium through playwright-core (node_modules/).
// Run by tests/browser/test_dashboard.py, which starts the master and the target:
//
//   node tests/browser/dashboard.js MODE URL ARTIFACT_DIR [USER:PASS]
//
// MODE is one of
//   full    the whole flow: start a test, statistics, charts, edit the user count, failures,
//           exceptions, workers, stop, the stats CSV download; a screenshot of every tab
//   auth    --web-auth: without credentials the page is a 401, with them it loads and polls
//   prefix  behind a reverse proxy at URL (a path prefix): assets and API calls stay under it
//
// Every wait is for an event on the page with a generous deadline; nothing sleeps. Exit 0 on
// success; on failure, the reason on stderr, a screenshot "failure-MODE.png" and exit 1.

'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const DEADLINE = 60000;
const CSV_HEADER = 'Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,' +
  'Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,' +
  '90%,95%,98%,99%,99.9%,99.99%,100%';

let chromium;
try {
  ({ chromium } = require(path.join(ROOT, 'node_modules', 'playwright-core')));
} catch (e) {
  console.error(`dashboard.js: playwright-core is missing (run 'make deps', which runs npm ci): ${e.message}`);
  process.exit(1);
}

const [mode, url, artifacts, creds] = process.argv.slice(2);
if (!mode || !url || !artifacts) {
  console.error('usage: dashboard.js full|auth|prefix URL ARTIFACT_DIR [USER:PASS]');
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });

function step(msg) {
  console.log(`[${mode}] ${msg}`);
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

// A page that fails the test on any script error, and on any failed request to the master.
async function watchedPage(ctx, problems) {
  const page = await ctx.newPage();
  page.setDefaultTimeout(DEADLINE);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // The refused start (startTest's bad run time) is a 400 that Chromium logs.
    if (/\/swarm$/.test(m.location().url || '') && /status of 400/.test(m.text())) return;
    problems.push(`console error: ${m.text()} (${m.location().url})`);
  });
  page.on('requestfailed', (r) => {
    const why = r.failure() && r.failure().errorText;
    // A link answered with Content-Disposition: attachment ends its navigation as a download.
    if (r.isNavigationRequest() && why === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${r.url()} ${why}`);
  });
  return page;
}

async function shot(page, name) {
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  step(`screenshot ${file}`);
}

async function waitText(page, selector, want, what) {
  step(`waiting for ${what}`);
  await page.waitForFunction(([sel, w]) => {
    const e = document.querySelector(sel);
    return e && e.textContent.trim() === w;
  }, [selector, want], { timeout: DEADLINE });
}

// Polls an async predicate in the page (waitForFunction would take its promise for a true value)
// until it is true, failing after the deadline.
async function pollPage(page, what, fn) {
  step(what);
  const end = Date.now() + DEADLINE;
  for (;;) {
    if (await page.evaluate(fn)) return;
    check(Date.now() < end, `timed out after ${DEADLINE / 1000} s ${what}`);
    await page.waitForTimeout(250);
  }
}

async function tab(page, name) {
  await page.click(`[data-testid=tab-${name}]`);
  await page.waitForSelector(`#panel-${name}:not([hidden])`);
}

async function openSwarmDialog(page, button) {
  if (!(await page.isVisible('#swarm-dialog'))) await page.click(button);
  await page.waitForSelector('#swarm-dialog[open]');
}

async function startTest(page, users, rate, badRunTime) {
  await waitText(page, '#hdr-state', 'ready', 'the master to be ready');
  await openSwarmDialog(page, '[data-testid=new-test-button]');
  await page.fill('#user_count', String(users));
  await page.fill('#spawn_rate', String(rate));
  if (badRunTime) {
    // The master refuses it: its message is shown and the dialog stays open.
    await page.fill('#run_time', badRunTime);
    await page.click('[data-testid=swarm-submit]');
    await page.waitForSelector('[data-testid=swarm-error]');
    const msg = (await page.textContent('[data-testid=swarm-error]')).trim();
    step(`refused run time ${JSON.stringify(badRunTime)}: ${JSON.stringify(msg)}`);
    check(msg.length > 0, 'an empty error message');
    check(await page.isVisible('#swarm-dialog'), 'the dialog closed on a refused start');
    check((await page.textContent('#hdr-state')).trim() === 'ready', 'a refused start changed the state');
    await page.fill('#run_time', '');
  }
  await page.click('[data-testid=swarm-submit]');
  await page.waitForSelector('#swarm-dialog', { state: 'hidden' });
  step(`started ${users} users at ${rate}/s`);
}

// Waits until the statistics table has a request row with requests > 0; returns the rows' names.
async function waitForRequests(page) {
  step('waiting for statistics rows with requests');
  await page.waitForFunction(() => Array.from(document.querySelectorAll('[data-testid=stats-row]'))
    .some((r) => Number(r.dataset.requests) > 0), null, { timeout: DEADLINE });
  return page.$$eval('[data-testid=stats-row]', (rows) => rows.map((r) => r.dataset.name));
}

// Pixels of a chart's canvas close to the colour of its first series: the line is drawn.
const SERIES_COLOUR = { 'chart-rps': '--c1', 'chart-rt': '--c1', 'chart-users': '--c4' };
async function waitForChartLine(page, id) {
  step(`waiting for a line on ${id}`);
  await page.waitForFunction(([chartId, colourVar]) => {
    const canvas = document.querySelector(`#${chartId} canvas`);
    if (!canvas || !canvas.width || !canvas.height) return false;
    const want = getComputedStyle(document.documentElement).getPropertyValue(colourVar).trim();
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(want);
    if (!m) return false;
    const [r, g, b] = [1, 2, 3].map((i) => parseInt(m[i], 16));
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let hits = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] > 200 && Math.abs(px[i] - r) < 24 && Math.abs(px[i + 1] - g) < 24 && Math.abs(px[i + 2] - b) < 24) hits++;
    }
    return hits > 30;
  }, [id, SERIES_COLOUR[id]], { timeout: DEADLINE, polling: 250 });
}

async function full(browser) {
  const problems = [];
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await watchedPage(ctx, problems);
  try {
    await page.goto(url);
    await startTest(page, 4, 4, 'soon');
    const names = await waitForRequests(page);
    step(`rows: ${JSON.stringify(names)}`);
    check(names.includes('/'), `no row for / in ${JSON.stringify(names)}`);
    // A request name with markup is shown as text, never parsed.
    step('waiting for the row named with markup');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('[data-testid=stats-row]'))
      .some((r) => r.cells[1].textContent === '/echo <b>bold</b>'), null, { timeout: DEADLINE });
    check(await page.$('#stats-table b') === null, 'a request name was parsed as HTML');
    await waitText(page, '#hdr-state', 'running', 'the running state');
    await waitText(page, '#hdr-users', '4', '4 users in the header');
    const totalRow = await page.$$eval('[data-testid=stats-total]', (rows) => rows.map((r) => r.cells[1].textContent));
    check(totalRow.length === 1 && totalRow[0] === 'Aggregated', `Aggregated row: ${JSON.stringify(totalRow)}`);
    const lastIsTotal = await page.$eval('#stats-table tbody', (b) => b.lastElementChild.dataset.testid === 'stats-total');
    check(lastIsTotal, 'the Aggregated row is not the last');

    await tab(page, 'charts');
    await waitForChartLine(page, 'chart-rps');
    await waitForChartLine(page, 'chart-users');
    for (const id of ['chart-rps', 'chart-rt', 'chart-users']) {
      check(await page.$(`#${id} canvas`), `no canvas in ${id}`);
    }

    await openSwarmDialog(page, '[data-testid=edit-button]');
    await page.fill('#user_count', '6');
    await page.click('[data-testid=swarm-submit]');
    await page.waitForSelector('#swarm-dialog', { state: 'hidden' });
    await waitText(page, '#hdr-users', '6', '6 users in the header (reported by the workers)');

    await tab(page, 'failures');
    step('waiting for the 404 failure row');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('[data-testid=failure-row]'))
      .some((r) => r.cells[2].textContent === '/no/such/page' && /404/.test(r.cells[3].textContent)), null, { timeout: DEADLINE });
    check(/^\(\d+\)$/.test(await page.textContent('#count-failures')), 'no failure count on the tab');

    await tab(page, 'exceptions');
    step('waiting for the scenario error in the exceptions table');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('[data-testid=exception-row]'))
      .some((r) => r.cells[1].textContent.includes('checkout <service> unavailable')), null, { timeout: DEADLINE });

    await tab(page, 'workers');
    step('waiting for 2 worker rows with 6 users between them');
    await page.waitForFunction(() => {
      const rows = Array.from(document.querySelectorAll('[data-testid=worker-row]'));
      const users = rows.reduce((n, r) => n + Number(r.cells[3].textContent.replace(/,/g, '')), 0);
      return rows.length === 2 && users === 6;
    }, null, { timeout: DEADLINE });

    // Screenshots while the test runs, with data in every tab and some history in the charts.
    await pollPage(page, 'waiting for 8 chart samples in ./stats/history', async () => {
      const h = await (await fetch('./stats/history', { cache: 'no-store' })).json();
      return Array.isArray(h) && h.length >= 8;
    });
    await tab(page, 'stats');
    await shot(page, 'dashboard-statistics');
    await tab(page, 'charts');
    await waitForChartLine(page, 'chart-rt');
    await shot(page, 'dashboard-charts');
    for (const t of ['failures', 'exceptions', 'workers', 'ratios']) {
      await tab(page, t);
      if (t === 'ratios') await page.waitForSelector('#ratios-table tbody tr');
      await shot(page, `dashboard-${t}`);
    }

    await page.click('[data-testid=stop-button]');
    await waitText(page, '#hdr-state', 'stopped', 'the stopped state');
    check(await page.isVisible('[data-testid=new-test-button]'), 'no New test button after the stop');

    await tab(page, 'download');
    await shot(page, 'dashboard-download');
    step('downloading the stats CSV');
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: DEADLINE }),
      page.click('[data-testid=dl-stats-csv]'),
    ]);
    const csvPath = path.join(artifacts, 'requests.csv');
    await download.saveAs(csvPath);
    const csv = fs.readFileSync(csvPath, 'utf8');
    const lines = csv.split(/\r?\n/);
    check(lines[0] === CSV_HEADER, `CSV header: ${JSON.stringify(lines[0])}`);
    check(lines.some((l) => l.startsWith('GET,/no/such/page,')), 'no /no/such/page row in the CSV');
    check(lines.some((l) => l.startsWith(',Aggregated,')), 'no Aggregated row in the CSV');

    // The dark theme, for the documentation.
    const dark = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
    const dpage = await watchedPage(dark, problems);
    await dpage.goto(`${url}#charts`);
    await waitForChartLine(dpage, 'chart-rps');
    await shot(dpage, 'dashboard-charts-dark');
    await dark.close();

    check(problems.length === 0, problems.join('\n'));
  } catch (e) {
    await page.screenshot({ path: path.join(artifacts, 'failure-full.png'), fullPage: true }).catch(() => {});
    if (problems.length) e.message += `\n${problems.join('\n')}`;
    throw e;
  } finally {
    await ctx.close();
  }
}

async function auth(browser) {
  const [user, pass] = (creds || '').split(/:(.*)/s);
  const anon = await browser.newContext();
  const resp = await anon.request.get(url);
  check(resp.status() === 401, `without credentials: HTTP ${resp.status()}, expected 401`);
  check(/^Basic /.test(resp.headers()['www-authenticate'] || ''), 'no WWW-Authenticate: Basic');
  // The browser itself gets no page: it gives up on the credentials it does not have.
  const apage = await anon.newPage();
  let shown = null;
  try {
    shown = await apage.goto(url);
  } catch (e) {
    check(/ERR_INVALID_AUTH_CREDENTIALS/.test(e.message), `without credentials: ${e.message}`);
  }
  check(shown === null || shown.status() === 401, `without credentials the page loaded: HTTP ${shown && shown.status()}`);
  step('without credentials: 401');
  await anon.close();

  const problems = [];
  const ctx = await browser.newContext({ httpCredentials: { username: user, password: pass } });
  const page = await watchedPage(ctx, problems);
  try {
    const ok = await page.goto(url);
    check(ok.status() === 200, `with credentials: HTTP ${ok.status()}`);
    await waitText(page, '#hdr-state', 'ready', 'the state read through ./stats/requests with credentials');
    check(await page.evaluate(() => typeof uPlot === 'function'), 'uPlot did not load with credentials');
    await shot(page, 'auth');
    check(problems.length === 0, problems.join('\n'));
  } catch (e) {
    await page.screenshot({ path: path.join(artifacts, 'failure-auth.png') }).catch(() => {});
    throw e;
  } finally {
    await ctx.close();
  }
}

async function prefix(browser) {
  const problems = [];
  const ctx = await browser.newContext();
  const page = await watchedPage(ctx, problems);
  const prefixPath = new URL(url).pathname;
  const outside = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol.startsWith('http') && !u.pathname.startsWith(prefixPath)) outside.push(r.url());
  });
  try {
    await page.goto(url);
    check(await page.evaluate(() => typeof uPlot === 'function'), 'uPlot did not load through the prefix');
    await startTest(page, 1, 1);
    await waitForRequests(page);
    await tab(page, 'charts');
    await waitForChartLine(page, 'chart-rps');
    await page.click('[data-testid=stop-button]');
    await waitText(page, '#hdr-state', 'stopped', 'the stopped state through the prefix');
    await shot(page, 'prefix');
    check(outside.length === 0, `requests outside ${prefixPath}: ${outside.join(', ')}`);
    check(problems.length === 0, problems.join('\n'));
  } catch (e) {
    await page.screenshot({ path: path.join(artifacts, 'failure-prefix.png') }).catch(() => {});
    throw e;
  } finally {
    await ctx.close();
  }
}

(async () => {
  const modes = { full, auth, prefix };
  if (!modes[mode]) {
    console.error(`dashboard.js: unknown mode ${mode}`);
    process.exit(2);
  }
  const browser = await chromium.launch({
    executablePath: process.env.ACRIDA_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  try {
    await modes[mode](browser);
    step('passed');
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(`[${mode}] FAILED: ${e.stack || e.message}`);
  process.exit(1);
});
