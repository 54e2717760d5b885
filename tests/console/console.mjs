// Drives the web console of a running siphon in a real headless Chromium (Debian's
// /usr/bin/chromium through playwright-core), as tests/it/console.rs asks:
//
//   node tests/console/console.mjs
//
// Environment: SIPHON_URL (the console), SIPHON_KEY (an API key), SHOT_DIR (where the
// screenshots go), CHROMIUM (the browser), OK_TABLES (comma-separated), FAILING_TABLE,
// TAIL_TABLE, PUSH_MARKERS (three comma-separated texts the test pushes into TAIL_TABLE,
// two after `TAIL_OPEN` and one after `TAIL_SEEN`).
//
// Output, one line each: `STEP <name> ...` after each step, `TAIL_OPEN` (the test then
// pushes the first two markers), `TAIL_SEEN` (the test then restarts siphon on the same
// address and pushes the third), `SHOT <file> <bytes> <colours>`, and last `RESULT ok` or
// `RESULT fail <why>`; exit 0 only with `RESULT ok`. Every wait has a timeout; browser
// console errors, page errors and dialogs (an alert would mean injected script ran) fail
// the run, except failed requests while siphon restarts, which are counted.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const playwright = new URL('../node/node_modules/playwright-core/index.mjs', import.meta.url);
const { chromium } = await import(playwright.href);

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env('SIPHON_URL');
const KEY = env('SIPHON_KEY');
const SHOT_DIR = env('SHOT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OK_TABLES = env('OK_TABLES').split(',');
const FAILING = env('FAILING_TABLE');
const TAIL_TABLE = env('TAIL_TABLE');
const MARKERS = env('PUSH_MARKERS').split(',');
const WAIT = 15000;

const say = (line) => process.stdout.write(`${line}\n`);
const problems = [];
const tolerated = [];
let restarting = false;
// What a browser logs while the server it talks to is down or starting.
const RESTART_NOISE = /ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|ERR_INCOMPLETE_CHUNKED_ENCODING|status of 503/;

fs.mkdirSync(SHOT_DIR, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'siphon-console-profile-'));
let context;

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    timeout: 30000,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  context.setDefaultTimeout(WAIT);
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = `console error: ${msg.text()} (${msg.location().url || ''})`;
    if (restarting && RESTART_NOISE.test(msg.text())) tolerated.push(text);
    else problems.push(text);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('dialog', async (dialog) => {
    problems.push(`dialog opened (script ran?): ${dialog.message()}`);
    await dialog.dismiss();
  });

  // 1. The console asks for the key (the API needs one), then lists the sources.
  await page.goto(BASE);
  await page.locator('#key-panel').waitFor({ state: 'visible' });
  await page.locator('#key-input').fill(KEY);
  await page.locator('#key-input').press('Enter');
  await page.locator('#sources-table tbody tr[data-table]').nth(2).waitFor();
  say('STEP key accepted');

  // 2. Their states: the failing one in backoff (or worse), the others running.
  const stateOf = (name) => page.evaluate((n) => {
    const row = [...document.querySelectorAll('#sources-table tbody tr')].find((r) => r.dataset.table === n);
    return row ? row.querySelector('.badge')?.textContent : null;
  }, name);
  await page.waitForFunction(([ok, failing]) => {
    const state = (n) => [...document.querySelectorAll('#sources-table tbody tr')]
      .find((r) => r.dataset.table === n)?.querySelector('.badge')?.textContent;
    return ok.every((n) => state(n) === 'running')
      && ['backoff', 'circuit open', 'failed'].includes(state(failing));
  }, [OK_TABLES, FAILING], { timeout: WAIT });
  const states = {};
  for (const n of [...OK_TABLES, FAILING]) states[n] = await stateOf(n);
  say(`STEP sources ${JSON.stringify(states)}`);

  // A table named like markup is shown as text: no element was made from it.
  const injected = await page.evaluate((n) => ({
    images: document.querySelectorAll('main img, main script').length,
    link: [...document.querySelectorAll('#sources-table a')].some((a) => a.textContent === n),
  }), FAILING);
  if (injected.images || !injected.link) throw new Error(`the name ${FAILING} was not shown as text: ${JSON.stringify(injected)}`);
  say('STEP names are text');

  // The failing table's page: its error (HTML from the server) is text too.
  await page.locator('#sources-table a', { hasText: 'onerror' }).first().click();
  await page.waitForFunction((n) => document.querySelector('main h1')?.textContent === n, FAILING);
  await page.waitForFunction(() => (document.getElementById('status')?.textContent || '').includes('<b>upstream down</b>'));
  const markup = await page.evaluate(() => document.querySelectorAll('main img, main b, main script').length);
  if (markup) throw new Error('markup from a table name or an error became elements');
  await page.waitForFunction(() => document.getElementById('tail-status')?.dataset.kind === 'live');
  await checkZoom(page, 'failing table');
  await page.locator('nav.crumbs a').click();
  await page.locator('#sources-table tbody tr[data-table]').nth(2).waitFor();
  say('STEP failing table page');

  // Sorting from the keyboard: a header is a button; Enter sorts, aria-sort says how.
  await page.locator('th[data-col="records"] button').focus();
  await page.keyboard.press('Enter');
  const sorted = await page.locator('th[data-col="records"]').getAttribute('aria-sort');
  if (sorted !== 'descending') throw new Error(`aria-sort after sorting by records: ${sorted}`);
  await page.locator('#sources-filter').fill(OK_TABLES[0]);
  await page.waitForFunction((n) => {
    const rows = [...document.querySelectorAll('#sources-table tbody tr[data-table]')];
    return rows.length === 1 && rows[0].dataset.table === n;
  }, OK_TABLES[0]);
  await page.locator('#sources-filter').fill('');
  await page.locator('#sources-table tbody tr[data-table]').nth(2).waitFor();
  say('STEP sort and filter');

  // 3. Pause and resume every input from the header.
  await page.locator('#pause-toggle').click();
  await page.waitForFunction(() => document.getElementById('inputs-state').textContent === 'Inputs paused');
  await page.waitForFunction((ok) => ok.every((n) => [...document.querySelectorAll('#sources-table tbody tr')]
    .find((r) => r.dataset.table === n)?.querySelector('.badge')?.textContent === 'paused'), OK_TABLES);
  await page.locator('#pause-toggle').click();
  await page.waitForFunction(() => document.getElementById('inputs-state').textContent === 'Inputs running');
  await page.waitForFunction((ok) => ok.every((n) => [...document.querySelectorAll('#sources-table tbody tr')]
    .find((r) => r.dataset.table === n)?.querySelector('.badge')?.textContent === 'running'), OK_TABLES);
  say('STEP pause and resume');

  await checkZoom(page, 'sources');
  say('STEP zoom 200%');

  await page.locator('th[data-col="name"] button').click();
  await page.waitForTimeout(100);
  await shot(page, 'sources');

  // 4. A table's page, opened from the keyboard: definition, requests, live tail.
  const link = page.locator('#sources-table a', { hasText: TAIL_TABLE }).first();
  await link.focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction((n) => document.querySelector('main h1')?.textContent === n, TAIL_TABLE);
  await page.waitForFunction(() => document.getElementById('tail-status')?.dataset.kind === 'live');
  say('TAIL_OPEN');
  await page.waitForFunction((markers) => {
    const text = document.getElementById('tail-body')?.textContent || '';
    return markers.every((m) => text.includes(m));
  }, MARKERS.slice(0, 2), { timeout: WAIT });
  const tail = await page.locator('#tail-body tr.tail-row').count();
  say(`STEP live tail ${tail} rows`);

  // siphon restarts: the tail reconnects after the last change it saw, and shows the
  // next one once, with no repeat and no gap.
  restarting = true;
  say('TAIL_SEEN');
  await page.waitForFunction((m) => (document.getElementById('tail-body')?.textContent || '').includes(m),
    MARKERS[2], { timeout: 40000 });
  restarting = false;
  const seqs = await page.evaluate(() => [...document.querySelectorAll('#tail-body tr.tail-row')]
    .map((r) => Number(r.dataset.seq)));
  const bodies = await page.locator('#tail-body').textContent();
  for (const m of MARKERS) {
    const n = bodies.split(m).length - 1;
    if (n !== 1) throw new Error(`${m} is in the tail ${n} times`);
  }
  const ascending = [...seqs].reverse();
  if (!ascending.every((q, i) => i === 0 || q === ascending[i - 1] + 1)) {
    throw new Error(`the tail's sequence numbers are not contiguous: ${ascending.join(',')}`);
  }
  say(`STEP tail resumed ${ascending.join(',')} (${tolerated.length} request errors while siphon restarted)`);
  await checkZoom(page, 'table');

  const definition = await page.locator('#definition pre').textContent();
  if (!definition.includes("token = '***'")) throw new Error(`the definition does not show the token as ***:\n${definition}`);
  await page.locator('#requests svg.chart').waitFor();
  await page.locator('#recent-requests table').waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#dead-letters li').length > 0);
  await page.locator('#dead-letters summary').first().click();
  await page.waitForFunction(() => document.querySelectorAll('#latest tbody tr').length > 0);
  say('STEP table page');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, 'table');

  // 5. SQL: completion from the keyboard, a result table, a CSV download.
  await page.locator('a[data-nav="sql"]').click();
  const editor = page.locator('#sql-editor');
  await editor.waitFor();
  await editor.fill('');
  await editor.pressSequentially(`SELECT * FROM ${OK_TABLES[0].slice(0, 3)}`);
  await page.locator('#sql-suggestions li', { hasText: OK_TABLES[0] }).first().waitFor();
  await page.keyboard.press('Tab');
  const completed = await editor.inputValue();
  if (completed !== `SELECT * FROM ${OK_TABLES[0]}`) throw new Error(`completion gave ${JSON.stringify(completed)}`);
  await editor.pressSequentially(' ORDER BY 1');
  await page.keyboard.press('Control+Enter');
  await page.waitForFunction(() => /^\d+ rows? in \d/.test(document.getElementById('sql-info').textContent));
  const info = await page.locator('#sql-info').textContent();
  const cells = await page.locator('#sql-results tbody tr').count();
  if (!cells) throw new Error(`no result rows (${info})`);
  say(`STEP sql ${info}`);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('#sql-csv').click(),
  ]);
  const csv = fs.readFileSync(await download.path(), 'utf8');
  const lines = csv.trim().split('\n');
  if (lines.length !== cells + 1) throw new Error(`the CSV has ${lines.length} lines for ${cells} rows`);
  say(`STEP csv ${lines.length} lines`);
  await checkZoom(page, 'sql');
  await shot(page, 'sql');

  // 6. Every screenshot has content: many colours, not one blank fill.
  const blank = await context.newPage();
  for (const name of ['sources', 'table', 'sql']) {
    const file = path.join(SHOT_DIR, `${name}.png`);
    const bytes = fs.readFileSync(file);
    const colours = await blank.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.width;
      canvas.height = img.height;
      const g = canvas.getContext('2d');
      g.drawImage(img, 0, 0);
      const data = g.getImageData(0, 0, img.width, img.height).data;
      const seen = new Set();
      for (let i = 0; i < data.length; i += 4 * 7) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
      return seen.size;
    }, bytes.toString('base64'));
    say(`SHOT ${name}.png ${bytes.length} ${colours}`);
    if (colours < 16) throw new Error(`${name}.png looks blank (${colours} colours)`);
  }
  await blank.close();
}

// Readable at 200% zoom: at half the CSS width (what 200% zoom gives a 1280 px window)
// nothing overflows sideways.
async function checkZoom(page, name) {
  await page.setViewportSize({ width: 640, height: 400 });
  await page.waitForTimeout(100);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForTimeout(50);
  if (overflow > 1) throw new Error(`at 200% zoom the ${name} page is ${overflow}px too wide`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOT_DIR, `${name}.png`) });
}

let failure = null;
try {
  await main();
} catch (error) {
  failure = error.message.split('\n')[0];
  say(`DETAIL ${JSON.stringify(error.stack || error.message)}`);
}
try {
  await context?.close();
} catch {
  // closing a browser that already died
}
fs.rmSync(profile, { recursive: true, force: true });
for (const p of tolerated) say(`TOLERATED ${p}`);
for (const p of problems) say(`PROBLEM ${p}`);
if (!failure && problems.length) failure = `${problems.length} browser error(s)`;
say(failure ? `RESULT fail ${failure}` : 'RESULT ok');
process.exit(failure ? 1 : 0);
