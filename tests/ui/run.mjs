// Browser tests of vivace's web UI: headless Debian chromium driven by playwright-core against
// a running vivace fed by its demo load.
//
//   node tests/ui/run.mjs <base-url> <screenshot-dir> [otlp-http-url]
//
// Walks the pages as a user would (types a TraceQL query with autocompletion, opens a result,
// collapses/expands a subtree and opens a span, the flame graph and the logs tab, a service page
// and one of its exemplar points, the service graph and the alerts), writes a screenshot of
// each page, and prints figures (time to first render of a 10,000-span trace, page weight).
// Every check runs: a data route the UI needs (logs, TraceQL metrics, alerts) that answers 404
// is a failure, never a skip. Exit status 0 only when no check failed; the last line is
// "N passed, N failed".
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, shots, otlp] = process.argv.slice(2);
if (!base || !shots || !otlp) {
  console.error('usage: node run.mjs <base-url> <screenshot-dir> <otlp-http-url>');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const results = { passed: 0, failed: 0 };
const figures = [];
function pass(name) {
  results.passed++;
  console.log(`ok   ${name}`);
}
function fail(name, error) {
  results.failed++;
  console.log(`FAIL ${name}: ${error?.stack || error}`);
}
function assert(condition, message) {
  if (!condition) throw new Error(message);
}
async function check(name, body) {
  try {
    await body();
    pass(name);
    return true;
  } catch (error) {
    fail(name, error);
    return false;
  }
}

/** Fails unless `path` answers 200: a data route the UI reads must exist. */
async function assertServed(path) {
  const response = await fetch(new URL(path, base));
  const text = await response.text();
  assert(response.status === 200, `${path} answered ${response.status}: ${text.slice(0, 200)}`);
}

function hex(bytes) {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
}
function randomHex(length) {
  return hex(crypto.getRandomValues(new Uint8Array(length)));
}

/** A trace of `count` spans (a wide and deep tree over 8 services) sent as OTLP/HTTP JSON. */
async function sendBigTrace(count) {
  const traceId = randomHex(16);
  const now = BigInt(Date.now()) * 1000000n;
  const start = now - 5000000000n;
  const services = new Map();
  const ids = [];
  for (let index = 0; index < count; index++) {
    const spanId = randomHex(8);
    // Parent: a span among the previous ones, giving depth ~log(n) with long sibling lists.
    const parent = index === 0 ? '' : ids[Math.floor((index - 1) / 4)];
    ids.push(spanId);
    const service = `svc-${index % 8}`;
    const offset = BigInt(index) * 400000n;
    const span = {
      traceId, spanId, parentSpanId: parent, name: `operation-${index % 50}`, kind: index % 2 ? 3 : 2,
      startTimeUnixNano: String(start + offset), endTimeUnixNano: String(start + offset + 2000000n + BigInt(index % 7) * 1000000n),
      attributes: [{ key: 'index', value: { intValue: String(index) } }],
      status: index % 97 === 0 ? { code: 2, message: 'boom' } : {},
    };
    if (!services.has(service)) services.set(service, []);
    services.get(service).push(span);
  }
  const body = {
    resourceSpans: [...services].map(([name, spans]) => ({
      resource: { attributes: [{ key: 'service.name', value: { stringValue: name } }] },
      scopeSpans: [{ scope: { name: 'ui-test' }, spans }],
    })),
  };
  const response = await fetch(`${otlp}/v1/traces`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  assert(response.ok, `OTLP push answered ${response.status}: ${await response.text()}`);
  return traceId;
}

// ---- a known load: what the services pages must show ------------------------------------
// `ui-probe` gets a server span 5 times a second, 12 ms long, every tenth one failed, from the
// start of the run; the services checks compare what the pages show with what was sent.
const PROBE = 'ui-probe';
const probe = { sent: 0, failed: 0, firstMs: 0, lastMs: 0, refused: 0 };
async function sendProbeSpan() {
  const failed = probe.sent % 10 === 9;
  const end = BigInt(Date.now()) * 1000000n;
  const span = {
    traceId: randomHex(16), spanId: randomHex(8), name: 'GET /probe', kind: 2,
    startTimeUnixNano: String(end - 12000000n), endTimeUnixNano: String(end),
    status: failed ? { code: 2, message: 'probe failure' } : {},
  };
  const body = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: PROBE } }] }, scopeSpans: [{ scope: { name: 'ui-test' }, spans: [span] }] }] };
  probe.sent++;
  if (failed) probe.failed++;
  probe.firstMs ||= Date.now();
  probe.lastMs = Date.now();
  const response = await fetch(`${otlp}/v1/traces`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (!response.ok) probe.refused++;
}
const probeTimer = setInterval(() => { sendProbeSpan().catch(() => { probe.refused++; }); }, 200);

/** The number in a rate as the pages print it ("2.8/s", "6/min", "1/h"), per second. */
function perSecond(text) {
  const match = /^([\d.]+)\/(s|min|h)$/.exec(text.trim());
  assert(match, `not a rate: ${JSON.stringify(text)}`);
  return Number(match[1]) / { s: 1, min: 60, h: 3600 }[match[2]];
}
/** "3.8 %" as 0.038. */
function ratio(text) {
  const match = /^([\d.]+) %$/.exec(text.trim());
  assert(match, `not a percentage: ${JSON.stringify(text)}`);
  return Number(match[1]) / 100;
}
/** "12.3 ms", "812 µs", "1.24 s" in milliseconds. */
function milliseconds(text) {
  const match = /^([\d.]+) (µs|ms|s)$/.exec(text.trim());
  assert(match, `not a duration: ${JSON.stringify(text)}`);
  return Number(match[1]) * { 'µs': 0.001, ms: 1, s: 1000 }[match[2]];
}
/** Waits until the probe has sent for `seconds`. */
async function probeRunning(seconds) {
  while (Date.now() - (probe.firstMs || Date.now()) < seconds * 1000) await new Promise((resolve) => setTimeout(resolve, 500));
  assert(probe.refused === 0, `${probe.refused} probe pushes were refused`);
}
/** The probe's rate so far, per second. */
const probeRate = () => (probe.sent - 1) / ((probe.lastMs - probe.firstMs) / 1000);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    // playwright gives every launch a fresh temporary --user-data-dir of its own.
    '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
const page = await context.newPage();
const pageErrors = [];
page.on('pageerror', (error) => pageErrors.push(`${page.url()}: ${error.message}`));
page.setDefaultTimeout(15000);

async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}

/** Bytes of the page's own HTML, scripts and styles as transferred (gzip'd), and its layout shift. */
async function pageFigures(name) {
  const numbers = await page.evaluate(() => new Promise((resolve) => {
    let shift = 0;
    try {
      new PerformanceObserver((list) => { for (const entry of list.getEntries()) if (!entry.hadRecentInput) shift += entry.value; })
        .observe({ type: 'layout-shift', buffered: true });
    } catch { /* not supported */ }
    setTimeout(() => {
      const navigation = performance.getEntriesByType('navigation')[0];
      const own = performance.getEntriesByType('resource').filter((entry) => ['script', 'link', 'css', 'img', 'other'].includes(entry.initiatorType) && !entry.name.includes('/api/'));
      resolve({
        html: navigation.encodedBodySize,
        assets: own.reduce((sum, entry) => sum + entry.encodedBodySize, 0),
        decoded: navigation.decodedBodySize + own.reduce((sum, entry) => sum + entry.decodedBodySize, 0),
        files: own.length + 1,
        domContentLoaded: Math.round(navigation.domContentLoadedEventEnd),
        shift,
      });
    }, 300);
  }));
  figures.push(`page ${name}: ${numbers.html + numbers.assets} bytes gzip'd over ${numbers.files} files (${numbers.decoded} bytes uncompressed), DOMContentLoaded ${numbers.domContentLoaded} ms, cumulative layout shift ${numbers.shift.toFixed(3)}`);
}

// ---- the data routes the pages read ----------------------------------------------------
for (const path of ['/api/logs?traceID=00000000000000000000000000000001', '/api/metrics/query_range?q=%7B%7D%20%7C%20rate()', '/api/alerts']) {
  await check(`route: ${path.split('?')[0]} is served`, () => assertServed(path));
}

// ---- search -----------------------------------------------------------------------------
let openedTrace = null;
await check('search: typing TraceQL with autocompletion finds traces', async () => {
  await page.goto(`${base}/`);
  assert(new URL(page.url()).pathname === '/search', `/ went to ${page.url()}`);
  const editor = page.locator('#query');
  await editor.fill('');
  await editor.focus();
  await page.keyboard.type('{ resource.serv');
  await page.locator('#suggest li', { hasText: 'resource.service.name' }).first().waitFor();
  await page.keyboard.press('Enter');
  assert((await editor.inputValue()).endsWith('resource.service.name '), `attribute not completed: ${await editor.inputValue()}`);
  await page.keyboard.type('= ');
  await page.locator('#suggest li', { hasText: 'frontend' }).first().waitFor();
  const option = page.locator('#suggest li', { hasText: 'frontend' }).first();
  await option.dispatchEvent('mousedown');
  assert((await editor.inputValue()).includes('"frontend"'), `value not completed: ${await editor.inputValue()}`);
  await page.keyboard.type(' && kind = server }');
  await page.keyboard.press('Control+Enter');
  // The rows of this query, not those of the page's first search ({}), which may still show.
  await page.waitForFunction(() => /traces in \d+ ms/.test(document.getElementById('status').textContent));
  await page.locator('#results tbody tr').first().waitFor();
  const rows = await page.locator('#results tbody tr').count();
  assert(rows > 0, 'no result rows');
  const url = new URL(page.url());
  assert(url.searchParams.get('q') === '{ resource.service.name = "frontend" && kind = server }', `URL does not hold the query: ${page.url()}`);
  const first = await page.locator('#results tbody tr td').first().textContent();
  assert(first === 'frontend', `root service of the first row is ${first}`);
  await shot('search');
  await pageFigures('search');
});

await check('search: the result table sorts by duration and the URL reproduces the view', async () => {
  await page.locator('#results th button[data-sort="durationMs"]').click();
  const durations = async () => page.$$eval('#results tbody tr', (rows) => rows.map((row) => row.dataset.traceId));
  const sortState = await page.locator('#results th:has(button[data-sort="durationMs"])').getAttribute('aria-sort');
  assert(sortState === 'descending', `aria-sort is ${sortState}`);
  assert((await durations()).length > 0, 'rows vanished after sorting');
  const shared = page.url();
  const again = await context.newPage();
  await again.goto(shared);
  await again.locator('#results tbody tr').first().waitFor();
  assert((await again.locator('#query').inputValue()).includes('frontend'), 'shared URL lost the query');
  await again.close();
});

await check('trace: opening a result shows the waterfall', async () => {
  const link = page.locator('#results tbody tr a.trace-link').first();
  const href = await link.getAttribute('href');
  await link.click();
  await page.waitForURL(`**${href}`);
  await page.locator('#trace[data-ready="true"]').waitFor();
  openedTrace = href.split('/').pop();
  const rows = await page.locator('#waterfall .row').count();
  assert(rows >= 3, `only ${rows} rows in the waterfall`);
  assert(await page.locator('#waterfall .row.critical').count() > 0, 'no critical path drawn');
});

await check('trace: a subtree collapses and expands; a span opens its details', async () => {
  const before = await page.locator('#waterfall .row').count();
  const rootToggle = page.locator('#waterfall .row').first().locator('button.toggle');
  await rootToggle.click();
  const collapsedRows = await page.locator('#waterfall .row').count();
  assert(collapsedRows === 1, `collapsing the root left ${collapsedRows} rows`);
  await page.locator('#waterfall .row').first().locator('button.toggle').click();
  const after = await page.locator('#waterfall .row').count();
  assert(after === before, `expanding gave ${after} rows, not ${before}`);
  await page.locator('#waterfall .row').nth(1).click();
  await page.locator('#detail:not([hidden])').waitFor();
  const text = await page.locator('#detail').textContent();
  for (const part of ['Service', 'Kind', 'Status', 'Span attributes', 'Resource attributes']) assert(text.includes(part), `detail lacks ${part}`);
  await shot('trace');
  await pageFigures('trace');
});

await check('trace: keyboard navigation and find-in-trace', async () => {
  await page.locator('#waterfall').focus();
  await page.keyboard.press('Home');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  const selected = await page.locator('#waterfall .row.selected').count();
  assert(selected === 1, `${selected} rows selected after keyboard moves`);
  await page.locator('#find').fill('frontend');
  const count = await page.locator('#find-count').textContent();
  assert(/\d+ match/.test(count) && !count.startsWith('0 '), `find says ${count}`);
  await page.locator('#find').fill('');
});

await check('trace: flame graph mode draws', async () => {
  await page.locator('#tab-flame').click();
  await page.locator('#panel-flame:not([hidden])').waitFor();
  const height = await page.locator('#flame').evaluate((canvas) => canvas.height);
  assert(height > 0, 'flame canvas is empty');
  await shot('trace-flame');
});

await check('trace: the logs tab answers (logs of the trace, or a clear no-data state)', async () => {
  await page.locator('#tab-logs').click();
  await page.locator('#logs table, #logs p.empty:not(:has-text("Loading")), #logs p.error').first().waitFor();
  const error = page.locator('#logs p.error');
  assert(await error.count() === 0, `the logs tab shows an error: ${await error.first().textContent().catch(() => '')}`);
  await shot('trace-logs');
});
await check('trace: the logs tab lists the trace\'s demo logs', async () => {
  // A trace the demo logged for: the newest log of a service that carries a trace ID.
  let traceId = '';
  for (let attempt = 0; attempt < 40 && !traceId; attempt++) {
    for (const service of ['checkout', 'payments', 'frontend', 'catalog']) {
      const end = Math.ceil(Date.now() / 1000);
      const answer = await (await fetch(`${base}/api/logs?service=${service}&start=${end - 3600}&end=${end}&limit=50`)).json();
      traceId = (answer.logs || []).find((log) => /^[0-9a-f]{32}$/.test(log.traceId || ''))?.traceId || traceId;
      if (traceId) break;
    }
    if (!traceId) await new Promise((resolve) => setTimeout(resolve, 500));
  }
  assert(traceId, 'the demo wrote no logs with a trace ID');
  await page.goto(`${base}/trace/${traceId}#logs`);
  await page.locator('#panel-logs:not([hidden])').waitFor();
  await page.locator('#logs table tbody tr').first().waitFor();
  const rows = await page.locator('#logs table tbody tr').count();
  assert(rows > 0, 'no log rows');
  await shot('trace-logs-with-data');
});

// ---- services ---------------------------------------------------------------------------
await check('services: list links to a service page with RED charts', async () => {
  await page.goto(`${base}/services`);
  await page.locator('#services tbody a', { hasText: 'checkout' }).first().click();
  await page.waitForURL('**/services/checkout*');
  await page.locator('#chart-latency .plot > *').first().waitFor();
  await page.locator('#versions tbody tr').first().waitFor();
  await page.waitForFunction(() => !document.querySelector('#versions tbody').textContent.includes('…'));
  const versions = await page.locator('#versions tbody').textContent();
  assert(versions.includes('2.3.1'), `versions table: ${versions}`);
  await shot('service');
  await pageFigures('service');
});
await check('service: an exemplar point on the latency chart opens its trace', async () => {
  await page.goto(`${base}/services/frontend`);
  const exemplar = page.locator('#chart-latency a.exemplar').first();
  await exemplar.waitFor({ timeout: 30000 });
  const traceId = await exemplar.getAttribute('data-trace-id');
  assert(/^[0-9a-f]{32}$/.test(traceId), `exemplar trace id ${traceId}`);
  await exemplar.dispatchEvent('click');
  await page.waitForURL(`**/trace/${traceId}`);
  await page.locator('#trace[data-ready="true"]').waitFor();
  assert(await page.locator('#waterfall .row').count() > 0, 'exemplar trace has no spans');
  const stored = await fetch(`${base}/api/v2/traces/${traceId}`);
  assert(stored.status === 200, `the exemplar's trace ${traceId} is not stored: ${stored.status}`);
  await shot('exemplar-trace');
});
await check('service: per-operation table lists server operations', async () => {
  await page.goto(`${base}/services/frontend`);
  await page.locator('#operations tbody a').first().waitFor();
  const text = await page.locator('#operations tbody').textContent();
  assert(text.includes('/api/'), `operations: ${text}`);
});

// ---- service graph ----------------------------------------------------------------------
/** No stale "Loading…", rates in words, and no two edge labels overlapping. */
async function assertGraphReadable() {
  const statusText = await page.locator('#status').textContent();
  assert(!statusText.includes('Loading'), `the status still says ${statusText}`);
  assert(/\d+ nodes, \d+ edges/.test(statusText), `status: ${statusText}`);
  const labels = await page.$$eval('#graph text.edge-label', (texts) => texts.map((text) => {
    const box = text.getBBox();
    return { text: text.textContent, left: box.x, right: box.x + box.width, top: box.y, bottom: box.y + box.height };
  }));
  assert(labels.length >= 5, `${labels.length} edge labels`);
  for (const label of labels) assert(/^\d+(\.\d+)?\/(s|min|h)$|^\d+$/.test(label.text), `edge label ${JSON.stringify(label.text)}`);
  for (let one = 0; one < labels.length; one++) {
    for (let other = one + 1; other < labels.length; other++) {
      const [a, b] = [labels[one], labels[other]];
      const overlap = a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
      assert(!overlap, `edge labels ${JSON.stringify(a)} and ${JSON.stringify(b)} overlap`);
    }
  }
}

await check('graph: nodes and edges from the generator; an edge shows its traces', async () => {
  await page.goto(`${base}/graph`);
  await page.locator('#graph g.edge').first().waitFor();
  const nodes = await page.$$eval('#graph [data-node]', (all) => all.map((node) => node.dataset.node));
  for (const name of ['frontend', 'checkout', 'payments', 'postgresql']) assert(nodes.includes(name), `no node ${name} in ${nodes}`);
  await assertGraphReadable();
  await page.setViewportSize({ width: 1100, height: 900 });
  await page.waitForTimeout(300);
  await assertGraphReadable();
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.waitForTimeout(300);
  const edge = page.locator('#graph g.edge[aria-label^="frontend → checkout"]').first();
  await edge.focus();
  await page.keyboard.press('Enter');
  await page.locator('#edge:not([hidden])').waitFor();
  await shot('graph');
  await pageFigures('graph');
  await page.locator('#edge a.edge-search').click();
  await page.waitForURL('**/search?*');
  await page.locator('#results tbody tr, #status.error').first().waitFor();
  const rows = await page.locator('#results tbody tr').count();
  assert(rows > 0, `edge search found nothing: ${await page.locator('#status').textContent()}`);
});

// ---- alerts -----------------------------------------------------------------------------
await check('alerts: the page renders its list or a clear state', async () => {
  await page.goto(`${base}/alerts`);
  await page.waitForFunction(() => document.getElementById('status').textContent.trim().length > 0);
  await shot('alerts');
  await pageFigures('alerts');
});
await check('alerts: a webhook alert is listed with its page', async () => {
  const now = new Date().toISOString();
  const payload = {
    version: '4', groupKey: '{}:{alertname="UiTestAlert"}', status: 'firing', receiver: 'vivace', groupLabels: { alertname: 'UiTestAlert' },
    commonLabels: { alertname: 'UiTestAlert', service: 'checkout' }, commonAnnotations: {}, externalURL: 'http://alertmanager',
    alerts: [{ status: 'firing', labels: { alertname: 'UiTestAlert', service: 'checkout', severity: 'page' }, annotations: { summary: 'checkout errors in the ui test' },
      startsAt: now, endsAt: '0001-01-01T00:00:00Z', generatorURL: 'http://prometheus/graph', fingerprint: 'feedc0de12345678' }],
  };
  const response = await fetch(`${base}/api/alerts/webhook`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(payload) });
  assert(response.ok, `webhook answered ${response.status}`);
  await page.goto(`${base}/alerts`);
  const card = page.locator('article.alert', { hasText: 'UiTestAlert' }).first();
  await card.waitFor();
  await card.locator('h2 a').click();
  await page.waitForURL('**/alerts/*');
  await page.locator('article.alert').first().waitFor();
  await shot('alert');
});

// ---- keyboard, themes, narrow window ----------------------------------------------------
await check('theme: t switches between light and dark', async () => {
  await page.goto(`${base}/search`);
  const before = await page.evaluate(() => document.documentElement.dataset.theme);
  await page.locator('body').press('t');
  const after = await page.evaluate(() => document.documentElement.dataset.theme);
  assert(before !== after && ['light', 'dark'].includes(after), `theme ${before} → ${after}`);
  await page.locator('#results tbody tr, #status').first().waitFor();
  await shot(`search-${after}`);
  await page.locator('body').press('t');
});

await check('narrow window: pages do not overflow horizontally', async () => {
  await page.setViewportSize({ width: 420, height: 800 });
  for (const path of ['/search', `/trace/${openedTrace}`, '/services/frontend', '/graph', '/alerts']) {
    await page.goto(`${base}${path}`);
    await page.waitForLoadState('load');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `${path} overflows by ${overflow}px`);
  }
  await page.goto(`${base}/trace/${openedTrace}`);
  await page.locator('#trace[data-ready="true"]').waitFor();
  await shot('trace-narrow');
  await page.setViewportSize({ width: 1400, height: 900 });
});

// ---- figure: a 10,000-span trace --------------------------------------------------------
await check('trace: a 10,000-span trace renders', async () => {
  const traceId = await sendBigTrace(10000);
  let found = false;
  for (let attempt = 0; attempt < 100 && !found; attempt++) {
    const response = await fetch(`${base}/api/v2/traces/${traceId}`);
    if (response.ok) {
      const body = await response.json();
      const spans = body.trace.resourceSpans.reduce((sum, batch) => sum + batch.scopeSpans.reduce((n, scope) => n + scope.spans.length, 0), 0);
      found = spans === 10000;
    }
    if (!found) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert(found, 'the 10,000-span trace was not readable');
  const timings = [];
  for (let run = 0; run < 3; run++) {
    await page.goto(`${base}/trace/${traceId}`);
    await page.locator('#trace[data-ready="true"]').waitFor({ timeout: 60000 });
    timings.push(await page.evaluate(() => ({ ...window.__vivaceTiming, mark: performance.getEntriesByName('trace-first-render')[0].startTime })));
  }
  const rows = await page.locator('#waterfall .row').count();
  assert(rows > 0 && rows < 200, `${rows} rows in the DOM: the waterfall is not virtualised`);
  const spans = timings[0].spans;
  assert(spans === 10000, `the page saw ${spans} spans`);
  for (const [index, timing] of timings.entries()) {
    figures.push(`10,000-span trace, load ${index + 1}: first render ${Math.round(timing.mark)} ms after navigation start (fetch ${Math.round(timing.fetchMs)} ms, parse+layout+render ${Math.round(timing.renderMs)} ms)`);
  }
  await page.locator('#waterfall').evaluate((element) => { element.scrollTop = element.scrollHeight / 2; });
  await page.waitForTimeout(100);
  await shot('trace-10000-spans');
  await page.locator('#tab-flame').click();
  await shot('trace-10000-spans-flame');
});

// ---- services: the numbers shown against what was sent ---------------------------------
await check('services: the list shows the rate, error rate and p99 that were sent', async () => {
  await probeRunning(40);
  await page.goto(`${base}/services`);
  await page.locator('#services[data-ready="true"]').waitFor();
  const row = page.locator(`#services tbody tr[data-service="${PROBE}"]`);
  const shown = { rate: await row.locator('td.rate').textContent(), errors: await row.locator('td.errors').textContent(), p99: await row.locator('td.p99').textContent() };
  const sent = probeRate();
  assert(Math.abs(perSecond(shown.rate) - sent) <= sent * 0.2, `${PROBE} shows ${shown.rate}, ${sent.toFixed(2)}/s were sent`);
  assert(Math.abs(ratio(shown.errors) - 0.1) <= 0.02, `${PROBE} shows ${shown.errors} errors, 10 % were sent`);
  // 12 ms spans: in the (8 ms, 16 ms] bucket of the span-metrics histogram.
  assert(milliseconds(shown.p99) > 8 && milliseconds(shown.p99) <= 16.5, `${PROBE} p99 ${shown.p99}, every span took 12 ms`);
  // The demo's entry service: a rate per second (about ten traces a second), never an exponent.
  const frontend = await page.locator('#services tbody tr[data-service="frontend"] td.rate').textContent();
  assert(perSecond(frontend) >= 1, `frontend shows ${frontend}`);
  const table = await page.locator('#services tbody').textContent();
  assert(!/\de[-+]?\d/.test(table), `a number in exponent notation: ${table}`);
  const statusText = await page.locator('#status').textContent();
  assert(statusText.includes('span metrics'), `status: ${statusText}`);
  await shot('services');
  await pageFigures('services');
});

await check('service: summary and charts plot what was sent; error charts have points', async () => {
  await page.goto(`${base}/services/${PROBE}`);
  await page.locator('#summary [data-figure="rate"]').waitFor()
    .catch(async (error) => { throw new Error(`${error.message}; the page says: ${await page.locator('#source').textContent()}`); });
  const sent = probeRate();
  const rate = await page.locator('#summary [data-figure="rate"]').textContent();
  assert(Math.abs(perSecond(rate) - sent) <= sent * 0.2, `summary shows ${rate}, ${sent.toFixed(2)}/s were sent`);
  const errors = await page.locator('#summary [data-figure="errors"]').textContent();
  assert(Math.abs(ratio(errors) - 0.1) <= 0.02, `summary shows ${errors} errors, 10 % were sent`);
  for (const id of ['chart-rate', 'chart-errors', 'chart-latency']) {
    // attached, not visible: a flat line (every span 12 ms) has an empty bounding box.
    await page.locator(`#${id} path.series`).first().waitFor({ state: 'attached' });
    const points = Number(await page.locator(`#${id} path.series`).first().getAttribute('data-points'));
    assert(points >= 3, `${id} has ${points} points`);
  }
  const lastRate = Number(await page.locator('#chart-rate path.series').getAttribute('data-last'));
  assert(lastRate > sent * 0.5 && lastRate < sent * 1.5, `the rate chart ends at ${lastRate}/s, ${sent.toFixed(2)}/s were sent`);
  const operations = await page.locator('#operations tbody').textContent();
  assert(operations.includes('GET /probe'), `operations: ${operations}`);
  await shot('service-probe');
  // The demo's checkout fails now and then: its error chart has points too.
  await page.goto(`${base}/services/checkout`);
  await page.locator('#chart-errors path.series').waitFor({ state: 'attached' });
  const checkoutPoints = Number(await page.locator('#chart-errors path.series').getAttribute('data-points'));
  assert(checkoutPoints >= 3, `checkout's error chart has ${checkoutPoints} points`);
});

await check('pages: no emoji (missing-glyph) characters in what they show', async () => {
  for (const path of ['/services', '/services/checkout', '/graph', '/search']) {
    await page.goto(`${base}${path}`);
    await page.waitForLoadState('load');
    if (path === '/services/checkout') await page.waitForFunction(() => !document.querySelector('#versions tbody').textContent.includes('…'));
    await page.waitForTimeout(500);
    const text = await page.evaluate(() => document.body.innerText);
    const emoji = text.match(/\p{Extended_Pictographic}/gu);
    assert(!emoji, `${path} shows ${emoji?.join(' ')}`);
  }
});
clearInterval(probeTimer);

await check('no uncaught script errors on any page', async () => {
  assert(pageErrors.length === 0, pageErrors.join('\n'));
});

await browser.close();
for (const figure of figures) console.log(`FIGURE ${figure}`);
console.log(`screenshots: ${shots}`);
console.log(`${results.passed} passed, ${results.failed} failed`);
process.exit(results.failed ? 1 : 0);
