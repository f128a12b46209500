// Pages on other origins export spans to vivace's OTLP/HTTP receiver from headless chromium
// with the OpenTelemetry JS web SDK (tests/ui/otlp_page.js, bundled by the Rust test).
//
//   node tests/ui/otlp_browser.mjs <otlp-http-url> <tenant> <page-url>=<service> ...
//
// Opens each page, waits for its export to finish and prints one line per page:
// `export <service> code=<0 success | 1 failure> origin=<page origin> error=<message>`.
import { chromium } from 'playwright-core';

const [otlp, tenant, ...pages] = process.argv.slice(2);
if (!otlp || !tenant || !pages.length) {
  console.error('usage: node otlp_browser.mjs <otlp-http-url> <tenant> <page-url>=<service> ...');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let status = 0;
for (const entry of pages) {
  const separator = entry.lastIndexOf('=');
  const pageUrl = entry.slice(0, separator);
  const service = entry.slice(separator + 1);
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const url = `${pageUrl}?${new URLSearchParams({ otlp, service, tenant })}`;
  try {
    await page.goto(url);
    await page.waitForFunction(() => window.__export !== undefined, null, { timeout: 30000 });
    const result = await page.evaluate(() => window.__export);
    const origin = new URL(pageUrl).origin;
    console.log(`export ${service} code=${result.code} origin=${origin} error=${result.error.replace(/\s+/g, ' ')}`);
  } catch (error) {
    status = 1;
    console.log(`FAIL ${service}: ${error.message} ${errors.join('; ')}`);
  }
  await page.close();
}
await browser.close();
process.exit(status);
