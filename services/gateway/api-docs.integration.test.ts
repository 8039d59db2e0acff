/**
 * The API reference page in a real browser (Debian's Chromium through
 * playwright-core) against `tally all` in embedded mode: every operation of the
 * document is rendered with its summary, the page asks nothing of any other
 * origin, and the browser reports no error (a Content-Security-Policy violation is one).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { launchChromium } from '../testing/browser.ts';
import { freePort, startTally } from '../testing/tally-process.ts';
import { OPENAPI_FILE } from './api-docs.ts';

interface Operation {
  summary: string;
}
const document = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as {
  paths: Record<string, Record<string, Operation>>;
};

// Runs in the page (a string: this project type-checks without the DOM library).
const READ_OPERATIONS = `[...document.querySelectorAll('.opblock')].map((block) => ({
  method: block.querySelector('.opblock-summary-method')?.textContent ?? '',
  path: block.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? '',
  summary: block.querySelector('.opblock-summary-description')?.textContent ?? '',
}))`;

test('/docs renders every operation of the document from this origin only', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tally-api-docs-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const tally = await startTally(['all'], {
    TALLY_DATA_DIR: dataDir,
    TALLY_HTTP_PORT: String(await freePort()),
    TALLY_GRPC_PORT: String(await freePort()),
    TALLY_BIND_HOST: '127.0.0.1',
    TALLY_EVENTS_PARTITIONS: '2',
  });
  t.after(() => tally.kill('SIGTERM'));
  const origin = `http://127.0.0.1:${tally.httpPort}`;

  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const requested: string[] = [];
  const problems: string[] = [];
  page.on('request', (request) => requested.push(request.url()));
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));

  const response = await page.goto(`${origin}/docs`);
  assert.equal(response?.status(), 200);
  const publish = document.paths['/v1/events']!.post!;
  assert.equal(publish.summary, 'One event.');
  // Swagger UI renders once it has fetched and parsed /openapi.json.
  await page
    .locator('.opblock-post', { has: page.locator('[data-path="/v1/events"]') })
    .locator('.opblock-summary-description', { hasText: publish.summary })
    .waitFor({ timeout: 30_000 });

  const shown = (await page.evaluate(READ_OPERATIONS)) as { method: string; path: string; summary: string }[];
  const expected = Object.entries(document.paths)
    .flatMap(([path, item]) =>
      Object.entries(item).map(([verb, op]) => ({ method: verb.toUpperCase(), path, summary: op.summary })),
    )
    .sort((a, b) => `${a.method} ${a.path}`.localeCompare(`${b.method} ${b.path}`));
  shown.sort((a, b) => `${a.method} ${a.path}`.localeCompare(`${b.method} ${b.path}`));
  assert.deepEqual(shown, expected);

  // Open one operation: its request example is built from the Event schema (references resolved).
  const operation = page.locator('.opblock-post', { has: page.locator('[data-path="/v1/events"]') });
  await operation.locator('.opblock-summary').click();
  await operation.locator('.opblock-body', { hasText: '"occurredAt"' }).waitFor({ timeout: 10_000 });

  assert.ok(requested.includes(`${origin}/openapi.json`), requested.join('\n'));
  const elsewhere = requested.filter((url) => !url.startsWith(`${origin}/`) && !url.startsWith('data:'));
  assert.deepEqual(elsewhere, [], 'nothing is fetched from another origin');
  assert.deepEqual(problems, [], 'no errors or warnings in the browser');
});
