// Browser check of the Nimbus web console, run by the CLI's end-to-end test.
//
// node check.mjs --url http://127.0.0.1:PORT --screenshots DIR
//   --traffic-url http://127.0.0.1:INGRESS/path --traffic-host HOSTNAME
//   --traffic-workload NS/NAME --other-workload NS/NAME
//   --middleware COMPONENT --plugin PLUGINID [--token TOKEN]
//
// Drives headless Chromium (playwright-core, the system's browser: $CHROMIUM
// or /usr/bin/chromium) through the host, workload and cluster views, sends
// traffic to the ingress and waits for the console to count it. On success
// prints one JSON line on stdout; on failure one line on stderr naming the
// check, saves failure.png in the screenshots directory and exits 1.

import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const WAIT_MS = 20000; // every wait is bounded by this
const OVERALL_MS = 150000; // and the whole check by this

function parseArgs(argv) {
  const known = ['url', 'screenshots', 'traffic-url', 'traffic-host', 'traffic-workload', 'other-workload', 'middleware', 'plugin', 'token'];
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--') || !known.includes(name) || i + 1 >= argv.length) usage(`bad argument ${argv[i]}`);
    out[name] = argv[++i];
  }
  for (const k of known) if (k !== 'token' && !out[k]) usage(`missing --${k}`);
  out.url = out.url.replace(/\/+$/, '');
  return out;
}
function usage(msg) {
  process.stderr.write(`console check: ${msg}\nusage: node check.mjs --url URL --screenshots DIR --traffic-url URL --traffic-host HOST ` +
    '--traffic-workload NS/NAME --other-workload NS/NAME --middleware COMPONENT --plugin PLUGINID [--token TOKEN]\n');
  process.exit(2);
}

const args = parseArgs(process.argv.slice(2));
fs.mkdirSync(args.screenshots, { recursive: true });
const shots = [];

/** A CSS attribute value, quoted. */
const q = (v) => JSON.stringify(String(v));
const rowSel = (id) => `tr[data-testid=workload-row][data-workload=${q(id)}]`;

let check = 'start'; // the check under way, named in a failure
const problems = []; // console errors and uncaught page errors
let page = null;
let browser = null;

class CheckFailed extends Error {}

function assertNoPageErrors() {
  if (problems.length) throw new CheckFailed(`page errors: ${problems.join(' | ')}`);
}

/** Polls `probe` until it returns a truthy value (which is returned). */
async function until(what, probe, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last = null;
  for (;;) {
    assertNoPageErrors();
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      if (e instanceof CheckFailed) throw e; // a definite no: stop waiting
      last = e;
    }
    if (Date.now() > deadline) {
      throw new CheckFailed(`timed out after ${ms / 1000} s waiting for ${what}${last ? ` (${firstLine(last.message)})` : ''}`);
    }
    await sleep(200);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const firstLine = (s) => String(s).split('\n')[0].slice(0, 300);

async function visible(selector, what, ms) {
  await until(what || selector, async () => (await page.locator(selector).count()) > 0 && page.locator(selector).first().isVisible(), ms);
}

async function screenshot(name) {
  const file = path.resolve(args.screenshots, name);
  await page.screenshot({ path: file, fullPage: true, timeout: WAIT_MS });
  shots.push(file);
}

/** One GET to the traffic URL with the Host header set; resolves the status. */
function request(url, host) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({
      hostname: u.hostname, port: u.port || 80, path: `${u.pathname}${u.search}`, method: 'GET',
      headers: { Host: host, Connection: 'close' }, agent: false, timeout: 10000,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', reject);
    req.end();
  });
}

/** 40 GETs at about 20 a second; resolves how many were not 2xx. */
async function sendTraffic() {
  const pending = [];
  for (let i = 0; i < 40; i++) {
    pending.push(request(args['traffic-url'], args['traffic-host']));
    await sleep(50);
  }
  const statuses = await Promise.all(pending);
  return statuses.filter((s) => s < 200 || s > 299).length;
}

async function requestsTotal() {
  const text = (await page.locator(`${rowSel(args['traffic-workload'])} td[data-field=requestsTotal]`).first().textContent({ timeout: WAIT_MS })).trim();
  if (!/^\d+$/.test(text)) throw new CheckFailed(`requestsTotal cell is not plain digits: ${q(text)}`);
  return Number(text);
}

async function chartLast() {
  const v = await page.locator('svg[data-testid=chart-requests]').getAttribute('data-last', { timeout: WAIT_MS });
  return v === null || v === '' ? null : Number(v);
}

async function run() {
  check = 'launch chromium';
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    timeout: WAIT_MS,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(WAIT_MS);
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // Chromium logs each 401 that brings up the token form; the token
    // checks below say more about those than the log line does.
    if (/^Failed to load resource: the server responded with a status of 401\b/.test(m.text())) return;
    problems.push(`console: ${firstLine(m.text())}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${firstLine(e.message)}`));

  if (args.token) {
    check = 'token form';
    await page.goto(`${args.url}/`, { timeout: WAIT_MS });
    await visible('form[data-testid=token-form]', 'the token form');
    await page.fill('form[data-testid=token-form] input[name=token]', args.token);
    await page.press('form[data-testid=token-form] input[name=token]', 'Enter');
    await until('the console to accept the token', async () => {
      if (await page.locator('form[data-testid=token-form] .error').count()) throw new CheckFailed('the token was not accepted');
      return (await page.locator('form[data-testid=token-form]').count()) === 0 &&
        (await page.locator('[data-testid=host-view]:not([aria-busy])').count()) > 0;
    });
  }

  check = 'host view lists both workloads';
  await page.goto(`${args.url}/`, { timeout: WAIT_MS });
  await until(`rows of ${args['traffic-workload']} and ${args['other-workload']}`, async () => {
    if (await page.locator('form[data-testid=token-form]').count()) {
      throw new CheckFailed(args.token ? 'the token was not accepted' : 'the console asks for a token but no --token was given');
    }
    return (await page.locator('[data-testid=host-view]').count()) &&
      (await page.locator(rowSel(args['traffic-workload'])).count()) &&
      (await page.locator(rowSel(args['other-workload'])).count());
  });
  await until('the requests chart to be drawn', async () => Number(await page.locator('svg[data-testid=chart-requests]').getAttribute('data-points')) > 0);
  await screenshot('host.png');

  check = 'requests are counted';
  const before = await requestsTotal();
  const chartLastBefore = await chartLast();
  let chartLastMax = 0; // the largest data-last seen once traffic started
  let trafficDone = false;
  const watcher = (async () => {
    while (!trafficDone) {
      const v = await chartLast().catch(() => null);
      if (v != null && v > chartLastMax) chartLastMax = v;
      await sleep(150);
    }
  })();
  let non2xx;
  try {
    check = 'traffic to the ingress';
    non2xx = await sendTraffic().catch((e) => { throw new CheckFailed(`request to ${args['traffic-url']} failed: ${e.message}`); });
    check = 'requests are counted';
    await until(`${args['traffic-workload']} requestsTotal >= ${before + 40} and the requests chart > 0`, async () =>
      (await requestsTotal()) >= before + 40 && chartLastMax > 0);
  } finally {
    trafficDone = true;
    await watcher;
  }
  const after = await requestsTotal();
  await screenshot('host-traffic.png');

  check = 'workload view';
  await page.locator(`${rowSel(args['traffic-workload'])} a`).first().click({ timeout: WAIT_MS });
  await visible(`[data-testid=workload-view][data-workload=${q(args['traffic-workload'])}]`, `the workload view of ${args['traffic-workload']}`);
  const graph = 'svg[data-testid=workload-graph]';
  check = 'wiring graph';
  await visible(`${graph} g[data-testid=graph-node][data-kind=ingress]`, 'an ingress node');
  await visible(`${graph} g[data-testid=graph-node][data-kind=middleware][data-component=${q(args.middleware)}]`, `middleware node ${args.middleware}`);
  await visible(`${graph} g[data-testid=graph-node][data-kind=plugin][data-plugin=${q(args.plugin)}]`, `plugin node ${args.plugin}`);
  await until('an edge', async () => (await page.locator(`${graph} g[data-testid=graph-edge]`).count()) > 0);
  const graphNodes = await page.locator(`${graph} g[data-testid=graph-node]`).evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')));
  check = 'recent requests';
  await visible('tr[data-testid=recent-request]', 'a recent request row');
  await screenshot('workload.png');

  check = 'cluster view';
  await page.evaluate(() => { location.hash = '#/cluster'; });
  await visible('[data-testid=cluster-view]:not([aria-busy])', 'the cluster view with data');
  await screenshot('cluster.png');

  check = 'page errors';
  await sleep(300);
  assertNoPageErrors();
  return { ok: true, requestsBefore: before, requestsAfter: after, non2xx, chartLastBefore, chartLastMax, graphNodes, screenshots: shots };
}

const overall = setTimeout(() => fail(new CheckFailed(`the whole check took over ${OVERALL_MS / 1000} s`)), OVERALL_MS);

let failed = false;
async function fail(e) {
  if (failed) return;
  failed = true;
  clearTimeout(overall);
  const msg = e instanceof CheckFailed ? e.message : firstLine(e && e.message ? e.message : e);
  process.stderr.write(`console check failed: ${check}: ${msg.replace(/\s+/g, ' ')}\n`);
  if (page) {
    await page.screenshot({ path: path.resolve(args.screenshots, 'failure.png'), fullPage: true, timeout: 5000 }).catch(() => {});
  }
  await Promise.race([browser ? browser.close().catch(() => {}) : null, sleep(5000)]);
  process.exit(1);
}

run().then(async (result) => {
  clearTimeout(overall);
  await browser.close().catch(() => {});
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}, fail);
